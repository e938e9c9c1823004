package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// loadGen keeps clients sending requests until stopped and tallies the
// statuses; a transport error (a dropped connection) counts as status 0.
type loadGen struct {
	stop     atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	statuses map[int]int
	errs     []string // the first transport errors
}

// startLoad runs one client per header set until finish. Each keeps its
// connection alive between requests, as browsers do: Caddy hands its
// listening socket to a new config with SO_REUSEPORT, and Linux resets
// connections still waiting in the accept queue of the socket that closes
// (https://lwn.net/Articles/542629/), which a client opening a connection
// per request would meet at every reload.
func startLoad(headers ...http.Header) *loadGen {
	g := &loadGen{statuses: map[int]int{}}
	for _, h := range headers {
		g.wg.Add(1)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 60 * time.Second}
		go func() {
			defer g.wg.Done()
			defer client.CloseIdleConnections()
			for !g.stop.Load() {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", siteURL+"/", nil)
				for k, v := range h {
					req.Header[k] = v
				}
				code := 0
				res, err := client.Do(req)
				if err == nil {
					res.Body.Close()
					code = res.StatusCode
				}
				g.mu.Lock()
				if err != nil && len(g.errs) < 5 {
					g.errs = append(g.errs, err.Error())
				}
				g.statuses[code]++
				g.mu.Unlock()
				time.Sleep(50 * time.Millisecond) // ~20 requests a second: under every limit
			}
		}()
	}
	return g
}

func (g *loadGen) finish() map[int]int {
	g.stop.Store(true)
	g.wg.Wait()
	return g.statuses
}

// TestRedisRestartUnderLoad: browsers keep sending while Redis (with its
// append-only file) is killed and restarted. Fail open, nothing is dropped
// or answered 5xx, the gateway recovers without a restart, and a label set
// before the crash is still in force after it.
func TestRedisRestartUnderLoad(t *testing.T) {
	srv := redistest.StartPersistent(t)
	up := newUpstream(t)
	load(t, fmt.Sprintf("redis %s {\n timeout 100ms\n key_prefix load:\n}\non_store_error open\nsecret %s\nadmin_token %s", srv.Addr, testSecret, adminToken), up)
	if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"ip:198.51.100.170","action":"confirm","reason":"before the crash"}`); r.status != 200 {
		t.Fatalf("label: %d %s", r.status, r.body)
	}
	var hs []http.Header
	for i := range 4 {
		hs = append(hs, browser(fmt.Sprintf("198.51.100.%d", 160+i)))
	}
	g := startLoad(hs...)
	time.Sleep(time.Second)
	srv.Kill()
	time.Sleep(2 * time.Second)
	srv.Restart()
	time.Sleep(2 * time.Second)
	statuses := g.finish()
	if statuses[0] > 0 || statuses[500]+statuses[502]+statuses[503] > 0 || statuses[200] < 50 {
		t.Fatalf("statuses under load across the Redis restart: %v (0 = dropped); errors %q", statuses, g.errs)
	}
	if r := get(t, "/", browser("198.51.100.170")); r.status != 403 {
		t.Fatalf("the label set before the crash: %d after it, want 403", r.status)
	}
	// Scoring against the store works again: a burst is stopped.
	h := browser("198.51.100.171")
	h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
	if statuses := burst(t, h, 300); statuses[403] == 0 {
		t.Fatalf("burst after recovery not stopped: %v", statuses)
	}
}

// TestReloadUnderLoad: config reloads while clients keep sending: every
// request that reaches Caddy is answered 200 — none is refused or fails in
// advcaptcha — and the state (a label, the key that signs device cookies)
// is kept across them. The reloads wait for requests in flight, as Caddy
// does by default (the other tests cut them, for speed).
//
// What advcaptcha cannot fix: Caddy hands its listening socket to the new
// config with SO_REUSEPORT, and Linux resets connections that are being
// opened on the socket that closes (https://lwn.net/Articles/542629/). A
// plain Caddy reverse_proxy shows the same here: 1–2 resets in 5 reloads
// at this load. So connection-level failures are allowed, at most one per
// reload, and reported.
func TestReloadUnderLoad(t *testing.T) {
	up := newUpstream(t)
	base := "admin_token " + adminToken + "\nadversarial off"
	proxy := "reverse_proxy " + strings.TrimPrefix(up.URL, "http://")
	loadWithGrace(t, "", base, proxy, "file "+logFile)
	time.Sleep(time.Second) // the previous test's config, with the tests' 1ns grace, is gone
	if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"ip:198.51.100.180","action":"confirm","reason":"before the reloads"}`); r.status != 200 {
		t.Fatalf("label: %d %s", r.status, r.body)
	}
	var hs []http.Header
	for i := range 3 {
		h := browser(fmt.Sprintf("198.51.100.%d", 181+i))
		h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
		hs = append(hs, h)
	}
	g := startLoad(hs...)
	for i := range 5 {
		time.Sleep(300 * time.Millisecond)
		loadWithGrace(t, "", fmt.Sprintf("%s\nchallenge_at %d", base, 41+i), proxy, "file "+logFile)
	}
	time.Sleep(300 * time.Millisecond)
	statuses := g.finish()
	loadSiteAsIs(t, base, proxy, "file "+logFile) // the next tests' grace period
	answered := 0
	for code, n := range statuses {
		if code != 0 {
			answered += n
		}
	}
	if statuses[200] != answered || answered < 20 || statuses[0] > 5 {
		t.Fatalf("statuses across 5 reloads: %v, want only 200s and at most 5 connection resets; errors %q", statuses, g.errs)
	}
	if statuses[0] > 0 {
		t.Logf("%d connections reset by Caddy's listener handover in 5 reloads (%q); every request answered was a 200", statuses[0], g.errs)
	}
	if r := get(t, "/", browser("198.51.100.180")); r.status != 403 {
		t.Fatalf("the label after the reloads: %d, want 403", r.status)
	}
}
