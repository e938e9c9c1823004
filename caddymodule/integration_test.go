package caddymodule_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/advcaptcha/advcaptcha/caddymodule"
	"github.com/advcaptcha/advcaptcha/clearance"
	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

const (
	testSecret = "integration-test-secret-0123456789abcdef"
	siteURL    = "http://localhost:9080"
	chromeUA   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

// upstream is the application behind Caddy; it records what reached it.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last http.Header
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) lastHeader(name string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last.Get(name)
}

// logFile is where Caddy's own log goes, so tests can read its lines.
var logFile = filepath.Join(os.TempDir(), fmt.Sprintf("advcaptcha-caddytest-%d.log", os.Getpid()))

// load starts (or reconfigures) the in-process Caddy with advcaptcha, set
// up with opts, in front of up. Clients are identified by X-Forwarded-For,
// trusted from loopback, so each test can be a different IP.
func load(t *testing.T, opts string, up *upstream) *caddytest.Tester {
	t.Helper()
	return loadProxy(t, opts, up, "")
}

// loadProxy is load with options for reverse_proxy.
func loadProxy(t *testing.T, opts string, up *upstream, proxyOpts string) *caddytest.Tester {
	t.Helper()
	return loadSite(t, opts, fmt.Sprintf("reverse_proxy %s {\n%s\n}", strings.TrimPrefix(up.URL, "http://"), proxyOpts), "file "+logFile)
}

// loadSite starts (or reconfigures) Caddy on :9080 with advcaptcha set up
// with opts, then handler, logging to logOutput. Any failure to load ends
// the test or benchmark: one that could not load its config has not passed.
//
// Unless opts configure adversarial captchas or a solver model, they are
// turned off: generation workers would spend the CPU these tests measure
// rates and timeouts with (TestBareDirectiveProtectsSensibly keeps them).
func loadSite(t testing.TB, opts, handler, logOutput string) *caddytest.Tester {
	t.Helper()
	if !strings.Contains(opts, "adversarial") && !strings.Contains(opts, "solver_model") {
		opts += "\nadversarial off"
	}
	return loadSiteAsIs(t, opts, handler, logOutput)
}

// loadSiteAsIs is loadSite with opts exactly as given.
func loadSiteAsIs(t testing.TB, opts, handler, logOutput string) *caddytest.Tester {
	t.Helper()
	return loadWithGrace(t, "1ns", opts, handler, logOutput)
}

// newTester is caddytest.NewTester with a minute to load a config instead
// of 5 s: provisioning loads the solver models, which under -race on a
// busy 2-core machine took longer than that (TestAdversarialEnsemble, two
// models).
func newTester(t testing.TB) *caddytest.Tester {
	redistest.SkipShort(t, "starts Caddy")
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{LoadRequestTimeout: time.Minute})
}

// loadWithGrace is loadSiteAsIs with a grace period for the connections of
// the config it replaces ("" for Caddy's default: wait for every request
// in flight). The tests' 1ns makes reloads instant but cuts requests that
// are in flight during one.
func loadWithGrace(t testing.TB, grace, opts, handler, logOutput string) *caddytest.Tester {
	t.Helper()
	if grace != "" {
		grace = "grace_period " + grace
	}
	tc := newTester(t)
	tc.InitServer(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	%s
	skip_install_trust
	servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
	log {
		output %s
		format json
	}
}
:9080 {
	advcaptcha {
		%s
	}
	%s
}
`, grace, logOutput, opts, handler), "caddyfile")
	if t.Failed() || t.Skipped() {
		t.FailNow()
	}
	return tc
}

var client = &http.Client{
	Transport: func() *http.Transport {
		t := caddytest.CreateTestingTransport()
		t.DisableKeepAlives = true
		return t
	}(),
	// Long enough for a captcha computed on the request (fallback sync)
	// under the race detector, which is many times slower.
	Timeout: 60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

type reply struct {
	status int
	body   string
	header http.Header
}

func get(t testing.TB, path string, h http.Header) reply {
	t.Helper()
	req, err := http.NewRequest("GET", siteURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{res.StatusCode, string(b), res.Header}
}

// browser returns the headers Chrome sends on a navigation from ip.
// Over plain HTTP to localhost (a secure context) Chrome sends client
// hints and fetch metadata.
func browser(ip string) http.Header {
	return http.Header{
		"User-Agent":         {chromeUA},
		"Accept":             {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language":    {"en-US,en;q=0.9"},
		"Accept-Encoding":    {"gzip, deflate, br, zstd"},
		"Sec-Fetch-Site":     {"none"},
		"Sec-Fetch-Mode":     {"navigate"},
		"Sec-Fetch-Dest":     {"document"},
		"Sec-Ch-Ua":          {`"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`},
		"Sec-Ch-Ua-Platform": {`"Windows"`},
		"Sec-Ch-Ua-Mobile":   {"?0"},
		"X-Forwarded-For":    {ip},
	}
}

