package crawler

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// zone is an in-process DNS zone: there is no DNS server on a test machine
// without network, and the rules under test are the verifier's, not DNS's.
// It answers as net.Resolver does: a missing name is a *net.DNSError with
// IsNotFound; down makes every query time out instead.
type zone struct {
	ptr     map[string][]string
	a       map[string][]netip.Addr
	down    bool
	aDown   bool // only forward lookups time out
	lookups atomic.Int32
	gate    chan struct{} // when set, PTR lookups wait for it to close
}

func nxdomain(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func timeout(name string) error {
	return &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true, IsTemporary: true}
}

func (z *zone) LookupAddr(_ context.Context, addr string) ([]string, error) {
	z.lookups.Add(1)
	if z.gate != nil {
		<-z.gate
	}
	if z.down {
		return nil, timeout(addr)
	}
	if n, ok := z.ptr[addr]; ok {
		return n, nil
	}
	return nil, nxdomain(addr)
}

func (z *zone) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	z.lookups.Add(1)
	if z.down || z.aDown {
		return nil, timeout(host)
	}
	if a, ok := z.a[host]; ok {
		return a, nil
	}
	return nil, nxdomain(host)
}

// fcrdns adds a forward-confirmed name for ip.
func (z *zone) fcrdns(ip, host string) *zone {
	if z.ptr == nil {
		z.ptr, z.a = map[string][]string{}, map[string][]netip.Addr{}
	}
	z.ptr[ip] = append(z.ptr[ip], host)
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	z.a[h] = append(z.a[h], netip.MustParseAddr(ip))
	return z
}

func verify(t *testing.T, v *Verifier, name, ip string) bool {
	t.Helper()
	return v.Verify(context.Background(), name, netip.MustParseAddr(ip))
}

func TestVerify(t *testing.T) {
	z := &zone{
		ptr: map[string][]string{
			"66.249.66.1":  {"crawl-66-249-66-1.googlebot.com."},
			"203.0.113.5":  {"crawl.googlebot.com.evil.example."}, // suffix trick
			"203.0.113.6":  {"fake.googlebot.com."},               // PTR they control, A does not match
			"157.55.39.1":  {"msnbot-157-55-39-1.search.msn.com."},
			"198.51.100.1": {"notgooglebot.com."},
		},
		a: map[string][]netip.Addr{
			"crawl-66-249-66-1.googlebot.com":   {netip.MustParseAddr("66.249.66.1")},
			"fake.googlebot.com":                {netip.MustParseAddr("198.51.100.77")},
			"msnbot-157-55-39-1.search.msn.com": {netip.MustParseAddr("157.55.39.1")},
		},
	}
	v := New(Options{Resolver: z})
	ctx := context.Background()
	for _, tc := range []struct {
		name, ip string
		want     bool
	}{
		{"google", "66.249.66.1", true},
		{"bing", "66.249.66.1", false}, // right IP, wrong engine
		{"google", "203.0.113.5", false},
		{"google", "203.0.113.6", false},
		{"bing", "157.55.39.1", true},
		{"google", "198.51.100.1", false},
		{"google", "192.0.2.1", false}, // no PTR
		{"unknownbot", "66.249.66.1", false},
	} {
		if got := v.Verify(ctx, tc.name, netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("%s from %s: %v, want %v", tc.name, tc.ip, got, tc.want)
		}
	}
	before := z.lookups.Load()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); v.Verify(ctx, "google", netip.MustParseAddr("66.249.66.1")) }()
	}
	wg.Wait()
	if z.lookups.Load() != before {
		t.Fatalf("cached verdict caused %d more lookups", z.lookups.Load()-before)
	}
}

// Addresses in the embedded snapshot (see ranges.json) and next to it.
const (
	googlebotIP     = "66.249.66.1"    // common-crawlers: 66.249.66.0/27
	googleSpecialIP = "66.249.90.77"   // special-crawlers: 66.249.90.64/27
	gcpIP           = "34.120.10.20"   // Google Cloud, in no crawler list
	staleGoogleIP   = "66.249.66.2"    // in the ranges, handed on (stale snapshot)
	outsideGoogle   = "66.249.67.100"  // 66.249.67.96/27 is not in the list
	bingIP          = "157.55.39.1"    // 157.55.39.0/24
	appleIP         = "17.241.208.161" // 17.241.208.160/27
	ddgIP           = "20.191.45.212"  // a published DuckDuckBot /32
	yandexIP        = "5.255.231.10"
)

