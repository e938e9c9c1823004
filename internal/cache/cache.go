// Package cache is a small, bounded, concurrency-safe map with expiry, for
// results that are costly to compute and cheap to recompute (parsed
// User-Agents, reverse-DNS verdicts). When full it evicts a random entry,
// which needs no bookkeeping on the read path and is good enough for caches
// whose working set is much smaller than their size.
package cache

import (
	"hash/maphash"
	"sync"
	"time"
)

const shards = 32

// Bounded caches up to a fixed number of entries.
type Bounded[K comparable, V any] struct {
	seed   maphash.Seed
	ttl    time.Duration
	shards [shards]shard[K, V]
}

type shard[K comparable, V any] struct {
	mu  sync.RWMutex
	max int
	m   map[K]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time // zero: never
}

// New returns a cache of at most size entries, each kept for ttl (0: until
// evicted).
func New[K comparable, V any](size int, ttl time.Duration) *Bounded[K, V] {
	c := &Bounded[K, V]{seed: maphash.MakeSeed(), ttl: ttl}
	per := max(1, (size+shards-1)/shards)
	for i := range c.shards {
		c.shards[i] = shard[K, V]{max: per, m: make(map[K]entry[V], per)}
	}
	return c
}

func (c *Bounded[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)%shards]
}

// Get returns the value for k, if present and fresh.
func (c *Bounded[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	if !ok || (!e.expires.IsZero() && time.Now().After(e.expires)) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v for k with the cache's TTL.
func (c *Bounded[K, V]) Put(k K, v V) { c.PutTTL(k, v, c.ttl) }

// PutTTL stores v for k with its own TTL (0: until evicted).
func (c *Bounded[K, V]) PutTTL(k K, v V, ttl time.Duration) {
	e := entry[V]{v: v}
	if ttl > 0 {
		e.expires = time.Now().Add(ttl)
	}
	s := c.shard(k)
	s.mu.Lock()
	if _, exists := s.m[k]; !exists && len(s.m) >= s.max {
		for victim := range s.m { // random: Go randomises map iteration
			delete(s.m, victim)
			break
		}
	}
	s.m[k] = e
	s.mu.Unlock()
}

// Len returns the number of entries, fresh or not.
func (c *Bounded[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