func curl(ip string) http.Header {
	return http.Header{"User-Agent": {"curl/8.5.0"}, "Accept": {"*/*"}, "X-Forwarded-For": {ip}}
}

func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// deviceCookie returns the device cookie a first response set.
func deviceCookie(t *testing.T, r reply) string {
	t.Helper()
	return responseCookie(t, r, "advc_device")
}

// responseCookie is the value of the cookie the reply sets; the test ends
// when it sets none.
func responseCookie(t *testing.T, r reply, name string) string {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %v", name, r.header)
	return ""
}

// TestMain fails the run if Caddy logged a recovered panic in any test:
// net/http turns a handler panic into a dropped connection, which a test
// might otherwise take for an ordinary network error.
func TestMain(m *testing.M) {
	runChildCaddy() // when this process is the second instance of a scale-out test
	code := m.Run()
	if b, err := os.ReadFile(logFile); err == nil && strings.Contains(string(b), "panic") {
		fmt.Fprintln(os.Stderr, "Caddy logged a panic during the tests; see", logFile)
		code = 1
	}
	if code == 0 {
		os.Remove(logFile)
	} else {
		fmt.Fprintln(os.Stderr, "Caddy's log of this run:", logFile)
	}
	os.Exit(code)
}

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

// TestReloadKeepsState: counters and labels in memory, and the cookie key
// when none is configured, survive a config reload.
func TestReloadKeepsState(t *testing.T) {
	up := newUpstream(t)
	load(t, "upstream_headers", up)
	h := browser("198.51.100.50")
	dc := deviceCookie(t, get(t, "/", h))
	h.Set("Cookie", "advc_device="+dc)
	if statuses := burst(t, h, 300); statuses[403] == 0 {
		t.Fatalf("burst not stopped: %v", statuses)
	}
	load(t, "upstream_headers\nchallenge_at 45", up) // a different config, same store
	if r := get(t, "/", h); r.status != 403 {
		t.Fatalf("labelled device after reload: %d", r.status)
	}
	// The generated key survived: the device cookie is still recognised.
	h2 := browser("198.51.100.51")
	h2.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h2)))
	load(t, "upstream_headers\nchallenge_at 41", up)
	if r := get(t, "/", h2); r.status != 200 || up.lastHeader("X-Advcaptcha-Reasons") != "" {
		t.Fatalf("device cookie after reload: %d, reasons %q", r.status, up.lastHeader("X-Advcaptcha-Reasons"))
	}
}

