package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
	"github.com/advcaptcha/advcaptcha/store"
)

// served reads a challenge's record from Redis.
func (f *captchaFlow) served(id string) (text, method, model string, seed uint64) {
	f.t.Helper()
	b, err := f.rdb.Get(context.Background(), "advc:ch:"+id).Bytes()
	if err != nil {
		f.t.Fatalf("challenge %s not in Redis: %v", id, err)
	}
	var rec struct {
		Text, Method, Model string
		Seed                uint64
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		f.t.Fatal(err)
	}
	return rec.Text, rec.Method, rec.Model, rec.Seed
}

// poolDepth is the length of the (only) adversarial pool in Redis.
func (f *captchaFlow) poolDepth() int64 {
	keys, _ := f.rdb.Keys(context.Background(), "advc:pool:*").Result()
	if len(keys) != 1 {
		return 0
	}
	n, _ := f.rdb.LLen(context.Background(), keys[0]).Result()
	return n
}

// quickAttack keeps generation short in tests: the properties checked do
// not depend on the attack's strength.
const quickAttack = "iterations 2\n\t\teot gaussian median\n\t\teot_samples 2"

// withModel configures an untrained model of the default architecture: the
// pool's plumbing does not depend on what the model reads.
func withModel(t *testing.T, opts string) (string, string) {
	path := solvertest.UntrainedFile(t)
	m, err := solver.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return "solver_model " + path + "\n" + opts, m.Version()
}

func TestAdversarialCaptchaComesFromThePool(t *testing.T) {
	opts, version := withModel(t, "adversarial {\n\t\tpool_size 2\n\t\tcpu_budget 1\n\t\tepsilon 12\n\t\t"+quickAttack+"\n\t}")
	f, _ := newCaptchaFlow(t, opts)
	deadline := time.Now().Add(2 * time.Minute)
	for f.poolDepth() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the pool did not fill within 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	h := suspicious("198.51.100.120")
	id := f.challenge(h, "/orders")
	text, method, model, seed := f.served(id)
	if !strings.HasPrefix(method, "mifgsm ε=12") || model != version {
		t.Fatalf("served method %q model %q, want mifgsm ε=12 against %s", method, model, version)
	}
	if f.poolDepth() > 1 {
		t.Fatal("serving did not take the captcha from the pool")
	}

	// The image is the clean captcha of the recorded seed, perturbed within ε.
	img := get(t, "/.advcaptcha/captcha/"+id+".png", h)
	got, err := png.Decode(strings.NewReader(img.body))
	if err != nil {
		t.Fatal(err)
	}
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		t.Fatal(err)
	}
	clean, err := style.Generate(seed)
	if err != nil {
		t.Fatal(err)
	}
	if clean.Text != text {
		t.Fatalf("seed %d renders %q, the record says %q", seed, clean.Text, text)
	}
	gray, ok := got.(*image.Gray)
	if !ok || gray.Bounds() != clean.Image.Bounds() {
		t.Fatalf("served a %T of %v, want a gray image of %v", got, got.Bounds(), clean.Image.Bounds())
	}
	changed, most := 0, 0
	for i, c := range clean.Image.Pix {
		d := max(int(gray.Pix[i])-int(c), int(c)-int(gray.Pix[i]))
		if d > 0 {
			changed++
		}
		most = max(most, d)
	}
	if changed < len(gray.Pix)/10 || most > 12 {
		t.Fatalf("%d of %d pixels changed, by up to %d levels: want a perturbation within ε=12", changed, len(gray.Pix), most)
	}

	// A person who reads it passes, and is counted as such.
	r := post(t, "/.advcaptcha/answer", h, answerForm(id, text, "/"))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/orders" {
		t.Fatalf("correct answer to an adversarial captcha: %d", r.status)
	}
	want := `advcaptcha_captcha_answers_total{captcha="adversarial",client="other",model="` + version + `",outcome="correct"} 1`
	if m := metricsText(t); !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
}

func TestAdversarialFallbacks(t *testing.T) {
	for _, tc := range []struct{ opts, method string }{
		{"adversarial off", "none"},
		{"adversarial {\n\t\texternal_workers\n\t\tfallback clean\n\t}", "none"}, // nobody fills the pool: clean (the default, wait: TestEmptyPoolFloodServesNoCleanCaptcha)
		{"adversarial {\n\t\texternal_workers\n\t\tfallback sync\n\t\t" + quickAttack + "\n\t}", "mifgsm"},
	} {
		opts, _ := withModel(t, tc.opts)
		f, _ := newCaptchaFlow(t, opts)
		h := suspicious("198.51.100.121")
		id := f.challenge(h, "/")
		if _, method, _, _ := f.served(id); !strings.HasPrefix(method, tc.method) {
			t.Errorf("%q: served method %q, want %s", tc.opts, method, tc.method)
		}
	}
}

