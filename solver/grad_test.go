package solver

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

func tinyArch() Architecture {
	return Architecture{
		Height: 8, Width: 16, Charset: "abc",
		Conv:   []ConvBlock{{Filters: 3, PoolH: 2, PoolW: 2}, {Filters: 4, PoolH: 2, PoolW: 1}},
		Hidden: 5, Layers: 2, LeakySlope: 0.1, BNEpsilon: 1e-5,
	}
}

// costAt runs a float64 graph and returns the summed CTC loss.
func costAt(t *testing.T, g *graph, m *Model, imgs [][]float32, texts []string) float64 {
	t.Helper()
	g.setWeights(m)
	g.setInput(imgs)
	if err := g.setTargets(texts); err != nil {
		t.Fatal(err)
	}
	if err := g.run(); err != nil {
		t.Fatal(err)
	}
	return g.cost.Value().Data().(float64)
}

// randomised model so that BatchNorm's running statistics are not the identity.
func perturbedModel(t *testing.T, a Architecture, seed uint64) *Model {
	m, err := NewModel(a, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	for i, s := range a.specs() {
		for j := range m.tensors[i] {
			switch {
			case hasSuffix(s.Name, ".var"):
				m.tensors[i][j] = float32(0.5 + rng.Float64())
			case hasSuffix(s.Name, ".mean"), hasSuffix(s.Name, ".beta"):
				m.tensors[i][j] = float32(rng.NormFloat64() * 0.3)
			case hasSuffix(s.Name, ".gamma"):
				m.tensors[i][j] = float32(0.5 + rng.Float64())
			}
		}
	}
	return m
}

// Every gradient the solver uses — input pixels in inference mode, weights in
// training mode — against central finite differences of the loss, in float64.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, bidi := range []bool{false, true} {
		a := tinyArch()
		a.Bidirectional = bidi
		m := perturbedModel(t, a, 3)
		imgs := [][]float32{}
		for _, img := range randomImages(2, a.Height, a.Width, 4) {
			imgs = append(imgs, img)
		}
		texts := []string{"ab", "cca"}

		// Input gradient, BatchNorm on running statistics.
		g, err := buildGraph(a, modeGradient, 2, tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		costAt(t, g, m, imgs, texts)
		analytic := append([]float64(nil), g.grads[0].Value().Data().([]float64)...)
		checked := 0
		for _, p := range []int{0, 5, 17, 40, 77, 127, 128 + 3, 128 + 64, 255} {
			b, i := p/(a.Height*a.Width), p%(a.Height*a.Width)
			orig := imgs[b][i]
			const h = 1e-3
			imgs[b][i] = orig + h
			up := costAt(t, g, m, imgs, texts)
			imgs[b][i] = orig - h
			down := costAt(t, g, m, imgs, texts)
			imgs[b][i] = orig
			num := (up - down) / (2 * h)
			// float32 pixels limit the precision of the difference quotient.
			if math.Abs(num-analytic[p]) > 2e-3+2e-2*math.Abs(num) {
				t.Errorf("bidi=%v d loss/d pixel %d: analytic %.6f, numeric %.6f", bidi, p, analytic[p], num)
			}
			checked++
		}

		// Weight gradients with BatchNorm on batch statistics.
		tg, err := buildGraph(a, modeTrain, 2, tensor.Float64)
		if err != nil {
			t.Fatal(err)
		}
		costAt(t, tg, m, imgs, texts)
		k := 0
		for i, s := range a.specs() {
			if !s.Trainable {
				continue
			}
			grad := append([]float64(nil), tg.grads[k].Value().Data().([]float64)...)
			k++
			for _, j := range []int{0, len(m.tensors[i]) / 2, len(m.tensors[i]) - 1} {
				orig := m.tensors[i][j]
				const h = 1e-5 // small enough to stay clear of pooling and LeakyReLU kinks
				m.tensors[i][j] = orig + h
				up := costAt(t, tg, m, imgs, texts)
				m.tensors[i][j] = orig - h
				down := costAt(t, tg, m, imgs, texts)
				m.tensors[i][j] = orig
				// The step is exact in float32, so use what was really added.
				num := (up - down) / float64((orig+h)-(orig-h))
				if math.Abs(num-grad[j]) > 2e-3+3e-2*math.Abs(num) {
					t.Errorf("bidi=%v d loss/d %s[%d]: analytic %.6f, numeric %.6f", bidi, s.Name, j, grad[j], num)
				}
				checked++
			}
		}
		if checked < 30 {
			t.Fatalf("checked only %d gradients", checked)
		}
	}
}

// The distillation term: a graph built to distil has, next to the CTC
// loss, −Σ teacher·log-probabilities, and its weight gradients are those of
// their sum (checked against finite differences), with a sample the
// teacher leaves out (zero rows).
func TestDistillationGradientsMatchFiniteDifferences(t *testing.T) {
	a := tinyArch()
	m := perturbedModel(t, a, 5)
	imgs := randomImages(2, a.Height, a.Width, 6)
	in := [][]float32{imgs[0], imgs[1]}
	texts := []string{"ab", "cca"}
	plain, err := buildGraph(a, modeTrain, 2, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	ctc := costAt(t, plain, m, in, texts)
	lp := append([]float64(nil), plain.logProbs.Value().Data().([]float64)...)

	g, err := buildGraphDistilling(a, modeTrain, 2, tensor.Float64, true)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	tv := g.teacherVal.Float64s()
	K := a.Classes()
	want := ctc
	for row := range len(tv) / K {
		if row%2 == 1 {
			continue // the second sample is left to CTC alone
		}
		var sum float64
		for k := range K {
			tv[row*K+k] = rng.Float64()
			sum += tv[row*K+k]
		}
		for k := range K {
			tv[row*K+k] *= 0.7 / sum // probabilities, weighted 0.7
			want -= tv[row*K+k] * lp[row*K+k]
		}
	}
	distilCostAt := func() float64 {
		return costAt(t, g, m, in, texts) + g.distillCost.Value().Data().(float64)
	}
	if got := distilCostAt(); math.Abs(got-want) > 1e-9*math.Abs(want) {
		t.Fatalf("cost %.9f, want CTC %.9f minus the teacher term = %.9f", got, ctc, want)
	}
	if want-ctc < 0.1 {
		t.Fatalf("the teacher term adds only %.4f", want-ctc)
	}
	k, checked := 0, 0
	for i, s := range a.specs() {
		if !s.Trainable {
			continue
		}
		grad := append([]float64(nil), g.grads[k].Value().Data().([]float64)...)
		k++
		for _, j := range []int{0, len(m.tensors[i]) / 2, len(m.tensors[i]) - 1} {
			orig := m.tensors[i][j]
			const h = 1e-5
			m.tensors[i][j] = orig + h
			up := distilCostAt()
			m.tensors[i][j] = orig - h
			down := distilCostAt()
			m.tensors[i][j] = orig
			num := (up - down) / float64((orig+h)-(orig-h))
			if math.Abs(num-grad[j]) > 2e-3+3e-2*math.Abs(num) {
				t.Errorf("d cost/d %s[%d]: analytic %.6f, numeric %.6f", s.Name, j, grad[j], num)
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("checked only %d gradients", checked)
	}
}
