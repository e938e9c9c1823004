package captchapool_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

var modelKeys = func() *secretkey.Keys {
	k, err := modelregistry.Keys([]byte("pool-test-secret-0123456789abcdefghij"))
	if err != nil {
		panic(err)
	}
	return k
}()

// smallModels are untrained models that read the default captcha style
// with few weights, so that attacking them is quick: what is checked does
// not depend on what they read.
func smallModels(t *testing.T, n int, seed uint64) []*solver.Model {
	t.Helper()
	a := solver.DefaultArchitecture()
	a.Conv = []solver.ConvBlock{{Filters: 4, PoolH: 2, PoolW: 2}, {Filters: 4, PoolH: 2, PoolW: 2}}
	a.Hidden, a.Layers = 8, 1
	out := make([]*solver.Model, n)
	for i := range out {
		m, err := solver.NewModel(a, seed+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = m
	}
	return out
}

func defaultStyle(t *testing.T) captcha.Style {
	s := captcha.DefaultStyle()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// quickAttack is short: the plumbing does not depend on its strength.
func quickAttack() perturb.Config {
	c := perturb.DefaultConfig()
	c.Iterations, c.EOT, c.EOTSamples = 2, []string{"median"}, 2
	return c
}

// recorder is an Observer that keeps what it heard.
type recorder struct {
	mu         sync.Mutex
	generating []*captchapool.Generation
	generated  int
	failed     []error
	followed   []string
	refused    []string // version/reason
	registry   []error
}

func (r *recorder) Generating(g *captchapool.Generation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.generating = append(r.generating, g)
}

func (r *recorder) Generated(_ *captchapool.Generation, _ time.Duration, _ int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed = append(r.failed, err)
		return
	}
	r.generated++
}

func (r *recorder) Followed(v *modelregistry.Version) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.followed = append(r.followed, v.Version)
}

func (r *recorder) Refused(version, reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused = append(r.refused, version+"/"+reason)
}

func (r *recorder) RegistryError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.registry = append(r.registry, err)
}

func (r *recorder) saw(f func(r *recorder) bool) func() bool {
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return f(r)
	}
}

