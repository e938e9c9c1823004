package captchapool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/store"
)

// Filler keeps a pool topped up. Each worker checks the pool's depth,
// generates captchas when it is below Size (one, or a batch of what is
// missing), pushes them, and then rests
// long enough that its share of a core stays at CPUBudget: a gateway that
// also serves traffic must not spend its cores on captchas nobody asked for.
type Filler struct {
	Store store.Store
	// Key is the pool's store key (Generator.Key).
	Key string
	// Keys sign each entry (Keys(secret…), the gateway's secret): the
	// gateways drop entries that do not verify.
	Keys *secretkey.Keys
	// Size is the depth the pool is kept at.
	Size int
	// TTL of the pool key, renewed on each push; entries older than this
	// are dropped with the pool when no instance fills it any more.
	TTL time.Duration
	// Workers generate concurrently; each uses about one core while busy.
	Workers int
	// CPUBudget is the share of its time a worker spends generating, in
	// (0, 1]. 1 generates back to back.
	CPUBudget float64
	// Generate makes one entry; it should give up when ctx is done (the
	// filler is being stopped).
	Generate func(ctx context.Context, seed uint64) (*Entry, error)
	// GenerateBatch, when set, makes the entries of several seeds at once
	// (Generator.GenerateBatch), up to Batch of them or what the pool
	// lacks, whichever is fewer; Generate is then not used.
	GenerateBatch func(ctx context.Context, seeds []uint64) ([]*Entry, error)
	Batch         int
	// Observe, when set, is told how each generation went and the pool's
	// depth after it (for metrics and logs). err is non-nil for a failed
	// generation, a recovered panic or a store error.
	Observe func(took time.Duration, depth int, err error)
	// Idle is how long a worker waits before looking again when the pool is
	// full, and the first wait after a store error (doubling to a minute).
	// Default 1s.
	Idle time.Duration
}

// Run fills the pool until ctx is done, then waits for its workers.
func (f *Filler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range max(f.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.work(ctx)
		}()
	}
	wg.Wait()
}

func (f *Filler) work(ctx context.Context) {
	idle := f.Idle
	if idle <= 0 {
		idle = time.Second
	}
	backoff := idle
	for {
		wait := idle
		depth, err := f.Store.QueueLen(ctx, f.Key)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			f.observe(0, 0, fmt.Errorf("reading pool depth: %w", err))
			wait, backoff = backoff, min(2*backoff, time.Minute)
		case depth < f.Size:
			backoff = idle
			n := 1
			if f.GenerateBatch != nil {
				n = min(max(f.Batch, 1), f.Size-depth)
			}
			took, err := f.fill(ctx, n)
			if ctx.Err() != nil {
				return // stopped mid-captcha: not a failure
			}
			if err != nil {
				f.observe(took, depth, err)
				wait = idle // a failure must not spin
				break
			}
			// Each captcha is observed with its share of the batch's time.
			for i := range n {
				f.observe(took/time.Duration(n), depth+i+1, nil)
			}
			wait = 0
			if b := f.CPUBudget; b > 0 && b < 1 {
				wait = time.Duration(float64(took) * (1 - b) / b)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// fill generates and pushes n entries. A panic in the generator is
// recovered and reported as an error: the worker lives on.
func (f *Filler) fill(ctx context.Context, n int) (took time.Duration, err error) {
	start := time.Now()
	defer func() {
		took = time.Since(start)
		if p := recover(); p != nil {
			err = fmt.Errorf("captcha generation panicked: %v", p)
		}
	}()
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = NewSeed()
	}
	var entries []*Entry
	if f.GenerateBatch != nil {
		entries, err = f.GenerateBatch(ctx, seeds)
	} else {
		var e *Entry
		e, err = f.Generate(ctx, seeds[0])
		entries = []*Entry{e}
	}
	if err != nil {
		return 0, fmt.Errorf("generating captcha: %w", err)
	}
	for _, e := range entries {
		b, err := e.Marshal(f.Keys)
		if err != nil {
			return 0, err
		}
		if _, err := f.Store.PushQueue(ctx, f.Key, b, f.Size, f.TTL); err != nil {
			return 0, fmt.Errorf("pushing to pool: %w", err)
		}
	}
	return 0, nil
}

func (f *Filler) observe(took time.Duration, depth int, err error) {
	if f.Observe != nil {
		f.Observe(took, depth, err)
	}
}
