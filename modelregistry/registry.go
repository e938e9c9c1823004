// Package modelregistry keeps the published versions of the solver model
// (the substitute the adversarial captchas are computed against) in the
// shared store: every gateway instance follows the current version, the
// learning loop publishes new ones, and an operator can roll back.
//
// A version is published only by compare-and-set against the version its
// publisher started from, under a short lock, so two extraction jobs that
// ran at once cannot both publish: the second finds the current version
// changed and gets ErrConflict.
//
// Every version record carries the SHA-256 of each model file it names and
// an HMAC over the whole record, keyed from the gateway's secret (Keys):
// someone who can write to the store but has not the secret cannot publish
// a substitute of their own (say, a useless one, so that captchas stop
// fooling solvers), nor swap a published version's weights. Publishing
// and rolling back need the secret; gateways refuse what does not verify.
package modelregistry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// KV is the part of the store the registry uses; store.Store is one.
type KV interface {
	PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Peek(ctx context.Context, key string) ([]byte, error)
	Take(ctx context.Context, key string) ([]byte, error)
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
}

// Bounds of what the registry keeps.
const (
	// KeepVersions is how many published versions stay available for
	// rollback.
	KeepVersions = 20
	// TTL of every registry key, renewed at each publication: a registry
	// nobody publishes to for this long is forgotten, and the gateways fall
	// back to their configured model.
	TTL     = 400 * 24 * time.Hour
	lockTTL = 30 * time.Second
)

// Keys, under the store's prefix.
const (
	currentKey = "model:current"
	historyKey = "model:history"
	lockKey    = "model:lock"
	blobPrefix = "model:v:"
)

// Errors.
var (
	// ErrNone: nothing has been published (or it expired).
	ErrNone = errors.New("no model version published")
	// ErrConflict: the current version is not the one the publisher
	// expected; someone else published (or rolled back) meanwhile.
	ErrConflict = errors.New("the current model version changed meanwhile")
	// ErrBusy: another publication or rollback holds the lock.
	ErrBusy = errors.New("another publication is in progress")
	// ErrUnauthenticated: a version record's MAC is missing, from a
	// secret not configured, or wrong, or a model file is not the one the
	// record names (also secretkey.ErrUnauthenticated when the MAC is at
	// fault).
	ErrUnauthenticated = errors.New("model registry: published version not authenticated with the gateway's secret")
	// ErrNoKeys: the registry was opened without the gateway's secret,
	// which loading, publishing and rolling back need.
	ErrNoKeys = errors.New("model registry: the gateway's secret is needed to publish, roll back or load published versions")
)

// Keys derives the keys that sign and verify published versions from the
// gateway's secrets (the first signs, all verify).
func Keys(secrets ...[]byte) (*secretkey.Keys, error) {
	return secretkey.Derive("models v1", secrets...)
}

// Version describes one published model.
type Version struct {
	// Version is the model's own version (solver.Model.Version).
	Version   string    `json:"version"`
	Published time.Time `json:"published"`
	// Previous is the version this one replaced; "" for the first.
	Previous string `json:"previous,omitempty"`
	// Note says why it was published, e.g. the extraction's measurements.
	Note string `json:"note,omitempty"`
	// Fidelity is the share of held-out attacker answers the model
	// reproduces exactly, CharFidelity the share of their characters, and
	// CleanAccuracy the accuracy on clean captchas, when measured.
	Fidelity      float64 `json:"fidelity,omitempty"`
	CharFidelity  float64 `json:"char_fidelity,omitempty"`
	CleanAccuracy float64 `json:"clean_accuracy,omitempty"`
	// Rollback is set when this entry made an older version current again.
	Rollback bool `json:"rollback,omitempty"`
	// With lists further versions the adversarial captchas are computed
	// against together with this one, as an ensemble. An extracted model
	// that follows the attackers but reads clean captchas less well is
	// published with the clean-accurate model it came from, so captchas
	// keep fooling ordinary solvers while they follow the attackers'.
	With []string `json:"with,omitempty"`
	// Sums are the SHA-256 (hex) of the model file of each version in
	// Attacked, checked when it is loaded.
	Sums map[string]string `json:"sums,omitempty"`
	// KeyID names the key of MAC, an HMAC-SHA256 over everything above
	// with a key derived from the gateway's secret.
	KeyID string `json:"kid,omitempty"`
	MAC   string `json:"mac,omitempty"`
}

