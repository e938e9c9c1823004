package captcha

import (
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
// after everything else, so a shaded captcha has the text and glyphs of
// the unshaded one (shading -1, renderer captcha/1's pixels).
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
