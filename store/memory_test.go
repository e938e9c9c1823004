package store_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/store"
)

// churn is what a flood of made-up clients leaves in the store: request
// counts of new accounts and devices, rule labels, pending challenges and
// slide tickets, failure and audio counters, per-device lists.
func churn(t *testing.T, m *store.Memory, round, n int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("r%d-%d", round, i)
		acct := store.Entity{Kind: store.KindAccount, ID: id}
		dev := store.Entity{Kind: store.KindDevice, ID: id}
		if _, err := m.Observe(ctx, now, []store.Hit{{Entity: acct, N: 1}, {Entity: dev, N: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := m.CountAudio(ctx, dev); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			l := store.Label{Reason: "too many wrong captcha answers", Source: "rule", At: now, Expires: now.Add(time.Hour)}
			if err := m.SetLabel(ctx, dev, l); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"ch:", "slide:", "audio-used:"} {
			if err := m.PutOnce(ctx, k+id, make([]byte, 64), 10*time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"fail:" + dev.Key(), "fail:" + acct.Key(), "audio:" + dev.Key()} {
			if _, err := m.Incr(ctx, k, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := m.PushList(ctx, "hist:"+dev.Key(), []byte("300"), 8, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

// The attack of issue 22: 3,000+ requests with distinct accounts (and
// devices, challenges, counters) used to evict an operator's 24 h label
// and the wrong-answer counters. Now the label stays with its expiry,
// the counters stay exact or read as saturated, never reset, and every
// kind of state stays within its budget.
func TestMemoryChurnKeepsLabelsAndCounters(t *testing.T) {
	ctx := context.Background()
	// Small budgets, so the churn fills every one of them; labels too: the
	// rule labels it makes exceed MaxLabels from the first round.
	const maxEntities, maxLabels = 640, 1280
	m, err := store.NewMemory(store.MemoryOptions{MaxEntities: maxEntities, MaxLabels: maxLabels})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Now()
	alice := store.Entity{Kind: store.KindAccount, ID: "alice"}
	opLabel := store.Label{Reason: "operator", Source: "admin", At: now, Expires: now.Add(24 * time.Hour)}
	if err := m.SetLabel(ctx, alice, opLabel); err != nil {
		t.Fatal(err)
	}
	mallory := store.Entity{Kind: store.KindDevice, ID: "mallory"}
	for i := 0; i < 2; i++ {
		if _, err := m.Incr(ctx, "fail:"+mallory.Key(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Incr(ctx, "penalty:"+mallory.Key(), 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}

	var heap [6]uint64
	for round := range heap {
		churn(t, m, round, 4000)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap[round] = ms.HeapAlloc

		s := m.Sizes()
		// Budgets per namespace: counters in "fail:dev:", "fail:acct:",
		// "audio:dev:", "penalty:dev:"; values in "ch:", "slide:",
		// "audio-used:", "hist:dev:".
		perNS := (maxEntities + 63) / 64 * 64 // per-shard budgets round up
		if s.Entities > maxEntities || s.Labels > maxLabels ||
			s.Counters > 4*perNS || s.Tombstones > 4*4*perNS || s.Values > 4*perNS {
			t.Fatalf("round %d: sizes %+v beyond the budgets", round, s)
		}
		if m.Len() != s.Entities {
			t.Fatalf("Len %d, sizes %+v", m.Len(), s)
		}
	}
	t.Logf("heap after each round of 4,000 clients: %v", heap)
	// The first round fills the budgets; later rounds replace, not add
	// (the maps' tables settle by some 25 KB a round, converging to about
	// 0.45 MB over the first round's in 40 rounds).
	if grown := int64(heap[5]) - int64(heap[1]); grown > 1<<20 {
		t.Fatalf("heap grew by %d bytes from round 1 to 3 (%v)", grown, heap)
	}

	tl, err := m.Observe(ctx, time.Now(), []store.Hit{{Entity: alice}})
	if err != nil {
		t.Fatal(err)
	}
	if tl[0].Label == nil || *tl[0].Label != opLabel {
		t.Fatalf("operator's label after the churn: %+v, want %+v", tl[0].Label, opLabel)
	}
	// mallory's wrong answers were pushed out by the flood of "fail:" keys
	// or kept: either way the next one counts as at least the third.
	if n, err := m.Incr(ctx, "fail:"+mallory.Key(), time.Hour); err != nil || (n != 3 && n != store.IncrSaturated) {
		t.Fatalf("mallory's failure counter after the churn: %d %v", n, err)
	}
	// Nothing flooded "penalty:": that counter is exact.
	if n, err := m.Incr(ctx, "penalty:"+mallory.Key(), 7*24*time.Hour); err != nil || n != 2 {
		t.Fatalf("mallory's penalty counter after the churn: %d %v", n, err)
	}
}