// The impostor: a Google Cloud VM has a forward-confirmed
// *.bc.googleusercontent.com name. It must not pass as Googlebot — not from
// its own address, not from an address that was once in a crawler range,
// and not when no ranges are configured and the hostname rule stands alone.
func TestGoogleusercontentImpostorRefused(t *testing.T) {
	z := (&zone{}).
		fcrdns(gcpIP, "20.10.120.34.bc.googleusercontent.com.").
		fcrdns(staleGoogleIP, "2.66.249.66.bc.googleusercontent.com.")
	v := New(Options{Resolver: z})
	if verify(t, v, "google", gcpIP) {
		t.Error("a Google Cloud VM outside the ranges verified as Googlebot")
	}
	if verify(t, v, "google", staleGoogleIP) {
		t.Error("a googleusercontent name inside the ranges verified: DNS answered no")
	}
	dnsOnly := New(Options{Resolver: z, Ranges: &Ranges{}})
	if verify(t, dnsOnly, "google", gcpIP) {
		t.Error("googleusercontent.com accepted as a Google crawler hostname")
	}
}

func TestRealCrawlersVerified(t *testing.T) {
	z := (&zone{}).
		fcrdns(googlebotIP, "crawl-66-249-66-1.googlebot.com.").
		fcrdns(googleSpecialIP, "rate-limited-proxy-66-249-90-77.google.com.").
		fcrdns(bingIP, "msnbot-157-55-39-1.search.msn.com.").
		fcrdns(appleIP, "17-241-208-161.applebot.apple.com.").
		fcrdns(yandexIP, "5-255-231-10.spider.yandex.com.").
		fcrdns("2001:4860:4801:10::5", "geo-crawl-2001-4860-4801-10--5.geo.googlebot.com.")
	v := New(Options{Resolver: z})
	for _, c := range []struct{ name, ip string }{
		{"google", googlebotIP}, {"google", googleSpecialIP}, {"google", "2001:4860:4801:10::5"},
		{"bing", bingIP}, {"apple", appleIP}, {"yandex", yandexIP},
	} {
		if !verify(t, v, c.name, c.ip) {
			t.Errorf("%s from %s refused", c.name, c.ip)
		}
	}
	// An IPv4-mapped address is the same crawler.
	if !verify(t, v, "google", "::ffff:"+googlebotIP) {
		t.Error("IPv4-mapped Googlebot refused")
	}
}

// A googlebot.com name is not enough outside Google's published ranges —
// and costs no DNS query.
func TestCrawlerNameOutsideRangesRefused(t *testing.T) {
	z := (&zone{}).
		fcrdns(outsideGoogle, "crawl-66-249-67-100.googlebot.com.").
		fcrdns("203.0.113.9", "msnbot-203-0-113-9.search.msn.com.")
	v := New(Options{Resolver: z})
	if verify(t, v, "google", outsideGoogle) {
		t.Error("googlebot name outside the ranges verified")
	}
	if verify(t, v, "bing", "203.0.113.9") {
		t.Error("search.msn.com name outside the ranges verified")
	}
	if verify(t, v, "bing", googlebotIP) {
		t.Error("Google's address verified as Bing")
	}
	if n := z.lookups.Load(); n != 0 {
		t.Errorf("%d DNS queries for addresses outside the ranges", n)
	}
}

