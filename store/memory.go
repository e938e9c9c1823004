package store

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

// MemoryOptions configure the in-memory store.
type MemoryOptions struct {
	Options
	// MaxEntities bounds how many entities are tracked; when full, the
	// least recently seen of a small random sample is evicted (as Redis's
	// approximated LRU does). Default 100,000.
	MaxEntities int
}

const memoryShards = 64

// Memory is a Store for a single gateway instance. Its memory is bounded by
// MaxEntities and idle entities expire like Redis keys would.
type Memory struct {
	opts   MemoryOptions
	seed   maphash.Seed
	shards [memoryShards]memShard
	stop   chan struct{}
	done   sync.WaitGroup

	logMu sync.Mutex
	logs  map[string]*memLog
}

type memShard struct {
	mu  sync.Mutex
	max int
	m   map[string]*memEntity
	// kv holds PutOnce values and Incr counters, bounded like m.
	kv map[string]memValue
}

type memValue struct {
	value   []byte
	n       int64
	list    [][]byte
	expires time.Time
}

type memEntity struct {
	lastSeen time.Time
	windows  []memWindow
	label    *Label
	audio    int64
}

type memWindow struct {
	idx       int64
	cur, prev int64
}

// NewMemory returns an in-memory store. Close stops its janitor.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if opts.MaxEntities <= 0 {
		opts.MaxEntities = 100_000
	}
	m := &Memory{opts: opts, seed: maphash.MakeSeed(), stop: make(chan struct{}), logs: map[string]*memLog{}}
	perShard := (opts.MaxEntities + memoryShards - 1) / memoryShards
	for i := range m.shards {
		m.shards[i] = memShard{max: perShard, m: make(map[string]*memEntity), kv: make(map[string]memValue)}
	}
	m.done.Add(1)
	go m.janitor()
	return m, nil
}

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
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
			e = &memEntity{windows: make([]memWindow, len(m.opts.Windows))}
			sh.insert(key, e, now, m)
		}
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
			if e.label != nil && now.Before(e.label.Expires) {
				l := *e.label
				out[i].Label = &l
			}
			out[i].Audio = e.audio
		}
		sh.mu.Unlock()
	}
	return out, nil
}

// expired reports whether an entity would be gone in Redis by now: its
// counters idle past retention and no live label.
func (m *Memory) expired(e *memEntity, now time.Time) bool {
	if e.label != nil && now.Before(e.label.Expires) {
		return false
	}
	return now.Sub(e.lastSeen) > m.opts.retention()
}

// insert adds e, evicting first when the shard is full. Called with sh.mu held.
func (sh *memShard) insert(key string, e *memEntity, now time.Time, m *Memory) {
	if len(sh.m) >= sh.max {
		const sample = 5
		var victim string
		var oldest time.Time
		n := 0
		for k, c := range sh.m { // map iteration order is random: a free sample
			if m.expired(c, now) {
				victim = k
				break
			}
			if n == 0 || c.lastSeen.Before(oldest) {
				victim, oldest = k, c.lastSeen
			}
			if n++; n == sample {
				break
			}
		}
		delete(sh.m, victim)
	}
	e.lastSeen = now
	sh.m[key] = e
}

// SetLabel implements Store.
func (m *Memory) SetLabel(_ context.Context, ent Entity, l Label) error {
	now := time.Now()
	if !l.Expires.After(now) {
		return ErrBadLabel
	}
	key := ent.Key()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil {
		e = &memEntity{windows: make([]memWindow, len(m.opts.Windows))}
		sh.insert(key, e, now, m)
	}
	e.label = &l
	return nil
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
		e = &memEntity{windows: make([]memWindow, len(m.opts.Windows))}
		sh.insert(key, e, now, m)
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
	if e := sh.m[key]; e != nil {
		e.label = nil
	}
	return nil
}

