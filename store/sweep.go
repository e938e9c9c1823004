package store

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A sweeper deletes the stale bucket fields of entities' counter hashes,
// off the request path. Every new bucket of a window is a new field; the
// scoring pipeline only counts and reads, and when it sees a hash holding
// more fields than the current and previous buckets and the audio count
// it hands the entity here. Without this an entity seen every few seconds
// would grow its hash for as long as it stays active.
type sweeper struct {
	r       *Redis
	entity  chan staleEntity
	quit    chan struct{}
	done    chan struct{}
	stop    sync.Once
	mu      sync.Mutex
	pending map[Entity]struct{} // queued or being swept: not queued again
}

type staleEntity struct {
	e Entity
	// now is the time of the observation that found stale fields: buckets
	// before its previous ones are stale.
	now time.Time
}

// sweepQueue bounds the entities waiting to be swept; beyond it an entity
// is left for a later request to notice again.
const sweepQueue = 256

func newSweeper(r *Redis) *sweeper {
	s := &sweeper{r: r, entity: make(chan staleEntity, sweepQueue), quit: make(chan struct{}), done: make(chan struct{}),
		pending: make(map[Entity]struct{})}
	go s.run()
	return s
}

// add queues an entity unless it is already queued or the queue is full.
func (s *sweeper) add(e Entity, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[e]; ok {
		return
	}
	select {
	case s.entity <- staleEntity{e, now}:
		s.pending[e] = struct{}{}
	default:
	}
}

func (s *sweeper) run() {
	defer close(s.done)
	for {
		select {
		case st := <-s.entity:
			ctx, cancel := context.WithTimeout(context.Background(), s.r.opts.DialTimeout+2*s.r.opts.ReadTimeout)
			_ = s.sweep(ctx, st.e, st.now) // best effort: a later request notices again
			cancel()
			s.mu.Lock()
			delete(s.pending, st.e)
			s.mu.Unlock()
		case <-s.quit:
			return
		}
	}
}

// sweep deletes the entity's fields other than the audio count and the
// current and previous bucket of each configured window.
func (s *sweeper) sweep(ctx context.Context, e Entity, now time.Time) error {
	counters, _ := s.r.keys(e)
	names, err := s.r.client.HKeys(ctx, counters).Result()
	if err != nil {
		return err
	}
	var stale []string
	for _, f := range names {
		if !s.r.liveField(f, now) {
			stale = append(stale, f)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return s.r.client.HDel(ctx, counters, stale...).Err()
}

// liveField says whether a counters-hash field is still read: the audio
// count, or the current or previous bucket of a configured window (a
// window no longer configured is stale).
func (r *Redis) liveField(f string, now time.Time) bool {
	if f == "audio" {
		return true
	}
	win, idx, ok := strings.Cut(f, ":")
	if !ok {
		return false
	}
	bucket, err := strconv.ParseInt(idx, 10, 64)
	if err != nil {
		return false
	}
	for i, w := range r.opts.Windows {
		if r.windowArgs[i] == win {
			return bucket >= bucketIndex(now, w)-1
		}
	}
	return false
}

func (s *sweeper) close() {
	s.stop.Do(func() { close(s.quit) })
	<-s.done
}
