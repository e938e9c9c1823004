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
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
)

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
				Store: s, Key: "pool:size", Size: 5, TTL: time.Minute, Workers: 2, CPUBudget: 1,
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
					e, _, err = captchapool.Pop(ctx, s, f.Key)
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
		Store: s, Key: "pool:panic", Size: 3, TTL: time.Minute, Workers: 1, CPUBudget: 1,
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

// TestFillerKeepsItsCPUBudget checks a lower bound only — a loaded machine
// can make the filler slower, never faster: a worker with a budget of a
// quarter must rest three times as long as it generates.
func TestFillerKeepsItsCPUBudget(t *testing.T) {
	s := storetest.MemoryAndRedis(t)["memory"]
	const gen, n = 20 * time.Millisecond, 8
	f := &captchapool.Filler{
		Store: s, Key: "pool:budget", Size: n, TTL: time.Minute, Workers: 1, CPUBudget: 0.25,
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
			good, err := entry("good").Marshal()
			if err != nil {
				t.Fatal(err)
			}
			tampered := entry("tampered")
			b, _ := tampered.Marshal()
			tampered.Text = "other" // answer changed after the checksum
			tampered.PNG = []byte("another image")
			forged, _ := json.Marshal(tampered) // keeps the old checksum
			for _, v := range [][]byte{[]byte("not json"), forged, b[:len(b)/2], good} {
				if _, err := s.PushQueue(ctx, "pool:c", v, 10, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			e, dropped, err := captchapool.Pop(ctx, s, "pool:c")
			if err != nil || e.Text != "good" || dropped != 3 {
				t.Fatalf("pop: %+v dropped %d err %v, want the good entry after 3 dropped", e, dropped, err)
			}
			if _, _, err := captchapool.Pop(ctx, s, "pool:c"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("pop of an empty pool: %v", err)
			}
		})
	}
}
