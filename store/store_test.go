package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
	"github.com/redis/go-redis/v9"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		m, err := store.NewMemory(store.MemoryOptions{Options: store.Options{Windows: storetest.Windows}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	})
}

// redisStores makes a fresh Redis store per contract subtest, each with
// its own key prefix, from the given connection options.
func redisStores(base store.RedisOptions) func(t *testing.T) store.Store {
	n := 0
	return func(t *testing.T) store.Store {
		n++
		o := base
		o.Options = store.Options{Windows: storetest.Windows}
		o.KeyPrefix = fmt.Sprintf("contract%d:", n)
		r, err := store.NewRedis(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, redisStores(store.RedisOptions{Addrs: []string{srv.Addr}}))
}

// TestRedisEveryKeyHasTTL checks the rule the memory bound rests on: no
// key the store writes lives forever.
func TestRedisEveryKeyHasTTL(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "ttl:"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	ents := []store.Entity{{Kind: store.KindIP, ID: "192.0.2.9"}, {Kind: store.KindDevice, ID: "d"}, {Kind: store.KindAccount, ID: "{x}"}}
	for _, e := range ents {
		if _, err := r.Observe(ctx, now, []store.Hit{{Entity: e, N: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := r.SetLabel(ctx, e, store.Label{Reason: "t", At: now, Expires: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.PutOnce(ctx, "ch:1", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Incr(ctx, "att:1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PushQueue(ctx, "pool:1", []byte("x"), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2*len(ents)+3 {
		t.Fatalf("keys %v, want %d", keys, 2*len(ents)+3)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %q: ttl %v err %v", k, ttl, err)
		}
	}
}

// TestRedisOldBucketsAreDropped checks that a long-lived entity's hash
// stays small: only the current and previous bucket of each window remain.
func TestRedisOldBucketsAreDropped(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e := store.Entity{Kind: store.KindIP, ID: "192.0.2.10"}
	start := time.Now()
	for i := 0; i < 500; i++ { // 500 seconds of traffic, one hit a second
		if _, err := r.Observe(ctx, start.Add(time.Duration(i)*time.Second), []store.Hit{{Entity: e, N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	n, err := c.HLen(ctx, "{ip:192.0.2.10}:w").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n > 6 { // 3 windows × (current + previous)
		t.Fatalf("counter hash has %d fields, want ≤ 6", n)
	}
}

// TestRedisNoScriptRecovery: after SCRIPT FLUSH (a Redis restart or
// failover does the same) Observe still works.
func TestRedisNoScriptRecovery(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e := store.Entity{Kind: store.KindIP, ID: "192.0.2.11"}
	if _, err := r.Observe(ctx, time.Now(), []store.Hit{{Entity: e, N: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	tl, err := r.Observe(ctx, time.Now(), []store.Hit{{Entity: e, N: 1}})
	if err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	if tl[0].Counts[2] != 2 {
		t.Fatalf("counts %v", tl[0].Counts)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	m, err := store.NewMemory(store.MemoryOptions{MaxEntities: 640})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Now()
	for i := 0; i < 10_000; i++ {
		e := store.Entity{Kind: store.KindIP, ID: fmt.Sprint(i)}
		if _, err := m.Observe(context.Background(), now, []store.Hit{{Entity: e, N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Len(); n > 640 || n < 600 {
		t.Fatalf("tracked %d entities with MaxEntities 640", n)
	}
}

func TestEntityKey(t *testing.T) {
	long := string(make([]byte, 100))
	for _, tc := range []struct {
		e    store.Entity
		want string
	}{
		{store.Entity{Kind: store.KindIP, ID: "2001:db8::/64"}, "ip:2001:db8::/64"},
		{store.Entity{Kind: store.KindAccount, ID: "alice"}, "acct:alice"},
	} {
		if got := tc.e.Key(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
	for _, id := range []string{"{a}", "a b", long, "é"} {
		k := store.Entity{Kind: store.KindAccount, ID: id}.Key()
		if len(k) > 40 || k[:6] != "acct:h" {
			t.Errorf("id %q: key %q not hashed", id[:min(len(id), 5)], k)
		}
	}
}

// TestRedisClusterContract runs the contract against a real three-master
// Redis Cluster: each entity's keys share a hash tag, and a request's
// entities, spread over slots, still go in one pipeline.
func TestRedisClusterContract(t *testing.T) {
	cl := redistest.StartCluster(t)
	storetest.Run(t, redisStores(store.RedisOptions{Addrs: cl.Addrs}))
}

// TestRedisSentinelFailover kills the master under a Sentinel: the store,
// not recreated, follows the Sentinel to the promoted replica and finds there
// what it wrote before (labels are what an operator would miss most).
func TestRedisSentinelFailover(t *testing.T) {
	sn := redistest.StartSentinelWithReplica(t)
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName,
		Options: store.Options{Windows: storetest.Windows}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx := context.Background()
	now := time.Now()
	before := store.Entity{Kind: store.KindIP, ID: "198.51.100.1"}
	if err := r.SetLabel(ctx, before, store.Label{Reason: "written before the failover", At: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Asynchronous replication may lose the last writes before a crash;
	// the test waits for the replica so that it tests the failover, not that.
	master := redis.NewClient(&redis.Options{Addr: sn.Master.Addr})
	if n, err := master.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}
	master.Close()

	sn.Master.Kill()
	deadline := time.Now().Add(30 * time.Second)
	var tallies []store.Tally
	for {
		tallies, err = r.Observe(ctx, time.Now(), []store.Hit{{Entity: before, N: 1}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover within 30s of the master's death: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := sn.MasterAddr(); got != sn.Replica.Addr {
		t.Fatalf("the Sentinel reports master %s, want the promoted replica %s", got, sn.Replica.Addr)
	}
	if l := tallies[0].Label; l == nil || l.Reason != "written before the failover" {
		t.Fatalf("label after the failover: %+v", l)
	}
	after := store.Entity{Kind: store.KindIP, ID: "198.51.100.2"}
	if err := r.SetLabel(ctx, after, store.Label{Reason: "written after", At: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatalf("writing after the failover: %v", err)
	}
	promoted := redis.NewClient(&redis.Options{Addr: sn.Replica.Addr})
	defer promoted.Close()
	if n, _ := promoted.DBSize(ctx).Result(); n == 0 {
		t.Fatal("the promoted replica holds nothing")
	}
}

// TestRedisSentinelContract runs the contract through a real Sentinel.
func TestRedisSentinelContract(t *testing.T) {
	sn := redistest.StartSentinel(t)
	storetest.Run(t, redisStores(store.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName}))
}

// TestRedisObserveAfterClose: a closed store answers with an error at
// once; no caller waits on workers that are gone.
func TestRedisObserveAfterClose(t *testing.T) {
	srv := redistest.Start(t)
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	e := store.Entity{Kind: store.KindIP, ID: "192.0.2.11"}
	if _, err := r.Observe(context.Background(), time.Now(), []store.Hit{{Entity: e, N: 1}}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Observe(ctx, time.Now(), []store.Hit{{Entity: e, N: 1}}); err == nil || ctx.Err() != nil {
		t.Fatalf("Observe after Close: %v (context: %v), want an error at once", err, ctx.Err())
	}
}

// TestRedisObserveHonoursContext: a caller whose context ends while Redis
// does not answer gets its context's error, not a wait for the server.
func TestRedisObserveHonoursContext(t *testing.T) {
	srv := redistest.Start(t)
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, ReadTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	// CLIENT PAUSE holds every write for 3 s, so the script call hangs.
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = r.Observe(ctx, time.Now(), []store.Hit{{Entity: store.Entity{Kind: store.KindIP, ID: "192.0.2.12"}, N: 1}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Observe with a 200ms context against a paused Redis: %v after %v", err, time.Since(start))
	}
}

// TestRedisStalledCallsAreBounded: with Redis not answering, many callers
// at once (whose contexts set no deadline) each get an error within the
// store's bound — twice its dial plus read timeout — rather than queueing
// behind each other's timeouts.
func TestRedisStalledCallsAreBounded(t *testing.T) {
	srv := redistest.Start(t)
	r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "6000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	const callers = 2000
	bound := 2 * (500*time.Millisecond + 250*time.Millisecond) // the default timeouts
	var wg sync.WaitGroup
	var slowest atomic.Int64
	failed := atomic.Int64{}
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := r.Observe(context.Background(), time.Now(), []store.Hit{{Entity: store.Entity{Kind: store.KindIP, ID: fmt.Sprintf("203.0.%d.%d", i/256, i%256)}, N: 1}})
			if err != nil {
				failed.Add(1)
			}
			took := int64(time.Since(start))
			for {
				old := slowest.Load()
				if took <= old || slowest.CompareAndSwap(old, took) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != callers {
		t.Errorf("%d of %d calls against a paused Redis succeeded", callers-failed.Load(), callers)
	}
	if took := time.Duration(slowest.Load()); took > bound+time.Second {
		t.Fatalf("the slowest of %d stalled calls took %v, want at most about %v", callers, took, bound)
	}
}
