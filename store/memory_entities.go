package store

// The in-memory store's per-entity state: the sliding-window request counts
// and audio plays that Observe reads, and the labels, kept apart so that
// evicting an entity's counts keeps its label.

import (
	"container/heap"
	"context"
	"time"
)

type memEntity struct {
	lastSeen time.Time
	windows  []memWindow
	audio    int64
	// label is the shard's labels[key], kept in step wherever a label is
	// added or removed, so that Observe, on every request, needs no
	// second map lookup for an entity it already tracks.
	label *memLabel
}

type memWindow struct {
	idx       int64
	cur, prev int64
}

type memLabel struct {
	key string
	l   Label
	idx int // in byExpiry
}

// labelHeap is a min-heap of labels by expiry.
type labelHeap []*memLabel

func (h labelHeap) Len() int           { return len(h) }
func (h labelHeap) Less(i, j int) bool { return h[i].l.Expires.Before(h[j].l.Expires) }
func (h labelHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *labelHeap) Push(x any) {
	l := x.(*memLabel)
	l.idx = len(*h)
	*h = append(*h, l)
}
func (h *labelHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return l
}

// Observe implements Store.
func (m *Memory) Observe(_ context.Context, now time.Time, hits []Hit) ([]Tally, error) {
	out := make([]Tally, len(hits))
	for i, h := range hits {
		key := h.Entity.Key()
		sh := m.shard(key)
		sh.mu.Lock()
		e := sh.m[key]
		if e != nil && m.expired(e, now) {
			delete(sh.m, key)
			e = nil
		}
		if e == nil && h.N > 0 {
			e = m.newEntity(sh, key)
			m.insert(sh, key, e, now)
		}
		var ml *memLabel
		out[i].Counts = make([]float64, len(m.opts.Windows))
		if e != nil {
			if h.N > 0 {
				e.lastSeen = now
			}
			for j, w := range m.opts.Windows {
				mw := &e.windows[j]
				idx := bucketIndex(now, w)
				switch {
				case idx == mw.idx+1:
					mw.prev, mw.cur, mw.idx = mw.cur, 0, idx
				case idx > mw.idx:
					mw.prev, mw.cur, mw.idx = 0, 0, idx
				}
				// A clock that stepped back lands in the current bucket
				// rather than losing the hit.
				mw.cur += h.N
				out[i].Counts[j] = slidingCount(now, w, mw.cur, mw.prev)
			}
			out[i].Audio = e.audio
			ml = e.label
		} else if len(sh.labels) > 0 {
			ml = sh.labels[key]
		}
		if ml != nil && now.Before(ml.l.Expires) {
			l := ml.l
			out[i].Label = &l
		}
		sh.mu.Unlock()
	}
	return out, nil
}

// newEntity returns a new entity record for key, linked to its label.
// Called with sh.mu held.
func (m *Memory) newEntity(sh *memShard, key string) *memEntity {
	e := &memEntity{windows: make([]memWindow, len(m.opts.Windows))}
	if len(sh.labels) > 0 {
		e.label = sh.labels[key]
	}
	return e
}

// expired reports whether an entity's counts would be gone in Redis by now.
func (m *Memory) expired(e *memEntity, now time.Time) bool {
	return now.Sub(e.lastSeen) > m.opts.retention()
}

// insert adds e, evicting first when the shard is full. Called with sh.mu held.
func (m *Memory) insert(sh *memShard, key string, e *memEntity, now time.Time) {
	if len(sh.m) >= m.maxEntities {
		var victim string
		var oldest time.Time
		n := 0
		for k, c := range sh.m {
			if m.expired(c, now) {
				victim = k
				break
			}
			if n == 0 || c.lastSeen.Before(oldest) {
				victim, oldest = k, c.lastSeen
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(sh.m, victim)
	}
	e.lastSeen = now
	sh.m[key] = e
}

// SetLabel implements Store. It always records the label: when the labels
// are full the one that expires soonest makes room.
func (m *Memory) SetLabel(_ context.Context, ent Entity, l Label) error {
	now := time.Now()
	if !l.Expires.After(now) {
		return ErrBadLabel
	}
	key := ent.Key()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ml := sh.labels[key]; ml != nil {
		ml.l = l
		heap.Fix(&sh.byExpiry, ml.idx)
		return nil
	}
	sh.dropExpiredLabels(now)
	if len(sh.labels) >= m.maxLabels {
		sh.removeLabel(heap.Pop(&sh.byExpiry).(*memLabel))
	}
	ml := &memLabel{key: key, l: l}
	heap.Push(&sh.byExpiry, ml)
	sh.labels[key] = ml
	if e := sh.m[key]; e != nil {
		e.label = ml
	}
	return nil
}

// removeLabel forgets a label already out of byExpiry. Called with sh.mu
// held.
func (sh *memShard) removeLabel(ml *memLabel) {
	delete(sh.labels, ml.key)
	if e := sh.m[ml.key]; e != nil {
		e.label = nil
	}
}

// dropExpiredLabels removes the labels that have expired by now. Called
// with sh.mu held.
func (sh *memShard) dropExpiredLabels(now time.Time) {
	for len(sh.byExpiry) > 0 && !now.Before(sh.byExpiry[0].l.Expires) {
		sh.removeLabel(heap.Pop(&sh.byExpiry).(*memLabel))
	}
}

// CountAudio implements Store.
func (m *Memory) CountAudio(_ context.Context, ent Entity) error {
	now := time.Now()
	key := ent.Key()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil || m.expired(e, now) {
		e = m.newEntity(sh, key)
		m.insert(sh, key, e, now)
	}
	e.audio++
	e.lastSeen = now
	return nil
}

// ClearLabel implements Store.
func (m *Memory) ClearLabel(_ context.Context, ent Entity) error {
	key := ent.Key()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ml := sh.labels[key]; ml != nil {
		heap.Remove(&sh.byExpiry, ml.idx)
		sh.removeLabel(ml)
	}
	return nil
}
