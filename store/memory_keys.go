package store

// The in-memory store's keyed state, per namespace: PutOnce values, Incr
// counters (with the tombstones of evicted ones), lists and queues.

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"time"
)

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