// TestAdversarialEnsemble: with an ensemble, captchas are computed against
// the solver model and the ensemble's models together, and the captcha's
// record names them all; a model that cannot be loaded fails the config.
func TestAdversarialEnsemble(t *testing.T) {
	m, err := solver.NewModel(solver.DefaultArchitecture(), 2) // another seed than withModel's
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "second.crnn")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	second, err := solver.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts, version := withModel(t, "adversarial {\n\t\texternal_workers\n\t\tfallback sync\n\t\tensemble "+path+"\n\t\t"+quickAttack+"\n\t}")
	f, _ := newCaptchaFlow(t, opts)
	id := f.challenge(suspicious("198.51.100.122"), "/")
	if _, method, model, _ := f.served(id); !strings.HasPrefix(method, "mifgsm") || model != version+"+"+second.Version() {
		t.Fatalf("served method %q against %q, want mifgsm against %s+%s", method, model, version, second.Version())
	}
	missing := filepath.Join(t.TempDir(), "missing.crnn")
	assertConfigError(t, "adversarial {\n\t\tensemble "+missing+"\n\t}", "adversarial: ensemble "+missing)
}

func TestAdversarialConfigErrorsNameTheField(t *testing.T) {
	for want, opts := range map[string]string{
		"epsilon":    "adversarial {\n\t\tepsilon 500\n\t}",
		"method":     "adversarial {\n\t\tmethod pgd\n\t}",
		"eot filter": "adversarial {\n\t\teot sharpen\n\t}",
		"fallback":   "adversarial {\n\t\tfallback maybe\n\t}",
		"cpu_budget": "adversarial {\n\t\tcpu_budget 2\n\t}",
		"pool_size":  "adversarial {\n\t\tpool_size -1\n\t}",
	} {
		assertConfigError(t, opts, "adversarial: ", want)
	}
}

// TestSolverModelErrors: a model file that cannot serve fails the config
// load, with a message that says what is wrong with it.
func TestSolverModelErrors(t *testing.T) {
	dir := t.TempDir()
	good := solvertest.UntrainedFile(t)
	raw, _ := os.ReadFile(good)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := bytes.Clone(raw)
	corrupt[len(corrupt)/2] ^= 0x40
	future := bytes.Clone(raw)
	binary.LittleEndian.PutUint32(future[8:], 99)
	toy := filepath.Join(dir, "toy.crnn")
	if err := solvertest.Model(t).Save(toy); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.crnn"):        "no such file",
		write("truncated.crnn", raw[:len(raw)/3]): "truncated",
		write("corrupt.crnn", corrupt):            "checksum mismatch",
		write("future.crnn", future):              "format version 99",
		write("text.crnn", []byte("hello\n")):     "not an advcaptcha solver model",
		toy:                                       "does not fit the captcha style",
	} {
		assertConfigError(t, "solver_model "+path, "solver_model: ", want)
	}
	// The good copy loads.
	load(t, fmt.Sprintf("solver_model %s\nadversarial off", good), newUpstream(t))
}