// macParts are what a version's MAC covers.
func (v *Version) macParts() [][]byte {
	num := func(f float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)) }
	rollback := []byte{0}
	if v.Rollback {
		rollback[0] = 1
	}
	parts := [][]byte{[]byte(v.Version), binary.BigEndian.AppendUint64(nil, uint64(v.Published.UnixNano())),
		[]byte(v.Previous), []byte(v.Note), num(v.Fidelity), num(v.CharFidelity), num(v.CleanAccuracy), rollback,
		binary.BigEndian.AppendUint64(nil, uint64(len(v.With)))}
	for _, w := range v.With {
		parts = append(parts, []byte(w))
	}
	names := make([]string, 0, len(v.Sums))
	for n := range v.Sums {
		names = append(names, n)
	}
	sort.Strings(names)
	parts = append(parts, binary.BigEndian.AppendUint64(nil, uint64(len(names))))
	for _, n := range names {
		parts = append(parts, []byte(n), []byte(v.Sums[n]))
	}
	return parts
}

// Attacked names every version the captchas of v are computed against:
// its own first, then those of With. Served captchas join them with "+".
func (v *Version) Attacked() []string { return append([]string{v.Version}, v.With...) }

// Registry reads and writes model versions in a store.
type Registry struct {
	kv   KV
	keys *secretkey.Keys
}

// New returns the registry kept in kv, signing and verifying with keys
// (Keys(secret…), the gateway's secret). Without keys (nil) the registry
// can only be listed: Current and History then return records unverified,
// for display, and Models, Publish and Rollback fail with ErrNoKeys.
func New(kv KV, keys *secretkey.Keys) *Registry { return &Registry{kv: kv, keys: keys} }

// Current returns the current version, or ErrNone. With keys, a record
// that does not verify is returned together with an ErrUnauthenticated
// error, so that the caller can name (and refuse) it.
func (r *Registry) Current(ctx context.Context) (*Version, error) {
	v, err := r.current(ctx)
	if err != nil || r.keys == nil {
		return v, err
	}
	return v, r.verify(v)
}

func (r *Registry) current(ctx context.Context) (*Version, error) {
	b, err := r.kv.Peek(ctx, currentKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNone
	}
	if err != nil {
		return nil, fmt.Errorf("model registry: read current version: %w", err)
	}
	var v Version
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("model registry: current version record: %w", err)
	}
	return &v, nil
}

// verify checks v's MAC under the registry's keys.
func (r *Registry) verify(v *Version) error {
	if r.keys == nil {
		return ErrNoKeys
	}
	if err := r.keys.Verify(v.KeyID, v.MAC, v.macParts()...); err != nil {
		return fmt.Errorf("%w: version %s: %w", ErrUnauthenticated, v.Version, err)
	}
	return nil
}

func (r *Registry) sign(v *Version) {
	v.KeyID, v.MAC = r.keys.Sign(v.macParts()...)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// model loads a published version's file, checking that it is the one a
// verified record names (want, its SHA-256), its own checksum, and that
// it is the version asked for.
func (r *Registry) model(ctx context.Context, version, want string) (*solver.Model, error) {
	b, err := r.kv.Peek(ctx, blobPrefix+version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("model registry: version %s is not stored (expired or never published)", version)
	}
	if err != nil {
		return nil, fmt.Errorf("model registry: read version %s: %w", version, err)
	}
	if want == "" || sum(b) != want {
		return nil, fmt.Errorf("%w: the stored file of version %s is not the one published", ErrUnauthenticated, version)
	}
	m, err := solver.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("model registry: version %s: %w", version, err)
	}
	if m.Version() != version {
		return nil, fmt.Errorf("model registry: stored as version %s, the file is version %s", version, m.Version())
	}
	return m, nil
}

