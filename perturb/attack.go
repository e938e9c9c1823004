// Package perturb makes adversarial captchas: it perturbs a clean captcha
// against the solver's CTC loss (FGSM, BIM, MI-FGSM; untargeted or targeted)
// within an L∞ budget counted in 8-bit levels, so that machine solvers misread
// it while people still read it. Expectation over the preprocessing attackers
// apply, low-frequency perturbations and ensembles of substitutes make the
// perturbation transfer to solvers it was not computed against.
package perturb

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/advcaptcha/advcaptcha/solver"
)

// Method is an attack method.
type Method string

const (
	// FGSM is one step of the gradient's sign, of size ε.
	FGSM Method = "fgsm"
	// BIM (iterative FGSM) takes small signed steps, projecting back into the budget.
	BIM Method = "bim"
	// MIFGSM accumulates L1-normalised gradients with momentum, which
	// stabilises the direction and transfers better to other models.
	MIFGSM Method = "mifgsm"
)

// Config describes one way of perturbing captchas.
type Config struct {
	Method Method `json:"method"`
	// Epsilon is the L∞ budget in 8-bit levels: no pixel moves by more.
	Epsilon int `json:"epsilon"`
	// StrokeEpsilon, when set and below Epsilon, is the budget on the
	// text's strokes and the pixel around them (each Target must then give
	// its strokes), Epsilon applying to the rest: the perturbation may then blur a stroke's edge but not
	// redraw a glyph, and the budget goes to the background, where
	// structures dark enough to survive an attacker's thresholding do not
	// change what a person reads. 0 turns it off (Epsilon everywhere).
	StrokeEpsilon int `json:"stroke_epsilon,omitempty"`
	// Step is the step size in 8-bit levels for BIM and MI-FGSM. Default
	// max(1, ⌈2.5·ε/iterations⌉).
	Step int `json:"step,omitempty"`
	// Iterations of BIM and MI-FGSM. Default 10.
	Iterations int `json:"iterations,omitempty"`
	// Momentum is MI-FGSM's decay μ. Default 1.
	Momentum float64 `json:"momentum,omitempty"`
	// Targeted drives the solver to a wrong text (one or two characters
	// changed) instead of away from the true one, so that solvers answer
	// wrongly and confidently.
	Targeted bool `json:"targeted,omitempty"`
	// EOT names filters (see Filters) whose random draws each gradient is
	// averaged over — expectation over transformation — so the perturbation
	// survives the attacker's preprocessing. One draw in EOT+1 is the
	// unfiltered image.
	EOT []string `json:"eot,omitempty"`
	// EOTSamples is how many draws each step averages. Default 4 when EOT
	// or Shift is set.
	EOTSamples int `json:"eot_samples,omitempty"`
	// Shift translates every draw by a random offset of up to Shift pixels
	// each way (input diversity): a perturbation that fools the substitute
	// wherever the text sits does not depend on where this substitute's
	// pooling grid happens to fall, which is what other solvers differ in.
	// 0 turns it off.
	Shift int `json:"shift,omitempty"`
	// Smooth is the σ, in pixels, of a Gaussian applied to each step's
	// gradient: the perturbation then varies slowly across the image, and
	// median, mean and Gaussian filters do not remove it. 0 turns it off.
	Smooth float64 `json:"smooth,omitempty"`
	// MinSSIM is the usability floor: a perturbation whose structural
	// similarity to the clean image falls below it is scaled down until it
	// does not. 0 turns the guard off.
	MinSSIM float64 `json:"min_ssim,omitempty"`
}

// DefaultConfig is the attack the gateway serves unless configured
// otherwise: MI-FGSM (it transfers best of the three), expectation over the
// filters attackers use most, smoothed steps so those filters cannot remove
// the perturbation, and an SSIM floor for people. The budget is 48 levels
// on the background and 2 on the glyphs' strokes and their edge: on the
// default (shaded) style much of the background lies within 48 levels of a
// global threshold (Otsu's: 42% of the pixels within 40), so solvers trained
// on Otsu-binarised or flattened-then-binarised captchas read as little as
// the others in bench/adversarial/PREPROCESSED.md, while the strokes keep
// what a person reads. At 8 levels on the strokes a reader trained on served
// captchas confused one glyph for another on half its misreads and read
// 88%; at 2 it reads 94% (clean: 96%), and no other solver gains more than
// a point. Other fixed thresholds were not measured.
func DefaultConfig() Config {
	return Config{
		Method: MIFGSM, Epsilon: 48, StrokeEpsilon: 2, Iterations: 10,
		EOT: []string{"gaussian", "median", "mean", "binarize"}, EOTSamples: 4,
		Smooth: 1, MinSSIM: 0.5,
	}
}

