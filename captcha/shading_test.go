package captcha

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
)

// separability is the best balanced accuracy any single grey-level
// threshold reaches at telling the text's pixels (from the glyph mask) from
// the background's.
func separability(c *Captcha) float64 {
	var text, bg [256]float64
	var nt, nb float64
	for i, p := range c.Image.Pix {
		switch a := c.Glyphs.Pix[i]; {
		case a > 200:
			text[p]++
			nt++
		case a == 0:
			bg[p]++
			nb++
		}
	}
	if nt == 0 || nb == 0 {
		return 1
	}
	best, tBelow, bBelow := 0.0, 0.0, 0.0
	for t := range 256 {
		tBelow += text[t]
		bBelow += bg[t]
		best = max(best, (tBelow/nt+(nb-bBelow)/nb)/2)
	}
	return best
}

// localContrasts appends, for each text pixel with enough background
// around it, how much lighter the median background within 4 pixels is.
func localContrasts(dst []int, c *Captcha) []int {
	w, h := c.Image.Rect.Dx(), c.Image.Rect.Dy()
	var bg []int
	for y := range h {
		for x := range w {
			if c.Glyphs.Pix[y*w+x] <= 200 {
				continue
			}
			bg = bg[:0]
			for yy := max(y-4, 0); yy < min(y+5, h); yy++ {
				for xx := max(x-4, 0); xx < min(x+5, w); xx++ {
					if c.Glyphs.Pix[yy*w+xx] == 0 {
						bg = append(bg, int(c.Image.Pix[yy*w+xx]))
					}
				}
			}
			if len(bg) < 10 {
				continue
			}
			slices.Sort(bg)
			dst = append(dst, bg[len(bg)/2]-int(c.Image.Pix[y*w+x]))
		}
	}
	return dst
}

// TestShadingDefeatsOneThreshold: with full shading no single grey level
// separates text from background any more, while the text keeps a
// readable contrast against the background around it. Measured without the
// noise arcs and dots, which are ink outside the glyph mask.
func TestShadingDefeatsOneThreshold(t *testing.T) {
	const n = 60
	for _, shading := range []float64{-1, 1} {
		s := validStyle(t)
		s.Shading = shading
		s.Arcs, s.Dots = -1, -1
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		var sep float64
		var contrasts []int
		for seed := range uint64(n) {
			c, err := s.Generate(9000 + seed)
			if err != nil {
				t.Fatal(err)
			}
			sep += separability(c) / n
			contrasts = localContrasts(contrasts, c)
		}
		slices.Sort(contrasts)
		contrast := contrasts[len(contrasts)/20]
		t.Logf("shading %v: best single threshold %.3f balanced accuracy; local contrast of the text: 5th percentile %d levels, median %d", shading, sep, contrast, contrasts[len(contrasts)/2])
		switch {
		case shading < 0 && sep < 0.99:
			t.Errorf("unshaded: one threshold separates only %.3f", sep)
		case shading == 1 && sep > 0.93:
			t.Errorf("shaded: one threshold still separates %.3f", sep)
		}
		if contrast < 80 {
			t.Errorf("shading %v: 5%% of the text within %d levels of the background around it", shading, contrast)
		}
	}
}

// TestShadingKeepsTheText: the renderer draws the shading's randomness
// after everything else, so a shaded captcha has the text and glyph
// coverage of the unshaded one.
func TestShadingKeepsTheText(t *testing.T) {
	s := validStyle(t)
	s.Shading = -1
	shaded := validStyle(t)
	for seed := range uint64(10) {
		a, _ := s.Generate(seed)
		b, _ := shaded.Generate(seed)
		if a.Text != b.Text || !slices.Equal(a.Glyphs.Pix, b.Glyphs.Pix) {
			t.Fatalf("seed %d: shading changed the text or its glyphs", seed)
		}
	}
}

// TestUnshadedIsRendererOne: shading -1 draws renderer captcha/1's images
// bit for bit (the hashes are of the PNGs that renderer, at commit 990f636,
// wrote for these seeds), so the unshaded datasets of the old model's
// training can be written again.
func TestUnshadedIsRendererOne(t *testing.T) {
	s := validStyle(t)
	s.Shading = -1
	for seed, want := range map[uint64]string{
		1:       "1a3e84d381f7930400722a0152aa76060ff1e9e3a2807b462a861695a59c88e4",
		2:       "71b3b270e130d4cf212b85f22a0442fb4b9ca563edb47e75415705ceb0c44ef9",
		3:       "51963ebcd27776cae08e0b6e39c4666cf4a3036bff605d6d3a8b30df481b0d46",
		7000000: "164ebfc500fda77d119b3b66ed8419a2a7ca14dd304a87068f0580700fbb02b6",
	} {
		c, err := s.Generate(seed)
		if err != nil {
			t.Fatal(err)
		}
		b, err := EncodePNG(c.Image)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
			t.Errorf("seed %d: unshaded PNG %x, renderer captcha/1 wrote %s", seed, sum, want)
		}
	}
}
