package modelregistry

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
)

// small models with distinct weights, so distinct versions.
func models(t *testing.T, n int) []*solver.Model {
	a := solver.DefaultArchitecture()
	a.Conv = []solver.ConvBlock{{Filters: 4, PoolH: 2, PoolW: 2}, {Filters: 4, PoolH: 2, PoolW: 2}}
	a.Hidden, a.Layers = 8, 1
	var out []*solver.Model
	for i := range n {
		m, err := solver.NewModel(a, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestPublishFollowAndRollBack(t *testing.T) {
	ctx := context.Background()
	ms := models(t, 3)
	for name, st := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			r := New(st)
			if _, err := r.Current(ctx); !errors.Is(err, ErrNone) {
				t.Fatalf("empty registry: %v, want ErrNone", err)
			}
			v1, err := r.Publish(ctx, ms[0], "", Version{Note: "first"})
			if err != nil {
				t.Fatal(err)
			}
			// A publisher that started from nothing after v1 appeared loses.
			if _, err := r.Publish(ctx, ms[1], "", Version{}); !errors.Is(err, ErrConflict) {
				t.Fatalf("stale publish: %v, want ErrConflict", err)
			}
			v2, err := r.Publish(ctx, ms[1], v1.Version, Version{Fidelity: 0.6, CleanAccuracy: 0.97})
			if err != nil {
				t.Fatal(err)
			}
			cur, err := r.Current(ctx)
			if err != nil || cur.Version != ms[1].Version() || cur.Previous != v1.Version || cur.Fidelity != 0.6 {
				t.Fatalf("current %+v %v", cur, err)
			}
			m, err := r.Model(ctx, cur.Version)
			if err != nil || m.Version() != v2.Version {
				t.Fatalf("model of the current version: %v", err)
			}
			// Rolling back what one did not look at is refused.
			if _, err := r.Rollback(ctx, v1.Version); !errors.Is(err, ErrConflict) {
				t.Fatalf("rollback of a version that is not current: %v", err)
			}
			back, err := r.Rollback(ctx, v2.Version)
			if err != nil || back.Version != v1.Version || !back.Rollback {
				t.Fatalf("rollback: %+v %v", back, err)
			}
			if cur, _ := r.Current(ctx); cur.Version != v1.Version {
				t.Fatalf("after rollback current is %s", cur.Version)
			}
			if _, err := r.Rollback(ctx, v1.Version); err == nil {
				t.Fatal("rolled back past the first version")
			}
			hist, err := r.History(ctx)
			if err != nil || len(hist) != 3 || hist[0].Version != v1.Version || hist[1].Version != v2.Version {
				t.Fatalf("history %+v %v", hist, err)
			}
		})
	}
}

// Of publications started at once from the same version exactly one wins.
func TestConcurrentPublishOneWins(t *testing.T) {
	ctx := context.Background()
	ms := models(t, 9)
	for name, st := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			r := New(st)
			base, err := r.Publish(ctx, ms[0], "", Version{})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			won := 0
			for _, m := range ms[1:] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := r.Publish(ctx, m, base.Version, Version{})
					switch {
					case err == nil:
						mu.Lock()
						won++
						mu.Unlock()
					case errors.Is(err, ErrConflict), errors.Is(err, ErrBusy):
					default:
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if won != 1 {
				t.Fatalf("%d of 8 concurrent publications won, want exactly 1", won)
			}
		})
	}
}

// A stored version whose bytes were damaged is refused, not loaded.
func TestCorruptVersionRefused(t *testing.T) {
	ctx := context.Background()
	ms := models(t, 1)
	for name, st := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			r := New(st)
			v, err := r.Publish(ctx, ms[0], "", Version{})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := st.Peek(ctx, blobPrefix+v.Version)
			b[len(b)/2] ^= 0xff
			if err := st.PutOnce(ctx, blobPrefix+v.Version, b, TTL); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Model(ctx, v.Version); err == nil {
				t.Fatal("a corrupt model version was loaded")
			}
			if _, err := r.Model(ctx, "nope"); err == nil {
				t.Fatal("a missing version was loaded")
			}
		})
	}
}

// Versions that fall out of the history free their weights.
func TestOldVersionsFreed(t *testing.T) {
	ctx := context.Background()
	ms := models(t, KeepVersions+2)
	mem, _ := store.NewMemory(store.MemoryOptions{})
	defer mem.Close()
	r := New(mem)
	prev := ""
	for _, m := range ms {
		v, err := r.Publish(ctx, m, prev, Version{})
		if err != nil {
			t.Fatal(err)
		}
		prev = v.Version
	}
	hist, _ := r.History(ctx)
	if len(hist) != KeepVersions {
		t.Fatalf("history holds %d, want %d", len(hist), KeepVersions)
	}
	for i, m := range ms {
		_, err := mem.Peek(ctx, blobPrefix+m.Version())
		if kept := err == nil; kept != (i >= 2) {
			t.Errorf("version %d: stored %v", i, kept)
		}
	}
}

// TestPublishWithCompanion: a version published together with another
// names it, stores it (even if it was never published itself) so every
// instance can load both, keeps it through a rollback, and frees it only
// when no kept entry names it.
func TestPublishWithCompanion(t *testing.T) {
	ctx := context.Background()
	ms := models(t, 3)
	root, first, second := ms[0], ms[1], ms[2]
	for name, st := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			r := New(st)
			if _, err := r.Publish(ctx, root, "", Version{}, root); err == nil {
				t.Fatal("a version published together with itself was accepted")
			}
			v1, err := r.Publish(ctx, first, "", Version{Note: "extracted"}, root)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := r.Current(ctx)
			if err != nil || cur.Version != first.Version() || len(cur.With) != 1 || cur.With[0] != root.Version() {
				t.Fatalf("current %+v %v, want %s with %s", cur, err, first.Version(), root.Version())
			}
			if m, err := r.Model(ctx, root.Version()); err != nil || m.Version() != root.Version() {
				t.Fatalf("the companion, never published alone, cannot be loaded: %v", err)
			}
			v2, err := r.Publish(ctx, second, v1.Version, Version{}, root)
			if err != nil {
				t.Fatal(err)
			}
			back, err := r.Rollback(ctx, v2.Version)
			if err != nil || back.Version != first.Version() || len(back.With) != 1 || back.With[0] != root.Version() {
				t.Fatalf("rollback: %+v %v, want %s with %s", back, err, first.Version(), root.Version())
			}
			// Push everything out of the history with versions of their own:
			// the companion's weights are freed with the last entry naming it.
			prev := back.Version
			for i := range KeepVersions {
				m := models(t, KeepVersions+4)[3+i]
				v, err := r.Publish(ctx, m, prev, Version{})
				if err != nil {
					t.Fatal(err)
				}
				prev = v.Version
			}
			if _, err := r.Model(ctx, root.Version()); err == nil {
				t.Fatal("the companion's weights outlived every entry naming it")
			}
		})
	}
}
