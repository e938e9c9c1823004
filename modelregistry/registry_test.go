package modelregistry

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
)

var testKeys = func() *secretkey.Keys {
	k, err := Keys([]byte("registry-test-secret-0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return k
}()

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
			r := New(st, testKeys)
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
			m, err := r.Models(ctx, cur)
			if err != nil || m[0].Version() != v2.Version {
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
			r := New(st, testKeys)
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
			r := New(st, testKeys)
			v, err := r.Publish(ctx, ms[0], "", Version{})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := st.Peek(ctx, blobPrefix+v.Version)
			b[len(b)/2] ^= 0xff
			if err := st.PutOnce(ctx, blobPrefix+v.Version, b, TTL); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Models(ctx, v); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("a corrupt model version: %v, want ErrUnauthenticated", err)
			}
			missing := *v
			missing.Version = "nope"
			r.sign(&missing)
			if _, err := r.Models(ctx, &missing); err == nil {
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
	r := New(mem, testKeys)
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
			r := New(st, testKeys)
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
			if ms, err := r.Models(ctx, cur); err != nil || len(ms) != 2 || ms[1].Version() != root.Version() {
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
			if _, err := st.Peek(ctx, blobPrefix+root.Version()); err == nil {
				t.Fatal("the companion's weights outlived every entry naming it")
			}
		})
	}
}

// TestForgedVersionRefused: what someone who can write to the store but
// has not the secret can publish — a record without a MAC, one signed with
// another secret, a signed record edited, or a signed record whose model
// file was swapped for another valid model — is refused; and a registry
// without keys cannot publish at all.
func TestForgedVersionRefused(t *testing.T) {
	ctx := context.Background()
	ms := models(t, 3)
	other, _ := Keys([]byte("another-secret-0123456789abcdefghijklmn"))
	for name, st := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			r := New(st, testKeys)
			v1, err := r.Publish(ctx, ms[0], "", Version{Note: "real"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := New(st, nil).Publish(ctx, ms[1], v1.Version, Version{}); !errors.Is(err, ErrNoKeys) {
				t.Fatalf("publishing without keys: %v, want ErrNoKeys", err)
			}
			forge := func(v Version) {
				t.Helper()
				b, _ := json.Marshal(v)
				if err := st.PutOnce(ctx, currentKey, b, TTL); err != nil {
					t.Fatal(err)
				}
			}
			blob := ms[1].Marshal()
			if err := st.PutOnce(ctx, blobPrefix+ms[1].Version(), blob, TTL); err != nil {
				t.Fatal(err)
			}
			unsigned := Version{Version: ms[1].Version(), Previous: v1.Version, Sums: map[string]string{ms[1].Version(): sum(blob)}}
			otherSigned := unsigned
			otherSigned.KeyID, otherSigned.MAC = other.Sign(otherSigned.macParts()...)
			edited := *v1
			edited.Note = "edited"
			swapped := *v1 // the real record, the file replaced by another model under its name
			for what, v := range map[string]Version{"unsigned": unsigned, "another secret": otherSigned, "edited": edited} {
				forge(v)
				cur, err := r.Current(ctx)
				if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, secretkey.ErrUnauthenticated) || cur == nil || cur.Version != v.Version {
					t.Fatalf("%s: Current %+v %v, want the record and ErrUnauthenticated", what, cur, err)
				}
				if _, err := r.Models(ctx, cur); !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("%s: Models %v, want ErrUnauthenticated", what, err)
				}
			}
			forge(swapped)
			if err := st.PutOnce(ctx, blobPrefix+v1.Version, ms[2].Marshal(), TTL); err != nil {
				t.Fatal(err)
			}
			cur, err := r.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Models(ctx, cur); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("swapped model file: %v, want ErrUnauthenticated", err)
			}
		})
	}
}

// TestVersionKeyRotation: a version published under the old secret still
// loads while the old secret is listed second, and a registry with only
// the new secret refuses it.
func TestVersionKeyRotation(t *testing.T) {
	ctx := context.Background()
	ms := models(t, 1)
	oldSecret, newSecret := []byte("old-secret-0123456789abcdefghijklmnopq"), []byte("new-secret-0123456789abcdefghijklmnopq")
	oldKeys, _ := Keys(oldSecret)
	rotated, _ := Keys(newSecret, oldSecret)
	newOnly, _ := Keys(newSecret)
	mem, _ := store.NewMemory(store.MemoryOptions{})
	defer mem.Close()
	if _, err := New(mem, oldKeys).Publish(ctx, ms[0], "", Version{}); err != nil {
		t.Fatal(err)
	}
	cur, err := New(mem, rotated).Current(ctx)
	if err != nil {
		t.Fatalf("published under the second listed secret: %v", err)
	}
	if _, err := New(mem, rotated).Models(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := New(mem, newOnly).Current(ctx); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("published under a removed secret: %v", err)
	}
}