// TestBuiltInModel: without solver_model the gateway attacks the built-in
// model — or, in a build without one, serves plain captchas and refuses an
// adversarial block it cannot serve.
func TestBuiltInModel(t *testing.T) {
	def, err := solver.Default()
	if errors.Is(err, solver.ErrNoDefaultModel) {
		assertConfigError(t, "adversarial {\n\t\tepsilon 8\n\t}", "adversarial: needs solver_model", "no built-in solver model")
		f, _ := newCaptchaFlow(t, "")
		if _, method, _, _ := f.served(f.challenge(suspicious("198.51.100.122"), "/")); method != "none" {
			t.Fatalf("served %q without a model", method)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	f, _ := newCaptchaFlow(t, "adversarial {\n\t\texternal_workers\n\t\tfallback sync\n\t\t"+quickAttack+"\n\t}")
	if _, _, model, _ := f.served(f.challenge(suspicious("198.51.100.122"), "/")); model != def.Version() {
		t.Fatalf("served against model %q, want the built-in %s", model, def.Version())
	}
}

func assertConfigError(t *testing.T, opts string, wants ...string) {
	t.Helper()
	if !strings.Contains(opts, "adversarial") && !strings.Contains(opts, "solver_model") {
		opts += "\nadversarial off" // as in loadSite
	}
	for _, want := range wants {
		// caddytest posts /load through http.DefaultTransport, whose idle
		// connection to the admin endpoint the previous (rolled back) load
		// may have closed: reusing it fails the POST with EOF.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		// A refused load is rolled back, and Caddy's admin endpoint may be
		// restarting when the next one begins; caddytest then skips the
		// test (its prerequisite check, seen once in CI). Wait for it.
		waitForAdmin(t)
		caddytest.AssertLoadError(t, fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
}
:9080 {
	advcaptcha {
		%s
	}
	respond ok
}`, opts), "caddyfile", want)
	}
}

// servedModel asks for challenges until one is served against a model for
// which accept returns true, and returns that model version.
func (f *captchaFlow) servedModel(ip string, accept func(model string) bool, within time.Duration) string {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		h := suspicious(ip)
		id := f.challenge(h, "/")
		if _, _, model, _ := f.served(id); accept(model) {
			return model
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("no captcha served against the expected model within %v", within)
	return ""
}

// TestPoolFollowsPublishedModel: a version published in the store reaches
// the running gateway without a restart, a corrupt one is refused while
// the gateway keeps the version it has, and a version published with a
// companion is attacked together with it.
func TestPoolFollowsPublishedModel(t *testing.T) {
	// One address asks for many captchas here: the budget is not what is tested.
	opts, v1 := withModel(t, "captcha_budget 1000 1000 10m\nadversarial {\n\t\tpool_size 1\n\t\tcpu_budget 1\n\t\tfollow_models 100ms\n\t\tfallback clean\n\t\t"+quickAttack+"\n\t}")
	f, _ := newCaptchaFlow(t, opts)
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{f.rdb.Options().Addr}, KeyPrefix: "advc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	is := func(v string) func(string) bool { return func(m string) bool { return m == v } }
	f.servedModel("198.51.100.130", is(v1), 2*time.Minute)

	m2, err := solver.NewModel(solver.DefaultArchitecture(), 2)
	if err != nil {
		t.Fatal(err)
	}
	// Requests keep coming while the gateway switches: none may fail.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	// A failure below must not leave the load running into later tests.
	t.Cleanup(func() { stopLoad(); wg.Wait() })
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				h := browser(fmt.Sprintf("198.51.%d.%d", 110+w, i%250))
				path := "/"
				if i%2 == 1 {
					h = suspicious(fmt.Sprintf("198.51.%d.%d", 120+w, i%250))
				}
				req, _ := http.NewRequest("GET", siteURL+path, nil)
				req.Header = h
				res, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode >= 500 {
					failed.Add(1)
				}
			}
		}()
	}
	reg := testRegistry(t, st)
	mark := len(readLog(t))
	v2, err := reg.Publish(ctx, m2, "", modelregistry.Version{Note: "test", Fidelity: 0.05, CharFidelity: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	// The load runs until the switch and a little after; it stops before
	// waiting for a captcha of the new version, because its own challenge
	// requests would take every captcha of a pool of one as it is made.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(readLog(t)[mark:], `"model":"`+v2.Version+`"`); {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not switch to %s within a minute", v2.Version)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	f.servedModel("198.51.100.131", is(v2.Version), 2*time.Minute)
	if failed.Load() > 0 || sent.Load() < 10 {
		t.Fatalf("during the switch %d of %d requests failed", failed.Load(), sent.Load())
	}
	t.Logf("%d requests during the switch, none failed", sent.Load())
	metrics := metricsText(t)
	for _, want := range []string{
		`advcaptcha_model_fidelity{of="answers",version="` + v2.Version + `"} 0.05`,
		`advcaptcha_model_fidelity{of="characters",version="` + v2.Version + `"} 0.3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A version whose stored weights are damaged.
	m3, _ := solver.NewModel(solver.DefaultArchitecture(), 3)
	blob := m3.Marshal()
	blob[len(blob)/2] ^= 0xff
	from := len(readLog(t))
	if err := st.PutOnce(ctx, "model:v:"+m3.Version(), blob, time.Hour); err != nil {
		t.Fatal(err)
	}
	cur, _ := json.Marshal(modelregistry.Version{Version: m3.Version(), Previous: v2.Version})
	if err := st.PutOnce(ctx, "model:current", cur, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitLog(t, from, "published model version refused")
	for i := 0; i < 3; i++ {
		if got := f.servedModel("198.51.100.132", func(m string) bool { return m != "" }, 2*time.Minute); got != v2.Version {
			t.Fatalf("after a corrupt publication: served against %q, want %s kept", got, v2.Version)
		}
	}

	// A version published with a companion: captchas are computed against
	// both, and say so.
	m4, _ := solver.NewModel(solver.DefaultArchitecture(), 4)
	m5, _ := solver.NewModel(solver.DefaultArchitecture(), 5)
	if _, err := reg.Publish(ctx, m4, m3.Version(), modelregistry.Version{Note: "extracted"}, m5); err != nil {
		t.Fatal(err)
	}
	f.servedModel("198.51.100.133", is(m4.Version()+"+"+m5.Version()), 2*time.Minute)
}

// waitForAdmin waits up to 10 s for Caddy's admin endpoint on :2999 to
// answer, when a Caddy is running in this process at all.
func waitForAdmin(t *testing.T) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		res, err := c.Get("http://localhost:2999/config/")
		if err == nil {
			res.Body.Close()
			return
		}
	}
}
