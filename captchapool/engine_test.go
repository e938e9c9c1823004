package captchapool_test

import (
	"math"
	"testing"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

// TestEngineMakesTheGraphsCaptchas: the solver's engine runs the attack the
// gorgonia graphs ran. One step of the default attack against the shipped
// model gives the same captcha but for the few pixels whose gradient is
// within float rounding of zero (the float32 graphs' gradients are 1–2% off
// the float64 ones, the engine's 1e-5: solver/engine_test.go). Over the default ten steps the two walks
// drift apart — a flipped sign moves a pixel, the binarising EOT draw then
// sees another image, and the momentum carries it on — so the full attack
// is compared by what bench/adversarial measures: the same SSIM and the same
// misreading, seed by seed (bench/adversarial's transfer tables, rerun with
// the engine, are the evidence at scale).
func TestEngineMakesTheGraphsCaptchas(t *testing.T) {
	redistest.SkipShort(t, "attacks the shipped model through gorgonia graphs for seconds")
	m, err := solver.Default()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := solver.New(m, solver.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	graphs, err := solver.New(m, solver.Options{Workers: 1, Graph: true})
	if err != nil {
		t.Fatal(err)
	}
	style := captcha.DefaultStyle()
	seeds := []uint64{11, 12, 13}
	oneStep := perturb.DefaultConfig()
	oneStep.Iterations = 1
	for _, cfg := range []perturb.Config{oneStep, perturb.DefaultConfig()} {
		byEngine := &captchapool.Generator{Style: style, Solvers: []*solver.Solver{engine}, Attack: cfg}
		batch, err := byEngine.GenerateBatch(t.Context(), seeds)
		if err != nil {
			t.Fatal(err)
		}
		byGraphs := &captchapool.Generator{Style: style, Solvers: []*solver.Solver{graphs}, Attack: cfg}
		for i, seed := range seeds {
			alone, err := byGraphs.Generate(seed)
			if err != nil {
				t.Fatal(err)
			}
			differ := pixelsApart(t, alone, batch[i])
			t.Logf("%d step(s), seed %d: %d of %d pixels differ; SSIM %.3f (graphs) / %.3f (engine); read %q / %q (truth %q)",
				cfg.Iterations, seed, differ, 3000, alone.SSIM, batch[i].SSIM, alone.Reading, batch[i].Reading, alone.Text)
			// 5% of the 3,000 pixels: 0–46 were seen on the unshaded style at
			// ε 40, 0–129 on the shaded style at ε 48 with strokes 8, 0–1 with
			// strokes 2 (the default since 2026-12-08).
			// Why the shaded captchas have more gradient elements within
			// rounding of zero is not established; the ten-step comparison
			// below (same SSIM, same misreading) is the one that matters.
			if cfg.Iterations == 1 && differ > 150 {
				t.Errorf("one step, seed %d: the engine's captcha differs from the graphs' in %d pixels", seed, differ)
			}
			if math.Abs(alone.SSIM-batch[i].SSIM) > 0.03 || (cfg.Iterations > 1 && alone.Fooled != batch[i].Fooled) {
				t.Errorf("%d steps, seed %d: SSIM %.3f / %.3f, fooled %v / %v", cfg.Iterations, seed, alone.SSIM, batch[i].SSIM, alone.Fooled, batch[i].Fooled)
			}
		}
	}
}

// pixelsApart counts the pixels in which two entries' images differ.
func pixelsApart(t *testing.T, a, b *captchapool.Entry) int {
	t.Helper()
	x, err := a.Sample()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.Sample()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for j := range x.Pixels {
		if x.Pixels[j] != y.Pixels[j] {
			n++
		}
	}
	return n
}
