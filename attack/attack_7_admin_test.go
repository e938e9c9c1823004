package attack

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// (i) The admin area and own routes from an allow-listed IP must not be
// proxied to the application (with the admin bearer token); a client's own
// X-Advcaptcha-* headers must never reach it (upstream_headers on); and
// path tricks on exempt paths must not reach it unscored.
func TestAttackAdminAndHeaders(t *testing.T) {
	gw := sharedGateway(t, "allow", gatewayOptions{Extra: []string{
		"adversarial off",
		"allow 127.0.0.50",
		"upstream_headers",
	}})
	const allowed, other = "127.0.0.50", "127.0.0.51"
	type probe struct {
		name, ip, method, target string
		hdr                      http.Header
		body                     string
	}
	bearer := http.Header{"Authorization": {"Bearer " + adminToken}}
	forged := func(extra ...string) http.Header {
		h := http.Header{"X-Advcaptcha-Decision": {"allow"}, "X-Advcaptcha-Score": {forgedScore}, "X-Advcaptcha-Reasons": {"forged-by-client"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = []string{extra[i+1]}
		}
		return h
	}
	// Underscores: CGI and FastCGI (PHP), and frameworks that read headers
	// from the environment, cannot tell X-Advcaptcha_Decision from
	// X-Advcaptcha-Decision.
	underscore := http.Header{"X-Advcaptcha_Decision": {"allow"}, "X-Advcaptcha_Score": {forgedScore}, "X-Advcaptcha_Reasons": {"forged-by-client"}}
	probes := []probe{
		{"admin summary from an allowed IP", allowed, "GET", "/.advcaptcha/admin/summary", bearer, ""},
		{"admin dashboard from an allowed IP", allowed, "GET", "/.advcaptcha/admin/", bearer, ""},
		{"admin label lookup from an allowed IP", allowed, "GET", "/.advcaptcha/admin/label?entity=ip:203.0.113.7", bearer, ""},
		{"admin label POST from an allowed IP", allowed, "POST", "/.advcaptcha/admin/labels", http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {"application/json"}},
			`{"entity":"ip:203.0.113.7","action":"confirm","reason":"probe","ttl":"1h"}`},
		{"captcha route from an allowed IP", allowed, "GET", "/.advcaptcha/challenge", nil, ""},
		{"slide script from an allowed IP", allowed, "GET", "/.advcaptcha/slide.js", nil, ""},
		{"forged decision from an allowed IP", allowed, "GET", "/", forged(), ""},
		{"forged decision (underscores) from an allowed IP", allowed, "GET", "/", underscore, ""},
		{"forged decision on /robots.txt", other, "GET", "/robots.txt", forged(), ""},
		{"forged decision on /.well-known/", other, "GET", "/.well-known/security.txt", forged(), ""},
		{"forged decision (underscores) on /robots.txt", other, "GET", "/robots.txt", underscore, ""},
		{"forged decision on /favicon.ico", other, "GET", "/favicon.ico", forged(), ""},
		{"/.well-known/..;/admin/x", other, "GET", "/.well-known/..;/admin/x", nil, ""},
		{"/.well-known/..;/admin/x (encoded ;)", other, "GET", "/.well-known/..%3B/admin/x", nil, ""},
		{"/robots.txt/../admin", other, "GET", "/robots.txt/../admin", nil, ""},
		{"/robots.txt/..;/admin", other, "GET", "/robots.txt/..;/admin", nil, ""},
		{"/robots.txt;/admin", other, "GET", "/robots.txt;/admin", nil, ""},
		{"/favicon.ico;/../admin", other, "GET", "/favicon.ico;/../admin", nil, ""},
		{"/.well-known/%2e%2e/admin", other, "GET", "/.well-known/%2e%2e/admin", nil, ""},
		{"/.well-known/..%2Fadmin", other, "GET", "/.well-known/..%2Fadmin", nil, ""},
		{"/.well-known/x/..;/..;/admin", other, "GET", "/.well-known/x/..;/..;/admin", nil, ""},
	}
	leaks := 0
	for i, p := range probes {
		h := http.Header{"User-Agent": {curlUA}, "Accept": {"*/*"}, "X-Attack-Probe": {fmt.Sprint(i)}}
		for k, v := range p.hdr {
			h[k] = v
		}
		mark := up.mark()
		var r *reply
		var err error
		if p.method == "GET" {
			r, err = rawGET(gw, p.ip, p.target, h)
		} else {
			req, _ := http.NewRequest(p.method, gw.base+p.target, strings.NewReader(p.body))
			req.Header = h
			r, err = send(&http.Client{Transport: transportFrom(p.ip), Timeout: requestTimeout}, req)
		}
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		var arrived []seenRequest
		for _, s := range up.since(mark) {
			if s.Header.Get("X-Attack-Probe") == fmt.Sprint(i) {
				arrived = append(arrived, s)
			}
		}
		var why []string
		for _, s := range arrived {
			switch {
			case strings.Contains(s.URI, "/.advcaptcha/"):
				why = append(why, "the gateway's own route "+s.URI+" reached the upstream")
			case s.Header.Get("Authorization") != "":
				why = append(why, "the admin bearer token reached the upstream")
			}
			why = append(why, forgedHeaders(s.Header)...)
			if strings.HasPrefix(p.name, "/") {
				why = append(why, "reached the upstream unscored as "+s.URI+" (a scored curl client is refused)")
			}
		}
		if len(why) > 0 {
			leaks++
			t.Errorf("%s (from %s): %s", p.name, p.ip, strings.Join(why, "; "))
		} else {
			var keys []string
			for _, s := range arrived {
				for k, vs := range s.Header {
					if strings.HasPrefix(strings.ToLower(k), "x-advcaptcha") {
						keys = append(keys, k+": "+strings.Join(vs, ","))
					}
				}
			}
			t.Logf("held: %s → HTTP %d, %d request(s) at the upstream %v", p.name, r.Status, len(arrived), keys)
		}
	}
	fig := fmt.Sprintf("%d/%d", leaks, len(probes))
	figures.set("admin", fig)
	t.Logf("attack admin and headers: %s probes leaked to the upstream", fig)
}

// forgedScore is a score the gateway never gives.
const forgedScore = "-7"

// forgedHeaders lists the client's own X-Advcaptcha-* headers that reached
// the upstream: any spelled with underscores (the gateway never sets
// those), any carrying the forged values, and a decision without the score
// the gateway always sets with it.
func forgedHeaders(h http.Header) []string {
	var out []string
	for k, vs := range h {
		v := strings.Join(vs, ",")
		norm := strings.ToLower(k)
		if !strings.HasPrefix(strings.ReplaceAll(norm, "_", "-"), "x-advcaptcha-") {
			continue
		}
		if strings.Contains(norm, "_") || strings.Contains(v, "forged") || (norm == "x-advcaptcha-score" && v == forgedScore) {
			out = append(out, fmt.Sprintf("the client's %s: %s reached the upstream", k, v))
		}
	}
	if h.Get("X-Advcaptcha-Decision") != "" && len(h.Values("X-Advcaptcha-Score")) == 0 {
		out = append(out, "an X-Advcaptcha-Decision the gateway did not set reached the upstream")
	}
	return out
}