// putValue stores v, evicting an expired or random value when the shard
// is full. Called with sh.mu held.
func (sh *memShard) putValue(key string, v memValue, now time.Time) {
	if _, exists := sh.kv[key]; !exists && len(sh.kv) >= sh.max {
		var victim string
		for k, old := range sh.kv { // random order: a free sample
			victim = k
			if now.After(old.expires) {
				break
			}
		}
		delete(sh.kv, victim)
	}
	sh.kv[key] = v
}

// live returns the value under key, or the zero value when there is none or
// it has expired. Called with sh.mu held.
func (sh *memShard) live(key string, now time.Time) memValue {
	if v, ok := sh.kv[key]; ok && !now.After(v.expires) {
		return v
	}
	return memValue{}
}

// PutOnce implements Store.
func (m *Memory) PutOnce(_ context.Context, key string, value []byte, ttl time.Duration) error {
	now := time.Now()
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.putValue(key, memValue{value: append([]byte(nil), value...), expires: now.Add(ttl)}, now)
	return nil
}

func (m *Memory) get(key string, take bool) ([]byte, error) {
	now := time.Now()
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.kv[key]
	if !ok || now.After(v.expires) || (v.value == nil && v.n == 0) {
		return nil, ErrNotFound
	}
	if take {
		delete(sh.kv, key)
	}
	if v.value == nil { // a counter reads as Redis shows it
		return strconv.AppendInt(nil, v.n, 10), nil
	}
	return append([]byte(nil), v.value...), nil
}

// Peek implements Store.
func (m *Memory) Peek(_ context.Context, key string) ([]byte, error) { return m.get(key, false) }

// Take implements Store.
func (m *Memory) Take(_ context.Context, key string) ([]byte, error) { return m.get(key, true) }

// Incr implements Store.
func (m *Memory) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	now := time.Now()
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.kv[key]
	if !ok || now.After(v.expires) {
		v = memValue{expires: now.Add(ttl)}
	}
	v.n++
	sh.putValue(key, v, now)
	return v.n, nil
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
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v := sh.live(key, now)
	list := append([][]byte{append([]byte(nil), value...)}, v.list...)
	if len(list) > keep {
		list = list[:keep]
	}
	v.list, v.expires = list, now.Add(ttl)
	sh.putValue(key, v, now)
	out := make([][]byte, len(list))
	for i, b := range list {
		out[i] = append([]byte(nil), b...)
	}
	return out, nil
}

// PushQueue implements Store. The queue is kept oldest first.
func (m *Memory) PushQueue(_ context.Context, key string, value []byte, max int, ttl time.Duration) (int, error) {
	now := time.Now()
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v := sh.live(key, now)
	v.list = append(v.list, append([]byte(nil), value...))
	if len(v.list) > max {
		v.list = append(v.list[:0:0], v.list[len(v.list)-max:]...)
	}
	v.expires = now.Add(ttl)
	sh.putValue(key, v, now)
	return len(v.list), nil
}

// PopQueue implements Store.
func (m *Memory) PopQueue(_ context.Context, key string) ([]byte, error) {
	now := time.Now()
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v := sh.live(key, now)
	if len(v.list) == 0 {
		return nil, ErrNotFound
	}
	b := v.list[0]
	v.list[0] = nil
	v.list = v.list[1:]
	sh.kv[key] = v
	return b, nil
}

// QueueLen implements Store.
func (m *Memory) QueueLen(_ context.Context, key string) (int, error) {
	now := time.Now()
	sh := m.shard("v:" + key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.live(key, now).list), nil
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

// Len returns the number of tracked entities.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// janitor drops expired entities so idle memory is returned even when no
// new entity arrives to trigger eviction.
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
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if m.expired(e, now) {
				delete(sh.m, k)
			}
		}
		for k, v := range sh.kv {
			if now.After(v.expires) {
				delete(sh.kv, k)
			}
		}
		sh.mu.Unlock()
	}
}

var _ Store = (*Memory)(nil)
