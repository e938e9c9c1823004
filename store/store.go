// Package store keeps advcaptcha's shared state: sliding-window request
// counters and attacker labels per client entity (IP prefix, device,
// account). It has two implementations behind one interface — Redis for
// any number of gateway instances, memory for a single one — and both pass
// the same contract tests (package storetest).
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Kind says what an Entity identifies.
type Kind string

const (
	KindIP      Kind = "ip"   // an IPv4 address or an IPv6 prefix
	KindDevice  Kind = "dev"  // a device id
	KindAccount Kind = "acct" // an account name from the request
	// KindFingerprint is a device known by its stable browser fingerprint
	// rather than its cookie.
	KindFingerprint Kind = "fp"
	// KindNet is a block of addresses counted as a whole (an IPv6 /48).
	KindNet Kind = "net"
)

// maxIDLen bounds how much of a client-supplied id reaches a key.
const maxIDLen = 64

// Entity is one thing we count requests of and may label.
type Entity struct {
	Kind Kind
	ID   string
}

// Key is the entity's name in the store. Ids that are long or hold bytes
// that could break key syntax (hash-tag braces, control characters) are
// replaced by a hash, so a client cannot make keys large or ambiguous.
func (e Entity) Key() string {
	id := e.ID
	if !safeID(id) {
		sum := sha256.Sum256([]byte(id))
		id = "h" + hex.EncodeToString(sum[:12])
	}
	return string(e.Kind) + ":" + id
}

func (e Entity) String() string { return e.Key() }

func safeID(id string) bool {
	if len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// Hit asks Observe to add N requests to an entity's windows. N may be 0 to
// read the counts without changing them.
type Hit struct {
	Entity Entity
	N      int64
}

// Tally is what the store knows of one entity after an Observe.
type Tally struct {
	// Counts[i] is the sliding-window request count over Windows[i]
	// (an estimate weighted from the current and previous fixed buckets).
	Counts []float64
	// Label is set when the entity is labelled; nil otherwise.
	Label *Label
	// Audio is how many audio captchas the entity played while it has
	// been active (its counters' retention).
	Audio int64
}

// Label marks an entity as a confirmed attacker (or, later, as cleared by
// an operator) until it expires.
type Label struct {
	Reason  string    `json:"reason"`
	Source  string    `json:"source,omitempty"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// Store is the state advcaptcha shares between requests and instances.
// Every key it writes has a TTL.
type Store interface {
	// Observe adds the hits at time now and returns one Tally per hit, in
	// the same order, in a single round trip.
	Observe(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error)
	// SetLabel labels an entity until l.Expires.
	SetLabel(ctx context.Context, e Entity, l Label) error
	// ClearLabel removes an entity's label.
	ClearLabel(ctx context.Context, e Entity) error
	// CountAudio counts an audio captcha played by the entity.
	CountAudio(ctx context.Context, e Entity) error
	// PutOnce stores value under key until ttl passes.
	PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Peek returns the value under key without consuming it, or ErrNotFound.
	Peek(ctx context.Context, key string) ([]byte, error)
	// Take returns the value under key and deletes it, atomically: of
	// concurrent Takes of one key exactly one gets the value, the others
	// ErrNotFound. This is what makes challenges single-use.
	Take(ctx context.Context, key string) ([]byte, error)
	// Incr adds one to the counter under key, creating it with the given
	// TTL (which later increments do not extend), and returns the new value.
	// The in-memory store returns IncrSaturated for a counter it could not
	// keep, so a caller comparing against a limit treats it as reached.
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// PushList puts value at the front of the list under key, keeps its
	// newest keep values, sets its TTL, and returns the list, newest first
	// — one round trip. Per-device histories (slide durations) use it.
	PushList(ctx context.Context, key string, value []byte, keep int, ttl time.Duration) ([][]byte, error)
	// PushQueue adds value to the back of the queue under key, drops its
	// oldest values beyond max, sets its TTL, and returns its length — one
	// round trip. The adversarial-captcha pool is such a queue.
	PushQueue(ctx context.Context, key string, value []byte, max int, ttl time.Duration) (int, error)
	// PopQueue removes and returns the oldest value of the queue under key,
	// or ErrNotFound when it is empty. Of concurrent pops each value goes
	// to exactly one caller.
	PopQueue(ctx context.Context, key string) ([]byte, error)
	// QueueLen returns the number of values in the queue under key.
	QueueLen(ctx context.Context, key string) (int, error)
	// Append adds a record to the end of a log, which keeps at most its
	// newest MaxLogLen records and expires LogTTL after its last append.
	Append(ctx context.Context, log string, record []byte) error
	// Range returns up to max records of a log after the record id
	// (after "" for the oldest), oldest first.
	Range(ctx context.Context, log, after string, max int) ([]Record, error)
	// Latest returns up to max of a log's newest records, newest first:
	// what an operator looks at.
	Latest(ctx context.Context, log string, max int) ([]Record, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// Options are common to both implementations.
type Options struct {
	// Windows are the sliding-window lengths counted for every entity,
	// shortest first. Default 1s, 1m, 1h.
	Windows []time.Duration
}

// DefaultWindows are used when Options.Windows is empty.
var DefaultWindows = []time.Duration{time.Second, time.Minute, time.Hour}

func (o *Options) normalize() error {
	if len(o.Windows) == 0 {
		o.Windows = DefaultWindows
	}
	for i, w := range o.Windows {
		if w < time.Millisecond || w%time.Millisecond != 0 {
			return fmt.Errorf("window %v: must be a whole number of milliseconds, at least 1ms", w)
		}
		if i > 0 && w <= o.Windows[i-1] {
			return fmt.Errorf("windows must be increasing: %v after %v", w, o.Windows[i-1])
		}
	}
	return nil
}

// retention is how long an idle entity's counters are kept: long enough to
// still hold the previous bucket of the longest window.
func (o *Options) retention() time.Duration { return 2 * o.Windows[len(o.Windows)-1] }

// Record is one log entry. IDs increase along a log.
type Record struct {
	ID    string
	Value []byte
}

// Bounds of every log: the newest MaxLogLen records are kept, and a log
// nobody appends to expires after LogTTL.
const (
	MaxLogLen = 1_000_000
	LogTTL    = 30 * 24 * time.Hour
)

// ErrNotFound is returned for a key that does not exist or has expired.
var ErrNotFound = errors.New("not found")

// ErrBadLabel is returned for a label that has already expired.
var ErrBadLabel = errors.New("label expiry must be in the future")

// slidingCount weighs the previous fixed bucket by how much of it still
// lies inside the window ending at now.
func slidingCount(now time.Time, w time.Duration, cur, prev int64) float64 {
	ms := now.UnixMilli()
	wms := w.Milliseconds()
	elapsed := float64(ms%wms) / float64(wms)
	return float64(cur) + float64(prev)*(1-elapsed)
}

func bucketIndex(now time.Time, w time.Duration) int64 {
	return now.UnixMilli() / w.Milliseconds()
}
