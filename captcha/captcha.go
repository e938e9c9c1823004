// Package captcha renders text captchas: random text in embedded fonts,
// each character rotated, scaled, offset and overlapping its neighbours,
// the whole warped, crossed by noise arcs and dots, over a textured
// background. Rendering is deterministic for a seed, so a captcha can be
// reproduced from (style, seed) alone — tests and reproducible datasets
// depend on that — and the PNG encoding of an image is deterministic too.
//
// The default style is the input the substitute solver reads: 100×30
// grayscale, 4–6 characters from digits and lowercase letters without the
// confusable 0/o and 1/l/i, shaded so that no global threshold separates
// text from background.
package captcha

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"strings"
	"sync"
)

// RendererVersion names the renderer's output: a (style, seed) recipe
// reproduces an image bit for bit only with the same renderer version.
// Change it whenever a change to this package changes pixels.
const RendererVersion = "captcha/2"

// DefaultCharset is digits and lowercase letters without 0, o, 1, l, i.
const DefaultCharset = "23456789abcdefghjkmnpqrstuvwxyz"

// DefaultFonts are the upright embedded fonts. The italic one is left out
// by default: its overhangs, with rotation, made neighbours collide.
var DefaultFonts = []string{"dejavu-serif-bold", "go-bold", "go-medium", "go-mono-bold", "go-regular", "liberation-sans-bold", "liberation-serif-bold"}

// Style is how captchas look. The zero value of a field means its default.
type Style struct {
	// Charset the text is drawn from. Default DefaultCharset.
	Charset string `json:"charset,omitempty"`
	// MinLength and MaxLength bound the text length. Default 4 and 6.
	MinLength int `json:"min_length,omitempty"`
	MaxLength int `json:"max_length,omitempty"`
	// Width and Height of the image in pixels. Default 100×30.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Fonts by name (see FontNames). Default DefaultFonts.
	Fonts []string `json:"fonts,omitempty"`
	// Rotation is the largest rotation of a character, in degrees. Default 12.
	Rotation float64 `json:"rotation,omitempty"`
	// Scale is the largest relative change of a character's size. Default 0.12.
	Scale float64 `json:"scale,omitempty"`
	// Offset is the largest vertical offset of a character, as a fraction
	// of the height. Default 0.06.
	Offset float64 `json:"offset,omitempty"`
	// Overlap is the largest fraction of a character's advance that the
	// next one may overlap. Default 0.05.
	Overlap float64 `json:"overlap,omitempty"`
	// Warp is the amplitude of the sine warp, in pixels of a 30-pixel-high
	// image (scaled with the height). Default 1.0.
	Warp float64 `json:"warp,omitempty"`
	// Arcs is the number of noise arcs. Default 2; -1 for none.
	Arcs int `json:"arcs,omitempty"`
	// Dots is the number of noise dots. Default 25; -1 for none.
	Dots int `json:"dots,omitempty"`
	// Background is the strength of the background texture, 0–1. Default 0.3.
	Background float64 `json:"background,omitempty"`
	// Shading is how far light falls off across the image, 0–1: along a
	// random direction the background darkens by up to Shading×125 grey
	// levels while the text lightens by as much on the other side, so the
	// contrast between text and its own background stays the same
	// everywhere while the light side's text and the dark side's background
	// come to share grey levels. At 1 no single threshold separates text
	// from background — a global binarisation, the classic first step of a
	// captcha solver, loses text on a clean captcha already — and an
	// adversarial perturbation of the background within its budget crosses
	// whatever threshold an attacker picks. Default 1; -1 for none (the
	// style of renderer captcha/1).
	Shading float64 `json:"shading,omitempty"`
}

// DefaultStyle returns the default style with every field filled in.
func DefaultStyle() Style {
	var s Style
	s.fill()
	return s
}

