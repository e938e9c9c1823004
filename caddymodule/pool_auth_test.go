package caddymodule_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// testRegistry is the model registry in st with the tests' gateway secret,
// as `caddy advcaptcha model publish` with that secret writes it.
func testRegistry(t testing.TB, st modelregistry.KV) *modelregistry.Registry {
	t.Helper()
	keys, err := modelregistry.Keys([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return modelregistry.New(st, keys)
}

// poolKeyFor is the store key (under advc:) of the pool a gateway with the
// default attack keeps for the model file at path.
func poolKeyFor(t *testing.T, path string) string {
	t.Helper()
	m, err := solver.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := solver.New(m, solver.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		t.Fatal(err)
	}
	return (&captchapool.Generator{Style: style, Solvers: []*solver.Solver{s}, Attack: perturb.DefaultConfig()}).Key()
}

// TestForgedPoolEntriesDropped: entries pushed straight into the shared
// pool by someone without the gateway's secret — well-formed, with a right
// checksum and an answer they know, but no MAC, a MAC from another secret,
// or a signed entry whose answer was edited — are dropped, counted by
// reason and never served; an entry signed with the gateway's secret (what
// `caddy advcaptcha pool` pushes) is served.
func TestForgedPoolEntriesDropped(t *testing.T) {
	opts, version := withModel(t, "adversarial {\n\t\texternal_workers\n\t\tpool_size 10\n\t}")
	f, _ := newCaptchaFlow(t, opts)
	path := strings.Fields(opts)[1]
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{f.rdb.Options().Addr}, KeyPrefix: "advc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	key := poolKeyFor(t, path)
	style := captcha.DefaultStyle()
	_ = style.Validate()
	entry := func(seed uint64, text string) *captchapool.Entry {
		c, err := style.Generate(seed)
		if err != nil {
			t.Fatal(err)
		}
		png, _ := captcha.EncodePNG(c.Image)
		if text == "" {
			text = c.Text
		}
		return &captchapool.Entry{Text: text, Seed: seed, Method: "mifgsm test", Model: version, PNG: png}
	}
	gatewayKeys, _ := captchapool.Keys([]byte(testSecret))
	otherKeys, _ := captchapool.Keys([]byte("not-the-gateway-secret-0123456789abcdef"))
	push := func(b []byte) {
		t.Helper()
		if _, err := st.PushQueue(ctx, key, b, 10, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	unsigned := entry(1, "known")
	b, _ := unsigned.Marshal(gatewayKeys)
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	delete(raw, "kid")
	delete(raw, "mac")
	b, _ = json.Marshal(raw)
	push(b)
	b, _ = entry(2, "known").Marshal(otherKeys)
	push(b)
	edited := entry(3, "")
	b, _ = edited.Marshal(gatewayKeys)
	_ = json.Unmarshal(b, &raw)
	raw["text"] = "known"
	b, _ = json.Marshal(raw)
	push(b)
	good := entry(4, "")
	b, _ = good.Marshal(gatewayKeys)
	push(b)

	h := suspicious("198.51.100.140")
	text, method, _, seed := f.served(f.challenge(h, "/"))
	if text != good.Text || seed != 4 || method != "mifgsm test" {
		t.Fatalf("served %q (seed %d, %s), want the signed entry %q", text, seed, method, good.Text)
	}
	// Only forgeries left, then nothing: the next clients wait.
	push(b[:0:0])
	b, _ = entry(5, "known").Marshal(otherKeys)
	push(b)
	if r := get(t, "/", suspicious("198.51.100.141")); r.status != http.StatusServiceUnavailable || idPattern.MatchString(r.body) {
		t.Fatalf("with forgeries only in the pool: %d %.200q, want the waiting page", r.status, r.body)
	}
	m := metricsText(t)
	forged := map[string]float64{}
	for _, reason := range []string{"unsigned", "unknown_key", "bad_mac"} {
		forged[reason] = metricValue(t, m, "advcaptcha_pool_forged_total", `{reason="`+reason+`"}`)
	}
	t.Logf("forged entries dropped: %v; corrupt %v", forged, metricValue(t, m, "advcaptcha_pool_corrupt_total", ""))
	if forged["unsigned"] != 1 || forged["unknown_key"] != 2 || forged["bad_mac"] != 1 {
		t.Fatalf("forged entries counted %v, want unsigned 1, unknown_key 2, bad_mac 1", forged)
	}
}

// TestForgedModelVersionRefused: a model version published in the store
// by someone without the gateway's secret — a valid model file under a
// record with no MAC, or one signed with another secret — is refused,
// loudly and counted, and the pool keeps its model; one published with
// the secret is followed.
func TestForgedModelVersionRefused(t *testing.T) {
	opts, v1 := withModel(t, "adversarial {\n\t\texternal_workers\n\t\tfallback sync\n\t\tfollow_models 100ms\n\t\t"+quickAttack+"\n\t}")
	f, _ := newCaptchaFlow(t, opts)
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{f.rdb.Options().Addr}, KeyPrefix: "advc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	mark := len(readLog(t))
	for i, keys := range []string{"", "not-the-gateway-secret-0123456789abcdef"} {
		m, _ := solver.NewModel(solver.DefaultArchitecture(), uint64(10+i))
		var reg *modelregistry.Registry
		if keys == "" {
			// No secret at all: the record written by hand.
			blob := m.Marshal()
			if err := st.PutOnce(ctx, "model:v:"+m.Version(), blob, time.Hour); err != nil {
				t.Fatal(err)
			}
			rec, _ := json.Marshal(modelregistry.Version{Version: m.Version(), Note: "forged"})
			if err := st.PutOnce(ctx, "model:current", rec, time.Hour); err != nil {
				t.Fatal(err)
			}
		} else {
			k, _ := modelregistry.Keys([]byte(keys))
			reg = modelregistry.New(st, k)
			cur, _ := reg.Current(ctx)
			expect := ""
			if cur != nil {
				expect = cur.Version
			}
			if _, err := reg.Publish(ctx, m, expect, modelregistry.Version{Note: "another secret"}); err != nil {
				t.Fatal(err)
			}
		}
		waitLog(t, mark, m.Version())
		mark = len(readLog(t))
	}
	log := readLog(t)
	if strings.Count(log, "published model version refused: not authenticated with the gateway's secret") < 2 {
		t.Fatal("the forged versions were not refused loudly")
	}
	if _, _, model, _ := f.served(f.challenge(suspicious("198.51.100.142"), "/")); model != v1 {
		t.Fatalf("after forged publications: served against %q, want %s kept", model, v1)
	}
	if n := metricValue(t, metricsText(t), "advcaptcha_model_changes_total", `{outcome="unauthenticated"}`); n != 2 {
		t.Fatalf("model_changes_total{outcome=unauthenticated} %v, want 2", n)
	}
	// Published with the secret: followed.
	m3, _ := solver.NewModel(solver.DefaultArchitecture(), 12)
	reg := testRegistry(t, st)
	cur, _ := reg.Current(ctx)
	if _, err := reg.Publish(ctx, m3, cur.Version, modelregistry.Version{Note: "real"}); err != nil {
		t.Fatal(err)
	}
	f.servedModel("198.51.100.143", func(m string) bool { return m == m3.Version() }, 2*time.Minute)
}

// TestExternalWorkersNeedASecret: without a configured secret the gateway
// signs with a per-process key no external worker can have, so
// external_workers without `secret` is a config error that says so.
func TestExternalWorkersNeedASecret(t *testing.T) {
	assertConfigError(t, "adversarial {\n\t\texternal_workers\n\t}", "external_workers needs `secret`", "ADVCAPTCHA_SECRET")
}
