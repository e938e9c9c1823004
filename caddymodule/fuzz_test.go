package caddymodule

import (
	"bytes"
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// fuzzHandler provisions an in-memory handler for the fuzzers, with the
// operator API open.
func fuzzHandler(f *testing.F, challenge string) *Handler {
	h := &Handler{
		Secrets:     []string{"fuzz-secret-0123456789abcdef0123456789ab"},
		AdminToken:  "fuzz-admin-token-0123456789abcdefghij",
		Challenge:   challenge,
		Adversarial: &Adversarial{Off: true},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	f.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Cleanup() })
	return h
}

// FuzzAnswerBody posts arbitrary answers, as a form and as JSON: each gets
// a 4xx with a message (no live captcha has these ids), never a panic or
// a 5xx.
func FuzzAnswerBody(f *testing.F) {
	f.Add([]byte("id=AAAAAAAAAAAAAAAAAAAAAA&answer=abcd&return=%2F"), false)
	f.Add([]byte(`{"id":"AAAAAAAAAAAAAAAAAAAAAA","answer":"ABCD "}`), true)
	f.Add([]byte(`{"id":1,"answer":["x"]}`), true)
	f.Add([]byte("answer=%ff%fe&id=&id=x"), false)
	h := fuzzHandler(f, "captcha")
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		r := httptest.NewRequest("POST", "http://localhost/.advcaptcha/answer", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if asJSON {
			r.Header.Set("Content-Type", "application/json")
		}
		r.RemoteAddr = "192.0.2.9:1"
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, withRequestContext(r), okNext); err != nil {
			t.Fatalf("error: %v", err)
		}
		if rec.Code < 400 || rec.Code >= 500 || rec.Body.Len() == 0 {
			t.Fatalf("status %d (%d bytes) for %q", rec.Code, rec.Body.Len(), body)
		}
	})
}

// FuzzOperatorLabel posts arbitrary bodies to the operator API with the
// right token: accepted (200) or refused with a 4xx and a message.
func FuzzOperatorLabel(f *testing.F) {
	f.Add([]byte(`{"entity":"ip:203.0.113.7","action":"confirm","reason":"scraping","ttl":"24h"}`))
	f.Add([]byte(`{"entity":"dev:x","action":"clear","reason":"ok"}`))
	f.Add([]byte(`{"entity":"ip:2001:db8::/64","action":"confirm","reason":"r","ttl":"-1s"}`))
	f.Add([]byte(`{"entity":"fp:` + strings.Repeat("a", 300) + `","action":"confirm","reason":"r"}`))
	h := fuzzHandler(f, "slide")
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "http://localhost/.advcaptcha/admin/labels", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer fuzz-admin-token-0123456789abcdefghij")
		r.RemoteAddr = "192.0.2.9:1"
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, withRequestContext(r), okNext); err != nil {
			t.Fatalf("error: %v", err)
		}
		if rec.Code != 200 && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

// FuzzSafeReturn: whatever return URL a client sends, the way back stays
// on this site — a path that a browser resolves against this origin.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/a?b=c", "//evil.example/", "/\\evil.example", "https://evil.example", "/%2f%2fevil", "\t//x",
		"/.advcaptcha/answer", "/ok#frag", "/./\\evil.example/phish", "/.//evil.example", "/%2e/%5cevil", "/a/..//evil", "/%2E%2E//evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://site.example/page")
	f.Fuzz(func(t *testing.T, s string) {
		got := safeReturn(s)
		if got != "/" && got != s {
			t.Fatalf("safeReturn(%q) = %q: neither the input nor /", s, got)
		}
		// What a browser does with the Location: a backslash is a slash,
		// and dot segments — "%2e" spelled or not — are resolved.
		loc := strings.ReplaceAll(got, "\\", "/")
		for _, seg := range strings.Split(strings.SplitN(strings.SplitN(loc, "?", 2)[0], "#", 2)[0], "/") {
			if d := strings.ReplaceAll(strings.ToLower(seg), "%2e", "."); d == "." || d == ".." {
				t.Fatalf("safeReturn(%q) = %q keeps a dot segment", s, got)
			}
		}
		u, err := base.Parse(loc)
		if err != nil || u.Host != "site.example" || u.Scheme != "https" || strings.HasPrefix(u.Path, "//") {
			t.Fatalf("safeReturn(%q) = %q leaves the site (%v, %v)", s, got, u, err)
		}
	})
}

// FuzzCaddyfile feeds arbitrary option blocks to the Caddyfile parser and,
// when they parse, to provisioning and validation: an error or a handler,
// never a panic.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"strict_limit ip 20\nlimit device 5 50 500",
		"redis 127.0.0.1:1 {\n timeout 5ms\n key_prefix x:\n}",
		"windows 1s 1m\nweight ua_automation 0\nchallenge_at 30\nblock_at 80",
		"adversarial {\n epsilon 8\n eot gaussian median\n fallback sync\n}",
		"admin {\n path /ops/\n guard caddy_auth\n}",
		"branding {\n title My shop\n color \"#123\"\n}",
		"max_failures device 3\nexempt /x /y/*\nallow 10.0.0.0/8\ndeny ::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, opts string) {
		d := caddyfile.NewTestDispenser("advcaptcha {\n" + opts + "\n}")
		var h Handler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		if h.Redis != nil || h.SolverModel != "" || (h.Adversarial != nil && !h.Adversarial.Off) {
			return // network and CPU: not what this fuzzer is for
		}
		h.Adversarial = &Adversarial{Off: true}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		if err := h.Provision(ctx); err == nil {
			_ = h.Validate()
		}
		_ = h.Cleanup()
	})
}
