package captchapool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
)

// testKeys sign and verify the tests' entries.
var testKeys = func() *secretkey.Keys {
	k, err := captchapool.Keys([]byte("pool-test-secret-0123456789abcdefghij"))
	if err != nil {
		panic(err)
	}
	return k
}()

func entry(text string) *captchapool.Entry {
	return &captchapool.Entry{Text: text, Method: "test", PNG: []byte("png of " + text)}
}

// run starts f and returns a function that stops it and waits.
func run(f *captchapool.Filler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFillerKeepsThePoolAtItsSize(t *testing.T) {
	for name, s := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var made atomic.Int64
			f := &captchapool.Filler{
				Store: s, Key: "pool:size", Keys: testKeys, Size: 5, TTL: time.Minute, Workers: 2, CPUBudget: 1,
				Idle: 10 * time.Millisecond,
				Generate: func(_ context.Context, seed uint64) (*captchapool.Entry, error) {
					return entry(fmt.Sprint("t", made.Add(1))), nil
				},
			}
			stop := run(f)
			defer stop()
			depth := func() int { n, _ := s.QueueLen(ctx, f.Key); return n }
			waitFor(t, "a full pool", func() bool { return depth() == 5 })
			time.Sleep(100 * time.Millisecond) // ten idle rounds: a full pool is not refilled
			if n := made.Load(); n > 5+int64(f.Workers) {
				t.Fatalf("%d generated for a pool of 5", n)
			}
			// Serving takes entries; the workers replace them.
			seen := map[string]bool{}
			for range 12 {
				var e *captchapool.Entry
				waitFor(t, "an entry", func() bool {
					var err error
					e, _, err = captchapool.Pop(ctx, s, f.Key, testKeys)
					return err == nil
				})
				if seen[e.Text] {
					t.Fatalf("entry %s served twice", e.Text)
				}
				seen[e.Text] = true
			}
			waitFor(t, "the pool refilled", func() bool { return depth() == 5 })
		})
	}
}

func TestFillerSurvivesPanicsAndErrors(t *testing.T) {
	s := storetest.MemoryAndRedis(t)["redis"]
	var calls atomic.Int64
	var mu sync.Mutex
	var errs []error
	f := &captchapool.Filler{
		Store: s, Key: "pool:panic", Keys: testKeys, Size: 3, TTL: time.Minute, Workers: 1, CPUBudget: 1,
		Idle: time.Millisecond,
		Generate: func(_ context.Context, seed uint64) (*captchapool.Entry, error) {
			switch calls.Add(1) {
			case 1:
				panic("boom")
			case 2:
				return nil, errors.New("model unavailable")
			}
			return entry(fmt.Sprint(seed)), nil
		},
		Observe: func(_ time.Duration, _ int, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		},
	}
	stop := run(f)
	defer stop()
	waitFor(t, "a full pool after a panic", func() bool { n, _ := s.QueueLen(context.Background(), f.Key); return n == 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 2 {
		t.Fatalf("observed errors %v, want the panic and the failure", errs)
	}
}

// TestFillerBatches: with GenerateBatch, a worker generates what the pool
// lacks up to Batch at a time — 4, 4, then the 2 missing for a pool of 10 —
// and observes each captcha with the depth it reached.
func TestFillerBatches(t *testing.T) {
	s := storetest.MemoryAndRedis(t)["memory"]
	var mu sync.Mutex
	var sizes, depths []int
	f := &captchapool.Filler{
		Store: s, Key: "pool:batch", Keys: testKeys, Size: 10, TTL: time.Minute, Workers: 1, CPUBudget: 1,
		Idle: time.Millisecond, Batch: 4,
		GenerateBatch: func(_ context.Context, seeds []uint64) ([]*captchapool.Entry, error) {
			mu.Lock()
			sizes = append(sizes, len(seeds))
			mu.Unlock()
			out := make([]*captchapool.Entry, len(seeds))
			for i, seed := range seeds {
				out[i] = entry(fmt.Sprint(seed))
			}
			return out, nil
		},
		Observe: func(_ time.Duration, depth int, err error) {
			mu.Lock()
			depths = append(depths, depth)
			mu.Unlock()
		},
	}
	stop := run(f)
	waitFor(t, "a full pool", func() bool { n, _ := s.QueueLen(context.Background(), f.Key); return n == 10 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sizes) != "[4 4 2]" || fmt.Sprint(depths) != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Fatalf("batches %v, depths observed %v; want [4 4 2] and 1…10", sizes, depths)
	}
}

// TestFillerKeepsItsCPUBudget checks a lower bound only — a loaded machine
// can make the filler slower, never faster: a worker with a budget of a
// quarter must rest three times as long as it generates.
func TestFillerKeepsItsCPUBudget(t *testing.T) {
	s := storetest.MemoryAndRedis(t)["memory"]
	const gen, n = 20 * time.Millisecond, 8
	f := &captchapool.Filler{
		Store: s, Key: "pool:budget", Keys: testKeys, Size: n, TTL: time.Minute, Workers: 1, CPUBudget: 0.25,
		Generate: func(_ context.Context, seed uint64) (*captchapool.Entry, error) {
			for start := time.Now(); time.Since(start) < gen; {
			}
			return entry(fmt.Sprint(seed)), nil
		},
	}
	start := time.Now()
	stop := run(f)
	defer stop()
	waitFor(t, "a full pool", func() bool { d, _ := s.QueueLen(context.Background(), f.Key); return d == n })
	if took, least := time.Since(start), (n-1)*gen*4; took < least {
		t.Fatalf("%d captchas of %v in %v: faster than the budget allows (%v)", n, gen, took, least)
	}
}

func TestPopDropsCorruptEntries(t *testing.T) {
	for name, s := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			good, err := entry("good").Marshal(testKeys)
			if err != nil {
				t.Fatal(err)
			}
			tampered := entry("tampered")
			b, _ := tampered.Marshal(testKeys)
			tampered.Text = "other" // answer changed after the checksum
			tampered.PNG = []byte("another image")
			forged, _ := json.Marshal(tampered) // keeps the old checksum
			for _, v := range [][]byte{[]byte("not json"), forged, b[:len(b)/2], good} {
				if _, err := s.PushQueue(ctx, "pool:c", v, 10, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			e, dropped, err := captchapool.Pop(ctx, s, "pool:c", testKeys)
			if err != nil || e.Text != "good" || dropped.Corrupt != 3 || len(dropped.Forged) != 0 {
				t.Fatalf("pop: %+v dropped %+v err %v, want the good entry after 3 dropped", e, dropped, err)
			}
			if _, _, err := captchapool.Pop(ctx, s, "pool:c", testKeys); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("pop of an empty pool: %v", err)
			}
		})
	}
}

