package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A coalescer merges the small Observe calls that arrive while earlier
// ones are in flight into one script call. Under load most of a Redis
// call's cost is per call, not per entity — the round trip's system calls
// on both sides, and Redis reading, dispatching and starting a script —
// so requests that would each have sent their own call share one. An
// idle gateway sends each call at once: nothing waits for company.
type coalescer struct {
	run func(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error)
	// wait bounds how long a caller waits for its result, queueing
	// included, when its context sets no deadline: with Redis down, calls
	// would otherwise queue behind the workers' timeouts.
	wait  time.Duration
	queue chan *observeCall
	quit  chan struct{}
	wg    sync.WaitGroup
	// mu orders sends against close: once closed is set no call enters
	// the queue, so close can fail every call left in it.
	mu     sync.RWMutex
	closed bool
	// windows decide which calls may share a script call: those whose
	// time falls in the same bucket of every window.
	windows []time.Duration
}

type observeCall struct {
	now  time.Time
	hits []Hit
	out  []Tally
	err  error
	done chan struct{}
	// abandoned is set by a caller that stopped waiting; a worker that
	// has not sent the call yet drops it.
	abandoned atomic.Bool
}

const (
	// coalesceWorkers is how many merged calls may be in flight at once:
	// a slow or dead Redis holds up at most this many batches, and each
	// waiting call at most one batch before its own.
	coalesceWorkers = 4
	// coalesceMaxHits is the largest call that is merged; larger ones (a
	// counter flush) are batches already.
	coalesceMaxHits = 4
)

var errClosed = errors.New("store closed")

func newCoalescer(windows []time.Duration, wait time.Duration, run func(context.Context, time.Time, []Hit) ([]Tally, error)) *coalescer {
	c := &coalescer{run: run, wait: wait, windows: windows, queue: make(chan *observeCall, 256), quit: make(chan struct{})}
	for range coalesceWorkers {
		c.wg.Add(1)
		go c.work()
	}
	return c
}

// observe sends the call to the next free worker and waits for its result
// or for ctx to end.
func (c *coalescer) observe(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.wait)
		defer cancel()
	}
	call := &observeCall{now: now, hits: hits, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return nil, errClosed
	}
	select {
	case c.queue <- call:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return nil, fmt.Errorf("redis observe: %w", ctx.Err())
	}
	select {
	case <-call.done:
		return call.out, call.err
	case <-ctx.Done():
		call.abandoned.Store(true)
		return nil, fmt.Errorf("redis observe: %w", ctx.Err())
	}
}

func (c *coalescer) work() {
	defer c.wg.Done()
	var batch []*observeCall
	var hits []Hit
	var carry *observeCall // taken from the queue but not mergeable with its batch: the next batch's first
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-c.queue:
			case <-c.quit:
				return
			}
		}
		if first.abandoned.Load() {
			close(first.done)
			continue
		}
		batch, hits = append(batch[:0], first), append(hits[:0], first.hits...)
	merge:
		for len(hits) < maxScriptEntities {
			select {
			case next := <-c.queue:
				if next.abandoned.Load() {
					close(next.done)
					continue
				}
				if len(hits)+len(next.hits) > maxScriptEntities || !c.sameBuckets(first.now, next.now) {
					carry = next
					break merge
				}
				batch, hits = append(batch, next), append(hits, next.hits...)
			default:
				break merge
			}
		}
		// The callers' contexts bound their own waits; the merged call is
		// bounded by the client's dial and read timeouts.
		tallies, err := c.run(context.Background(), first.now, hits)
		at := 0
		for _, call := range batch {
			if err != nil {
				call.err = err
			} else {
				call.out = tallies[at : at+len(call.hits) : at+len(call.hits)]
			}
			at += len(call.hits)
			close(call.done)
		}
		clear(batch) // no reference to finished calls outlives them
	}
}

func (c *coalescer) sameBuckets(a, b time.Time) bool {
	for _, w := range c.windows {
		if bucketIndex(a, w) != bucketIndex(b, w) {
			return false
		}
	}
	return true
}

// close stops the workers after the calls in flight; calls still queued
// are not sent and their callers get errClosed.
func (c *coalescer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	c.wg.Wait()
	for {
		select {
		case call := <-c.queue:
			call.err = errClosed
			close(call.done)
		default:
			return
		}
	}
}
