package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// sameShard returns n keys fmt.Sprintf(format, i) that land in one shard,
// so a test can fill a shard's budget exactly.
func sameShard(m *Memory, format string, n int) []string {
	var out []string
	var target *memShard
	for i := 0; len(out) < n; i++ {
		k := fmt.Sprintf(format, i)
		if sh := m.shard(k); target == nil || sh == target {
			target = sh
			out = append(out, k)
		}
	}
	return out
}

func newTestMemory(t *testing.T, opts MemoryOptions) *Memory {
	t.Helper()
	m, err := NewMemory(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func incr(t *testing.T, m *Memory, key string, ttl time.Duration) int64 {
	t.Helper()
	n, err := m.Incr(context.Background(), key, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A counter evicted for space reads as saturated until its TTL would have
// ended, then starts again; it never restarts at 1 early.
func TestMemoryEvictedCounterSaturates(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{MaxCounters: memoryShards}) // one counter a shard
	k := sameShard(m, "fail:dev:%d", 2)
	incr(t, m, k[0], 300*time.Millisecond)
	if n := incr(t, m, k[0], 300*time.Millisecond); n != 2 {
		t.Fatalf("second incr: %d", n)
	}
	if n := incr(t, m, k[1], time.Hour); n != 1 { // evicts k[0]
		t.Fatalf("incr of the second key: %d", n)
	}
	for i := 0; i < 3; i++ {
		if n := incr(t, m, k[0], 300*time.Millisecond); n != IncrSaturated {
			t.Fatalf("incr %d of the evicted counter: %d, want IncrSaturated", i, n)
		}
	}
	if b, err := m.Peek(ctx, k[0]); err != nil || string(b) != fmt.Sprint(IncrSaturated) {
		t.Fatalf("peek of the evicted counter: %q %v", b, err)
	}
	if s := m.Sizes(); s.Counters != 1 || s.Tombstones != 1 {
		t.Fatalf("sizes %+v", s)
	}
	time.Sleep(350 * time.Millisecond)
	// Its TTL is over: it starts afresh (and pushes out k[1], which now
	// saturates in turn).
	if n := incr(t, m, k[0], time.Hour); n != 1 {
		t.Fatalf("incr after the evicted counter's TTL: %d", n)
	}
	if n := incr(t, m, k[1], time.Hour); n != IncrSaturated {
		t.Fatalf("incr of the counter evicted second: %d", n)
	}
}

// When the counters and the tombstones are full of live ones, a new
// counter reads as saturated and the kept ones stay exact.
func TestMemoryCountersFullSaturateNewKeys(t *testing.T) {
	m := newTestMemory(t, MemoryOptions{MaxCounters: memoryShards})
	k := sameShard(m, "fail:ip:%d", 2+tombsPerCounter)
	for _, key := range k[:1+tombsPerCounter] {
		if n := incr(t, m, key, time.Hour); n != 1 {
			t.Fatalf("incr %s: %d", key, n)
		}
	}
	last := k[tombsPerCounter]
	if n := incr(t, m, k[len(k)-1], time.Hour); n != IncrSaturated {
		t.Fatalf("new counter with counters and tombstones full: %d", n)
	}
	if n := incr(t, m, last, time.Hour); n != 2 {
		t.Fatalf("kept counter: %d, want 2", n)
	}
	for _, key := range k[:tombsPerCounter] {
		if n := incr(t, m, key, time.Hour); n != IncrSaturated {
			t.Fatalf("evicted counter %s: %d", key, n)
		}
	}
	if s := m.Sizes(); s.Counters != 1 || s.Tombstones != tombsPerCounter {
		t.Fatalf("sizes %+v", s)
	}
}

// Take of an evicted counter releases it like Take of a kept one (locks are
// taken with Incr and released with Take).
func TestMemoryTakeForgetsEvictedCounter(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{MaxCounters: memoryShards})
	k := sameShard(m, "model:lock%d", 2)
	incr(t, m, k[0], time.Hour)
	incr(t, m, k[1], time.Hour)
	if b, err := m.Take(ctx, k[0]); err != nil || string(b) != fmt.Sprint(IncrSaturated) {
		t.Fatalf("take of the evicted counter: %q %v", b, err)
	}
	if n := incr(t, m, k[0], time.Hour); n != 1 {
		t.Fatalf("incr after take: %d", n)
	}
}

// Full labels make room by dropping the soonest to expire; the new label is
// always recorded.
func TestMemoryLabelsFullDropSoonestExpiring(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{MaxLabels: 2 * memoryShards}) // two a shard
	keys := sameShard(m, "acct:u%d", 4)
	ents := make([]Entity, len(keys))
	for i, k := range keys {
		ents[i] = Entity{Kind: KindAccount, ID: k[len("acct:"):]}
	}
	now := time.Now()
	set := func(e Entity, ttl time.Duration) {
		t.Helper()
		if err := m.SetLabel(ctx, e, Label{Reason: "r", At: now, Expires: now.Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	// Counting the entity makes it a record that links to its label: the
	// link must follow every label change.
	labelled := func(e Entity) bool {
		t.Helper()
		tl, err := m.Observe(ctx, now, []Hit{{Entity: e, N: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return tl[0].Label != nil
	}
	if labelled(ents[1]) || labelled(ents[2]) {
		t.Fatal("labelled before any label")
	}
	set(ents[0], 24*time.Hour) // the operator's
	set(ents[1], time.Hour)
	set(ents[2], 2*time.Hour) // drops ents[1]
	if !labelled(ents[0]) || labelled(ents[1]) || !labelled(ents[2]) {
		t.Fatal("a third label did not drop the soonest-expiring one")
	}
	set(ents[3], 10*time.Minute) // sooner than all: still recorded, drops ents[2]
	if !labelled(ents[0]) || labelled(ents[2]) || !labelled(ents[3]) {
		t.Fatal("a label expiring soonest was not recorded")
	}
	if err := m.ClearLabel(ctx, ents[3]); err != nil {
		t.Fatal(err)
	}
	set(ents[1], time.Hour) // room again: nothing dropped
	set(ents[0], 48*time.Hour)
	if !labelled(ents[0]) || !labelled(ents[1]) || labelled(ents[3]) {
		t.Fatal("labels after clear and re-set")
	}
	if s := m.Sizes(); s.Labels != 2 {
		t.Fatalf("sizes %+v", s)
	}
}

// An entity evicted for its counts keeps its label.
func TestMemoryEvictedEntityKeepsLabel(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{MaxEntities: memoryShards}) // one a shard
	keys := sameShard(m, "dev:d%d", 2)
	a, b := Entity{Kind: KindDevice, ID: keys[0][4:]}, Entity{Kind: KindDevice, ID: keys[1][4:]}
	now := time.Now()
	if err := m.SetLabel(ctx, a, Label{Reason: "op", Source: "operator", At: now, Expires: now.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m.Observe(ctx, now, []Hit{{Entity: a, N: 5}})
	m.Observe(ctx, now, []Hit{{Entity: b, N: 1}}) // evicts a's counts
	tl, _ := m.Observe(ctx, now, []Hit{{Entity: a}})
	if tl[0].Counts[0] != 0 {
		t.Fatalf("a's counts were not evicted: %v", tl[0].Counts)
	}
	if tl[0].Label == nil || tl[0].Label.Reason != "op" {
		t.Fatalf("a's label after its counts were evicted: %+v", tl[0].Label)
	}
}

func TestNamespace(t *testing.T) {
	for key, want := range map[string]string{
		"fail:ip:2001:db8::/64": "fail:ip:",
		"fail:dev:abc":          "fail:dev:",
		"cleanq:dev:abc":        "cleanq:dev:",
		"penalty:acct:a:b":      "penalty:acct:",
		"slide:a:b":             "slide:",
		"ch:ipx:y":              "ch:",
		"model:v:1":             "model:",
		"pool:q":                "pool:",
		"fail:ip":               "fail:",
		"plain":                 "",
	} {
		if got := namespace(key); got != want {
			t.Errorf("namespace(%q) = %q, want %q", key, got, want)
		}
	}
}

// Namespaces have their own budgets: a flood of one cannot push out another.
func TestMemoryNamespacesAreIndependent(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{MaxEntities: 640})
	if err := m.PutOnce(ctx, "slide:ticket", []byte("t"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PushQueue(ctx, "pool:q", []byte("c"), 10, time.Hour); err != nil {
		t.Fatal(err)
	}
	incr(t, m, "penalty:acct:bob", time.Hour)
	incr(t, m, "fail:ip:192.0.2.1", time.Hour)
	for i := 0; i < 10_000; i++ {
		if err := m.PutOnce(ctx, fmt.Sprintf("ch:%d", i), []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}
		incr(t, m, fmt.Sprintf("fail:dev:%d", i), time.Hour)
	}
	if b, err := m.Take(ctx, "slide:ticket"); err != nil || string(b) != "t" {
		t.Fatalf("slide ticket after a challenge flood: %q %v", b, err)
	}
	if n, _ := m.QueueLen(ctx, "pool:q"); n != 1 {
		t.Fatalf("pool after a flood: %d", n)
	}
	if n := incr(t, m, "penalty:acct:bob", time.Hour); n != 2 {
		t.Fatalf("penalty counter after a failure-counter flood: %d", n)
	}
	// Fresh cookies flood "fail:dev:"; an IP's counter is not pushed out
	// (had it been, it would saturate and label everyone behind the IP).
	if n := incr(t, m, "fail:ip:192.0.2.1", time.Hour); n != 2 {
		t.Fatalf("IP failure counter after a device-counter flood: %d", n)
	}
	// A key built without a fixed prefix cannot make namespaces unbounded.
	for i := 0; i < 1000; i++ {
		incr(t, m, fmt.Sprintf("x%d:", i), time.Hour)
	}
	if s := m.Sizes(); s.Namespaces > maxSpaces {
		t.Fatalf("%d namespaces in a shard", s.Namespaces)
	}
}