func readLog(t *testing.T) string {
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitLog(t *testing.T, from int, substr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(readLog(t)[from:], substr) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no log line %q", substr)
}

func TestRedisFailOpen(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	load(t, fmt.Sprintf("redis %s {\n timeout 100ms\n key_prefix open:\n}\non_store_error open\nsecret %s", srv.Addr, testSecret), up)

	if r := get(t, "/", browser("198.51.100.60")); r.status != 200 {
		t.Fatalf("with Redis up: %d", r.status)
	}
	mark := len(readLog(t))
	srv.Kill()
	// Fail open: a browser still passes; what its headers alone block is
	// blocked; what would be challenged gets a 503 (a challenge needs the
	// store); nothing panics or answers 500.
	if r := get(t, "/", browser("198.51.100.61")); r.status != 200 {
		t.Fatalf("browser with Redis down, fail open: %d", r.status)
	}
	if r := get(t, "/", with(curl("198.51.100.61"), "Accept-Encoding", "identity")); r.status != 403 {
		t.Fatalf("curl (block) with Redis down, fail open: %d %s", r.status, r.body)
	}
	if r := get(t, "/", curl("198.51.100.61")); r.status != 503 {
		t.Fatalf("curl with gzip (challenge) with Redis down, fail open: %d %s", r.status, r.body)
	}
	waitLog(t, mark, "store unavailable; failing open")

	srv.Restart()
	mark = len(readLog(t))
	// go-redis fails fast for a while after many failed dials (it retries
	// a dial once a second in the background), so recovery takes up to
	// about a second of requests.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(readLog(t)[mark:], "store recovered"); {
		if r := get(t, "/", browser("198.51.100.62")); r.status != 200 {
			t.Fatalf("while Redis returns: %d", r.status)
		}
		if time.Now().After(deadline) {
			t.Fatal(`no log line "store recovered" within 5s of Redis's return`)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Counting works again: a burst is stopped.
	h := browser("198.51.100.63")
	h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
	if statuses := burst(t, h, 300); statuses[403] == 0 {
		t.Fatalf("burst after recovery not stopped: %v", statuses)
	}
}

func TestRedisFailClosed(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	load(t, fmt.Sprintf("redis %s {\n timeout 100ms\n key_prefix closed:\n}\non_store_error closed\nsecret %s", srv.Addr, testSecret), up)
	h := browser("198.51.100.70")
	dc, cc := clearanceFor(t, h.Get("User-Agent"))
	cleared := with(h, "Cookie", "advc_device="+dc+"; advc_clearance="+cc)

	mark := len(readLog(t))
	srv.Kill()
	if r := get(t, "/", browser("198.51.100.71")); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("uncleared browser with Redis down, fail closed: %d", r.status)
	}
	if r := get(t, "/", cleared); r.status != 200 {
		t.Fatalf("cleared browser with Redis down: %d", r.status)
	}
	waitLog(t, mark, "store unavailable; failing closed")
	srv.Restart()
	var last reply
	for i := 0; i < 5; i++ {
		last = get(t, "/", browser("198.51.100.72"))
	}
	if last.status != 200 {
		t.Fatalf("after Redis returned: %d", last.status)
	}
}

// TestRedisOverTLS: the gateway talks to a TLS-only redis-server whose
// certificate is signed by a private CA given with tls_ca_file.
func TestRedisOverTLS(t *testing.T) {
	srv, caFile := redistest.StartTLS(t)
	up := newUpstream(t)
	load(t, fmt.Sprintf("redis %s {\n tls 127.0.0.1\n tls_ca_file %s\n key_prefix tls:\n}\non_store_error closed", srv.Addr, caFile), up)
	// With on_store_error closed, a 200 proves the store answered over TLS.
	if r := get(t, "/", browser("198.51.100.95")); r.status != 200 {
		t.Fatalf("browser via Redis over TLS: %d %q", r.status, r.body)
	}
	if r := get(t, "/", with(curl("198.51.100.95"), "Accept-Encoding", "identity")); r.status != 403 {
		t.Fatalf("curl via Redis over TLS: %d", r.status)
	}
	// Without the CA the certificate is refused, so the store is down.
	load(t, fmt.Sprintf("redis %s {\n tls 127.0.0.1\n key_prefix tls2:\n timeout 200ms\n}\non_store_error closed", srv.Addr), up)
	if r := get(t, "/", browser("198.51.100.96")); r.status != 503 {
		t.Fatalf("untrusted Redis certificate: %d, want 503", r.status)
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
