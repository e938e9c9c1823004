package perturb

import (
	"bytes"
	"context"
	"errors"
	"image"
	"testing"

	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
)

func testSolver(t *testing.T) *solver.Solver {
	t.Helper()
	s, err := solver.New(solvertest.Model(t), solver.Options{Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cleanCaptchas are synthetic samples the test model reads correctly.
func cleanCaptchas(t *testing.T, s *solver.Solver, n int) ([]*image.Gray, []string) {
	t.Helper()
	a := solvertest.Arch()
	var imgs []*image.Gray
	var texts []string
	for _, smp := range solvertest.Samples(4*n, 99) {
		g := image.NewGray(image.Rect(0, 0, a.Width, a.Height))
		copy(g.Pix, smp.Pixels)
		p, err := s.Predict([]solver.Image{FromGray(g)})
		if err != nil {
			t.Fatal(err)
		}
		if p[0].Text == smp.Text {
			imgs, texts = append(imgs, g), append(texts, smp.Text)
		}
		if len(imgs) == n {
			return imgs, texts
		}
	}
	t.Fatalf("the test model reads fewer than %d of %d samples", n, 4*n)
	return nil, nil
}

func TestMethodsRaiseLossWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains or attacks a model for several seconds")
	}
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 6)
	a := solvertest.Arch()
	for _, cfg := range []Config{
		// The synthetic captchas are black bars on white, far easier to
		// read than real ones: fooling their solver takes a large budget.
		{Method: FGSM, Epsilon: 64},
		{Method: BIM, Epsilon: 64},
		{Method: MIFGSM, Epsilon: 64},
		{Method: MIFGSM, Epsilon: 64, EOT: []string{"gaussian", "median", "binarize"}},
		{Method: MIFGSM, Epsilon: 64, Smooth: 1},
		{Method: MIFGSM, Epsilon: 64, Shift: 2},
	} {
		fooled := 0
		for i, img := range imgs {
			r, err := Attack([]*solver.Solver{s}, img, texts[i], cfg, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			before, _ := s.Loss([]solver.Image{FromGray(img)}, texts[i:i+1])
			after, _ := s.Loss([]solver.Image{FromGray(r.Image)}, texts[i:i+1])
			if after[0] <= before[0] {
				t.Errorf("%v on %q: loss %.3f → %.3f, want higher", cfg, texts[i], before[0], after[0])
			}
			if r.Linf > cfg.Epsilon {
				t.Errorf("%v: a pixel moved %d levels, budget %d", cfg, r.Linf, cfg.Epsilon)
			}
			for j := range img.Pix {
				if d := int(r.Image.Pix[j]) - int(img.Pix[j]); d > cfg.Epsilon || d < -cfg.Epsilon {
					t.Fatalf("%v: pixel %d moved %d levels", cfg, j, d)
				}
			}
			if r.Image.Bounds() != img.Bounds() || len(r.Image.Pix) != a.Height*a.Width {
				t.Fatalf("%v: image bounds %v", cfg, r.Image.Bounds())
			}
			if r.Fooled {
				fooled++
			}
		}
		t.Logf("%v: fooled the substitute on %d/%d", cfg, fooled, len(imgs))
		if cfg.Method != FGSM && fooled < len(imgs)-1 {
			t.Errorf("%v fooled the substitute on only %d/%d", cfg, fooled, len(imgs))
		}
	}
}

// The synthetic model reads black bars on white with a huge margin: steering
// it to another text takes the largest budget (the real model is steered at
// production budgets in bench/perturb).
func TestTargetedReachesTarget(t *testing.T) {
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 5)
	reached := 0
	for i, img := range imgs {
		r, err := Attack([]*solver.Solver{s}, img, texts[i], Config{Method: BIM, Epsilon: 128, Iterations: 60, Step: 4, Targeted: true}, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Target == texts[i] || len(r.Target) != len(texts[i]) {
			t.Fatalf("target %q for %q", r.Target, texts[i])
		}
		t.Logf("%q → target %q, read %q (SSIM %.2f)", texts[i], r.Target, r.Reading, r.SSIM)
		if r.Reading == r.Target && r.Fooled {
			reached++
		}
	}
	if reached < len(imgs)-1 {
		t.Errorf("targeted attacks reached the target on %d/%d", reached, len(imgs))
	}
}

func TestDeterministicForSeed(t *testing.T) {
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 1)
	cfg := Config{Method: MIFGSM, Epsilon: 8, EOT: []string{"gaussian", "jpeg"}, Shift: 2, Targeted: true}
	a, err := Attack([]*solver.Solver{s}, imgs[0], texts[0], cfg, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Attack([]*solver.Solver{s}, imgs[0], texts[0], cfg, 42)
	c, _ := Attack([]*solver.Solver{s}, imgs[0], texts[0], cfg, 43)
	if !bytes.Equal(a.Image.Pix, b.Image.Pix) || a.Target != b.Target {
		t.Error("the same seed gave different captchas")
	}
	if bytes.Equal(a.Image.Pix, c.Image.Pix) && a.Target == c.Target {
		t.Error("different seeds gave the same captcha")
	}
}

func TestSSIMGuard(t *testing.T) {
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 1)
	free, _ := Attack([]*solver.Solver{s}, imgs[0], texts[0], Config{Method: BIM, Epsilon: 64}, 1)
	guarded, _ := Attack([]*solver.Solver{s}, imgs[0], texts[0], Config{Method: BIM, Epsilon: 64, MinSSIM: 0.8}, 1)
	if free.SSIM >= 0.8 {
		t.Skipf("ε=64 kept SSIM %.2f; the guard has nothing to do", free.SSIM)
	}
	if guarded.SSIM < 0.8 {
		t.Errorf("guarded SSIM %.3f below the 0.8 floor (unguarded %.3f)", guarded.SSIM, free.SSIM)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Method: "pgd", Epsilon: 8},
		{Method: BIM, Epsilon: 0},
		{Method: BIM, Epsilon: 300},
		{Method: BIM, Epsilon: 8, EOT: []string{"sharpen"}},
		{Method: BIM, Epsilon: 8, MinSSIM: 1.5},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
}

