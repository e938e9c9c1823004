package solver

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The unrolled LSTM against the textbook equations computed directly, at
// the sizes the default model uses (256 units, 25 steps, batches past 16).
// gorgonia merges graph nodes whose ops hash alike and hashes slice bounds
// truncated to a byte, so slicing gate columns 256:512 or rows 256:272
// silently reused the node for 0:256 or 0:16: the four gates collapsed into
// one and late steps read early steps' inputs. This pins it.
func TestLSTMMatchesEquations(t *testing.T) {
	a := DefaultArchitecture()
	T, H, F := a.Steps(), a.Hidden, 64
	for _, B := range []int{1, 16, 24} {
		for _, reverse := range []bool{false, true} {
			rng := rand.New(rand.NewPCG(uint64(B), 7))
			randn := func(n int, s float64) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = float32(rng.NormFloat64() * s)
				}
				return v
			}
			seq, wx, wh, b := randn(T*B*F, 1), randn(F*4*H, 0.1), randn(H*4*H, 0.06), randn(4*H, 0.5)
			g := G.NewGraph()
			node := func(name string, data []float32, shape ...int) *G.Node {
				v := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
				return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(v))
			}
			gr := &graph{arch: a, batch: B, dtype: tensor.Float32, g: g}
			outs, err := gr.lstm(node("seq", seq, T*B, F), node("wx", wx, F, 4*H), node("wh", wh, H, 4*H), node("b", b, 1, 4*H), reverse)
			if err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(g)
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			want := referenceLSTM(seq, wx, wh, b, T, B, F, H, reverse)
			var worst float64
			for step := range outs {
				got := outs[step].Value().Data().([]float32)
				for i := range got {
					worst = math.Max(worst, math.Abs(float64(got[i])-want[step][i]))
				}
			}
			if worst > 1e-4 {
				t.Errorf("batch %d reverse %v: outputs differ from the equations by up to %.3g", B, reverse, worst)
			}
		}
	}
}

// referenceLSTM returns h at every step, in step order, (B,H) row-major.
func referenceLSTM(seq, wx, wh, b []float32, T, B, F, H int, reverse bool) [][]float64 {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	h := make([]float64, B*H)
	c := make([]float64, B*H)
	out := make([][]float64, T)
	for k := 0; k < T; k++ {
		t := k
		if reverse {
			t = T - 1 - k
		}
		nh := make([]float64, B*H)
		for bi := 0; bi < B; bi++ {
			z := make([]float64, 4*H)
			for j := range z {
				s := float64(b[j])
				for f := 0; f < F; f++ {
					s += float64(seq[(t*B+bi)*F+f]) * float64(wx[f*4*H+j])
				}
				for u := 0; u < H; u++ {
					s += h[bi*H+u] * float64(wh[u*4*H+j])
				}
				z[j] = s
			}
			for u := 0; u < H; u++ {
				in, forget, cand, o := sig(z[u]), sig(z[H+u]), math.Tanh(z[2*H+u]), sig(z[3*H+u])
				c[bi*H+u] = forget*c[bi*H+u] + in*cand
				nh[bi*H+u] = o * math.Tanh(c[bi*H+u])
			}
		}
		h = nh
		out[t] = nh
	}
	return out
}

// Predictions must not depend on how many images share a graph run.
func TestPredictionsIndependentOfBatch(t *testing.T) {
	m, err := NewModel(DefaultArchitecture(), 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	imgs := make([]Image, 20)
	for i := range imgs {
		imgs[i] = make(Image, m.Arch.Height*m.Arch.Width)
		for j := range imgs[i] {
			imgs[i][j] = rng.Float32()
		}
	}
	texts := make([]string, len(imgs))
	for i := range texts {
		texts[i] = "a2b3"
	}
	one, err := New(m, Options{Workers: 1, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	base, err := one.Loss(imgs, texts)
	if err != nil {
		t.Fatal(err)
	}
	big, err := New(m, Options{Workers: 1, Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	got, err := big.Loss(imgs, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(got[i]-base[i]) > 1e-3*math.Max(1, math.Abs(base[i])) {
			t.Errorf("image %d: loss %.5f in a batch of 20, %.5f alone", i, got[i], base[i])
		}
	}
}
