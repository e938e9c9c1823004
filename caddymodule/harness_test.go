package caddymodule_test

// The harness of the integration tests: an upstream application, Caddy
// with advcaptcha in front of it on :9080, clients and their headers.

import (
	"errors"
	"fmt"
	"io"
	"net"
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

// failedToDial reports whether err is a failure to open the connection.
func failedToDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
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
	// A connection reset or refused while dialling never reached the
	// handler: Caddy swapping configs on :9080 right after a load (seen in
	// CI on the first requests of a flood). Retried, as a browser would;
	// any error after the connection was made still fails the test.
	for attempt := 0; err != nil && attempt < 5 && failedToDial(err) && (req.Body == nil || req.GetBody != nil); attempt++ {
		time.Sleep(100 * time.Millisecond)
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				t.Fatal(err)
			}
		}
		res, err = client.Do(req)
	}
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