// Models loads a version's model and those it is attacked together with
// (Version.With), in that order, after verifying the version's MAC and each
// file's SHA-256 against the record (else ErrUnauthenticated).
func (r *Registry) Models(ctx context.Context, v *Version) ([]*solver.Model, error) {
	if err := r.verify(v); err != nil {
		return nil, err
	}
	var out []*solver.Model
	for _, version := range v.Attacked() {
		m, err := r.model(ctx, version, v.Sums[version])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// History returns the published versions, newest first (at most
// KeepVersions; a rollback is an entry too).
func (r *Registry) History(ctx context.Context) ([]Version, error) {
	b, err := r.kv.Peek(ctx, historyKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model registry: read history: %w", err)
	}
	var out []Version
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("model registry: history record: %w", err)
	}
	return out, nil
}

// Publish makes m the current version if the current version is still
// expect ("" when nothing is published yet), to be attacked together with
// the models in with (stored too, so every instance can load them). info
// fills the note and the measurements; its Version, Published, Previous
// and With are set here.
func (r *Registry) Publish(ctx context.Context, m *solver.Model, expect string, info Version, with ...*solver.Model) (*Version, error) {
	if r.keys == nil {
		return nil, ErrNoKeys
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := r.expectCurrent(ctx, expect); err != nil {
		return nil, err
	}
	v := info
	v.Version, v.Published, v.Previous, v.Rollback, v.With = m.Version(), time.Now().UTC(), expect, false, nil
	v.Sums = map[string]string{}
	for _, w := range with {
		if w.Version() == v.Version {
			return nil, fmt.Errorf("model registry: version %s cannot be attacked together with itself", v.Version)
		}
		b := w.Marshal()
		if err := r.kv.PutOnce(ctx, blobPrefix+w.Version(), b, TTL); err != nil {
			return nil, fmt.Errorf("model registry: store version %s: %w", w.Version(), err)
		}
		v.With = append(v.With, w.Version())
		v.Sums[w.Version()] = sum(b)
	}
	b := m.Marshal()
	if err := r.kv.PutOnce(ctx, blobPrefix+v.Version, b, TTL); err != nil {
		return nil, fmt.Errorf("model registry: store version %s: %w", v.Version, err)
	}
	v.Sums[v.Version] = sum(b)
	r.sign(&v)
	return &v, r.makeCurrent(ctx, v)
}

// Rollback makes the version before the current one current again. It
// refuses when the current version is not expect, so an operator rolls
// back what they looked at.
//
// The current version need not verify (rolling back is how an operator
// leaves a forged one); the version returned to must.
func (r *Registry) Rollback(ctx context.Context, expect string) (*Version, error) {
	if r.keys == nil {
		return nil, ErrNoKeys
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	if cur.Version != expect {
		return nil, fmt.Errorf("%w: it is %s, not %s", ErrConflict, cur.Version, expect)
	}
	if cur.Previous == "" {
		return nil, fmt.Errorf("model registry: version %s is the first published; nothing to roll back to", cur.Version)
	}
	hist, err := r.History(ctx)
	if err != nil {
		return nil, err
	}
	var prev *Version
	for i := range hist {
		if hist[i].Version == cur.Previous {
			prev = &hist[i]
			break
		}
	}
	if prev == nil {
		return nil, fmt.Errorf("model registry: version %s is no longer in the history", cur.Previous)
	}
	if _, err := r.Models(ctx, prev); err != nil {
		return nil, err
	}
	v := *prev
	v.Published, v.Rollback = time.Now().UTC(), true
	v.Note = "rollback from " + cur.Version
	r.sign(&v)
	return &v, r.makeCurrent(ctx, v)
}

func (r *Registry) makeCurrent(ctx context.Context, v Version) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hist, err := r.History(ctx)
	if err != nil {
		return err
	}
	hist = append([]Version{v}, hist...)
	var dropped []Version
	if len(hist) > KeepVersions {
		hist, dropped = hist[:KeepVersions], hist[KeepVersions:]
	}
	hb, err := json.Marshal(hist)
	if err != nil {
		return err
	}
	if err := r.kv.PutOnce(ctx, historyKey, hb, TTL); err != nil {
		return fmt.Errorf("model registry: record version %s: %w", v.Version, err)
	}
	if err := r.kv.PutOnce(ctx, currentKey, b, TTL); err != nil {
		return fmt.Errorf("model registry: make %s current: %w", v.Version, err)
	}
	// Versions that fell out of the history can no longer be rolled back
	// to: free their weights (megabytes each) unless still listed.
	for _, d := range dropped {
		for _, version := range d.Attacked() {
			if !listed(hist, version) {
				_, _ = r.kv.Take(ctx, blobPrefix+version)
			}
		}
	}
	return nil
}

// listed says whether a version is in the history, as an entry or as one
// an entry is attacked together with.
func listed(hist []Version, version string) bool {
	for _, h := range hist {
		if h.Version == version || slices.Contains(h.With, version) {
			return true
		}
	}
	return false
}

// expectCurrent compares the current version unverified: a forged current
// version can be replaced by a publication that names it.
func (r *Registry) expectCurrent(ctx context.Context, expect string) error {
	cur, err := r.current(ctx)
	switch {
	case errors.Is(err, ErrNone):
		if expect != "" {
			return fmt.Errorf("%w: nothing is published, expected %s", ErrConflict, expect)
		}
		return nil
	case err != nil:
		return err
	case cur.Version != expect:
		return fmt.Errorf("%w: it is %s, expected %q", ErrConflict, cur.Version, expect)
	}
	return nil
}

// lock takes the registry's lock; it expires by itself if its holder dies.
func (r *Registry) lock(ctx context.Context) (func(), error) {
	n, err := r.kv.Incr(ctx, lockKey, lockTTL)
	if err != nil {
		return nil, fmt.Errorf("model registry: lock: %w", err)
	}
	if n != 1 {
		return nil, ErrBusy
	}
	return func() { _, _ = r.kv.Take(context.WithoutCancel(ctx), lockKey) }, nil
}