func memoryStore(t *testing.T) store.Store {
	t.Helper()
	s, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestServiceFillsAndFollows: the service fills the pool against its model
// and the ensemble, follows a published version (its companion and the
// ensemble attacked with it) into a pool of its own while serving the
// previous pool's captchas, and refuses a forged and a corrupt version
// once each, keeping the model it has.
func TestServiceFillsAndFollows(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	ms := smallModels(t, 5, 11)
	start, ensemble := ms[0], ms[4]
	rec := &recorder{}
	s, err := captchapool.Start(ctx, captchapool.ServiceConfig{
		Store: st, Style: defaultStyle(t), Attack: quickAttack(), Model: start, Ensemble: []*solver.Model{ensemble},
		PoolKeys: testKeys, ModelKeys: modelKeys, Size: 2, Workers: 1, CPUBudget: 1,
		Follow: 20 * time.Millisecond, Observer: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Stop(); s.Wait() }()
	first := s.Current()
	if first.Model != start.Version() || first.Generator.ModelVersion() != start.Version()+"+"+ensemble.Version() || first.PrevKey != "" {
		t.Fatalf("first generation: model %s against %s, prev %q", first.Model, first.Generator.ModelVersion(), first.PrevKey)
	}
	if want := captchapool.PoolKey(defaultStyle(t), quickAttack(), start.Version()+"+"+ensemble.Version()); first.Key != want {
		t.Fatalf("pool key %s, want %s", first.Key, want)
	}
	waitFor(t, "the pool to fill", func() bool { n, _ := st.QueueLen(ctx, first.Key); return n == 2 })

	// A version published with a companion.
	reg := modelregistry.New(st, modelKeys)
	v, err := reg.Publish(ctx, ms[1], "", modelregistry.Version{Fidelity: 0.5}, ms[2])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the published version to be followed", rec.saw(func(r *recorder) bool { return len(r.followed) == 1 }))
	g := s.Current()
	if want := ms[1].Version() + "+" + ms[2].Version() + "+" + ensemble.Version(); g.Model != v.Version || g.Generator.ModelVersion() != want || g.PrevKey != first.Key {
		t.Fatalf("after the publication: model %s against %s, prev %s; want %s against %s, prev %s",
			g.Model, g.Generator.ModelVersion(), g.PrevKey, v.Version, want, first.Key)
	}
	waitFor(t, "the new pool to fill", func() bool { n, _ := st.QueueLen(ctx, g.Key); return n == 2 })
	e, _, err := s.Pop(ctx)
	if err != nil || e.Model != g.Generator.ModelVersion() {
		t.Fatalf("popped %+v, %v: want a captcha of the new version", e, err)
	}

	// A version signed with another secret.
	otherKeys, _ := modelregistry.Keys([]byte("another-secret-0123456789abcdefghijklmn"))
	forged, err := modelregistry.New(st, otherKeys).Publish(ctx, ms[3], v.Version, modelregistry.Version{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forged version to be refused", rec.saw(func(r *recorder) bool { return len(r.refused) == 1 }))
	time.Sleep(100 * time.Millisecond) // several more checks: still told once
	rec.mu.Lock()
	if len(rec.refused) != 1 || rec.refused[0] != forged.Version+"/unauthenticated" {
		t.Errorf("refused %v, want %s/unauthenticated once", rec.refused, forged.Version)
	}
	rec.mu.Unlock()
	if s.Current() != g {
		t.Fatal("a forged version replaced the generation")
	}

	// A version whose weights are damaged.
	blob := ms[3].Marshal()
	blob[len(blob)/2] ^= 0xff
	damaged := smallModels(t, 1, 99)[0]
	if err := st.PutOnce(ctx, "model:v:"+damaged.Version(), blob, time.Hour); err != nil {
		t.Fatal(err)
	}
	cur := modelregistry.Version{Version: damaged.Version(), Previous: v.Version}
	b, _ := json.Marshal(cur)
	if err := st.PutOnce(ctx, "model:current", b, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the damaged version to be refused", rec.saw(func(r *recorder) bool { return len(r.refused) == 2 }))
	rec.mu.Lock()
	if !strings.HasPrefix(rec.refused[1], damaged.Version()+"/") {
		t.Errorf("refused %v, want %s", rec.refused, damaged.Version())
	}
	if len(rec.failed) > 0 {
		t.Errorf("generation failures: %v", rec.failed)
	}
	rec.mu.Unlock()
	if s.Current() != g {
		t.Fatal("a damaged version replaced the generation")
	}
}

// TestServiceExternal: with external workers nothing is generated here, the
// published versions are still followed (so the gateway serves from the
// pool the workers fill), and Pop says when the pool is empty.
func TestServiceExternal(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	ms := smallModels(t, 2, 21)
	rec := &recorder{}
	s, err := captchapool.Start(ctx, captchapool.ServiceConfig{
		Store: st, Style: defaultStyle(t), Attack: quickAttack(), Model: ms[0], PoolKeys: testKeys, ModelKeys: modelKeys,
		Size: 2, Workers: 1, CPUBudget: 1, External: true, Follow: 20 * time.Millisecond, Observer: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Stop(); s.Wait() }()
	if _, _, err := s.Pop(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pop from an empty pool: %v, want store.ErrNotFound", err)
	}
	// What the workers put in the first pool.
	first := s.Current()
	e := &captchapool.Entry{Text: "abcd", Method: "test", Model: first.Generator.ModelVersion(), PNG: []byte("png")}
	b, err := e.Marshal(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PushQueue(ctx, first.Key, b, 2, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := modelregistry.New(st, modelKeys).Publish(ctx, ms[1], "", modelregistry.Version{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the published version to be followed", func() bool { return s.Current().Model == ms[1].Version() })
	time.Sleep(100 * time.Millisecond)
	if n, _ := st.QueueLen(ctx, s.Current().Key); n != 0 {
		t.Fatalf("an external service filled its pool with %d captchas", n)
	}
	// While the new version's pool is empty, the previous one's captchas
	// are served; then the pool is empty.
	if got, _, err := s.Pop(ctx); err != nil || got.Text != "abcd" {
		t.Fatalf("popped %+v, %v: want the previous pool's captcha", got, err)
	}
	if _, _, err := s.Pop(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pop from empty pools: %v, want store.ErrNotFound", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.generated != 0 || len(rec.generating) != 2 {
		t.Fatalf("generated %d, generations %d: want none made and 2 generations", rec.generated, len(rec.generating))
	}
}

// TestPoolKeyHashesTheAttackWithDefaults: an attack that names a default
// (momentum 1, the computed step) fills the same pool as one that leaves it
// out; one that attacks differently does not.
func TestPoolKeyHashesTheAttackWithDefaults(t *testing.T) {
	style := defaultStyle(t)
	a := perturb.DefaultConfig()
	named := a
	named.Momentum, named.Iterations, named.Step = 1, 10, 12 // ⌈2.5·48/10⌉
	if captchapool.PoolKey(style, a, "m") != captchapool.PoolKey(style, named, "m") {
		t.Fatal("naming the defaults changed the pool key")
	}
	other := a
	other.Momentum = 0.5
	if captchapool.PoolKey(style, a, "m") == captchapool.PoolKey(style, other, "m") ||
		captchapool.PoolKey(style, a, "m") == captchapool.PoolKey(style, a, "n") {
		t.Fatal("another momentum or model kept the pool key")
	}
}
