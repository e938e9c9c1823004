package riskscore

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	chromeWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	chromeAndr  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	edgeMac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
	firefoxLin  = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	safariMac   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
	safariIOS   = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	headless    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
	googlebot   = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	chromeHints = `"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`
)

func browserHeaders(ua string) http.Header {
	h := http.Header{}
	h.Set("User-Agent", ua)
	h.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	h.Set("Accept-Language", "en-GB,en;q=0.9")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Sec-Fetch-Site", "none")
	h.Set("Sec-Fetch-Mode", "navigate")
	h.Set("Sec-Fetch-Dest", "document")
	return h
}

func withHints(h http.Header, brands, platform, mobile string) http.Header {
	h.Set("Sec-CH-UA", brands)
	h.Set("Sec-CH-UA-Platform", `"`+platform+`"`)
	h.Set("Sec-CH-UA-Mobile", mobile)
	return h
}

func assess(h http.Header, secure bool) *Assessment {
	a := &Assessment{}
	w := DefaultWeights
	Environment(a, &w, h, secure)
	return a
}

func TestRealBrowsersScoreLow(t *testing.T) {
	for name, h := range map[string]http.Header{
		"chrome windows": withHints(browserHeaders(chromeWin), chromeHints, "Windows", "?0"),
		"chrome android": withHints(browserHeaders(chromeAndr), chromeHints, "Android", "?1"),
		"edge mac":       withHints(browserHeaders(edgeMac), `"Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"`, "macOS", "?0"),
		"firefox linux":  browserHeaders(firefoxLin),
		"safari mac":     browserHeaders(safariMac),
		"safari iphone":  browserHeaders(safariIOS),
		"chrome over http": func() http.Header { // no hints or fetch metadata outside secure contexts
			h := browserHeaders(chromeWin)
			h.Del("Sec-Fetch-Site")
			h.Del("Sec-Fetch-Mode")
			return h
		}(),
	} {
		secure := name != "chrome over http"
		a := assess(h, secure)
		if a.Score != 0 {
			t.Errorf("%s: score %v, reasons %s", name, a.Score, a.ReasonList())
		}
		if d := DefaultThresholds.Decide(a); d != Allow {
			t.Errorf("%s: decision %v", name, d)
		}
	}
}

func TestAutomationIsStopped(t *testing.T) {
	curl := http.Header{"User-Agent": {"curl/8.5.0"}, "Accept": {"*/*"}}
	pyreq := http.Header{"User-Agent": {"python-requests/2.32.3"}, "Accept": {"*/*"}, "Accept-Encoding": {"gzip, deflate"}}
	goclient := http.Header{"User-Agent": {"Go-http-client/1.1"}, "Accept-Encoding": {"gzip"}}
	hl := withHints(browserHeaders(headless), `"Chromium";v="131", "Not_A Brand";v="24"`, "Linux", "?0")
	for name, tc := range map[string]struct {
		h    http.Header
		want Decision
		sig  Signal
	}{
		"curl":                            {curl, Challenge, UAAutomation},
		"python-requests":                 {pyreq, Challenge, UAAutomation},
		"go-http-client":                  {goclient, Challenge, UAAutomation},
		"headless chrome":                 {hl, Challenge, UAAutomation},
		"no user agent":                   {http.Header{"Accept": {"*/*"}}, Challenge, UAMissing},
		"chrome ua, no hints":             {browserHeaders(chromeWin), Allow, ClientHintsMissing},
		"chrome ua, firefox-less headers": {http.Header{"User-Agent": {chromeWin}}, Challenge, AcceptMissing},
		"hints from firefox ua":           {withHints(browserHeaders(firefoxLin), chromeHints, "Linux", "?0"), Challenge, ClientHintsMismatch},
		"hints version lies":              {withHints(browserHeaders(chromeWin), `"Chromium";v="120", "Google Chrome";v="120"`, "Windows", "?0"), Challenge, ClientHintsMismatch},
		"platform lies":                   {withHints(browserHeaders(chromeWin), chromeHints, "Linux", "?0"), Allow, PlatformMismatch},
		"platform and version":            {withHints(browserHeaders(chromeWin), `"Chromium";v="99"`, "macOS", "?1"), Challenge, PlatformMismatch},
		"incomplete":                      {browserHeaders("Mozilla/5.0"), Allow, UAIncomplete},
		"malformed":                       {browserHeaders("Mozilla/5.0 (Windows\x01) Chrome/1"), Challenge, UAMalformed},
		"not utf-8":                       {browserHeaders("Mozilla/5.0 \xff\xfe"), Challenge, UAMalformed},
		"huge":                            {browserHeaders(strings.Repeat("A", 100_000)), Challenge, UAMalformed},
	} {
		a := assess(tc.h, true)
		if !a.Has(tc.sig) {
			t.Errorf("%s: %v did not fire; reasons %s", name, tc.sig, a.ReasonList())
		}
		if d := DefaultThresholds.Decide(a); d != tc.want {
			t.Errorf("%s: decision %v, want %v (score %v: %s)", name, d, tc.want, a.Score, a.ReasonList())
		}
	}
}