func (s *Style) fill() {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if s.Charset == "" {
		s.Charset = DefaultCharset
	}
	defi(&s.MinLength, 4)
	defi(&s.MaxLength, 6)
	defi(&s.Width, 100)
	defi(&s.Height, 30)
	if len(s.Fonts) == 0 {
		s.Fonts = DefaultFonts
	}
	def(&s.Rotation, 12)
	def(&s.Scale, 0.12)
	def(&s.Offset, 0.06)
	def(&s.Overlap, 0.05)
	def(&s.Warp, 1.0)
	defi(&s.Arcs, 2)
	defi(&s.Dots, 25)
	def(&s.Background, 0.3)
	def(&s.Shading, 1)
}

// Validate fills in defaults and checks the style, naming what is wrong.
func (s *Style) Validate() error {
	s.fill()
	switch {
	case s.MinLength < 1 || s.MaxLength < s.MinLength || s.MaxLength > 32:
		return fmt.Errorf("length %d–%d: need 1 ≤ min ≤ max ≤ 32", s.MinLength, s.MaxLength)
	case s.Width < 16 || s.Height < 8 || s.Width > 2000 || s.Height > 1000:
		return fmt.Errorf("size %d×%d: need 16×8 to 2000×1000", s.Width, s.Height)
	case s.Rotation < 0 || s.Rotation > 60:
		return fmt.Errorf("rotation %v: need 0–60 degrees", s.Rotation)
	case s.Scale < 0 || s.Scale > 0.5, s.Offset < 0 || s.Offset > 0.4, s.Overlap < 0 || s.Overlap > 0.6:
		return errors.New("scale must be 0–0.5, offset 0–0.4, overlap 0–0.6")
	case s.Warp < 0 || s.Warp > 10, s.Background < 0 || s.Background > 1, s.Shading != -1 && (s.Shading < 0 || s.Shading > 1):
		return errors.New("warp must be 0–10 px, background 0–1, shading -1 (none) or 0–1")
	case s.Arcs < -1 || s.Arcs > 20, s.Dots < -1 || s.Dots > 1000:
		return errors.New("arcs must be -1–20, dots -1–1000")
	}
	seen := map[rune]bool{}
	for _, r := range s.Charset {
		if r <= ' ' || r > '~' || seen[r] {
			return fmt.Errorf("charset: %q is not printable ASCII or is repeated", r)
		}
		seen[r] = true
	}
	for _, name := range s.Fonts {
		f, err := loadFont(name)
		if err != nil {
			return err
		}
		if missing := missingGlyphs(f, s.Charset); missing != "" {
			return fmt.Errorf("font %s has no glyph for %q", name, missing)
		}
	}
	return nil
}

// Captcha is a rendered captcha.
type Captcha struct {
	Text  string
	Seed  uint64
	Image *image.Gray
	// Glyphs is the text's ink alone, without the noise: the strokes a
	// reader must see (legibility measures compare them).
	Glyphs *image.Alpha
}

// newRand is the only source of randomness of a captcha.
func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15^stream))
}

// Text returns the text the seed gives in this style.
func (s *Style) Text(seed uint64) string {
	rng := newRand(seed, 1)
	n := s.MinLength + rng.IntN(s.MaxLength-s.MinLength+1)
	cs := []byte(s.Charset)
	var b strings.Builder
	for range n {
		b.WriteByte(cs[rng.IntN(len(cs))])
	}
	return b.String()
}

// Generate returns the captcha the seed gives: its text and its image.
// The style must have been validated.
func (s *Style) Generate(seed uint64) (*Captcha, error) {
	text := s.Text(seed)
	img, glyphs, err := s.render(text, seed)
	if err != nil {
		return nil, err
	}
	return &Captcha{Text: text, Seed: seed, Image: img, Glyphs: glyphs}, nil
}

// pngEncoder reuses zlib writers between encodings: setting one up costs
// more than compressing a captcha.
var pngEncoder = png.Encoder{CompressionLevel: png.DefaultCompression, BufferPool: &pngBuffers{}}

type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	if e, ok := b.p.Get().(*png.EncoderBuffer); ok {
		return e
	}
	return nil
}
func (b *pngBuffers) Put(e *png.EncoderBuffer) { b.p.Put(e) }

// EncodePNG encodes a captcha image losslessly; the same image always
// gives the same bytes.
func EncodePNG(img *image.Gray) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(4096)
	if err := pngEncoder.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
