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
	"runtime"
	"strings"
	"sync"

	"github.com/advcaptcha/advcaptcha/captcha"
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
}

// ErrCorrupt is returned for a pool entry that does not decode or whose
// image does not match its checksum.
var ErrCorrupt = errors.New("captchapool: corrupt entry")

// Marshal encodes the entry with its checksum.
func (e *Entry) Marshal() ([]byte, error) {
	sum := sha256.Sum256(e.PNG)
	e.SHA256 = hex.EncodeToString(sum[:])
	return json.Marshal(e)
}

// Unmarshal decodes an entry and verifies its checksum.
func Unmarshal(b []byte) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	sum := sha256.Sum256(e.PNG)
	if len(e.PNG) == 0 || e.Text == "" || hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return &e, nil
}

// Generator makes adversarial captchas of one style against substitutes.
type Generator struct {
	Style   captcha.Style
	Solvers []*solver.Solver
	Attack  perturb.Config
}

// Generate renders the captcha of seed and perturbs it.
func (g *Generator) Generate(seed uint64) (*Entry, error) {
	return g.GenerateContext(context.Background(), seed)
}

// GenerateContext is Generate that gives up when ctx is done.
func (g *Generator) GenerateContext(ctx context.Context, seed uint64) (*Entry, error) {
	c, err := g.Style.Generate(seed)
	if err != nil {
		return nil, fmt.Errorf("rendering captcha: %w", err)
	}
	res, err := perturb.AttackContext(ctx, g.Solvers, c.Image, c.Text, g.Attack, seed)
	if err != nil {
		return nil, err
	}
	png, err := captcha.EncodePNG(res.Image)
	if err != nil {
		return nil, err
	}
	return &Entry{
		Text: c.Text, Seed: seed, Method: g.Attack.String(), Model: g.ModelVersion(),
		SSIM: res.SSIM, Reading: res.Reading, Fooled: res.Fooled, PNG: png,
	}, nil
}

// GenerateMany makes count captchas from seeds seed, seed+1, … on every
// core, in order; progress, if set, is called (serialised) as each is done.
func (g *Generator) GenerateMany(seed uint64, count int, progress func(done int)) ([]*Entry, error) {
	out := make([]*Entry, count)
	errs := make([]error, count)
	var next, done int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= count {
					return
				}
				out[i], errs[i] = g.Generate(seed + uint64(i))
				mu.Lock()
				done++
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
		v[i] = s.Model().Version()
	}
	return strings.Join(v, "+")
}

// Key is the store key of the pool for this generator: it changes with the
// style, the attack and the models, so that a new model version or setting
// starts a fresh pool and the old one expires on its own.
func (g *Generator) Key() string {
	b, _ := json.Marshal(struct {
		S captcha.Style
		A perturb.Config
		M string
	}{g.Style, g.Attack, g.ModelVersion()})
	sum := sha256.Sum256(b)
	return "pool:" + hex.EncodeToString(sum[:8])
}

// Pop takes the oldest entry of the pool under key. Corrupt entries are
// dropped (and counted by the caller through the returned number) rather
// than served; it returns store.ErrNotFound when the pool is empty.
func Pop(ctx context.Context, s store.Store, key string) (e *Entry, dropped int, err error) {
	for range 4 {
		b, err := s.PopQueue(ctx, key)
		if err != nil {
			return nil, dropped, err
		}
		if e, err := Unmarshal(b); err == nil {
			return e, dropped, nil
		}
		dropped++
	}
	return nil, dropped, ErrCorrupt
}

// NewSeed draws a captcha seed from crypto/rand: the seed determines the
// text, so it must be unguessable. 53 bits, because seeds travel in JSON
// records that readers (JavaScript, Python) may hold as doubles.
func NewSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return binary.LittleEndian.Uint64(b[:]) & (1<<53 - 1)
}
