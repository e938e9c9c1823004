// Package storetest is the contract every store.Store implementation must
// pass. Implementations call Run from their own tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/store"
)

// Windows are the windows the factory must configure the store with.
var Windows = []time.Duration{time.Second, time.Minute}

// Run runs the contract against stores made by newStore, each fresh and
// configured with Windows.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	// A fixed instant at the start of a 1-minute bucket keeps the
	// sliding-window weights exact; each subtest gets its own entities.
	base := time.Now().Truncate(time.Minute).Add(time.Minute)

	t.Run("counts accumulate per window", func(t *testing.T) {
		s := newStore(t)
		e := store.Entity{Kind: store.KindIP, ID: "192.0.2.1"}
		for i := 1; i <= 5; i++ {
			tl := observe(t, s, base, store.Hit{Entity: e, N: 1})
			if got := tl[0].Counts; got[0] != float64(i) || got[1] != float64(i) {
				t.Fatalf("after %d hits: counts %v", i, got)
			}
		}
		tl := observe(t, s, base, store.Hit{Entity: e, N: 10})
		if tl[0].Counts[0] != 15 {
			t.Fatalf("N=10 hit: counts %v, want 15", tl[0].Counts)
		}
	})

	t.Run("entities are independent", func(t *testing.T) {
		s := newStore(t)
		a := store.Entity{Kind: store.KindDevice, ID: "a"}
		b := store.Entity{Kind: store.KindAccount, ID: "a"} // same id, other kind
		tl := observe(t, s, base, store.Hit{Entity: a, N: 3}, store.Hit{Entity: b, N: 1})
		if tl[0].Counts[0] != 3 || tl[1].Counts[0] != 1 {
			t.Fatalf("counts %v %v, want 3 and 1", tl[0].Counts, tl[1].Counts)
		}
	})

	t.Run("sliding window decays the previous bucket", func(t *testing.T) {
		s := newStore(t)
		e := store.Entity{Kind: store.KindIP, ID: "192.0.2.2"}
		observe(t, s, base, store.Hit{Entity: e, N: 100})
		// 250ms into the next 1s bucket: 75% of the previous bucket counts.
		tl := observe(t, s, base.Add(1250*time.Millisecond), store.Hit{Entity: e})
		if got := tl[0].Counts[0]; math.Abs(got-75) > 1e-9 {
			t.Fatalf("1s window 1.25s later: %v, want 75", got)
		}
		if got := tl[0].Counts[1]; got != 100 {
			t.Fatalf("1m window 1.25s later: %v, want 100", got)
		}
		// Two buckets later nothing of the 1s window remains.
		tl = observe(t, s, base.Add(2500*time.Millisecond), store.Hit{Entity: e, N: 1})
		if got := tl[0].Counts[0]; got != 1 {
			t.Fatalf("1s window 2.5s later: %v, want 1", got)
		}
		if got := tl[0].Counts[1]; got != 101 {
			t.Fatalf("1m window 2.5s later: %v, want 101", got)
		}
	})

	t.Run("read-only observe changes nothing", func(t *testing.T) {
		s := newStore(t)
		e := store.Entity{Kind: store.KindIP, ID: "192.0.2.3"}
		for i := 0; i < 3; i++ {
			tl := observe(t, s, base, store.Hit{Entity: e})
			if tl[0].Counts[0] != 0 || tl[0].Label != nil {
				t.Fatalf("unknown entity: %+v", tl[0])
			}
		}
	})

	t.Run("labels are set, read, expire and clear", func(t *testing.T) {
		s := newStore(t)
		e := store.Entity{Kind: store.KindDevice, ID: "labelled"}
		now := time.Now()
		l := store.Label{Reason: "freq_strict", Source: "rule", At: now.Truncate(time.Second), Expires: now.Add(time.Hour).Truncate(time.Second)}
		if err := s.SetLabel(ctx, e, l); err != nil {
			t.Fatal(err)
		}
		tl := observe(t, s, now, store.Hit{Entity: e, N: 1})
		if tl[0].Label == nil || tl[0].Label.Reason != "freq_strict" || !tl[0].Label.Expires.Equal(l.Expires) {
			t.Fatalf("label after set: %+v", tl[0].Label)
		}
		// Seen from after its expiry, the label is gone.
		tl = observe(t, s, l.Expires.Add(time.Second), store.Hit{Entity: e})
		if tl[0].Label != nil {
			t.Fatalf("label after expiry: %+v", tl[0].Label)
		}
		if err := s.ClearLabel(ctx, e); err != nil {
			t.Fatal(err)
		}
		tl = observe(t, s, now, store.Hit{Entity: e})
		if tl[0].Label != nil {
			t.Fatalf("label after clear: %+v", tl[0].Label)
		}
		if err := s.SetLabel(ctx, e, store.Label{Reason: "x", Expires: now.Add(-time.Second)}); err == nil {
			t.Fatal("expired label accepted")
		}
	})

	t.Run("audio plays are counted", func(t *testing.T) {
		s := newStore(t)
		e := store.Entity{Kind: store.KindDevice, ID: "listener"}
		for i := 0; i < 3; i++ {
			if err := s.CountAudio(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		tl := observe(t, s, time.Now(), store.Hit{Entity: e, N: 1})
		if tl[0].Audio != 3 || tl[0].Counts[0] != 1 {
			t.Fatalf("tally %+v, want audio 3 and one hit", tl[0])
		}
	})

	t.Run("hostile ids are safe", func(t *testing.T) {
		s := newStore(t)
		ids := []string{"{tag}", "a}b{c", "\x00\xff", string(make([]byte, 1<<16)), "ünïcode", ""}
		for _, id := range ids {
			e := store.Entity{Kind: store.KindAccount, ID: id}
			tl := observe(t, s, base, store.Hit{Entity: e, N: 2})
			if tl[0].Counts[0] != 2 {
				t.Fatalf("id %q: counts %v", id[:min(len(id), 10)], tl[0].Counts)
			}
		}
	})

	t.Run("concurrent hits are all counted", func(t *testing.T) {
		s := newStore(t)
		e := store.Entity{Kind: store.KindIP, ID: "192.0.2.4"}
		const workers, each = 8, 50
		concurrently(t, workers, func(int) error {
			for i := 0; i < each; i++ {
				if _, err := s.Observe(ctx, base, []store.Hit{{Entity: e, N: 1}}); err != nil {
					return err
				}
			}
			return nil
		})
		tl := observe(t, s, base, store.Hit{Entity: e})
		if tl[0].Counts[0] != workers*each {
			t.Fatalf("counts %v, want %d", tl[0].Counts, workers*each)
		}
	})

	RunValues(t, newStore)

	t.Run("concurrent callers get their own tallies", func(t *testing.T) {
		s := newStore(t)
		concurrently(t, 16, func(w int) error {
			for i := 0; i < 40; i++ {
				// Caller w's call i adds one hit to an IP and w+1 to a
				// device, both new; each caller must see exactly its own.
				dev := store.Entity{Kind: store.KindDevice, ID: fmt.Sprintf("own-%d-%d", w, i)}
				ip := store.Entity{Kind: store.KindIP, ID: fmt.Sprintf("198.18.%d.%d", w, i)}
				tl, err := s.Observe(ctx, base, []store.Hit{{Entity: ip, N: 1}, {Entity: dev, N: int64(w + 1)}})
				if err != nil {
					return err
				}
				if len(tl) != 2 || tl[0].Counts[0] != 1 || tl[1].Counts[0] != float64(w+1) {
					return fmt.Errorf("caller %d call %d got %+v", w, i, tl)
				}
			}
			return nil
		})
	})

	t.Run("many entities in one call", func(t *testing.T) {
		s := newStore(t)
		hits := make([]store.Hit, 100)
		for i := range hits {
			hits[i] = store.Hit{Entity: store.Entity{Kind: store.KindIP, ID: fmt.Sprintf("198.51.100.%d", i)}, N: int64(i + 1)}
		}
		tl := observe(t, s, base, hits...)
		for i := range hits {
			if tl[i].Counts[0] != float64(i+1) {
				t.Fatalf("entity %d: %v", i, tl[i].Counts)
			}
		}
	})
}

// concurrently runs f(0)…f(workers-1) at once and fails t with their errors.
func concurrently(t *testing.T, workers int, f func(worker int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(w); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func observe(t *testing.T, s store.Store, now time.Time, hits ...store.Hit) []store.Tally {
	t.Helper()
	tl, err := s.Observe(context.Background(), now, hits)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	if len(tl) != len(hits) {
		t.Fatalf("observe returned %d tallies for %d hits", len(tl), len(hits))
	}
	return tl
}

// RunValues is the contract of PutOnce, Peek, Take and Incr; Run calls it.
func RunValues(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("put, peek, take once", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutOnce(ctx, "ch:a", []byte("truth"), time.Minute); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if b, err := s.Peek(ctx, "ch:a"); err != nil || string(b) != "truth" {
				t.Fatalf("peek %d: %q %v", i, b, err)
			}
		}
		if b, err := s.Take(ctx, "ch:a"); err != nil || string(b) != "truth" {
			t.Fatalf("take: %q %v", b, err)
		}
		if _, err := s.Take(ctx, "ch:a"); err != store.ErrNotFound {
			t.Fatalf("second take: %v", err)
		}
		if _, err := s.Peek(ctx, "ch:a"); err != store.ErrNotFound {
			t.Fatalf("peek after take: %v", err)
		}
	})
	t.Run("values expire", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutOnce(ctx, "ch:short", []byte("x"), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		if _, err := s.Take(ctx, "ch:short"); err != store.ErrNotFound {
			t.Fatalf("take after expiry: %v", err)
		}
	})
	t.Run("racing takes: exactly one wins", func(t *testing.T) {
		s := newStore(t)
		for round := 0; round < 20; round++ {
			key := fmt.Sprintf("ch:race%d", round)
			if err := s.PutOnce(ctx, key, []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			var wins, wg = make(chan struct{}, 8), sync.WaitGroup{}
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.Take(ctx, key); err == nil {
						wins <- struct{}{}
					}
				}()
			}
			wg.Wait()
			close(wins)
			if n := len(wins); n != 1 {
				t.Fatalf("round %d: %d takes won", round, n)
			}
		}
	})
	t.Run("logs append and range in order", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < 25; i++ {
			if err := s.Append(ctx, "records", []byte(fmt.Sprintf("r%02d", i))); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		after := ""
		for {
			recs, err := s.Range(ctx, "records", after, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				got = append(got, string(r.Value))
			}
			after = recs[len(recs)-1].ID
		}
		if len(got) != 25 || got[0] != "r00" || got[24] != "r24" {
			t.Fatalf("read back %d records: %v", len(got), got)
		}
		if recs, err := s.Range(ctx, "nothing-here", "", 10); err != nil || len(recs) != 0 {
			t.Fatalf("empty log: %v %v", recs, err)
		}
		latest, err := s.Latest(ctx, "records", 3)
		if err != nil {
			t.Fatal(err)
		}
		// Ids are opaque: Redis stream ids ("ms-seq") do not order as
		// strings ("…-10" < "…-9"), so only their distinctness is checked;
		// the values give the order.
		if len(latest) != 3 || string(latest[0].Value) != "r24" || string(latest[1].Value) != "r23" || string(latest[2].Value) != "r22" ||
			latest[0].ID == latest[1].ID || latest[1].ID == latest[2].ID {
			t.Fatalf("latest 3: %q, want r24 r23 r22 with distinct ids", latest)
		}
		if recs, err := s.Latest(ctx, "nothing-here", 10); err != nil || len(recs) != 0 {
			t.Fatalf("latest of an empty log: %v %v", recs, err)
		}
	})
	t.Run("lists keep the newest values", func(t *testing.T) {
		s := newStore(t)
		var got [][]byte
		for i := 0; i < 7; i++ {
			var err error
			if got, err = s.PushList(ctx, "hist:dev1", []byte(fmt.Sprint(i)), 5, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != 5 || string(got[0]) != "6" || string(got[4]) != "2" {
			t.Fatalf("list %q, want 6..2", got)
		}
		if _, err := s.PushList(ctx, "hist:short", []byte("a"), 5, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		if got, _ := s.PushList(ctx, "hist:short", []byte("b"), 5, time.Minute); len(got) != 1 {
			t.Fatalf("expired list kept: %q", got)
		}
	})
	t.Run("queues are first in, first out, bounded and expire", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.PopQueue(ctx, "pool:q"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("pop of an empty queue: %v, want ErrNotFound", err)
		}
		for i := 0; i < 7; i++ {
			n, err := s.PushQueue(ctx, "pool:q", []byte(fmt.Sprint(i)), 5, time.Minute)
			if err != nil || n != min(i+1, 5) {
				t.Fatalf("push %d: length %d %v", i, n, err)
			}
		}
		if n, err := s.QueueLen(ctx, "pool:q"); err != nil || n != 5 {
			t.Fatalf("length %d %v, want 5", n, err)
		}
		for want := 2; want < 7; want++ { // 0 and 1 were dropped, oldest first
			b, err := s.PopQueue(ctx, "pool:q")
			if err != nil || string(b) != fmt.Sprint(want) {
				t.Fatalf("pop: %q %v, want %d", b, err, want)
			}
		}
		if n, err := s.QueueLen(ctx, "pool:q"); err != nil || n != 0 {
			t.Fatalf("length after draining %d %v", n, err)
		}
		if _, err := s.PushQueue(ctx, "pool:short", []byte("a"), 5, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		if _, err := s.PopQueue(ctx, "pool:short"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired queue popped: %v", err)
		}
	})
	t.Run("racing pops: each value goes to one caller", func(t *testing.T) {
		s := newStore(t)
		const n = 200
		for i := 0; i < n; i++ {
			if _, err := s.PushQueue(ctx, "pool:race", []byte(fmt.Sprint(i)), n, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					b, err := s.PopQueue(ctx, "pool:race")
					if errors.Is(err, store.ErrNotFound) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[string(b)]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d distinct values popped, want %d", len(seen), n)
		}
		for v, c := range seen {
			if c != 1 {
				t.Fatalf("value %s popped %d times", v, c)
			}
		}
	})
	t.Run("incr counts and expires", func(t *testing.T) {
		s := newStore(t)
		for i := int64(1); i <= 3; i++ {
			if n, err := s.Incr(ctx, "att:x", 80*time.Millisecond); err != nil || n != i {
				t.Fatalf("incr %d: %d %v", i, n, err)
			}
		}
		time.Sleep(150 * time.Millisecond)
		if n, err := s.Incr(ctx, "att:x", time.Minute); err != nil || n != 1 {
			t.Fatalf("incr after expiry: %d %v", n, err)
		}
		// A counter reads as its decimal value and Take deletes it (locks
		// are taken with Incr and released with Take).
		if b, err := s.Peek(ctx, "att:x"); err != nil || string(b) != "1" {
			t.Fatalf("peek of a counter: %q %v", b, err)
		}
		if b, err := s.Take(ctx, "att:x"); err != nil || string(b) != "1" {
			t.Fatalf("take of a counter: %q %v", b, err)
		}
		if n, err := s.Incr(ctx, "att:x", time.Minute); err != nil || n != 1 {
			t.Fatalf("incr after take: %d %v", n, err)
		}
	})
}

// MemoryAndRedis returns a fresh in-memory store and a store on a real
// redis-server started for the test, for tests that must hold on both.
func MemoryAndRedis(t *testing.T) map[string]store.Store {
	t.Helper()
	mem, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	srv := redistest.Start(t)
	red, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "test:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { red.Close() })
	return map[string]store.Store{"memory": mem, "redis": red}
}