func TestHostnameBoundaries(t *testing.T) {
	for _, c := range []struct {
		name, host string
		want       bool
	}{
		{"google", "crawl-66-249-66-1.googlebot.com", true},
		{"google", "CRAWL-66-249-66-1.GOOGLEBOT.COM.", true},
		{"google", "geo-crawl-66-249-66-1.geo.googlebot.com", true},
		{"google", "rate-limited-proxy-66-249-90-77.google.com.", true},
		{"google", "crawl-66-249-66-1.evilgooglebot.com", false},
		{"google", "evilgooglebot.com", false},
		{"google", "googlebot.com", false},
		{"google", "crawl-.googlebot.com", false},
		{"google", "crawl-1.googlebot.com.evil.example", false},
		{"google", "x.crawl-1.googlebot.com", false},
		{"google", "fake.googlebot.com", false},
		{"google", "google-proxy-66-249-81-1.google.com", false},
		{"google", "mail-wm1-f10.google.com", false},
		{"google", "rate-limited-proxy-1.google.com.evil.example", false},
		{"google", "20.10.120.34.bc.googleusercontent.com", false},
		{"google", "1-2-3-4.gae.googleusercontent.com", false},
		{"bing", "msnbot-157-55-39-1.search.msn.com.", true},
		{"bing", "search.msn.com", false},
		{"bing", "evilsearch.msn.com", false},
		{"bing", "msnbot.search.msn.com.evil.example", false},
		{"apple", "17-58-1-1.applebot.apple.com", true},
		{"apple", "applebot.apple.com", false},
		{"apple", "x.notapplebot.apple.com", false},
		{"yandex", "spider-5-255-231-10.yandex.com.", true},
		{"yandex", "notyandex.ru", false},
		{"baidu", "baiduspider-1-2-3-4.crawl.baidu.com", true},
		{"baidu", "baidu.com.evil.example", false},
		{"duckduckgo", "crawler.duckduckgo.com", false},
	} {
		if got := matchHost(canonicalHost(c.host), Domains[c.name]); got != c.want {
			t.Errorf("%s %q: %v, want %v", c.name, c.host, got, c.want)
		}
	}
}

func TestDNSFailureFallsBackOnRanges(t *testing.T) {
	down := &zone{down: true}
	v := New(Options{Resolver: down})
	if !verify(t, v, "google", googlebotIP) {
		t.Error("DNS down, IP in Google's ranges: refused")
	}
	if verify(t, v, "google", outsideGoogle) {
		t.Error("DNS down, IP outside Google's ranges: verified")
	}
	if verify(t, v, "yandex", yandexIP) {
		t.Error("DNS down, engine without ranges: verified")
	}
	// "No such name" is DNS answering, not failing.
	nx := New(Options{Resolver: &zone{}})
	if verify(t, nx, "google", googlebotIP) {
		t.Error("no PTR record for an address in the ranges: verified")
	}
	// The PTR answered with a crawler name but its forward lookup timed
	// out: nothing is proved either way, so the ranges decide.
	half := (&zone{aDown: true}).fcrdns(bingIP, "msnbot-157-55-39-1.search.msn.com.")
	if !verify(t, New(Options{Resolver: half}), "bing", bingIP) {
		t.Error("forward lookup timed out, IP in Bing's ranges: refused")
	}
	// A forward answer that does not match is a "no".
	spoof := &zone{ptr: map[string][]string{bingIP: {"msnbot-1.search.msn.com."}}, a: map[string][]netip.Addr{"msnbot-1.search.msn.com": {netip.MustParseAddr("198.51.100.1")}}}
	if verify(t, New(Options{Resolver: spoof}), "bing", bingIP) {
		t.Error("PTR not confirmed forward: verified")
	}
}

func TestDegradedVerdictsExpireSooner(t *testing.T) {
	if degradedTTL >= negativeTTL || negativeTTL >= positiveTTL {
		t.Fatalf("TTLs %v, %v, %v: a DNS-failure verdict must not outlive the others", degradedTTL, negativeTTL, positiveTTL)
	}
	for _, c := range []struct {
		z            *zone
		ip           string
		ok, degraded bool
	}{
		{&zone{down: true}, googlebotIP, true, true},
		{&zone{down: true}, outsideGoogle, false, false},
		{(&zone{}).fcrdns(googlebotIP, "crawl-66-249-66-1.googlebot.com."), googlebotIP, true, false},
		{&zone{}, googlebotIP, false, false},
	} {
		v := New(Options{Resolver: c.z})
		ok, degraded := v.check(context.Background(), "google", netip.MustParseAddr(c.ip))
		if ok != c.ok || degraded != c.degraded {
			t.Errorf("%s: (%v, %v), want (%v, %v)", c.ip, ok, degraded, c.ok, c.degraded)
		}
	}
}

