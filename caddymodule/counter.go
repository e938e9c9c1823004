package caddymodule

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/internal/cache"
	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/store"
)

// flushInterval is how often a counter sends its requests to the store.
const flushInterval = 100 * time.Millisecond

// counter counts cleared clients' requests without a store round trip on
// their path: hits add up locally and are flushed in one Observe every
// flushInterval. The flush also brings back labels and strict-limit
// crossings; entities found so are revoked, and their next request goes
// through full scoring, which blocks them.
type counter struct {
	h       *Handler
	mu      sync.Mutex
	pending map[store.Entity]int64
	bad     *cache.Bounded[store.Entity, struct{}]
	quit    chan struct{}
	done    chan struct{}
}

func newCounter(h *Handler) *counter {
	c := &counter{
		h:       h,
		pending: make(map[store.Entity]int64),
		bad:     cache.New[store.Entity, struct{}](10_000, time.Duration(h.LabelTTL)),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go c.run()
	return c
}

func (c *counter) add(ents []store.Entity) {
	c.mu.Lock()
	for _, e := range ents {
		c.pending[e]++
	}
	c.mu.Unlock()
}

// revoked reports whether a flush found any of ents labelled.
func (c *counter) revoked(ents []store.Entity) bool {
	for _, e := range ents {
		if _, ok := c.bad.Get(e); ok {
			return true
		}
	}
	return false
}

func (c *counter) run() {
	defer close(c.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			c.flush()
			return
		case <-t.C:
			c.flush()
		}
	}
}

// stop flushes what is pending and ends the flush loop.
func (c *counter) stop() {
	close(c.quit)
	<-c.done
}

func (c *counter) flush() {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	batch := c.pending
	c.pending = make(map[store.Entity]int64, len(batch))
	c.mu.Unlock()

	hits := make([]store.Hit, 0, len(batch))
	for e, n := range batch {
		hits = append(hits, store.Hit{Entity: e, N: n})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	now := time.Now()
	tallies, err := c.h.store.Observe(ctx, now, hits)
	c.h.metrics.flushTime.Observe(time.Since(now).Seconds())
	if err != nil {
		// Counts of cleared clients are best effort: losing 100ms of them
		// while the store is down is preferable to unbounded buffering.
		c.h.health.failed(err, c.h.OnStoreError)
		return
	}
	c.h.health.ok()
	for i, t := range tallies {
		e := hits[i].Entity
		if t.Label != nil {
			if e.Kind != store.KindAccount { // an account label challenges, it does not revoke (see score)
				c.bad.Put(e, struct{}{})
			}
			continue
		}
		k := kindIndex(e.Kind)
		var a riskscore.Assessment
		if c.h.freq[k].Assess(&a, &c.h.weights, freqSignals[k], t.Counts) {
			if e.Kind != store.KindAccount {
				c.bad.Put(e, struct{}{})
			}
			c.h.label(ctx, e, "strict rate limit while cleared: "+formatCount(t.Counts[0], c.h.windows[0]))
		}
	}
	if len(hits) > 0 {
		c.h.logger.Debug("flushed counts", zap.Int("entities", len(hits)))
	}
}

func kindIndex(k store.Kind) int {
	for i, sk := range storeKinds {
		if sk == k {
			return i
		}
	}
	return kindIP
}
