// Package captchapool keeps adversarial captchas computed ahead of time in
// the store, so that serving one costs a single pop instead of a second of
// gradient steps, and fills the pool with generation workers that stay within
// a CPU budget. Every instance sharing a Redis store shares its pool.
package captchapool

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// Entry is one adversarial captcha as the pool holds it.
type Entry struct {
	// Text is the true answer.
	Text string `json:"text"`
	// Seed rendered the clean captcha (captcha.Style.Generate) and drove
	// the attack's random choices.
	Seed uint64 `json:"seed"`
	// Method describes the perturbation, e.g. "mifgsm ε=8 eot=median smooth=1".
	Method string `json:"method"`
	// Model is the version of the substitute model(s) attacked, joined by "+".
	Model string `json:"model"`
	// SSIM to the clean captcha.
	SSIM float64 `json:"ssim"`
	// Reading is what the (first) substitute reads in the image, and Fooled
	// says it misreads it.
	Reading string `json:"reading,omitempty"`
	Fooled  bool   `json:"fooled"`
	// PNG is exactly the image served.
	PNG []byte `json:"png"`
	// SHA256 of PNG, checked when the entry is taken from the pool.
	SHA256 string `json:"sha256"`
	// KeyID names the key of MAC, an HMAC-SHA256 over everything above
	// with a key derived from the gateway's secret (Keys): an entry that
	// someone who can write to the store pushed, with an answer they know,
	// is dropped rather than served.
	KeyID string `json:"kid,omitempty"`
	MAC   string `json:"mac,omitempty"`
}

// Errors of Unmarshal and Pop.
var (
	// ErrCorrupt is returned for a pool entry that does not decode or
	// whose image does not match its checksum.
	ErrCorrupt = errors.New("captchapool: corrupt entry")
	// ErrForged is returned for an entry whose MAC is missing, from an
	// unknown key or wrong (also secretkey.ErrUnauthenticated).
	ErrForged = errors.New("captchapool: entry not authenticated")
)

// Keys derives the keys that sign and verify pool entries from the
// gateway's secrets (the first signs, all verify). Workers outside the
// gateway (`caddy advcaptcha pool`) must be given the same secret.
func Keys(secrets ...[]byte) (*secretkey.Keys, error) {
	return secretkey.Derive("pool v1", secrets...)
}

// macParts are what an entry's MAC covers.
func (e *Entry) macParts() [][]byte {
	var seed, ssim [8]byte
	binary.BigEndian.PutUint64(seed[:], e.Seed)
	binary.BigEndian.PutUint64(ssim[:], math.Float64bits(e.SSIM))
	fooled := []byte{0}
	if e.Fooled {
		fooled[0] = 1
	}
	return [][]byte{[]byte(e.Text), seed[:], []byte(e.Method), []byte(e.Model), ssim[:], []byte(e.Reading), fooled, []byte(e.SHA256)}
}

// Marshal encodes the entry with its checksum and its MAC under keys.
func (e *Entry) Marshal(keys *secretkey.Keys) ([]byte, error) {
	if keys == nil {
		return nil, errors.New("captchapool: no key to sign the entry with")
	}
	sum := sha256.Sum256(e.PNG)
	e.SHA256 = hex.EncodeToString(sum[:])
	e.KeyID, e.MAC = keys.Sign(e.macParts()...)
	return json.Marshal(e)
}

// Unmarshal decodes an entry and verifies its checksum (else ErrCorrupt)
// and its MAC under keys (else ErrForged), in constant time.
func Unmarshal(b []byte, keys *secretkey.Keys) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	sum := sha256.Sum256(e.PNG)
	if len(e.PNG) == 0 || e.Text == "" || hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if keys == nil {
		return nil, fmt.Errorf("%w: no key to verify it with", ErrForged)
	}
	if err := keys.Verify(e.KeyID, e.MAC, e.macParts()...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForged, err)
	}
	return &e, nil
}

// Generator makes adversarial captchas of one style against substitutes.
type Generator struct {
	Style   captcha.Style
	Solvers []*solver.Solver
	Attack  perturb.Config
	// Batch is how many captchas GenerateMany attacks in lockstep on one
	// core (perturb.AttackBatch); default DefaultBatch.
	Batch int
}

// DefaultBatch is how many captchas a worker attacks in lockstep: with 4
// random draws each, 32 images go through each substitute at once, where
// the engine's products are near their best per image (bench/solver).
const DefaultBatch = 8

// Generate renders the captcha of seed and perturbs it.
func (g *Generator) Generate(seed uint64) (*Entry, error) {
	return g.GenerateContext(context.Background(), seed)
}

// GenerateContext is Generate that gives up when ctx is done.
func (g *Generator) GenerateContext(ctx context.Context, seed uint64) (*Entry, error) {
	e, err := g.GenerateBatch(ctx, []uint64{seed})
	if err != nil {
		return nil, err
	}
	return e[0], nil
}

