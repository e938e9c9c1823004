package store

import (
	"context"
	"hash/maphash"
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
