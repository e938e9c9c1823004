package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/advcaptcha/advcaptcha/perturb"
)

// loadCaddyfile writes body as a Caddyfile and reads its handlers back as
// the commands' --config does (adapted to JSON, as Caddy runs it).
func loadCaddyfile(t *testing.T, body string) []*Handler {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	hs, err := LoadHandlers(path)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// TestCaddyfileZeroTurnsOff: "smooth 0", "min_ssim 0" and "eot off" in a
// Caddyfile turn those off, as perturb.Config documents, after the
// Caddyfile is adapted to JSON as Caddy runs it (they used to be dropped
// there, or read as "not set", and the defaults served instead); and the
// handler's JSON keeps them through another round trip (caddy reload).
func TestCaddyfileZeroTurnsOff(t *testing.T) {
	d := perturb.DefaultConfig()
	if d.Smooth == 0 || d.MinSSIM == 0 || len(d.EOT) == 0 {
		t.Fatalf("the defaults changed (%+v): this test needs smoothing, an SSIM floor and EOT on by default", d)
	}
	for setting, off := range map[string]func(c perturb.Config) bool{
		"smooth 0":   func(c perturb.Config) bool { return c.Smooth == 0 },
		"min_ssim 0": func(c perturb.Config) bool { return c.MinSSIM == 0 },
		"eot off":    func(c perturb.Config) bool { return c.EOT != nil && len(c.EOT) == 0 },
	} {
		hs := loadCaddyfile(t, ":8080 {\n\tadvcaptcha {\n\t\tadversarial {\n\t\t\t"+setting+"\n\t\t}\n\t}\n}\n")
		if len(hs) != 1 || hs[0].Adversarial == nil {
			t.Fatalf("%s: handlers %+v", setting, hs)
		}
		got := hs[0].Adversarial.attack()
		if !off(got) {
			t.Errorf("%s: the gateway attacks with %+v", setting, got)
		}
		if got.Epsilon != d.Epsilon || got.Method != d.Method {
			t.Errorf("%s: settings left out changed: %+v", setting, got)
		}
		b, err := json.Marshal(hs[0])
		if err != nil {
			t.Fatal(err)
		}
		var again Handler
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again.Adversarial.attack(), got) {
			t.Errorf("%s: after a JSON round trip %+v, want %+v", setting, again.Adversarial.attack(), got)
		}
	}
}

// TestLoadHandlersFindsEveryHandler: handlers in several sites and nested
// routes are all found, from a Caddyfile or from Caddy JSON.
func TestLoadHandlersFindsEveryHandler(t *testing.T) {
	hs := loadCaddyfile(t, `:8080 {
	advcaptcha {
		redis 127.0.0.1:6379 {
			key_prefix one:
		}
	}
}
:8081 {
	handle /api/* {
		advcaptcha {
			redis 127.0.0.1:6379 {
				key_prefix two:
				db 3
			}
		}
	}
}
`)
	prefixes := map[string]int{}
	for _, h := range hs {
		if h.Redis != nil {
			prefixes[h.Redis.KeyPrefix] = h.Redis.DB
		}
	}
	if len(hs) != 2 || !reflect.DeepEqual(prefixes, map[string]int{"one:": 0, "two:": 3}) {
		t.Fatalf("%d handlers, redis %v", len(hs), prefixes)
	}
	path := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(path, []byte(`{"apps": {"http": {"servers": {"s": {"routes": [{"handle": [
		{"handler": "advcaptcha", "solver_model": "/m.crnn", "adversarial": {"attack": {"smooth": 0}}}]}]}}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	hs, err := LoadHandlers(path)
	if err != nil || len(hs) != 1 || hs[0].SolverModel != "/m.crnn" || hs[0].Adversarial.attack().Smooth != 0 {
		t.Fatalf("from JSON: %+v, %v", hs, err)
	}
}

// TestSeriesCountsGeneration: the dashboard's series counts the captchas
// this instance's workers made (the supply, next to the served demand);
// failed generations are not supply.
func TestSeriesCountsGeneration(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	m.generation.WithLabelValues("ok").Observe(0.2)
	m.generation.WithLabelValues("ok").Observe(0.3)
	m.generation.WithLabelValues("error").Observe(0.1)
	m.served("pool")
	first := m.totals()
	m.generation.WithLabelValues("ok").Observe(0.2)
	d := m.totals().minus(first)
	if first.Generated != 2 || first.Served[0] != 1 || d.Generated != 1 || d.Served[0] != 0 {
		t.Fatalf("generated %v then %v more; served %v then %v more: want 2, 1, 1, 0", first.Generated, d.Generated, first.Served[0], d.Served[0])
	}
}
