package caddymodule

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestCaddyfileEqualsJSON: every Caddyfile option lands in the JSON field
// of the same meaning.
func TestCaddyfileEqualsJSON(t *testing.T) {
	d := caddyfile.NewTestDispenser(`advcaptcha {
		redis 10.0.0.1:6379 10.0.0.2:6379 {
			master_name mymaster
			username u
			password {env.REDIS_PASSWORD}
			sentinel_password sp
			db 2
			tls redis.internal
			tls_ca_file /etc/redis/ca.pem
			key_prefix site1:
			timeout 150ms
			local_first
		}
		max_entities 5000
		secret s1-0123456789abcdef0123456789abcdef s2-0123456789abcdef0123456789abcdef
		clearance_ttl 30m
		account {http.request.header.X-Account}
		ipv4_prefix 24
		ipv6_prefix 56
		windows 1s 1m 1h
		limit ip 10 100 1000
		limit device 5 50 500
		limit account 6 60 600
		strict_limit ip 200
		strict_limit device 80
		strict_limit account 90
		label_ttl 2h
		weight ua_automation 70
		weight no_device_cookie 0
		challenge_at 35
		block_at 85
		exempt /robots.txt /healthz
		allow 10.0.0.0/8
		deny 192.0.2.1
		crawlers score
		on_store_error closed
		upstream_headers
		challenge_ttl 90s
		max_failures device 7
		max_failures ip 40
		max_failures account 9
		max_audio 4
		solver_model /var/lib/advcaptcha/solver.crnn
		adversarial {
			method bim
			epsilon 10
			stroke_epsilon 4
			step 2
			iterations 12
			momentum 0.9
			targeted
			eot median binarize jpeg
			eot_samples 3
			smooth 1.5
			shift 2
			min_ssim 0.6
			ensemble /var/lib/advcaptcha/b.crnn /var/lib/advcaptcha/c.crnn
			pool_size 500
			workers 2
			external_workers
			cpu_budget 0.25
			fallback sync
		}
		admin_token {env.ADVC_ADMIN}
		admin {
			path /ops/bots/
			guard caddy_auth
		}
		device_cookie dev
		clearance_cookie clr
	}`)
	var fromCaddyfile Handler
	if err := fromCaddyfile.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	const fromJSONText = `{
		"redis": {"addresses": ["10.0.0.1:6379", "10.0.0.2:6379"], "master_name": "mymaster", "username": "u",
			"password": "{env.REDIS_PASSWORD}", "sentinel_password": "sp", "db": 2, "tls": {"server_name": "redis.internal", "ca_file": "/etc/redis/ca.pem"},
			"key_prefix": "site1:", "timeout": "150ms", "local_first": true},
		"max_entities": 5000,
		"secrets": ["s1-0123456789abcdef0123456789abcdef", "s2-0123456789abcdef0123456789abcdef"],
		"clearance_ttl": "30m",
		"account": "{http.request.header.X-Account}",
		"ipv4_prefix": 24, "ipv6_prefix": 56,
		"windows": ["1s", "1m", "1h"],
		"limits": {"ip": [10, 100, 1000], "device": [5, 50, 500], "account": [6, 60, 600],
			"strict_ip": 200, "strict_device": 80, "strict_account": 90},
		"label_ttl": "2h",
		"weights": {"ua_automation": 70, "no_device_cookie": 0},
		"challenge_at": 35, "block_at": 85,
		"exempt": ["/robots.txt", "/healthz"],
		"allow": ["10.0.0.0/8"], "deny": ["192.0.2.1"],
		"crawlers": "score", "on_store_error": "closed", "upstream_headers": true,
		"challenge_ttl": "90s", "max_failures_device": 7, "max_failures_ip": 40, "max_failures_account": 9, "max_audio_device": 4,
		"solver_model": "/var/lib/advcaptcha/solver.crnn",
		"adversarial": {"attack": {"method": "bim", "epsilon": 10, "stroke_epsilon": 4, "step": 2, "iterations": 12, "momentum": 0.9,
			"targeted": true, "eot": ["median", "binarize", "jpeg"], "eot_samples": 3, "smooth": 1.5, "shift": 2, "min_ssim": 0.6},
			"pool_size": 500, "workers": 2, "external_workers": true, "cpu_budget": 0.25, "fallback": "sync",
			"ensemble": ["/var/lib/advcaptcha/b.crnn", "/var/lib/advcaptcha/c.crnn"]},
		"admin_token": "{env.ADVC_ADMIN}", "admin": {"path": "/ops/bots/", "guard": "caddy_auth"},
		"device_cookie": "dev", "clearance_cookie": "clr"
	}`
	var fromJSON Handler
	if err := json.Unmarshal([]byte(fromJSONText), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromCaddyfile, fromJSON) {
		a, _ := json.MarshalIndent(fromCaddyfile, "", " ")
		b, _ := json.MarshalIndent(fromJSON, "", " ")
		t.Fatalf("Caddyfile and JSON differ:\n%s\nvs\n%s", a, b)
	}
	if time.Duration(fromJSON.ClearanceTTL) != 30*time.Minute {
		t.Fatalf("clearance_ttl %v", time.Duration(fromJSON.ClearanceTTL))
	}
}

// TestCaddyfileExampleAdapts: the example the README runs adapts without
// warnings and its handler provisions and validates.
func TestCaddyfileExampleAdapts(t *testing.T) {
	t.Setenv("ADVCAPTCHA_ADMIN_TOKEN", "example-token-0123456789abcdefghijklmnop") // as make run sets it
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	var whole any
	if err := json.Unmarshal(cfg, &whole); err != nil {
		t.Fatal(err)
	}
	raw := findHandler(whole)
	if raw == nil {
		t.Fatalf("no advcaptcha handler in %s", cfg)
	}
	var h Handler
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if !h.UpstreamHeaders || h.Account == "" {
		t.Fatalf("example options lost: %+v", h)
	}
}

// TestDirectiveNeedsNoOrder: advcaptcha is ordered before reverse_proxy
// without an `order` line, so it runs first even when written after it.
func TestDirectiveNeedsNoOrder(t *testing.T) {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`:8080 {
	reverse_proxy localhost:9
	advcaptcha
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	if a, b := strings.Index(s, `"advcaptcha"`), strings.Index(s, `"reverse_proxy"`); a < 0 || b < 0 || a > b {
		t.Fatalf("advcaptcha not before reverse_proxy: %s", s)
	}
}

// findHandler returns the first JSON object with "handler": "advcaptcha".
func findHandler(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "advcaptcha" {
			return x
		}
		for _, c := range x {
			if h := findHandler(c); h != nil {
				return h
			}
		}
	case []any:
		for _, c := range x {
			if h := findHandler(c); h != nil {
				return h
			}
		}
	}
	return nil
}
