package perturb

import (
	"context"
	"testing"

	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
)

// TestReadThroughBinarize: a substitute trained on binarised captchas is
// attacked through binarisation, whose surrogate gradient goes to the pixels
// near the image's Otsu threshold and hardly anywhere else; a model naming
// an unknown preprocessing is refused.
func TestReadThroughBinarize(t *testing.T) {
	const h, w = 2, 4
	img := []float32{0.1, 0.2, 0.3, 0.45, 0.6, 0.7, 0.8, 0.9}
	thr := (float32(OtsuThreshold(img)) + 0.5) / 255
	near, far := 0, 0
	for i, v := range img {
		if abs32(v-thr) < abs32(img[near]-thr) {
			near = i
		}
		if abs32(v-thr) > abs32(img[far]-thr) {
			far = i
		}
	}
	p := &readThrough{filter: binarizeFilter(), passes: 1}
	grad := []float32{1, 1, 1, 1, 1, 1, 1, 1}
	g := p.backward(grad, img, h, w)
	if g[near] < 100*g[far] {
		t.Fatalf("surrogate gradient %v (threshold %.3f): want pixel %d, nearest the threshold, to get far more than pixel %d", g, thr, near, far)
	}
	bin := p.apply(img, h, w)
	for i, v := range bin {
		if v != 0 && v != 1 {
			t.Fatalf("read through binarize: %v is not binary at %d", bin, i)
		}
	}

	m := solvertest.Model(t).Clone()
	m.Info = map[string]string{"preprocess": "sharpen ×1"}
	s, err := solver.New(m, solver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	imgs, texts := cleanCaptchas(t, testSolver(t), 1)
	if _, err := AttackBatch(context.Background(), []*solver.Solver{s}, targets(imgs, texts, []uint64{1}), Config{Method: FGSM, Epsilon: 8}); err == nil {
		t.Fatal("a substitute reading through an unknown filter was attacked")
	}
	m.Info["preprocess"] = "binarize ×1"
	if s, err = solver.New(m, solver.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := AttackBatch(context.Background(), []*solver.Solver{testSolver(t), s}, targets(imgs, texts, []uint64{1}), Config{Method: MIFGSM, Epsilon: 8, Iterations: 2}); err != nil {
		t.Fatalf("an ensemble with a binarising substitute: %v", err)
	}
}

// binarizeFilter is the binarize filter.
func binarizeFilter() Filter {
	f, _ := FilterByName("binarize")
	return f
}

func abs32(v float32) float32 { return max(v, -v) }
