package caddymodule_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/advcaptcha/advcaptcha/caddymodule"
	"github.com/advcaptcha/advcaptcha/clearance"
)

func TestBareDirectiveProtectsSensibly(t *testing.T) {
	up := newUpstream(t)
	loadSiteAsIs(t, "", "reverse_proxy "+strings.TrimPrefix(up.URL, "http://"), "file "+logFile)

	r := get(t, "/", browser("198.51.100.1"))
	if r.status != 200 || r.body != "upstream" {
		t.Fatalf("browser's first request: %d %q", r.status, r.body)
	}
	deviceCookie(t, r)

	before := up.hits.Load()
	// curl scores from captcha_at: the captcha at once, or, while the
	// adversarial pool is still filling after start-up, the page that
	// waits for it (fallback wait).
	r = get(t, "/", curl("198.51.100.2"))
	if r.status != http.StatusForbidden && r.status != http.StatusServiceUnavailable {
		t.Fatalf("curl: status %d", r.status)
	}
	if !strings.Contains(r.body, "<html") {
		t.Fatalf("curl without JSON accept should get the HTML page, got %q", r.body)
	}
	if up.hits.Load() != before {
		t.Fatal("curl reached the upstream")
	}
	r = get(t, "/api", with(curl("198.51.100.2"), "Accept", "application/json"))
	if (r.status != http.StatusForbidden && r.status != http.StatusServiceUnavailable) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !strings.Contains(r.body, `"decision"`) {
		t.Fatalf("JSON client: %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	for _, p := range []string{"/robots.txt", "/.well-known/security.txt", "/favicon.ico"} {
		if r := get(t, p, curl("198.51.100.2")); r.status != 200 {
			t.Errorf("%s for curl: %d", p, r.status)
		}
	}
}

// TestStrictLimitStopsBurst: one device over the strict limit (100/s by
// default) is labelled an attacker and blocked, and stays blocked.
func TestStrictLimitStopsBurst(t *testing.T) {
	up := newUpstream(t)
	load(t, "", up)
	h := browser("198.51.100.10")
	h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
	statuses := burst(t, h, 300)
	if statuses[200] == 0 || statuses[403] == 0 {
		t.Fatalf("burst of 300: %v; want some allowed, then blocked", statuses)
	}
	if r := get(t, "/", h); r.status != 403 || !strings.Contains(r.body, "Access denied") {
		t.Fatalf("after the burst: %d %q", r.status, r.body)
	}
}

// burst sends n requests from 8 workers and counts the statuses.
func burst(t *testing.T, h http.Header, n int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r := get(t, "/", h)
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return statuses
}

func clearanceFor(t *testing.T, ua string) (device, cleared string) {
	t.Helper()
	keys, err := clearance.NewKeys([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	id, dc, err := keys.NewDevice(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return dc, keys.IssueClearance(id, ua, time.Now().Add(time.Hour))
}

func TestClearanceCookie(t *testing.T) {
	up := newUpstream(t)
	load(t, "secret "+testSecret+"\nupstream_headers", up)
	h := curl("198.51.100.20")
	dc, cc := clearanceFor(t, h.Get("User-Agent"))

	if r := get(t, "/", with(h, "Cookie", "advc_device="+dc+"; advc_clearance="+cc)); r.status != 200 {
		t.Fatalf("cleared curl: %d", r.status)
	}
	if got := up.lastHeader("X-Advcaptcha-Reasons"); got != "cleared" {
		t.Errorf("upstream saw reasons %q", got)
	}
	for name, cookie := range map[string]string{
		"other ua":        "advc_device=" + dc + "; advc_clearance=" + func() string { _, c := clearanceFor(t, "other"); return c }(),
		"other device":    "advc_device=" + func() string { d, _ := clearanceFor(t, "x"); return d }() + "; advc_clearance=" + cc,
		"no device":       "advc_clearance=" + cc,
		"forged":          "advc_device=" + dc + "; advc_clearance=" + strings.Repeat("A", len(cc)),
		"garbage":         "advc_device=%%%; advc_clearance=!!!!",
		"huge":            "advc_device=" + strings.Repeat("x", 6000) + "; advc_clearance=" + strings.Repeat("y", 6000),
		"repeated cookie": "advc_clearance=a; advc_clearance=b; advc_clearance=" + cc,
	} {
		if r := get(t, "/", with(h, "Cookie", cookie)); r.status != 403 {
			t.Errorf("%s: status %d, want 403", name, r.status)
		}
	}
	// A cookie signed with a key from the config's list but not the first
	// one is accepted (rotation); covered in package clearance.
}

// TestSharedClearanceStopsWorking: a clearance handed to a fleet is seen
// from many networks; from the fourth within the hour it is no longer
// honoured, and its device is scored again — everywhere, from then on.
func TestSharedClearanceStopsWorking(t *testing.T) {
	up := newUpstream(t)
	load(t, "secret "+testSecret, up)
	h := curl("198.51.100.21")
	dc, cc := clearanceFor(t, h.Get("User-Agent"))
	cookie := "advc_device=" + dc + "; advc_clearance=" + cc
	for i, ip := range []string{"198.51.100.21", "198.51.100.22", "2001:db8:5::1"} {
		if r := get(t, "/", with(curl(ip), "Cookie", cookie)); r.status != 200 {
			t.Fatalf("cleared curl from network %d: %d", i+1, r.status)
		}
	}
	for _, ip := range []string{"198.51.100.23", "198.51.100.21"} {
		if r := get(t, "/", with(curl(ip), "Cookie", cookie)); r.status != 403 {
			t.Fatalf("the clearance from a 4th network, then from its first: %d at %s, want 403", r.status, ip)
		}
	}
}

// TestSecureCookiesBehindAnHTTPSProxy: a request that reached a trusted
// proxy over HTTPS gets Secure cookies; a client's own X-Forwarded-Proto
// from an untrusted address does not count (covered by Caddy's
// trusted_proxies, which the tests set to loopback).
func TestSecureCookiesBehindAnHTTPSProxy(t *testing.T) {
	up := newUpstream(t)
	load(t, "", up)
	r := get(t, "/", with(browser("198.51.100.24"), "X-Forwarded-Proto", "https"))
	if c := r.header.Get("Set-Cookie"); !strings.Contains(c, "advc_device=") || !strings.Contains(c, "; Secure") {
		t.Fatalf("device cookie over HTTPS through the proxy: %q, want Secure", c)
	}
	r = get(t, "/", browser("198.51.100.25"))
	if c := r.header.Get("Set-Cookie"); !strings.Contains(c, "advc_device=") || strings.Contains(c, "Secure") {
		t.Fatalf("device cookie over plain HTTP: %q, want not Secure", c)
	}
}

// TestClearedBurstIsCaught: a cleared client is counted without a store
// round trip, yet a burst over the strict limit still gets it blocked
// within a flush interval or so.
func TestClearedBurstIsCaught(t *testing.T) {
	up := newUpstream(t)
	load(t, "secret "+testSecret, up)
	h := browser("198.51.100.21")
	dc, cc := clearanceFor(t, h.Get("User-Agent"))
	h.Set("Cookie", "advc_device="+dc+"; advc_clearance="+cc)
	statuses := burst(t, h, 400)
	time.Sleep(300 * time.Millisecond) // a flush or two
	if r := get(t, "/", h); r.status != 403 {
		t.Fatalf("cleared client after a burst of 400 (%v): %d, want 403", statuses, r.status)
	}
}

func TestUpstreamHeadersAndPlaceholders(t *testing.T) {
	up := newUpstream(t)
	loadProxy(t, "upstream_headers", up,
		"header_up X-Placeholder-Decision {http.advcaptcha.decision}\nheader_up X-Placeholder-Score {http.advcaptcha.score}")
	// A client cannot smuggle its own verdict in: the headers are replaced.
	h := with(browser("198.51.100.30"), "X-Advcaptcha-Score", "0", "X-Advcaptcha-Reasons", "none")
	if r := get(t, "/", h); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	for name, want := range map[string]string{
		"X-Advcaptcha-Score":     "5",
		"X-Advcaptcha-Decision":  "allow",
		"X-Advcaptcha-Reasons":   "no_device_cookie=5",
		"X-Placeholder-Decision": "allow",
		"X-Placeholder-Score":    "5",
	} {
		if got := up.lastHeader(name); got != want {
			t.Errorf("upstream saw %s %q, want %q", name, got, want)
		}
	}
}

// TestAccountLimits: requests are counted per account across IPs and
// devices, and an account over the strict limit is labelled, so it is
// challenged (not blocked: anyone can name an account) from a fresh IP and
// device too.
func TestAccountLimits(t *testing.T) {
	up := newUpstream(t)
	load(t, "account {http.request.header.X-Account}\nstrict_limit account 50\nlimit ip 0\nlimit device 0", up)
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				h := with(browser(fmt.Sprintf("198.51.101.%d", w*15+i)), "X-Account", "mallory")
				if get(t, "/", h).status == 403 {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	if n == 0 {
		t.Fatal("120 requests for one account from 120 IPs: none stopped")
	}
	if r := get(t, "/", with(browser("198.51.102.1"), "X-Account", "mallory")); r.status != 403 || strings.Contains(r.body, "Access denied") {
		t.Fatalf("labelled account from a fresh IP: %d, want challenged", r.status)
	}
	if r := get(t, "/", with(browser("198.51.102.2"), "X-Account", "alice")); r.status != 200 {
		t.Fatalf("another account: %d", r.status)
	}
}

func TestAllowAndDenyLists(t *testing.T) {
	up := newUpstream(t)
	load(t, "allow 203.0.113.0/24\ndeny 192.0.2.66 2001:db8:bad::/48", up)
	if r := get(t, "/", curl("203.0.113.9")); r.status != 200 {
		t.Errorf("allow-listed curl: %d", r.status)
	}
	if r := get(t, "/", browser("192.0.2.66")); r.status != 403 {
		t.Errorf("deny-listed browser: %d", r.status)
	}
	if r := get(t, "/", browser("2001:db8:bad:1::5")); r.status != 403 {
		t.Errorf("deny-listed IPv6 browser: %d", r.status)
	}
}

// TestSiteStylesBlockPages: with handle_errors routes the block answer is
// returned to Caddy as an error, so the site's own error route writes it,
// with the decision's placeholders; without them the built-in page is
// written.
func TestSiteStylesBlockPages(t *testing.T) {
	up := newUpstream(t)
	load(t, "deny 192.0.2.66", up)
	if r := get(t, "/", browser("192.0.2.66")); r.status != 403 || !strings.Contains(r.body, "Access denied") {
		t.Errorf("without handle_errors: %d %q, want the built-in 403 page", r.status, r.body)
	}
	loadSite(t, "deny 192.0.2.66", fmt.Sprintf("reverse_proxy %s\nhandle_errors {\nrespond \"styled {err.status_code}: {err.message} ({http.advcaptcha.reasons})\"\n}",
		strings.TrimPrefix(up.URL, "http://")), "file "+logFile)
	r := get(t, "/", browser("192.0.2.66"))
	if r.status != 403 || !strings.HasPrefix(r.body, "styled 403: advcaptcha: request refused") || !strings.Contains(r.body, "(labelled=100)") {
		t.Errorf("with handle_errors: %d %q, want the site's own page for the 403 with its reasons", r.status, r.body)
	}
	if r := get(t, "/", browser("192.0.2.67")); r.status != 200 {
		t.Errorf("an allowed browser with handle_errors: %d", r.status)
	}
}

// TestIPv6GroupedByPrefix: addresses of one /64 share counters, so
// rotating through a /64 does not escape the IP limits.
func TestIPv6GroupedByPrefix(t *testing.T) {
	up := newUpstream(t)
	load(t, "limit ip 5 1000 10000\nlimit device 0", up)
	var last reply
	for i := 0; i < 40; i++ {
		last = get(t, "/", browser(fmt.Sprintf("2001:db8:77:1::%x", i+1)))
	}
	if last.status != 403 {
		t.Fatalf("40 requests from one /64 within a second: last status %d", last.status)
	}
	if r := get(t, "/", browser("2001:db8:77:2::1")); r.status != 200 {
		t.Fatalf("another /64: %d", r.status)
	}
}

// TestIPv6BlockCountedWhole: one /48 spreading its requests over many
// /64s meets the block's own budget; another /48 does not.
func TestIPv6BlockCountedWhole(t *testing.T) {
	up := newUpstream(t)
	load(t, "limit ip 1000 10000 100000\nlimit ipv6_block 10 1000 10000\nlimit device 0", up)
	var last reply
	for i := 0; i < 40; i++ {
		last = get(t, "/", browser(fmt.Sprintf("2001:db8:78:%x::1", i+1)))
	}
	if last.status != 403 {
		t.Fatalf("40 requests from 40 /64s of one /48 within a second: last status %d", last.status)
	}
	if r := get(t, "/", browser("2001:db8:79:1::1")); r.status != 200 {
		t.Fatalf("another /48: %d", r.status)
	}
}

// TestNothingReachesTheUpstreamAroundTheGateway: the operators' area is
// never passed on, not even for an allow-listed address; a client's own
// X-Advcaptcha-* headers are removed on every path; exempt paths are exact
// and never match a path with ";" or a dot segment.
func TestNothingReachesTheUpstreamAroundTheGateway(t *testing.T) {
	up := newUpstream(t)
	load(t, "allow 203.0.113.0/24\nupstream_headers\nadmin_token "+strings.Repeat("k", 32)+"\nexempt /robots.txt /.well-known/*", up)
	before := up.hits.Load()
	if r := get(t, "/.advcaptcha/admin/summary", with(curl("203.0.113.9"), "Authorization", "Bearer "+strings.Repeat("k", 32))); r.status != 200 || up.hits.Load() != before {
		t.Fatalf("admin summary from an allow-listed address: %d, upstream saw %d requests", r.status, up.hits.Load()-before)
	}
	if r := get(t, "/.advcaptcha/nothing", curl("203.0.113.9")); r.status != 404 || up.hits.Load() != before {
		t.Fatalf("own route from an allow-listed address: %d, upstream saw %d", r.status, up.hits.Load()-before)
	}
	r := get(t, "/robots.txt", with(curl("198.51.100.60"), "X-Advcaptcha-Decision", "allow", "x-advcaptcha-score", "0"))
	if r.status != 200 || up.lastHeader("X-Advcaptcha-Decision") != "" || up.lastHeader("X-Advcaptcha-Score") != "" {
		t.Fatalf("exempt path: %d, upstream got decision %q score %q", r.status, up.lastHeader("X-Advcaptcha-Decision"), up.lastHeader("X-Advcaptcha-Score"))
	}
	for _, path := range []string{"/.well-known/..;/admin/x", "/.well-known/%2e%2e/admin", "/.well-known/./x", "/robots.txt;x"} {
		before := up.hits.Load()
		if r := get(t, path, curl("198.51.100.61")); r.status != 403 || up.hits.Load() != before {
			t.Errorf("%s from curl: %d, upstream saw %d requests; want scored and stopped", path, r.status, up.hits.Load()-before)
		}
	}
	if r := get(t, "/robots.txt/x", curl("198.51.100.62")); r.status != 403 {
		t.Errorf("/robots.txt/x matched the exact exempt file: %d", r.status)
	}
}

func TestHostileInputNeverFails(t *testing.T) {
	up := newUpstream(t)
	load(t, "", up)
	cases := map[string]http.Header{
		"non-utf8 ua":      with(browser("198.51.100.40"), "User-Agent", "Mozilla/5.0 \xff\xfe\xfd"),
		"huge ua":          with(browser("198.51.100.40"), "User-Agent", strings.Repeat("Mozilla ", 5000)),
		"repeated ua":      {"User-Agent": {chromeUA, "curl/8"}, "X-Forwarded-For": {"198.51.100.40"}},
		"bad xff":          with(browser("not-an-ip"), "X-Forwarded-For", "not-an-ip, also bad"),
		"huge xff":         with(browser(""), "X-Forwarded-For", strings.Repeat("1.2.3.4, ", 2000)),
		"bad client hints": with(browser("198.51.100.40"), "Sec-Ch-Ua", `"unterminated`),
		"no headers":       {},
	}
	for name, h := range cases {
		r := get(t, "/", h)
		if r.status >= 500 {
			t.Errorf("%s: status %d", name, r.status)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for field, opts := range map[string]string{
		"on_store_error": "on_store_error maybe",
		"weights":        "weight ua_automaton 10",
		"ipv6_prefix":    "ipv6_prefix 200",
		"allow":          "allow 10.0.0.0/99",
		"challenge_at":   "challenge_at 95\nblock_at 50",
		"secrets":        "secret tooshort",
		"crawlers":       "crawlers trust",
	} {
		assertConfigError(t, opts, field)
	}
}

// TestMetrics: decisions and challenge steps are counted on Caddy's
// metrics registry, labelled by rule and outcome.
func TestMetrics(t *testing.T) {
	up := newUpstream(t)
	load(t, "challenge_at 40\ncaptcha_at 80", up)
	get(t, "/", with(curl("198.51.100.140"), "Accept-Encoding", "identity"))        // blocked: ua_automation weighs most
	get(t, "/", with(browser("198.51.100.141"), "User-Agent", "python-requests/2")) // challenged: the slide is issued
	get(t, "/", browser("198.51.100.142"))                                          // allowed
	b := metricsText(t)
	for _, want := range []string{
		`advcaptcha_decisions_total{decision="block",reason="ua_automation"}`,
		`advcaptcha_decisions_total{decision="challenge",reason="ua_automation"}`,
		`advcaptcha_decisions_total{decision="allow",reason="no_device_cookie"}`,
		`advcaptcha_challenges_total{outcome="issued",stage="slide"}`,
		`advcaptcha_score_bucket`,
		`advcaptcha_store_seconds_count{op="score"} 3`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// metricsText returns Caddy's metrics endpoint.
func metricsText(t *testing.T) string {
	t.Helper()
	res, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
