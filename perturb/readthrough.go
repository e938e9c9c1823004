package perturb

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/advcaptcha/advcaptcha/solver"
)

// A substitute trained on preprocessed captchas (`caddy advcaptcha train
// --filter`, recorded in the model as Info["preprocess"], e.g. "binarize
// ×1") reads every captcha through that preprocessing, as the classic
// captcha-breaking pipeline does; the attack does the same for it, so that
// the ensemble's gradient includes what survives the attacker's own
// preprocessing. Through Otsu binarisation, which has no useful gradient,
// it follows a smooth surrogate of the threshold: a sigmoid of width
// surrogateWidth around the image's own Otsu level, so the budget goes to
// the pixels whose change flips their binarised value (stroke edges and
// background near the threshold).

// surrogateWidth is the sigmoid's scale in [0, 1] units (about 10 levels):
// a pixel 20 levels from the threshold still gets a seventh of the weight of
// one on it; within ε = 40 of it, a perturbation can cross it.
const surrogateWidth = 10.0 / 255

// readThrough is a substitute's preprocessing.
type readThrough struct {
	filter Filter
	passes int
}

// readsThrough returns s's preprocessing, nil when it reads captchas as
// they are.
func readsThrough(s *solver.Solver) (*readThrough, error) {
	spec := s.Model().Info["preprocess"]
	if spec == "" {
		return nil, nil
	}
	name, count, _ := strings.Cut(spec, " ×")
	f, ok := FilterByName(name)
	passes, err := strconv.Atoi(count)
	if !ok || err != nil || passes < 1 {
		return nil, fmt.Errorf("perturb: model %s reads through %q, which is not a filter ×passes", s.ModelVersion(), spec)
	}
	return &readThrough{filter: f, passes: passes}, nil
}

// apply returns what the substitute reads of img.
func (p *readThrough) apply(img []float32, h, w int) []float32 {
	for range p.passes {
		img = p.filter.Apply(img, h, w)
	}
	return img
}

// backward maps the gradient at what the substitute read of img to one at
// img: the surrogate's derivative for binarisation (one pass is all a
// threshold does), the filter's own backward otherwise.
func (p *readThrough) backward(grad, img []float32, h, w int) []float32 {
	if p.filter.Name == "binarize" {
		thr := (float64(OtsuThreshold(img)) + 0.5) / 255
		out := make([]float32, len(grad))
		for i, g := range grad {
			z := (float64(img[i]) - thr) / surrogateWidth
			s := 1 / (1 + math.Exp(-z))
			out[i] = g * float32(s*(1-s)/surrogateWidth)
		}
		return out
	}
	for range p.passes {
		grad = p.filter.Backward(grad, h, w)
	}
	return grad
}
