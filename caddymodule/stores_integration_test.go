package caddymodule_test

// State across reloads and the store's failure modes (Redis down, open or
// closed; Redis over TLS), through the real Caddy module.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

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