// A stopped context stops the attack between iterations.
func TestAttackStopsWithContext(t *testing.T) {
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := AttackContext(ctx, []*solver.Solver{s}, Target{Image: imgs[0], Text: texts[0], Seed: 1}, Config{Method: BIM, Epsilon: 8}); !errors.Is(err, context.Canceled) {
		t.Fatalf("attack under a cancelled context: %v, want context.Canceled", err)
	}
}

// TestBatchMatchesAlone: captchas attacked in lockstep (AttackBatch) get
// what each gets alone — the same draws from the same seeds — up to the
// float rounding of a larger matrix product, which may flip the sign of a
// near-zero gradient element: at most 1% of the pixels may differ.
func TestBatchMatchesAlone(t *testing.T) {
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 3)
	subs := []*solver.Solver{s, testSolver(t)}
	cfg := Config{Method: MIFGSM, Epsilon: 16, Iterations: 4, EOT: []string{"gaussian", "median"}, Shift: 1, Targeted: true}
	seeds := []uint64{7, 8, 9}
	batch, err := AttackBatch(context.Background(), subs, targets(imgs, texts, seeds), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k := range imgs {
		alone, err := Attack(subs, imgs[k], texts[k], cfg, seeds[k])
		if err != nil {
			t.Fatal(err)
		}
		differ := 0
		for i := range alone.Image.Pix {
			if alone.Image.Pix[i] != batch[k].Image.Pix[i] {
				differ++
			}
		}
		if alone.Target != batch[k].Target || differ*100 > len(alone.Image.Pix) {
			t.Errorf("captcha %d: target %q alone, %q in the batch; %d of %d pixels differ", k, alone.Target, batch[k].Target, differ, len(alone.Image.Pix))
		}
		if testing.Verbose() {
			t.Logf("captcha %d: %d of %d pixels differ from alone", k, differ, len(alone.Image.Pix))
		}
	}
	bad := targets(imgs, texts, seeds)
	bad[1].Strokes = make([]uint8, 10)
	if _, err := AttackBatch(context.Background(), subs, bad, cfg); err == nil {
		t.Error("strokes of another size accepted")
	}
}

func targets(imgs []*image.Gray, texts []string, seeds []uint64) []Target {
	out := make([]Target, len(imgs))
	for i := range imgs {
		out[i] = Target{Image: imgs[i], Text: texts[i], Seed: seeds[i]}
	}
	return out
}

// TestStrokeEpsilonKeepsTheStrokes: with a stroke budget the pixels of the
// strokes and around them move by at most that, the rest by up to ε; and
// the background still carries a perturbation larger than the strokes'.
func TestStrokeEpsilonKeepsTheStrokes(t *testing.T) {
	s := testSolver(t)
	imgs, texts := cleanCaptchas(t, s, 2)
	tg := targets(imgs, texts, []uint64{3, 4})
	for k := range tg {
		// The test samples carry no glyph mask: their ink stands in for it.
		tg[k].Strokes = make([]uint8, len(imgs[k].Pix))
		for i, v := range imgs[k].Pix {
			if v < 128 {
				tg[k].Strokes[i] = 255
			}
		}
	}
	cfg := Config{Method: MIFGSM, Epsilon: 32, StrokeEpsilon: 4, Iterations: 4}
	res, err := AttackBatch(context.Background(), []*solver.Solver{s}, tg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		h, w := imgs[k].Rect.Dy(), imgs[k].Rect.Dx()
		near := nearStrokes(tg[k].Strokes, h, w)
		var strokeMax, bgMax int
		for i, v := range r.Image.Pix {
			d := int(v) - int(imgs[k].Pix[i])
			d = max(d, -d)
			if near[i] {
				strokeMax = max(strokeMax, d)
			} else {
				bgMax = max(bgMax, d)
			}
		}
		if strokeMax > 4 || bgMax > 32 || bgMax <= 4 {
			t.Errorf("captcha %d: strokes moved up to %d levels (budget 4), the rest up to %d (budget 32)", k, strokeMax, bgMax)
		}
	}
	if _, err := Attack([]*solver.Solver{s}, imgs[0], texts[0], cfg, 1); err == nil {
		t.Error("a stroke budget was accepted for a captcha without strokes")
	}
	// A stroke budget above ε is one budget: ε everywhere.
	small := Config{Method: MIFGSM, Epsilon: 4, StrokeEpsilon: 8}
	if d := small.WithDefaults(); d.StrokeEpsilon != 0 {
		t.Errorf("ε 4 with strokes 8: stroke budget %d after defaults, want 0 (ε everywhere)", d.StrokeEpsilon)
	}
	res, err = AttackBatch(context.Background(), []*solver.Solver{s}, tg[:1], small)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Linf > 4 {
		t.Errorf("ε 4 with strokes 8: a pixel moved by %d levels", res[0].Linf)
	}
}
