package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/cache"
)

// LocalFirstOptions configure a LocalFirst store.
type LocalFirstOptions struct {
	// Options are the windows counted; they must be the shared store's.
	Options
	// Interval is how often this instance's counts are sent to the shared
	// store and the other instances' brought back. Default 100ms.
	Interval time.Duration
	// MaxEntities bounds how many entities are counted locally (and how
	// many of the shared store's tallies are kept). Default 100,000.
	MaxEntities int
	// FlushTimeout bounds one batch to the shared store. Default 1s.
	FlushTimeout time.Duration
}

// LocalFirst is a Store that answers Observe at once, from counts kept in
// this process, and sends the hits to a shared store in one batch every
// interval; each batch's answer brings back what the other instances
// counted and the labels set anywhere, which later answers add in. Requests
// then never wait for the shared store. The price: an instance sees the
// others' requests, and labels set through them, up to one interval late,
// so a client spread over n instances gets about n intervals of requests
// past the strict limit before every instance knows.
//
// Everything other than counting, labels and audio plays (challenges,
// pools, logs) goes straight to the shared store, as it must be shared
// exactly (single-use challenges above all).
type LocalFirst struct {
	Store // the shared store
	opts  LocalFirstOptions
	local *Memory
	// shared is what the shared store last said of an entity, minus what
	// this instance had counted of it then.
	shared *cache.Bounded[Entity, sharedTally]

	mu      sync.Mutex
	pending map[Entity]int64
	// pendingAt is the latest time a pending hit was counted at: the batch
	// is sent as of then, so the shared store's windows and the local ones
	// are compared at one instant.
	pendingAt time.Time
	failure   error // of the last batch; nil when it went through

	quit chan struct{}
	done chan struct{}
}

// sharedTally is the rest of the world's part of an entity's tally.
type sharedTally struct {
	others []float64 // other instances' counts per window, as of the last batch
	label  *Label
	audio  int64
}

// maxBatch bounds the hits of one call to the shared store, so that one
// script call does not hold Redis for long.
const maxBatch = 512

// NewLocalFirst counts locally in front of shared, which it closes when it
// is closed.
func NewLocalFirst(shared Store, opts LocalFirstOptions) (*LocalFirst, error) {
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.MaxEntities <= 0 {
		opts.MaxEntities = 100_000
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = time.Second
	}
	local, err := NewMemory(MemoryOptions{Options: opts.Options, MaxEntities: opts.MaxEntities})
	if err != nil {
		return nil, err
	}
	windows := local.opts.Windows
	f := &LocalFirst{
		Store: shared, opts: opts, local: local,
		// Other instances' counts matter for as long as the longest window.
		shared:  cache.New[Entity, sharedTally](opts.MaxEntities, windows[len(windows)-1]),
		pending: make(map[Entity]int64),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go f.run()
	return f, nil
}

// Observe counts the hits here and returns this instance's counts plus the
// others' as of the last batch. When the last batch to the shared store
// failed it returns that error (the hits are still counted here), so the
// caller's rule for an unreachable store applies.
func (f *LocalFirst) Observe(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error) {
	tallies, err := f.local.Observe(ctx, now, hits)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	for _, h := range hits {
		if h.N > 0 && (len(f.pending) < f.opts.MaxEntities || f.pending[h.Entity] > 0) {
			f.pending[h.Entity] += h.N
			if now.After(f.pendingAt) {
				f.pendingAt = now
			}
		}
	}
	failure := f.failure
	f.mu.Unlock()
	if failure != nil {
		return nil, failure
	}
	for i, h := range hits {
		s, ok := f.shared.Get(h.Entity)
		if !ok {
			continue
		}
		t := &tallies[i]
		for w := range min(len(t.Counts), len(s.others)) {
			t.Counts[w] += s.others[w]
		}
		if s.label != nil && now.Before(s.label.Expires) {
			t.Label = s.label
		}
		t.Audio = s.audio
	}
	return tallies, nil
}

// SetLabel labels the entity in the shared store, and here at once.
func (f *LocalFirst) SetLabel(ctx context.Context, e Entity, l Label) error {
	if err := f.Store.SetLabel(ctx, e, l); err != nil {
		return err
	}
	f.update(e, func(s *sharedTally) { s.label = &l })
	return nil
}

// ClearLabel removes the label in the shared store, and here at once.
func (f *LocalFirst) ClearLabel(ctx context.Context, e Entity) error {
	if err := f.Store.ClearLabel(ctx, e); err != nil {
		return err
	}
	f.update(e, func(s *sharedTally) { s.label = nil })
	return nil
}

// CountAudio counts the play in the shared store, and here at once.
func (f *LocalFirst) CountAudio(ctx context.Context, e Entity) error {
	if err := f.Store.CountAudio(ctx, e); err != nil {
		return err
	}
	f.update(e, func(s *sharedTally) { s.audio++ })
	return nil
}

// update changes what is known of e until the next batch says otherwise.
// The read-modify-write is not atomic with a batch landing at the same
// moment; the batch after that corrects it.
func (f *LocalFirst) update(e Entity, change func(*sharedTally)) {
	s, _ := f.shared.Get(e)
	change(&s)
	f.shared.Put(e, s)
}

func (f *LocalFirst) run() {
	defer close(f.done)
	t := time.NewTicker(f.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-f.quit:
			f.flush()
			return
		case <-t.C:
			f.flush()
		}
	}
}

