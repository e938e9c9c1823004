// Package solver is advcaptcha's own text-captcha solver: the CRNN with CTC of
// the advCAPTCHA paper (Table 6), built with gorgonia so that the whole gateway
// stays in Go. The adversarial perturbations are computed against it (it is the
// "substitute model"), and the learning loop fine-tunes it on attackers'
// answers so that it imitates their solvers.
//
// A Model is an immutable set of weights with the Architecture that gives them
// meaning; a Solver runs a Model from several goroutines, each borrowing a
// worker that owns a compiled gorgonia graph built once for its batch size.
package solver

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Architecture describes a CRNN completely enough to rebuild its graph: the
// model file stores it next to the weights so that other captcha styles can
// have their own models.
type Architecture struct {
	// Height and Width of the grayscale input image in pixels.
	Height int `json:"height"`
	Width  int `json:"width"`
	// Charset is the alphabet the solver reads; class 0 is the CTC blank and
	// class i+1 is Charset[i].
	Charset string `json:"charset"`
	// Conv lists the convolution blocks: each is a 3×3 convolution (stride 1,
	// padding 1) → BatchNorm → LeakyReLU → max-pool.
	Conv []ConvBlock `json:"conv"`
	// Hidden is the number of units of each LSTM layer.
	Hidden int `json:"hidden"`
	// Layers is the number of stacked LSTM layers.
	Layers int `json:"layers"`
	// Bidirectional runs each LSTM layer in both directions and concatenates
	// the two outputs.
	Bidirectional bool `json:"bidirectional,omitempty"`
	// LeakySlope is the LeakyReLU slope for negative inputs.
	LeakySlope float64 `json:"leaky_slope"`
	// BNEpsilon is BatchNorm's variance epsilon.
	BNEpsilon float64 `json:"bn_epsilon"`
}

// ConvBlock is one convolution block and the pooling after it.
type ConvBlock struct {
	Filters int `json:"filters"`
	// PoolH and PoolW are the max-pool window and stride; 1×1 means no pooling.
	PoolH int `json:"pool_h"`
	PoolW int `json:"pool_w"`
}

// DefaultCharset matches captcha.DefaultCharset; it is repeated here rather
// than imported so that the solver does not depend on the renderer.
const DefaultCharset = "23456789abcdefghjkmnpqrstuvwxyz"

// DefaultArchitecture is Table 6 of the paper with the pooling the solver issue
// asks for: 2×2 pools in the first two blocks and height-only 2×1 pools in the
// last two, so a 100-pixel-wide input becomes 25 time steps — enough for CTC to
// put a blank between the letters of a doubled pair in a 6-character text.
func DefaultArchitecture() Architecture {
	return Architecture{
		Height:  30,
		Width:   100,
		Charset: DefaultCharset,
		Conv: []ConvBlock{
			{Filters: 64, PoolH: 2, PoolW: 2},
			{Filters: 128, PoolH: 2, PoolW: 2},
			{Filters: 128, PoolH: 2, PoolW: 1},
			{Filters: 64, PoolH: 2, PoolW: 1},
		},
		Hidden:     256,
		Layers:     2,
		LeakySlope: 0.01,
		BNEpsilon:  1e-5,
	}
}

// Classes is the number of output classes: the charset plus the CTC blank.
func (a Architecture) Classes() int { return utf8.RuneCountInString(a.Charset) + 1 }

// featureShape is the (channels, height, width) after the convolution blocks.
func (a Architecture) featureShape() (c, h, w int) {
	c, h, w = 1, a.Height, a.Width
	for _, b := range a.Conv {
		c = b.Filters
		h /= b.PoolH
		w /= b.PoolW
	}
	return c, h, w
}

// Steps is the length of the sequence the LSTM reads: the feature map's width.
func (a Architecture) Steps() int { _, _, w := a.featureShape(); return w }

// Validate reports the first thing that makes the architecture unbuildable.
func (a Architecture) Validate() error {
	switch {
	case a.Height < 4 || a.Width < 4 || a.Height > 512 || a.Width > 2048:
		return fmt.Errorf("input %d×%d: need 4×4 to 512×2048", a.Height, a.Width)
	case a.Charset == "":
		return errors.New("empty charset")
	case len(a.Conv) == 0 || len(a.Conv) > 8:
		return fmt.Errorf("%d convolution blocks: need 1 to 8", len(a.Conv))
	case a.Hidden < 1 || a.Hidden > 4096:
		return fmt.Errorf("hidden %d: need 1 to 4096", a.Hidden)
	case a.Layers < 1 || a.Layers > 4:
		return fmt.Errorf("layers %d: need 1 to 4", a.Layers)
	case a.LeakySlope < 0 || a.LeakySlope >= 1:
		return fmt.Errorf("leaky_slope %g: need 0 ≤ slope < 1", a.LeakySlope)
	case a.BNEpsilon <= 0:
		return fmt.Errorf("bn_epsilon %g: need > 0", a.BNEpsilon)
	}
	seen := map[rune]bool{}
	for _, r := range a.Charset {
		if seen[r] {
			return fmt.Errorf("charset repeats %q", r)
		}
		seen[r] = true
	}
	for i, b := range a.Conv {
		if b.Filters < 1 || b.Filters > 1024 || b.PoolH < 1 || b.PoolW < 1 || b.PoolH > 4 || b.PoolW > 4 {
			return fmt.Errorf("conv block %d %+v: need 1–1024 filters and pools of 1–4", i, b)
		}
	}
	c, h, w := a.featureShape()
	if h < 1 || w < 1 {
		return fmt.Errorf("the pools shrink the %d×%d input to nothing", a.Height, a.Width)
	}
	_ = c
	return nil
}

// String is a one-line summary, e.g. "30×100 conv 64/2×2 128/2×2 … lstm 2×256 → 32 classes".
func (a Architecture) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d×%d conv", a.Height, a.Width)
	for _, c := range a.Conv {
		fmt.Fprintf(&b, " %d/%d×%d", c.Filters, c.PoolH, c.PoolW)
	}
	dir := ""
	if a.Bidirectional {
		dir = "bi"
	}
	fmt.Fprintf(&b, " %slstm %d×%d → %d steps × %d classes", dir, a.Layers, a.Hidden, a.Steps(), a.Classes())
	return b.String()
}

// FLOPs is the analytic floating-point operation count of one image's forward
// pass: twice the multiply-adds of the convolutions, the LSTMs and the output
// layer (the elementwise work is left out, as is usual).
func (a Architecture) FLOPs() float64 {
	var total float64
	cin, h, w := 1, a.Height, a.Width
	for _, b := range a.Conv {
		total += 2 * float64(cin*9*b.Filters*h*w)
		cin, h, w = b.Filters, h/b.PoolH, w/b.PoolW
	}
	in, T, dirs := cin*h, float64(a.Steps()), float64(len(a.directions()))
	for range a.Layers {
		total += dirs * T * 2 * float64((in+a.Hidden)*4*a.Hidden)
		in = a.Hidden * len(a.directions())
	}
	return total + T*2*float64(in*a.Classes())
}
