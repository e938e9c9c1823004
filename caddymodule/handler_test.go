package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/store"
)

const benchUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func provisioned(b *testing.B) *Handler { return provisionedWith(b, nil) }

// provisionedWith provisions a benchmark handler on Redis, or on memory
// when redisCfg is nil.
func provisionedWith(b *testing.B, redisCfg *RedisConfig) *Handler {
	b.Helper()
	// One benchmark loop is a single client at hundreds of thousands of
	// requests a second; the limits are lifted so that what is measured is
	// the cost of the path, not the labelling of that client.
	h := &Handler{
		Secrets: []string{"bench-secret-0123456789abcdef0123456789"},
		Redis:   redisCfg,
		Limits:  &Limits{IP: []float64{0}, Device: []float64{0}, StrictIP: 1e12, StrictDevice: 1e12, StrictAccount: 1e12},
		// Generation workers would compete with what is measured.
		Adversarial: &Adversarial{Off: true},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Cleanup() })
	return h
}

func benchRequest(ip string) *http.Request {
	r := httptest.NewRequest("GET", "http://localhost/", nil)
	r.Header.Set("User-Agent", benchUA)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Accept-Language", "en")
	r.Header.Set("Accept-Encoding", "gzip")
	r.Header.Set("Sec-Fetch-Site", "none")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Ch-Ua", `"Chromium";v="131", "Google Chrome";v="131"`)
	r.Header.Set("Sec-Ch-Ua-Platform", `"Windows"`)
	r.RemoteAddr = ip + ":1234"
	return withRequestContext(r)
}

// withRequestContext gives r what Caddy gives every request: its own
// replacer and vars (with the client IP).
func withRequestContext(r *http.Request) *http.Request {
	ip, _, _ := strings.Cut(r.RemoteAddr, ":")
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	return r.WithContext(ctx)
}

// discard is a ResponseWriter that keeps nothing but headers.
type discard struct{ h http.Header }

func (d discard) Header() http.Header {
	if d.h == nil {
		return http.Header{}
	}
	return d.h
}
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

var okNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })

// BenchmarkServeHTTPCleared is the handler alone (no network) for a client
// with a valid clearance cookie: no store round trip.
func BenchmarkServeHTTPCleared(b *testing.B) {
	h := provisioned(b)
	id, dc, _ := h.keys.NewDevice(rand.Reader)
	cc := h.keys.IssueClearance(id, benchUA, time.Now().Add(time.Hour))
	r := benchRequest("192.0.2.1")
	r.Header.Set("Cookie", "advc_device="+dc+"; advc_clearance="+cc)
	w := discard{}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.ServeHTTP(w, withRequestContext(r), okNext); err != nil {
			b.Fatal(err)
		}
	}
	if h.counter.revoked(h.counterEntitiesFor(r)) {
		b.Fatal("the benchmark client was labelled; it measured the blocked path")
	}
}

// BenchmarkServeHTTPNewClient is the handler alone for a new client each
// time, scored against the in-memory store.
func BenchmarkServeHTTPNewClient(b *testing.B) { benchNewClients(b, provisioned(b)) }

func benchNewClients(b *testing.B, h *Handler) {
	reqs := make([]*http.Request, 4096)
	for i := range reqs {
		reqs[i] = benchRequest("10.1." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		w := discard{http.Header{}}
		if err := h.ServeHTTP(w, withRequestContext(reqs[i%len(reqs)]), okNext); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// counterEntitiesFor lists the entities a request is counted against.
func (h *Handler) counterEntitiesFor(r *http.Request) []store.Entity {
	v := visit{h: h, r: r, now: time.Now()}
	v.identify()
	return v.entities()
}

func TestCookieValue(t *testing.T) {
	h := http.Header{"Cookie": {`a=1; advc_device=dev; x="q"`, "advc_clearance=c1; advc_clearance=c2"}}
	for name, want := range map[string]string{"a": "1", "advc_device": "dev", "x": "q", "advc_clearance": "c1", "missing": "", "advc": ""} {
		if got := cookieValue(h, name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// FuzzServeHTTP throws arbitrary headers at the handler: whatever arrives,
// it decides, and never panics or fails.
func FuzzServeHTTP(f *testing.F) {
	f.Add(benchUA, "advc_device=x; advc_clearance=y", "192.0.2.1", `"Chromium";v="131"`, "en")
	f.Add("curl/8", "", "2001:db8::1", "", "")
	f.Add("\xff\xfe", "advc_device=\"\"; ;;=", "::ffff:1.2.3.4", `"a";v=`, "\x00")
	h := &Handler{Secrets: []string{"fuzz-secret-0123456789abcdef0123456789ab"}, Account: "{http.request.header.X-Account}", Adversarial: &Adversarial{Off: true}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	defer h.Cleanup()
	f.Fuzz(func(t *testing.T, ua, cookie, ip, hints, account string) {
		r := httptest.NewRequest("GET", "http://localhost/", nil)
		r.Header["User-Agent"] = []string{ua}
		r.Header["Cookie"] = []string{cookie}
		r.Header["Sec-Ch-Ua"] = []string{hints}
		r.Header["X-Account"] = []string{account}
		r.RemoteAddr = "192.0.2.9:1"
		ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, r.WithContext(ctx), okNext); err != nil {
			t.Fatalf("error: %v", err)
		}
		if rec.Code >= 500 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// BenchmarkServeHTTPNewClientRedis is BenchmarkServeHTTPNewClient against
// a real redis-server: the client side of the store round trip.
func BenchmarkServeHTTPNewClientRedis(b *testing.B) {
	srv := redistest.Start(b)
	benchNewClients(b, provisionedWith(b, &RedisConfig{RedisConnection: store.RedisConnection{Addresses: []string{srv.Addr}}}))
}

// FuzzSlideBody posts arbitrary bodies to the slide endpoint: every one is
// answered with a 4xx and a message (no valid nonce exists), never a
// panic or a 5xx.
func FuzzSlideBody(f *testing.F) {
	f.Add([]byte(`{"nonce":"AAAAAAAAAAAAAAAAAAAAAA","points":[[0,0,0],[10,1,16]],"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":16,"travel":400,"fingerprint":{"ua":"x"}}`))
	f.Add([]byte(`{"points":[[1e308,-1e308,1e308]]}`))
	f.Add([]byte(`[`))
	h := &Handler{Secrets: []string{"fuzz-secret-0123456789abcdef0123456789ab"}, Adversarial: &Adversarial{Off: true}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	defer h.Cleanup()
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "http://localhost/.advcaptcha/slide", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = "192.0.2.9:1"
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, withRequestContext(r), okNext); err != nil {
			t.Fatalf("error: %v", err)
		}
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
