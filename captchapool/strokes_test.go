package captchapool_test

import (
	"testing"

	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/solver"
)

// TestGeneratorKeepsTheStrokeBudget: the generator hands the renderer's
// glyph coverage to the attack, so on a served captcha the glyphs and the
// pixel around them move by at most the stroke budget while the rest
// carries up to ε.
func TestGeneratorKeepsTheStrokeBudget(t *testing.T) {
	sols, err := solver.NewEach(smallModels(t, 1, 5), solver.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	style := defaultStyle(t)
	attack := quickAttack()
	attack.Epsilon, attack.StrokeEpsilon = 40, 4
	g := &captchapool.Generator{Style: style, Solvers: sols, Attack: attack}
	seeds := []uint64{21, 22}
	entries, err := g.GenerateBatch(t.Context(), seeds)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		c, err := style.Generate(seeds[i])
		if err != nil {
			t.Fatal(err)
		}
		served, err := e.Sample()
		if err != nil {
			t.Fatal(err)
		}
		h, w := style.Height, style.Width
		var strokeMax, restMax int
		for y := range h {
			for x := range w {
				near := false
				for yy := max(y-1, 0); yy <= min(y+1, h-1) && !near; yy++ {
					for xx := max(x-1, 0); xx <= min(x+1, w-1); xx++ {
						if c.Glyphs.Pix[yy*w+xx] > 0 {
							near = true
							break
						}
					}
				}
				d := int(served.Pixels[y*w+x]) - int(c.Image.Pix[y*w+x])
				d = max(d, -d)
				if near {
					strokeMax = max(strokeMax, d)
				} else {
					restMax = max(restMax, d)
				}
			}
		}
		if strokeMax > 4 || restMax <= 4 || restMax > 40 {
			t.Errorf("seed %d: strokes moved up to %d levels (budget 4), the rest up to %d (budget 40)", seeds[i], strokeMax, restMax)
		}
	}
}