// GenerateBatch renders the captchas of seeds and perturbs them in
// lockstep; each is what GenerateContext makes of its seed.
func (g *Generator) GenerateBatch(ctx context.Context, seeds []uint64) ([]*Entry, error) {
	targets := make([]perturb.Target, len(seeds))
	for i, seed := range seeds {
		c, err := g.Style.Generate(seed)
		if err != nil {
			return nil, fmt.Errorf("rendering captcha: %w", err)
		}
		targets[i] = perturb.Target{Image: c.Image, Text: c.Text, Seed: seed, Strokes: c.Glyphs.Pix}
	}
	res, err := perturb.AttackBatch(ctx, g.Solvers, targets, g.Attack)
	if err != nil {
		return nil, err
	}
	out := make([]*Entry, len(seeds))
	for i, r := range res {
		png, err := captcha.EncodePNG(r.Image)
		if err != nil {
			return nil, err
		}
		out[i] = &Entry{
			Text: targets[i].Text, Seed: seeds[i], Method: g.Attack.String(), Model: g.ModelVersion(),
			SSIM: r.SSIM, Reading: r.Reading, Fooled: r.Fooled, PNG: png,
		}
	}
	return out, nil
}

// GenerateMany makes count captchas from seeds seed, seed+1, … on every
// core, Batch at a time per core, in order; progress, if set, is called
// (serialised) as each batch is done.
func (g *Generator) GenerateMany(seed uint64, count int, progress func(done int)) ([]*Entry, error) {
	batch := g.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	out := make([]*Entry, count)
	var errs []error
	var next, done int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				lo := next
				hi := min(lo+batch, count)
				next = hi
				mu.Unlock()
				if lo >= count {
					return
				}
				seeds := make([]uint64, hi-lo)
				for i := range seeds {
					seeds[i] = seed + uint64(lo+i)
				}
				e, err := g.GenerateBatch(context.Background(), seeds)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("captchas %d–%d: %w", lo, hi-1, err))
				} else {
					copy(out[lo:hi], e)
				}
				done += hi - lo
				if progress != nil {
					progress(done)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Sample is the entry as a training sample: its served pixels and its
// true text.
func (e *Entry) Sample() (solver.Sample, error) {
	img, err := png.Decode(bytes.NewReader(e.PNG))
	if err != nil {
		return solver.Sample{}, fmt.Errorf("decoding captcha: %w", err)
	}
	g, ok := img.(*image.Gray)
	if !ok || g.Stride != g.Rect.Dx() {
		return solver.Sample{}, fmt.Errorf("captcha is not a plain grayscale image: %T", img)
	}
	return solver.Sample{Pixels: g.Pix, Text: e.Text}, nil
}

// Samples are the entries as training samples.
func Samples(entries []*Entry) ([]solver.Sample, error) {
	out := make([]solver.Sample, len(entries))
	for i, e := range entries {
		var err error
		if out[i], err = e.Sample(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ModelVersion names the substitutes attacked.
func (g *Generator) ModelVersion() string {
	v := make([]string, len(g.Solvers))
	for i, s := range g.Solvers {
		v[i] = s.ModelVersion()
	}
	return strings.Join(v, "+")
}

// Key is the store key of the pool for this generator (PoolKey).
func (g *Generator) Key() string { return PoolKey(g.Style, g.Attack, g.ModelVersion()) }

// PoolKey is the store key of the pool of captchas of style, made by
// attack against the models (their versions joined by "+", the first the
// followed one): it changes with each, so that a new model version or
// setting starts a fresh pool and the old one expires on its own. The
// attack is hashed with its defaults applied, so a configuration that names
// a default (a Caddyfile's momentum 1) and one that leaves it out (the pool
// command's flags) fill and serve the same pool.
func PoolKey(style captcha.Style, attack perturb.Config, models string) string {
	b, _ := json.Marshal(struct {
		S captcha.Style
		A perturb.Config
		M string
	}{style, attack.WithDefaults(), models})
	sum := sha256.Sum256(b)
	return "pool:" + hex.EncodeToString(sum[:8])
}

// Dropped counts the entries Pop dropped rather than served.
type Dropped struct {
	// Corrupt did not decode or failed their checksum.
	Corrupt int
	// Forged had no MAC, one from an unknown key, or a wrong one; by
	// reason (secretkey.Reason: unsigned, unknown_key, bad_mac).
	Forged map[string]int
}

// Pop takes the oldest entry of the pool under key that verifies under
// keys. Corrupt and forged entries are dropped (and counted by the caller
// through dropped) rather than served; it returns store.ErrNotFound when
// the pool is empty, ErrCorrupt when it dropped several in a row.
func Pop(ctx context.Context, s store.Store, key string, keys *secretkey.Keys) (e *Entry, dropped Dropped, err error) {
	for range 8 {
		b, err := s.PopQueue(ctx, key)
		if err != nil {
			return nil, dropped, err
		}
		e, err := Unmarshal(b, keys)
		switch {
		case err == nil:
			return e, dropped, nil
		case errors.Is(err, ErrForged):
			if dropped.Forged == nil {
				dropped.Forged = map[string]int{}
			}
			dropped.Forged[forgedReason(err)]++
		default:
			dropped.Corrupt++
		}
	}
	return nil, dropped, ErrCorrupt
}

func forgedReason(err error) string {
	if r := secretkey.Reason(err); r != "" {
		return r
	}
	return "unsigned"
}

// NewSeed draws a captcha seed from crypto/rand: the seed determines the
// text, so it must be unguessable. 53 bits, because seeds travel in JSON
// records that readers (JavaScript, Python) may hold as doubles.
func NewSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return binary.LittleEndian.Uint64(b[:]) & (1<<53 - 1)
}
