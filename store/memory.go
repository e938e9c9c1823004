package store

import (
	"container/heap"
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryOptions configure the in-memory store. Each kind of state has its
// own budget, so that a flood of one kind (new accounts, new challenges,
// new failure counters) cannot push out another: before, one shared LRU let
// 3,000 requests with made-up accounts evict an operator's label and the
// wrong-answer counters of the clients being counted.
type MemoryOptions struct {
	Options
	// MaxEntities bounds how many entities' request counts are tracked;
	// when full, the least recently seen of a small random sample is
	// evicted (as Redis's approximated LRU does). Losing an idle entity's
	// counts is harmless: it starts again from zero, as a new client
	// would. Its label is kept elsewhere. Default 100,000.
	MaxEntities int
	// MaxLabels bounds how many labels are kept. A label is never dropped
	// to make room for request counts; when MaxLabels labels are live, a
	// new label still goes in and the label that expires soonest goes out
	// (it had the least protection left to give). Default 10×MaxEntities:
	// labels come only from confirmed abuse or an operator, and one costs
	// about 170 bytes, so the default 1,000,000 is at most some 170 MB.
	MaxLabels int
	// MaxCounters bounds the Incr counters of each key namespace (see
	// namespace: e.g. "fail:dev:", "fail:ip:", "penalty:acct:",
	// "audio:dev:"), so a flood of one cannot push out another's. What happens to a counter
	// pushed out is described at IncrSaturated. Default MaxEntities
	// (about 100 bytes a counter, 40 a tombstone: some 26 MB a namespace
	// when full at the default).
	MaxCounters int
	// MaxValues bounds the PutOnce values, lists and queues of each key
	// namespace ("ch:" challenges, "slide:" tickets, "hist:" lists, ...);
	// when full, an expired value or else the soonest-expiring of a small
	// random sample is evicted. Default MaxEntities.
	MaxValues int
}

// IncrSaturated is what Memory.Incr returns for a counter it could not keep
// exactly: one it evicted for space (until the TTL it had would have
// ended), or a new one when the namespace's counters and its record of
// evicted ones are both full. Counters are limits on abuse (wrong answers,
// audio plays), so a counter that restarted at 1 would hand whoever pushed
// it out a fresh allowance; reading as at or past any limit instead fails
// safe. It is math.MaxInt32, not MaxInt64, so callers' arithmetic on it
// (n+1, shifts by n-1 after clamping) cannot overflow. Redis never returns
// it: Redis keeps every key until its TTL (see the README on maxmemory).
const IncrSaturated int64 = math.MaxInt32

const (
	memoryShards = 64
	// evictSample is how many entries an eviction looks at: map iteration
	// starts at a random place, so they are a free random sample.
	evictSample = 8
	// maxSpaces bounds the key namespaces per shard; namespaces are
	// chosen by the code, not by clients, but a key built without a fixed
	// prefix must not make namespaces without bound. Keys past the bound,
	// and keys without ':', share the namespace "".
	maxSpaces = 32
	// tombsPerCounter: a tombstone (8-byte hash, 8-byte expiry) costs a
	// fraction of a counter (its key string and map entry), so a namespace
	// remembers several times more evicted counters than it keeps.
	tombsPerCounter = 4
)

// Memory is a Store for a single gateway instance. Its memory is bounded by
// the budgets of MemoryOptions, and idle entries expire like Redis keys
// would.
type Memory struct {
	opts   MemoryOptions
	seed   maphash.Seed
	shards [memoryShards]memShard
	stop   chan struct{}
	done   sync.WaitGroup

	// the budgets of each shard
	maxEntities, maxLabels, maxCounters, maxTombs, maxValues int

	logMu sync.Mutex
	logs  map[string]*memLog
}

type memShard struct {
	mu sync.Mutex
	m  map[string]*memEntity
	// labels live apart from the entities' counts, so that evicting an
	// idle entity's counts keeps its label; byExpiry finds the label to
	// give up when labels are full, and the expired ones to sweep.
	labels   map[string]*memLabel
	byExpiry labelHeap
	spaces   map[string]*memSpace
}

// memSpace holds one key namespace's values and counters. Values and
// counters share the namespace's keys (a lock is taken with Incr and
// released with Take) but not their budgets.
type memSpace struct {
	values   map[string]memValue
	counters map[string]memCounter
	// tombs remembers counters evicted for space until they would have
	// expired (unix ns), by the key's seeded hash.
	tombs map[uint64]int64
}

type memValue struct {
	value   []byte
	list    [][]byte
	expires time.Time
}

type memCounter struct {
	n       int64
	expires time.Time
}

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

// NewMemory returns an in-memory store. Close stops its janitor.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if opts.MaxEntities <= 0 {
		opts.MaxEntities = 100_000
	}
	if opts.MaxLabels <= 0 {
		opts.MaxLabels = 10 * opts.MaxEntities
	}
	if opts.MaxCounters <= 0 {
		opts.MaxCounters = opts.MaxEntities
	}
	if opts.MaxValues <= 0 {
		opts.MaxValues = opts.MaxEntities
	}
	perShard := func(n int) int { return (n + memoryShards - 1) / memoryShards }
	m := &Memory{opts: opts, seed: maphash.MakeSeed(), stop: make(chan struct{}), logs: map[string]*memLog{},
		maxEntities: perShard(opts.MaxEntities), maxLabels: perShard(opts.MaxLabels),
		maxCounters: perShard(opts.MaxCounters), maxTombs: tombsPerCounter * perShard(opts.MaxCounters),
		maxValues: perShard(opts.MaxValues)}
	for i := range m.shards {
		m.shards[i] = memShard{m: make(map[string]*memEntity), labels: make(map[string]*memLabel), spaces: make(map[string]*memSpace)}
	}
	m.done.Add(1)
	go m.janitor()
	return m, nil
}