// forge is what someone who can write to the store but has not the
// gateway's secret can push: a well-formed entry with a right checksum,
// whose answer they know, with no MAC, a made-up one, or one from another
// secret.
func forge(t *testing.T) map[string][]byte {
	t.Helper()
	other, err := captchapool.Keys([]byte("another-secret-0123456789abcdefghijklmn"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	e := entry("known")
	signed, _ := e.Marshal(testKeys)
	e.KeyID, e.MAC = "", ""
	out["unsigned"], _ = json.Marshal(e)
	var ok captchapool.Entry
	_ = json.Unmarshal(signed, &ok)
	ok.Text = "KNOWN" // the signed entry with its answer changed: checksum still right
	out["bad_mac"], _ = json.Marshal(ok)
	out["unknown_key"], _ = entry("known").Marshal(other)
	return out
}

func TestPopDropsAndCountsForgedEntries(t *testing.T) {
	for name, s := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			forged := forge(t)
			good, _ := entry("good").Marshal(testKeys)
			for _, reason := range []string{"unsigned", "bad_mac", "unknown_key"} {
				if _, err := s.PushQueue(ctx, "pool:f", forged[reason], 10, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.PushQueue(ctx, "pool:f", good, 10, time.Minute); err != nil {
				t.Fatal(err)
			}
			e, dropped, err := captchapool.Pop(ctx, s, "pool:f", testKeys)
			if err != nil || e.Text != "good" || dropped.Corrupt != 0 ||
				dropped.Forged["unsigned"] != 1 || dropped.Forged["bad_mac"] != 1 || dropped.Forged["unknown_key"] != 1 {
				t.Fatalf("pop: %+v dropped %+v err %v, want the good entry after one forged entry of each kind", e, dropped, err)
			}
			// A pool of forgeries only: nothing is served.
			for range 10 {
				if _, err := s.PushQueue(ctx, "pool:g", forged["unsigned"], 10, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if e, dropped, err := captchapool.Pop(ctx, s, "pool:g", testKeys); e != nil || !errors.Is(err, captchapool.ErrCorrupt) || dropped.Forged["unsigned"] != 8 {
				t.Fatalf("pop of forgeries: %+v dropped %+v err %v", e, dropped, err)
			}
		})
	}
}

// TestEntryKeyRotation: an entry signed with a secret verifies while that
// secret is listed (second, after a new one), and not once it is removed.
func TestEntryKeyRotation(t *testing.T) {
	oldSecret, newSecret := []byte("old-secret-0123456789abcdefghijklmnopq"), []byte("new-secret-0123456789abcdefghijklmnopq")
	oldKeys, _ := captchapool.Keys(oldSecret)
	rotated, _ := captchapool.Keys(newSecret, oldSecret)
	newOnly, _ := captchapool.Keys(newSecret)
	b, err := entry("rotated").Marshal(oldKeys)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := captchapool.Unmarshal(b, rotated); err != nil || e.Text != "rotated" {
		t.Fatalf("signed with the second listed secret: %v", err)
	}
	if _, err := captchapool.Unmarshal(b, newOnly); !errors.Is(err, captchapool.ErrForged) {
		t.Fatalf("signed with a removed secret: %v, want ErrForged", err)
	}
	b2, _ := entry("new").Marshal(rotated)
	if _, err := captchapool.Unmarshal(b2, newOnly); err != nil {
		t.Fatalf("the first listed secret signs: %v", err)
	}
	if _, err := captchapool.Keys([]byte("short")); err == nil {
		t.Fatal("a short secret was accepted")
	}
}