// Flush sends the hits counted since the last batch to the shared store
// now and brings back its tallies. It runs every interval on its own;
// tests call it to not wait.
func (f *LocalFirst) Flush() error { return f.flush() }

func (f *LocalFirst) flush() error {
	f.mu.Lock()
	batch, at := f.pending, f.pendingAt
	if len(batch) > 0 {
		f.pending = make(map[Entity]int64, len(batch))
	}
	f.mu.Unlock()
	hits := make([]Hit, 0, len(batch))
	for e, n := range batch {
		hits = append(hits, Hit{Entity: e, N: n})
	}
	if len(hits) == 0 {
		// Nothing to send, but a failed store must be seen to recover.
		f.mu.Lock()
		failed := f.failure != nil
		f.mu.Unlock()
		if !failed {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.opts.FlushTimeout)
		defer cancel()
		err := f.Store.Ping(ctx)
		f.setFailure(err)
		return err
	}
	var errs []error
	for len(hits) > 0 {
		n := min(len(hits), maxBatch)
		if err := f.send(at, hits[:n]); err != nil {
			// Losing an interval's counts from the shared view while it is
			// down beats buffering without bound; this instance's own
			// counts keep them.
			errs = append(errs, err)
		}
		hits = hits[n:]
	}
	err := errors.Join(errs...)
	f.setFailure(err)
	return err
}

func (f *LocalFirst) send(now time.Time, hits []Hit) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.FlushTimeout)
	defer cancel()
	remote, err := f.Store.Observe(ctx, now, hits)
	if err != nil {
		return fmt.Errorf("sending counts to the shared store: %w", err)
	}
	for i := range hits {
		hits[i].N = 0
	}
	// What this instance has counted by now; the shared store's count less
	// this is the others' (an underestimate by the hits that arrived while
	// the batch was in flight).
	mine, err := f.local.Observe(ctx, now, hits)
	if err != nil {
		return err
	}
	for i, h := range hits {
		r := remote[i]
		s := sharedTally{others: make([]float64, len(r.Counts)), label: r.Label, audio: r.Audio}
		for w := range r.Counts {
			if w < len(mine[i].Counts) {
				s.others[w] = max(0, r.Counts[w]-mine[i].Counts[w])
			}
		}
		f.shared.Put(h.Entity, s)
	}
	return nil
}

func (f *LocalFirst) setFailure(err error) {
	f.mu.Lock()
	f.failure = err
	f.mu.Unlock()
}

// Close sends what is pending, stops, and closes the shared store.
func (f *LocalFirst) Close() error {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
	return errors.Join(f.local.Close(), f.Store.Close())
}

var _ Store = (*LocalFirst)(nil)