func (m *Memory) shard(key string) *memShard {
	sh, _ := m.shardHash(key)
	return sh
}

func (m *Memory) shardHash(key string) (*memShard, uint64) {
	h := maphash.String(m.seed, key)
	return &m.shards[h%memoryShards], h
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

// namespace is the part of key that says what kind of state it is: up to
// the first ':', which the callers' code chooses, plus the entity kind
// after it when there is one. The kind matters because a flood of one
// kind is cheap where another's is not: fresh cookies make new "fail:dev:"
// keys at will, and were they to push out "fail:ip:" counters, these would
// saturate and one more wrong answer would label everyone behind an
// office's address. What follows is client data and never part of it.
func namespace(key string) string {
	i := strings.IndexByte(key, ':')
	if i < 0 {
		return ""
	}
	rest := key[i+1:]
	for _, k := range [...]Kind{KindIP, KindDevice, KindAccount, KindFingerprint} {
		if len(rest) > len(k) && rest[len(k)] == ':' && rest[:len(k)] == string(k) {
			return key[:i+len(k)+2]
		}
	}
	return key[:i+1]
}

// space returns the namespace of key in sh. Called with sh.mu held.
func (sh *memShard) space(key string) *memSpace {
	ns := namespace(key)
	if sp := sh.spaces[ns]; sp != nil {
		return sp
	}
	if len(sh.spaces) >= maxSpaces {
		ns = ""
		if sp := sh.spaces[ns]; sp != nil {
			return sp
		}
	}
	sp := &memSpace{values: make(map[string]memValue), counters: make(map[string]memCounter), tombs: make(map[uint64]int64)}
	sh.spaces[strings.Clone(ns)] = sp
	return sp
}

// putValue stores v, evicting first when the namespace's values are full:
// an expired one, else the soonest to expire of a sample, which loses the
// least (a challenge or ticket that would soon have gone anyway). Called
// with sh.mu held.
func (m *Memory) putValue(sp *memSpace, key string, v memValue, now time.Time) {
	if _, exists := sp.values[key]; !exists && len(sp.values) >= m.maxValues {
		var victim string
		var soonest time.Time
		n := 0
		for k, old := range sp.values {
			if now.After(old.expires) {
				victim = k
				break
			}
			if n == 0 || old.expires.Before(soonest) {
				victim, soonest = k, old.expires
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(sp.values, victim)
	}
	sp.values[key] = v
}

// live returns the value under key, or the zero value when there is none or
// it has expired. Called with sh.mu held.
func (sp *memSpace) live(key string, now time.Time) memValue {
	if v, ok := sp.values[key]; ok && !now.After(v.expires) {
		return v
	}
	return memValue{}
}

// PutOnce implements Store.
func (m *Memory) PutOnce(_ context.Context, key string, value []byte, ttl time.Duration) error {
	now := time.Now()
	sh, h := m.shardHash(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sp := sh.space(key)
	// Like Redis SET, a value replaces a counter under the same key.
	delete(sp.counters, key)
	delete(sp.tombs, h)
	m.putValue(sp, key, memValue{value: append([]byte(nil), value...), expires: now.Add(ttl)}, now)
	return nil
}

func (m *Memory) get(key string, take bool) ([]byte, error) {
	now := time.Now()
	sh, h := m.shardHash(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sp := sh.space(key)
	if v, ok := sp.values[key]; ok && !now.After(v.expires) && v.value != nil {
		if take {
			delete(sp.values, key)
		}
		return append([]byte(nil), v.value...), nil
	}
	// A counter reads as Redis shows it; an evicted one as saturated, and
	// taking it (releasing a lock) forgets it like taking a kept one.
	n := int64(0)
	if c, ok := sp.counters[key]; ok && !now.After(c.expires) {
		n = c.n
		if take {
			delete(sp.counters, key)
		}
	} else if exp, ok := sp.tombs[h]; ok && now.UnixNano() < exp {
		n = IncrSaturated
		if take {
			delete(sp.tombs, h)
		}
	}
	if n == 0 {
		return nil, ErrNotFound
	}
	return strconv.AppendInt(nil, n, 10), nil
}

// Peek implements Store.
func (m *Memory) Peek(_ context.Context, key string) ([]byte, error) { return m.get(key, false) }

// Take implements Store.
func (m *Memory) Take(_ context.Context, key string) ([]byte, error) { return m.get(key, true) }

// Incr implements Store. A counter evicted for space reads IncrSaturated
// until it would have expired, and so does a new counter when the
// namespace can neither keep it nor remember one it evicts for it: a
// counter here is either exact or saturated, never lower than it should be.
func (m *Memory) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	now := time.Now()
	sh, h := m.shardHash(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sp := sh.space(key)
	if c, ok := sp.counters[key]; ok {
		if !now.After(c.expires) {
			c.n++
			sp.counters[key] = c
			return c.n, nil
		}
		delete(sp.counters, key)
	}
	if v, ok := sp.values[key]; ok && !now.After(v.expires) {
		return 0, fmt.Errorf("memory store: incr %q: the key holds a value, not a counter", key)
	}
	if exp, ok := sp.tombs[h]; ok {
		if now.UnixNano() < exp {
			return IncrSaturated, nil
		}
		delete(sp.tombs, h)
	}
	if len(sp.counters) >= m.maxCounters && !m.evictCounter(sp, now) {
		return IncrSaturated, nil
	}
	sp.counters[key] = memCounter{n: 1, expires: now.Add(ttl)}
	return 1, nil
}

// evictCounter makes room for one counter: an expired one goes, else the
// soonest to expire of a sample (whose client is saturated for the
// shortest time) goes and is remembered as a tombstone. It reports false,
// evicting nothing, when the tombstones are full of live ones too.
// Called with sh.mu held.
func (m *Memory) evictCounter(sp *memSpace, now time.Time) bool {
	var victim string
	var soonest time.Time
	n := 0
	for k, c := range sp.counters {
		if now.After(c.expires) {
			delete(sp.counters, k)
			return true
		}
		if n == 0 || c.expires.Before(soonest) {
			victim, soonest = k, c.expires
		}
		if n++; n == evictSample {
			break
		}
	}
	if len(sp.tombs) >= m.maxTombs {
		freed, n := false, 0
		ns := now.UnixNano()
		for k, exp := range sp.tombs {
			if exp <= ns {
				delete(sp.tombs, k)
				freed = true
				break
			}
			if n++; n == evictSample {
				break
			}
		}
		if !freed {
			return false
		}
	}
	sp.tombs[maphash.String(m.seed, victim)] = soonest.UnixNano()
	delete(sp.counters, victim)
	return true
}

// memLog is a bounded in-memory log; ids are sequence numbers.
type memLog struct {
	next    uint64
	records []Record
	touched time.Time
}

// Append implements Store. Memory logs hold at most MaxLogLen/100
// records: a single instance is for development and small sites.
func (m *Memory) Append(_ context.Context, log string, record []byte) error {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	l := m.logs[log]
	if l == nil {
		l = &memLog{}
		m.logs[log] = l
	}
	l.next++
	l.records = append(l.records, Record{ID: fmt.Sprintf("%020d", l.next), Value: append([]byte(nil), record...)})
	if limit := MaxLogLen / 100; len(l.records) > limit {
		l.records = append(l.records[:0:0], l.records[len(l.records)-limit:]...)
	}
	l.touched = time.Now()
	return nil
}

// Range implements Store.
func (m *Memory) Range(_ context.Context, log, after string, max int) ([]Record, error) {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	l := m.logs[log]
	if l == nil || time.Since(l.touched) > LogTTL {
		return nil, nil
	}
	var out []Record
	for _, r := range l.records {
		if r.ID > after && len(out) < max {
			out = append(out, Record{ID: r.ID, Value: append([]byte(nil), r.Value...)})
		}
	}
	return out, nil
}

// Latest implements Store.
func (m *Memory) Latest(_ context.Context, log string, max int) ([]Record, error) {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	l := m.logs[log]
	if l == nil || time.Since(l.touched) > LogTTL {
		return nil, nil
	}
	out := make([]Record, 0, min(max, len(l.records)))
	for i := len(l.records) - 1; i >= 0 && len(out) < max; i-- {
		r := l.records[i]
		out = append(out, Record{ID: r.ID, Value: append([]byte(nil), r.Value...)})
	}
	return out, nil
}

// PushList implements Store.
func (m *Memory) PushList(_ context.Context, key string, value []byte, keep int, ttl time.Duration) ([][]byte, error) {
	now := time.Now()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sp := sh.space(key)
	v := sp.live(key, now)
	list := append([][]byte{append([]byte(nil), value...)}, v.list...)
	if len(list) > keep {
		list = list[:keep]
	}
	v.list, v.expires = list, now.Add(ttl)
	m.putValue(sp, key, v, now)
	out := make([][]byte, len(list))
	for i, b := range list {
		out[i] = append([]byte(nil), b...)
	}
	return out, nil
}

// PushQueue implements Store. The queue is kept oldest first.
func (m *Memory) PushQueue(_ context.Context, key string, value []byte, max int, ttl time.Duration) (int, error) {
	now := time.Now()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sp := sh.space(key)
	v := sp.live(key, now)
	v.list = append(v.list, append([]byte(nil), value...))
	if len(v.list) > max {
		v.list = append(v.list[:0:0], v.list[len(v.list)-max:]...)
	}
	v.expires = now.Add(ttl)
	m.putValue(sp, key, v, now)
	return len(v.list), nil
}

// PopQueue implements Store.
func (m *Memory) PopQueue(_ context.Context, key string) ([]byte, error) {
	now := time.Now()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sp := sh.space(key)
	v := sp.live(key, now)
	if len(v.list) == 0 {
		return nil, ErrNotFound
	}
	b := v.list[0]
	v.list[0] = nil
	v.list = v.list[1:]
	sp.values[key] = v
	return b, nil
}

// QueueLen implements Store.
func (m *Memory) QueueLen(_ context.Context, key string) (int, error) {
	now := time.Now()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.space(key).live(key, now).list), nil
}

// Ping implements Store; memory is always reachable.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.done.Wait()
	return nil
}

// Len returns the number of entities whose request counts are tracked.
func (m *Memory) Len() int { return m.Sizes().Entities }

// MemorySizes counts what a Memory holds, per budget.
type MemorySizes struct {
	Entities int // request counts (MaxEntities)
	Labels   int // live or not yet swept (MaxLabels)
	Counters int // Incr counters, all namespaces (MaxCounters each)
	// Tombstones are counters evicted for space that still read as
	// IncrSaturated (tombsPerCounter×MaxCounters each namespace).
	Tombstones int
	Values     int // PutOnce values, lists and queues, all namespaces (MaxValues each)
	Namespaces int // the most of any shard (at most maxSpaces)
}

// Sizes returns how much the store holds, for tests and metrics.
func (m *Memory) Sizes() MemorySizes {
	var s MemorySizes
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		s.Entities += len(sh.m)
		s.Labels += len(sh.labels)
		s.Namespaces = max(s.Namespaces, len(sh.spaces))
		for _, sp := range sh.spaces {
			s.Counters += len(sp.counters)
			s.Tombstones += len(sp.tombs)
			s.Values += len(sp.values)
		}
		sh.mu.Unlock()
	}
	return s
}

// janitor drops expired entries so idle memory is returned even when no
// new entry arrives to trigger eviction.
func (m *Memory) janitor() {
	defer m.done.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.sweep(now)
		}
	}
}

func (m *Memory) sweep(now time.Time) {
	ns := now.UnixNano()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if m.expired(e, now) {
				delete(sh.m, k)
			}
		}
		sh.dropExpiredLabels(now)
		for _, sp := range sh.spaces {
			for k, v := range sp.values {
				if now.After(v.expires) {
					delete(sp.values, k)
				}
			}
			for k, c := range sp.counters {
				if now.After(c.expires) {
					delete(sp.counters, k)
				}
			}
			for k, exp := range sp.tombs {
				if exp <= ns {
					delete(sp.tombs, k)
				}
			}
		}
		sh.mu.Unlock()
	}
}

var _ Store = (*Memory)(nil)
