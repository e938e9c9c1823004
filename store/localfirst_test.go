package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
)

// One instance in front of Redis must behave exactly like a store: its own
// counts are exact, and the rest goes to Redis.
func TestLocalFirstContract(t *testing.T) {
	srv := redistest.Start(t)
	shared := redisStores(store.RedisOptions{Addrs: []string{srv.Addr}})
	storetest.Run(t, func(t *testing.T) store.Store {
		f, err := store.NewLocalFirst(shared(t), store.LocalFirstOptions{Options: store.Options{Windows: storetest.Windows}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	})
}

// localFirstPair is two instances on one Redis, flushing only when told.
func localFirstPair(t *testing.T, srv *redistest.Server) (a, b *store.LocalFirst) {
	t.Helper()
	open := func() *store.LocalFirst {
		r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "lf:", ReadTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		f, err := store.NewLocalFirst(r, store.LocalFirstOptions{Interval: time.Hour, FlushTimeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	return open(), open()
}

func flush(t *testing.T, fs ...*store.LocalFirst) {
	t.Helper()
	for _, f := range fs {
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// Each instance sees the other's hits and labels after a batch each way:
// the delay the option trades for requests that never wait for Redis.
func TestLocalFirstInstancesSeeEachOther(t *testing.T) {
	srv := redistest.Start(t)
	a, b := localFirstPair(t, srv)
	ctx := context.Background()
	e := store.Entity{Kind: store.KindIP, ID: "192.0.2.50"}
	now := time.Now()
	for range 5 {
		if _, err := a.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	tl, err := b.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if tl[0].Counts[0] != 1 {
		t.Fatalf("before any batch b counts %v, want its own 1", tl[0].Counts)
	}
	flush(t, a, b)
	tl, err = b.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if tl[0].Counts[0] != 7 {
		t.Fatalf("after a batch each way b counts %v, want 7 (5 from a, 2 of its own)", tl[0].Counts)
	}
	// An instance learns of an entity with its own batches, which carry
	// the entities it counted since the last: a's next hit brings back b's
	// first (its second is not sent yet).
	if _, err := a.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}}); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	tl, _ = a.Observe(ctx, now, []store.Hit{{Entity: e}})
	if tl[0].Counts[0] != 7 {
		t.Fatalf("a counts %v, want 7 (6 of its own, 1 from b)", tl[0].Counts)
	}

	l := store.Label{Reason: "strict rate limit", At: now, Expires: now.Add(time.Hour)}
	if err := a.SetLabel(ctx, e, l); err != nil {
		t.Fatal(err)
	}
	if tl, _ := a.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}}); tl[0].Label == nil {
		t.Fatal("the instance that set a label does not see it at once")
	}
	flush(t, b)
	if tl, _ := b.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}}); tl[0].Label == nil || tl[0].Label.Reason != l.Reason {
		t.Fatalf("b's label after a batch: %+v", tl[0].Label)
	}
	if err := b.ClearLabel(ctx, e); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	if tl, _ := a.Observe(ctx, now, []store.Hit{{Entity: e}}); tl[0].Label != nil {
		t.Fatalf("a still sees a label b cleared: %+v", tl[0].Label)
	}
}

// With Redis gone, Observe says so after the batch that failed (so
// on_store_error applies), keeps counting here, and recovers with Redis.
func TestLocalFirstReportsAnUnreachableStore(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := localFirstPair(t, srv)
	ctx := context.Background()
	e := store.Entity{Kind: store.KindDevice, ID: "kept"}
	now := time.Now()
	if _, err := a.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := a.Flush(); err == nil {
		t.Fatal("a batch to a dead Redis went through")
	}
	_, err := a.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}})
	if err == nil {
		t.Fatal("Observe after a failed batch reports no error")
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for a.Flush() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no batch went through after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tl, err := a.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if tl[0].Counts[0] != 3 {
		t.Fatalf("counts %v after the outage, want 3: local counts must survive it", tl[0].Counts)
	}
}

// Batches larger than one script call are split, and all arrive.
func TestLocalFirstSplitsLargeBatches(t *testing.T) {
	srv := redistest.Start(t)
	a, b := localFirstPair(t, srv)
	ctx := context.Background()
	now := time.Now()
	hits := make([]store.Hit, 1300)
	for i := range hits {
		hits[i] = store.Hit{Entity: store.Entity{Kind: store.KindIP, ID: "198.18." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)}, N: 2}
	}
	if _, err := a.Observe(ctx, now, hits); err != nil {
		t.Fatal(err)
	}
	flush(t, a)
	for i := range hits {
		hits[i].N = 1
	}
	if _, err := b.Observe(ctx, now, hits); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	tl, err := b.Observe(ctx, now, hits)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tl {
		if tl[i].Counts[0] != 4 {
			t.Fatalf("entity %d: counts %v, want 4 (2 from a, 2 of b's own)", i, tl[i].Counts)
		}
	}
}
