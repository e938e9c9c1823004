package extraction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MarkKey is the store key under which Watch keeps its last Mark.
const MarkKey = "extraction:last"

// ErrNoTrigger is Watch's error when no condition of its trigger is set.
var ErrNoTrigger = errors.New("extraction: the watch needs a trigger (every, new pairs or success above)")

// WatchOptions say when Watch runs and whom it tells.
type WatchOptions struct {
	// Trigger says when a run is due; at least one condition must be set.
	Trigger Trigger
	// Poll is how often the logs are read (default a minute).
	Poll time.Duration
	// OnCollect, if set, is told what each read of the logs found, and
	// OnRun how each run ended (its error, if any, is also reported to
	// RunConfig.Log and does not stop the watch).
	OnCollect func(Stats)
	OnRun     func(*Outcome, error)
}

// Watch reads the logs every Poll and, whenever the trigger is due, runs
// the extraction cfg describes on the answers read, until ctx ends (it
// then returns nil). A failed run is reported and retried at the next due
// time. Where the last run stopped is kept in the store under MarkKey, so
// a restarted watch does not count the same answers again.
func Watch(ctx context.Context, cfg RunConfig, opts WatchOptions) error {
	if opts.Trigger == (Trigger{MinAnswers: opts.Trigger.MinAnswers}) {
		return ErrNoTrigger
	}
	if cfg.Store == nil {
		return errors.New("extraction: the watch needs the store")
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Minute
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	var last Mark
	if b, err := cfg.Store.Peek(ctx, MarkKey); err == nil {
		_ = json.Unmarshal(b, &last)
	}
	for {
		o := &Outcome{Status: StatusFailed}
		r, err := newRunner(cfg, o)
		if err != nil {
			return err
		}
		pairs, err := r.collect(ctx)
		if err != nil {
			fmt.Fprintln(log, err) // "extraction: reading the logs: …"
		} else {
			if opts.OnCollect != nil {
				opts.OnCollect(o.Stats)
			}
			if due, why := opts.Trigger.Due(time.Now(), last, pairs); due {
				fmt.Fprintf(log, "extraction due: %s\n", why)
				err := r.run(ctx, pairs)
				if opts.OnRun != nil {
					opts.OnRun(o, err)
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					fmt.Fprintf(log, "extraction failed: %v\n", err)
				}
				last = MarkAfter(time.Now(), pairs)
				if b, err := json.Marshal(last); err == nil {
					if err := cfg.Store.PutOnce(ctx, MarkKey, b, 30*24*time.Hour); err != nil {
						fmt.Fprintf(log, "recording the extraction time: %v\n", err)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.Poll):
		}
	}
}