// DuckDuckGo publishes addresses and no hostname: its list alone decides.
func TestDuckDuckGoByListAlone(t *testing.T) {
	z := &zone{}
	v := New(Options{Resolver: z})
	if !verify(t, v, "duckduckgo", ddgIP) {
		t.Error("a published DuckDuckBot address refused")
	}
	if verify(t, v, "duckduckgo", "20.191.45.213") {
		t.Error("the address next to a published DuckDuckBot /32 verified")
	}
	if z.lookups.Load() != 0 {
		t.Error("DNS queried for a list-only engine")
	}
	if verify(t, New(Options{Resolver: z, Ranges: &Ranges{}}), "duckduckgo", ddgIP) {
		t.Error("DuckDuckGo verified with no ranges to check")
	}
}

func TestSingleFlight(t *testing.T) {
	z := (&zone{gate: make(chan struct{})}).fcrdns(googlebotIP, "crawl-66-249-66-1.googlebot.com.")
	v := New(Options{Resolver: z})
	var wg sync.WaitGroup
	var passed atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if verify(t, v, "google", googlebotIP) {
				passed.Add(1)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(z.gate)
	wg.Wait()
	if passed.Load() != 20 {
		t.Errorf("%d of 20 concurrent checks verified", passed.Load())
	}
	// One PTR and one forward lookup, whoever asked.
	if n := z.lookups.Load(); n != 2 {
		t.Errorf("%d DNS queries for 20 concurrent checks of one address", n)
	}
}

func TestEmbeddedSnapshot(t *testing.T) {
	r := EmbeddedRanges()
	if got, want := r.Engines(), []string{"apple", "bing", "duckduckgo", "google"}; !slices.Equal(got, want) {
		t.Fatalf("engines %v, want %v", got, want)
	}
	for _, c := range []struct {
		engine, ip string
		want       bool
	}{
		{"google", googlebotIP, true}, {"google", googleSpecialIP, true}, {"google", "2001:4860:4801:2008::1", true},
		{"google", "192.178.5.31", true}, {"google", "192.178.5.32", false},
		{"google", outsideGoogle, false}, {"google", "8.8.8.8", false}, {"google", gcpIP, false},
		{"bing", bingIP, true}, {"bing", "40.77.191.255", true}, {"bing", "40.77.192.0", false},
		{"apple", appleIP, true}, {"apple", "17.0.0.1", false},
		{"duckduckgo", ddgIP, true}, {"duckduckgo", "98.70.219.37", true},
		{"yandex", yandexIP, false}, {"baidu", "180.76.15.1", false},
	} {
		if got := r.Contains(c.engine, netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("%s contains %s: %v, want %v", c.engine, c.ip, got, c.want)
		}
	}
	counts := map[string]int{}
	for _, l := range r.Lists() {
		if l.URL == "" || l.CreationTime == "" || l.Retrieved == "" {
			t.Errorf("%s list without its source or date: %+v", l.Engine, l)
		}
		counts[l.Engine] += len(l.Prefixes)
	}
	// The published sizes at the snapshot's dates.
	want := map[string]int{"google": 307 + 264, "bing": 28, "apple": 24, "duckduckgo": 486}
	for e, n := range want {
		if counts[e] != n {
			t.Errorf("%s: %d prefixes, want %d", e, counts[e], n)
		}
	}
}

func TestParseRangesRefuses(t *testing.T) {
	ok := `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","url":"u","prefixes":["157.55.39.5/24"]}]}`
	r, err := ParseRanges([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Lists()[0].Prefixes[0]; got != "157.55.39.0/24" {
		t.Errorf("host bits kept: %s", got)
	}
	for name, doc := range map[string]string{
		"not JSON":       `<!DOCTYPE html>`,
		"no format":      `{"lists":[{"engine":"bing","prefixes":["157.55.39.0/24"]}]}`,
		"unknown engine": `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bingg","prefixes":["157.55.39.0/24"]}]}`,
		"empty list":     `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":[]}]}`,
		"everything":     `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["0.0.0.0/0"]}]}`,
		"a /8":           `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["40.0.0.0/8"]}]}`,
		"IPv6 /16":       `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"google","prefixes":["2001::/16"]}]}`,
		"private":        `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["10.1.0.0/16"]}]}`,
		"loopback":       `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["127.0.0.1/32"]}]}`,
		"mapped":         `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["::ffff:157.55.39.0/120"]}]}`,
		"bare address":   `{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["157.55.39.1"]}]}`,
	} {
		if _, err := ParseRanges([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadRanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ranges.json")
	if err := os.WriteFile(path, embeddedSnapshot, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRanges(path)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Contains("google", netip.MustParseAddr(googlebotIP)) {
		t.Error("loaded snapshot lost Google's ranges")
	}
	if _, err := LoadRanges(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestParsePublished(t *testing.T) {
	src := Source{"google", "https://example.test/common-crawlers.json"}
	l, err := ParsePublished(src, []byte(`{"creationTime":"2026-12-01T00:00:00.000000","prefixes":[{"ipv6Prefix":"2001:4860:4801:10::/64"},{"ipv4Prefix":""},{"ipv4Prefix":"66.249.64.0/27"}]}`), time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Prefixes, []string{"2001:4860:4801:10::/64", "66.249.64.0/27"}) || l.CreationTime != "2026-12-01T00:00:00.000000" || l.Retrieved != "2026-12-07T00:00:00Z" {
		t.Errorf("parsed %+v", l)
	}
	// What Google's old URLs answer since April 2026, with status 200.
	for _, body := range []string{`{"Action needed": "update the location you're fetching from"}`, `<html></html>`, `{"prefixes":[{"ipv4Prefix":"0.0.0.0/0"}]}`} {
		if _, err := ParsePublished(src, []byte(body), time.Now()); err == nil {
			t.Errorf("%s: accepted", body)
		}
	}
}

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/google.json":
			w.Write([]byte(`{"creationTime":"2026-12-06T00:00:00.000000","prefixes":[{"ipv4Prefix":"66.249.64.0/27"}]}`))
		case "/bing.json":
			w.Write([]byte(`{"creationTime":"2024-01-03T10:00:00.121331","prefixes":[{"ipv4Prefix":"157.55.39.0/24"}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	good := []Source{{"google", srv.URL + "/google.json"}, {"bing", srv.URL + "/bing.json"}}
	s, err := Fetch(context.Background(), srv.Client(), good)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRanges(b)
	if err != nil {
		t.Fatalf("a fetched snapshot does not load: %v", err)
	}
	if !r.Contains("google", netip.MustParseAddr("66.249.64.1")) || !r.Contains("bing", netip.MustParseAddr(bingIP)) || r.Has("apple") {
		t.Errorf("fetched snapshot holds %v", r.Engines())
	}
	if _, err := Fetch(context.Background(), srv.Client(), append(good, Source{"apple", srv.URL + "/gone.json"})); err == nil {
		t.Error("a refresh with a missing list succeeded: the engine would silently fall back on DNS")
	}
}

func FuzzParseRanges(f *testing.F) {
	f.Add(embeddedSnapshot)
	f.Add([]byte(`{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"bing","prefixes":["157.55.39.5/24","2620:1ec:c::/48"]}]}`))
	f.Add([]byte(`{"format":"advcaptcha-crawler-ranges/1","lists":[]}`))
	f.Add([]byte(`{"format":"advcaptcha-crawler-ranges/1","lists":[{"engine":"google","prefixes":["0.0.0.0/0"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRanges(b)
		if err != nil {
			return
		}
		for _, l := range r.Lists() {
			for _, s := range l.Prefixes {
				p, err := netip.ParsePrefix(s)
				if err != nil || p != p.Masked() || !p.Addr().IsGlobalUnicast() || p.Addr().IsPrivate() ||
					p.Addr().Is4() && p.Bits() < minIPv4Bits || p.Addr().Is6() && p.Bits() < minIPv6Bits {
					t.Fatalf("accepted prefix %q", s)
				}
				if !r.Contains(l.Engine, p.Addr()) {
					t.Fatalf("%s list holds %s but Contains denies it", l.Engine, s)
				}
			}
		}
		// What was accepted round-trips unchanged.
		b2, err := (&Snapshot{Format: SnapshotFormat, Lists: r.Lists()}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRanges(b2)
		if err != nil {
			t.Fatalf("re-encoded snapshot refused: %v", err)
		}
		if !slices.EqualFunc(r.Lists(), r2.Lists(), func(a, b List) bool { return a.Engine == b.Engine && slices.Equal(a.Prefixes, b.Prefixes) }) {
			t.Fatal("round trip changed the lists")
		}
	})
}