// Overrides is a partial Config, as the gateway's configuration and the
// commands' flags give it: a nil field keeps the value of the Config it is
// applied to (DefaultConfig), a set one replaces it — 0 included, so that
// "smooth 0", "shift 0" and "min_ssim 0" turn those off as Config documents,
// and an empty EOT list turns expectation over transformation off. Its JSON
// field names are Config's; a field set to 0 stays in the JSON, so the
// setting survives Caddy's Caddyfile-to-JSON adaptation.
type Overrides struct {
	Method        Method    `json:"method,omitempty"`
	Epsilon       *int      `json:"epsilon,omitempty"`
	StrokeEpsilon *int      `json:"stroke_epsilon,omitempty"`
	Step          *int      `json:"step,omitempty"`
	Iterations    *int      `json:"iterations,omitempty"`
	Momentum      *float64  `json:"momentum,omitempty"`
	Targeted      *bool     `json:"targeted,omitempty"`
	EOT           *[]string `json:"eot,omitempty"`
	EOTSamples    *int      `json:"eot_samples,omitempty"`
	Shift         *int      `json:"shift,omitempty"`
	Smooth        *float64  `json:"smooth,omitempty"`
	MinSSIM       *float64  `json:"min_ssim,omitempty"`
}

// Apply returns c with every field that o sets replacing c's; a nil o
// changes nothing.
func (c Config) Apply(o *Overrides) Config {
	if o == nil {
		return c
	}
	if o.Method != "" {
		c.Method = o.Method
	}
	set(&c.Epsilon, o.Epsilon)
	set(&c.StrokeEpsilon, o.StrokeEpsilon)
	set(&c.Step, o.Step)
	set(&c.Iterations, o.Iterations)
	set(&c.Momentum, o.Momentum)
	set(&c.Targeted, o.Targeted)
	if o.EOT != nil {
		c.EOT = append([]string{}, *o.EOT...)
	}
	set(&c.EOTSamples, o.EOTSamples)
	set(&c.Shift, o.Shift)
	set(&c.Smooth, o.Smooth)
	set(&c.MinSSIM, o.MinSSIM)
	return c
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Validate reports a configuration the attack cannot run.
func (c *Config) Validate() error {
	switch c.Method {
	case FGSM, BIM, MIFGSM:
	default:
		return fmt.Errorf("method %q: want fgsm, bim or mifgsm", c.Method)
	}
	if c.Epsilon < 1 || c.Epsilon > 128 {
		return fmt.Errorf("epsilon %d: want 1 to 128 levels", c.Epsilon)
	}
	if c.StrokeEpsilon < 0 || c.StrokeEpsilon > 128 {
		return fmt.Errorf("stroke_epsilon %d: want 0 (off) to 128 levels", c.StrokeEpsilon)
	}
	if c.Iterations < 0 || c.Iterations > 1000 || c.Step < 0 || c.Step > 255 {
		return fmt.Errorf("iterations %d, step %d: want 0–1000 and 0–255", c.Iterations, c.Step)
	}
	for _, f := range c.EOT {
		if _, ok := FilterByName(f); !ok {
			return fmt.Errorf("eot filter %q unknown", f)
		}
	}
	if c.Smooth < 0 || c.Smooth > 10 || c.MinSSIM < 0 || c.MinSSIM >= 1 {
		return fmt.Errorf("smooth %g, min_ssim %g: want 0–10 and 0–1", c.Smooth, c.MinSSIM)
	}
	if c.Shift < 0 || c.Shift > 10 {
		return fmt.Errorf("shift %d: want 0–10 pixels", c.Shift)
	}
	return nil
}

// WithDefaults is c with the defaults the attack applies filled in
// (iterations, step, momentum, draws per step), so that two configurations
// that attack alike are equal: the pool key hashes it.
func (c Config) WithDefaults() Config {
	if c.Method == FGSM {
		c.Iterations, c.Step = 1, c.Epsilon
	}
	if c.Iterations == 0 {
		c.Iterations = 10
	}
	if c.Step == 0 {
		c.Step = max(1, int(math.Ceil(2.5*float64(c.Epsilon)/float64(c.Iterations))))
	}
	if c.Momentum == 0 {
		c.Momentum = 1
	}
	if c.StrokeEpsilon >= c.Epsilon {
		// The strokes never get more than the rest (an override lowering
		// ε below the default stroke budget): one budget everywhere.
		c.StrokeEpsilon = 0
	}
	random := len(c.EOT) > 0 || c.Shift > 0
	if random && c.EOTSamples == 0 {
		c.EOTSamples = 4
	}
	if !random {
		c.EOTSamples = 1
	}
	return c
}

// String is a short name for tables and logs, e.g. "mifgsm ε=8 eot smooth=1".
func (c Config) String() string {
	s := fmt.Sprintf("%s ε=%d", c.Method, c.Epsilon)
	if c.StrokeEpsilon > 0 {
		s += fmt.Sprintf(" strokes=%d", c.StrokeEpsilon)
	}
	if c.Targeted {
		s += " targeted"
	}
	if len(c.EOT) > 0 {
		s += " eot=" + strings.Join(c.EOT, "+")
	}
	if c.Smooth > 0 {
		s += fmt.Sprintf(" smooth=%g", c.Smooth)
	}
	if c.Shift > 0 {
		s += fmt.Sprintf(" shift=%d", c.Shift)
	}
	return s
}

// Result is an adversarial captcha.
type Result struct {
	// Image is exactly what is served: the attacked 8-bit image.
	Image *image.Gray
	// Target is the text a targeted attack aimed for.
	Target string
	// Reading is what the first substitute reads in Image.
	Reading string
	// Fooled says the first substitute misreads Image (reads Target, for a
	// targeted attack).
	Fooled bool
	// SSIM to the clean image, and the largest change of a pixel in levels.
	SSIM float64
	Linf int
}

// A Target is a clean captcha to perturb.
type Target struct {
	Image *image.Gray
	// Text is the captcha's true text.
	Text string
	// Seed draws the attack's randomness: the same Target and Config give
	// the same image.
	Seed uint64
	// Strokes is the coverage of the text's glyphs (0–255, Image's size,
	// row-major; captcha.Captcha.Glyphs), where Config.StrokeEpsilon
	// applies; nil if unknown, and then Epsilon applies everywhere.
	Strokes []uint8
}

// Attack perturbs a clean captcha whose text is truth against the
// substitutes (their gradients are averaged after L1 normalisation, an
// ensemble). Draws of targets and EOT filters come from seed, so the same
// inputs give the same image.
// Without the glyphs' coverage it cannot apply a stroke budget: cfg must
// not set one (AttackContext takes a Target that carries them).
func Attack(subs []*solver.Solver, clean *image.Gray, truth string, cfg Config, seed uint64) (*Result, error) {
	return AttackContext(context.Background(), subs, Target{Image: clean, Text: truth, Seed: seed}, cfg)
}

// AttackContext attacks one captcha, giving up with ctx's error between two
// iterations once ctx is done: a generation worker being stopped does not
// finish a captcha nobody will serve.
func AttackContext(ctx context.Context, subs []*solver.Solver, t Target, cfg Config) (*Result, error) {
	res, err := AttackBatch(ctx, subs, []Target{t}, cfg)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// AttackBatch attacks several captchas in lockstep: each iteration's
// gradients of all of them (and of all their random draws) go through each
// substitute as one batch, where the matrix products run faster per image
// than in the small batch of one captcha's draws. Each captcha keeps its own
// random draws from its seed, so its result is what AttackContext gives it
// alone.
func AttackBatch(ctx context.Context, subs []*solver.Solver, targets []Target, cfg Config) ([]*Result, error) {
	if len(subs) == 0 {
		return nil, errors.New("perturb: no substitute model")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("perturb: %w", err)
	}
	cfg = cfg.WithDefaults()
	arch := subs[0].Model().Arch
	eot := make([]Filter, len(cfg.EOT))
	for i, name := range cfg.EOT {
		eot[i], _ = FilterByName(name)
	}
	items := make([]*attackItem, len(targets))
	for k, t := range targets {
		h, w := t.Image.Bounds().Dy(), t.Image.Bounds().Dx()
		for _, s := range subs {
			if a := s.Model().Arch; a.Height != h || a.Width != w {
				return nil, fmt.Errorf("perturb: a %d×%d captcha for a model reading %d×%d", w, h, a.Width, a.Height)
			}
		}
		switch {
		case t.Strokes != nil && len(t.Strokes) != h*w:
			return nil, fmt.Errorf("perturb: %d stroke values for a %d×%d captcha", len(t.Strokes), w, h)
		case t.Strokes == nil && cfg.StrokeEpsilon > 0:
			// Silently spending ε on the strokes would serve what the
			// stroke budget exists to prevent.
			return nil, fmt.Errorf("perturb: a stroke budget of %d levels for a captcha whose strokes are not given", cfg.StrokeEpsilon)
		}
		items[k] = newAttackItem(t, cfg, arch.Charset)
	}
	h, w := arch.Height, arch.Width
	step := float32(cfg.Step) / 255
	for range cfg.Iterations {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		grads, err := gradients(subs, items, h, w, eot, cfg.EOTSamples, cfg.Shift)
		if err != nil {
			return nil, err
		}
		for k, it := range items {
			g := grads[k]
			if cfg.Smooth > 0 {
				g = GaussianBlur(g, h, w, cfg.Smooth)
			}
			d := g
			if cfg.Method == MIFGSM {
				l1 := l1Norm(g)
				for i, v := range g {
					it.momentum[i] = float32(cfg.Momentum)*it.momentum[i] + v/l1
				}
				d = it.momentum
			}
			x := it.x
			for i, v := range d {
				switch {
				case v > 0:
					x[i] += it.sign * step
				case v < 0:
					x[i] -= it.sign * step
				}
				// Project into the budget and the pixel range, on the 8-bit grid
				// so that what is served is exactly what was attacked.
				x[i] = float32(quantize(min(max(x[i], it.lo[i]), it.hi[i]))) / 255
			}
		}
	}
	served := make([]solver.Image, len(items))
	for k, it := range items {
		x := guardSSIM(it.x0, it.x, h, w, cfg.MinSSIM)
		res := it.res
		res.Image = ToGray(x, h, w)
		res.SSIM = SSIM(it.x0, x, h, w)
		for i := range x {
			res.Linf = max(res.Linf, int(math.Abs(float64(res.Image.Pix[i])-float64(it.clean.Pix[i%w+(i/w)*it.clean.Stride]))))
		}
		served[k] = FromGray(res.Image)
	}
	if pre, err := readsThrough(subs[0]); err != nil {
		return nil, err
	} else if pre != nil {
		for k := range served {
			served[k] = pre.apply(served[k], h, w)
		}
	}
	p, err := subs[0].Predict(served)
	if err != nil {
		return nil, err
	}
	out := make([]*Result, len(items))
	for k, it := range items {
		res := it.res
		res.Reading = p[k].Text
		res.Fooled = res.Reading != it.truth
		if cfg.Targeted {
			res.Fooled = res.Reading == res.Target
		}
		out[k] = res
	}
	return out, nil
}

// attackItem is one captcha's state in an attack.
type attackItem struct {
	clean    *image.Gray
	truth    string
	text     string  // the text whose loss is followed
	sign     float32 // +1 ascends the loss of the truth, -1 descends the target's
	x0, x    []float32
	lo, hi   []float32
	momentum []float32
	rng      *rand.Rand
	res      *Result
	draws    []draw // this iteration's random draws
	slots    []int  // for each draw, its image's index in the batch
}

// draw is one random transformation of an iteration: a filter of eot (-1
// for none), then a shift.
type draw struct{ filter, dx, dy int }

func newAttackItem(t Target, cfg Config, charset string) *attackItem {
	clean, truth := t.Image, t.Text
	it := &attackItem{clean: clean, truth: truth, text: truth, sign: 1, res: &Result{},
		rng: rand.New(rand.NewPCG(t.Seed, 0xadc))}
	if cfg.Targeted {
		it.res.Target = wrongText(truth, charset, it.rng)
		it.text, it.sign = it.res.Target, -1
	}
	it.x0 = FromGray(clean)
	n := len(it.x0)
	it.lo, it.hi, it.momentum = make([]float32, n), make([]float32, n), make([]float32, n)
	eps := float32(cfg.Epsilon) / 255
	var near []bool
	if cfg.StrokeEpsilon > 0 && t.Strokes != nil {
		near = nearStrokes(t.Strokes, clean.Bounds().Dy(), clean.Bounds().Dx())
	}
	for i, v := range it.x0 {
		e := eps
		if near != nil && near[i] {
			e = float32(cfg.StrokeEpsilon) / 255
		}
		it.lo[i], it.hi[i] = max(v-e, 0), min(v+e, 1)
	}
	it.x = append([]float32(nil), it.x0...)
	return it
}

// nearStrokes marks the pixels a glyph covers at all and their eight
// neighbours: the stroke and the edge that shapes it.
func nearStrokes(strokes []uint8, h, w int) []bool {
	near := make([]bool, len(strokes))
	for y := range h {
		for x := range w {
			if strokes[y*w+x] == 0 {
				continue
			}
			for yy := max(y-1, 0); yy <= min(y+1, h-1); yy++ {
				for xx := max(x-1, 0); xx <= min(x+1, w-1); xx++ {
					near[yy*w+xx] = true
				}
			}
		}
	}
	return near
}

// gradients is, for each item, the ensemble's mean L1-normalised gradient
// of the loss of its text, each model's averaged over the item's random
// draws: a filter of eot or none, then a shift of up to shift pixels. All
// items' draws go through each model as one batch.
func gradients(subs []*solver.Solver, items []*attackItem, h, w int, eot []Filter, samples, shift int) ([][]float32, error) {
	imgs := make([]solver.Image, 0, len(items)*samples)
	texts := make([]string, 0, len(items)*samples)
	for _, it := range items {
		it.draws, it.slots = it.draws[:0], it.slots[:0]
	draws:
		for range samples {
			d := draw{filter: -1}
			if len(eot) > 0 {
				d.filter = it.rng.IntN(len(eot)+1) - 1
			}
			if shift > 0 {
				d.dx, d.dy = it.rng.IntN(2*shift+1)-shift, it.rng.IntN(2*shift+1)-shift
			}
			it.draws = append(it.draws, d)
			// The filters are deterministic: a draw equal to an earlier one
			// of this captcha has its image, and its gradient — computed
			// once, summed as often as drawn. With 4 draws from the default
			// 4 filters and none, a quarter of the gradients are repeats.
			for j, e := range it.draws[:len(it.draws)-1] {
				if e == d {
					it.slots = append(it.slots, it.slots[j])
					continue draws
				}
			}
			img := it.x
			if d.filter >= 0 {
				img = eot[d.filter].Apply(it.x, h, w)
			}
			if shift > 0 {
				img = Translate(img, h, w, d.dx, d.dy)
			}
			it.slots = append(it.slots, len(imgs))
			imgs = append(imgs, img)
			texts = append(texts, it.text)
		}
	}
	sums := make([][]float32, len(items))
	for k := range sums {
		sums[k] = make([]float32, h*w)
	}
	model := make([]float32, h*w)
	for _, s := range subs {
		pre, err := readsThrough(s)
		if err != nil {
			return nil, err
		}
		read := imgs
		if pre != nil {
			read = make([]solver.Image, len(imgs))
			for i, img := range imgs {
				read[i] = pre.apply(img, h, w)
			}
		}
		g, err := s.InputGradient(read, texts)
		if err != nil {
			return nil, fmt.Errorf("perturb: %w", err)
		}
		if pre != nil {
			for i, img := range imgs {
				g.Grads[i] = pre.backward(g.Grads[i], img, h, w)
			}
		}
		for k, it := range items {
			clear(model)
			for j, d := range it.draws {
				gk := g.Grads[it.slots[j]]
				if d.dx != 0 || d.dy != 0 {
					gk = solver.Image(translateBack(gk, h, w, d.dx, d.dy))
				}
				if d.filter >= 0 {
					gk = solver.Image(eot[d.filter].Backward(gk, h, w))
				}
				for i, v := range gk {
					model[i] += v
				}
			}
			l1 := l1Norm(model)
			for i, v := range model {
				sums[k][i] += v / l1
			}
		}
	}
	return sums, nil
}

func l1Norm(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += math.Abs(float64(x))
	}
	if s == 0 {
		return 1
	}
	return float32(s)
}

// guardSSIM scales the perturbation down, on the 8-bit grid, until the
// structural similarity reaches the floor.
func guardSSIM(x0, x []float32, h, w int, floor float64) []float32 {
	if floor <= 0 || SSIM(x0, x, h, w) >= floor {
		return x
	}
	out := make([]float32, len(x))
	for s := float32(0.9); s > 0; s -= 0.1 {
		for i := range x {
			out[i] = float32(quantize(x0[i]+s*(x[i]-x0[i]))) / 255
		}
		if SSIM(x0, out, h, w) >= floor {
			return out
		}
	}
	return append(out[:0], x0...)
}

// wrongText changes one or two characters of truth to other characters of
// the charset.
func wrongText(truth, charset string, rng *rand.Rand) string {
	t, cs := []rune(truth), []rune(charset)
	n := 1 + rng.IntN(2)
	for _, i := range rng.Perm(len(t))[:min(n, len(t))] {
		for {
			c := cs[rng.IntN(len(cs))]
			if c != t[i] {
				t[i] = c
				break
			}
		}
	}
	return string(t)
}