func TestCrawlerClaimIsReported(t *testing.T) {
	a := &Assessment{}
	w := DefaultWeights
	u := Environment(a, &w, http.Header{"User-Agent": {googlebot}, "Accept": {"*/*"}, "Accept-Encoding": {"gzip"}}, true)
	if u.Crawler != "google" || a.Has(UAAutomation) {
		t.Fatalf("crawler %q, reasons %s", u.Crawler, a.ReasonList())
	}
}

func TestParseBrands(t *testing.T) {
	b, ok := parseBrands(chromeHints)
	if !ok || len(b) != 3 || b[1] != (brand{"Chromium", 131}) {
		t.Fatalf("%v %v", b, ok)
	}
	for _, bad := range []string{``, `Chromium`, `"Chromium";v="x"`, `"a" "b"`, `"unterminated`, strings.Repeat(`"a";v="1", `, 20) + `"a"`} {
		if _, ok := parseBrands(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseBrands(f *testing.F) {
	f.Add(chromeHints)
	f.Add(`"a";v="1.2.3"`)
	f.Fuzz(func(t *testing.T, s string) {
		b, ok := parseBrands(s)
		if ok && (len(b) == 0 || len(b) > 16) {
			t.Fatalf("%d brands", len(b))
		}
	})
}

func FuzzUserAgent(f *testing.F) {
	for _, ua := range []string{chromeWin, firefoxLin, safariIOS, headless, googlebot, "curl/8", "Mozilla/5.0 ((("} {
		f.Add(ua, chromeHints)
	}
	f.Fuzz(func(t *testing.T, ua, hints string) {
		h := browserHeaders(ua)
		h.Set("Sec-CH-UA", hints)
		a := assess(h, true)
		if a.Score < 0 || a.Score > 100 {
			t.Fatalf("score %v", a.Score)
		}
	})
}

func TestFrequency(t *testing.T) {
	f := Frequency{
		Windows: []time.Duration{time.Second, time.Minute, time.Hour},
		Soft:    []float64{10, 100, 1000},
		Strict:  100,
	}
	w := DefaultWeights
	for _, tc := range []struct {
		counts   []float64
		strength float64
		strict   bool
	}{
		{[]float64{1, 1, 1}, 0, false},
		{[]float64{10, 100, 1000}, 0, false}, // at the limit, not over
		{[]float64{15, 100, 1000}, 0.5, false},
		{[]float64{5, 300, 1000}, 1, false},
		{[]float64{101, 200, 1000}, 0, true},
	} {
		a := &Assessment{}
		strict := f.Assess(a, &w, FrequencyIP, tc.counts)
		if strict != tc.strict {
			t.Errorf("%v: strict %v", tc.counts, strict)
		}
		want := tc.strength * w[FrequencyIP]
		if tc.strict {
			want = 100
		}
		if a.Score != want {
			t.Errorf("%v: score %v, want %v (%s)", tc.counts, a.Score, want, a.ReasonList())
		}
	}
	if d := DefaultThresholds.Decide(func() *Assessment {
		a := &Assessment{}
		f.Assess(a, &w, FrequencyIP, []float64{500, 500, 500})
		return a
	}()); d != Block {
		t.Errorf("strict limit: decision %v", d)
	}
}

func TestWeightOverrides(t *testing.T) {
	w, err := DefaultWeights.WithOverrides(map[string]float64{"ua_automation": 90, "no_device_cookie": 0})
	if err != nil || w[UAAutomation] != 90 || w[NoDeviceCookie] != 0 {
		t.Fatalf("%v %v", w, err)
	}
	if _, err := DefaultWeights.WithOverrides(map[string]float64{"ua_automaton": 1}); err == nil || !strings.Contains(err.Error(), "ua_automaton") {
		t.Fatalf("typo accepted: %v", err)
	}
	if _, err := DefaultWeights.WithOverrides(map[string]float64{"ua_missing": 200}); err == nil {
		t.Fatal("weight 200 accepted")
	}
}

func BenchmarkEnvironmentCached(b *testing.B) {
	h := withHints(browserHeaders(chromeWin), chromeHints, "Windows", "?0")
	w := DefaultWeights
	a := &Assessment{Reasons: make([]Reason, 0, 8)}
	b.ReportAllocs()
	for b.Loop() {
		a.Reasons, a.Score = a.Reasons[:0], 0
		Environment(a, &w, h, true)
	}
}

// BenchmarkScore is the whole scoring of one request: headers, the
// frequencies of three entities, and the decision.
func BenchmarkScore(b *testing.B) {
	h := withHints(browserHeaders(chromeWin), chromeHints, "Windows", "?0")
	w := DefaultWeights
	f := Frequency{Windows: []time.Duration{time.Second, time.Minute, time.Hour}, Soft: []float64{30, 400, 4000}, Strict: 100}
	counts := [][]float64{{3, 40, 500}, {2, 35, 450}, {50, 100, 200}}
	var a Assessment
	buf := make([]Reason, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		a = Assessment{Reasons: buf[:0]}
		Environment(&a, &w, h, true)
		for i, c := range counts {
			f.Assess(&a, &w, FrequencyIP+Signal(i), c)
		}
		if DefaultThresholds.Decide(&a) == Block {
			b.Fatal("blocked")
		}
	}
}
