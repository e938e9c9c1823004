package solver

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// tensorSpec names one weight tensor of a model.
type tensorSpec struct {
	Name  string
	Shape []int
	// Trainable is false for BatchNorm's running statistics, which the trainer
	// updates from batch statistics instead of gradients.
	Trainable bool
}

func (s tensorSpec) size() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// specs lists the model's tensors in their fixed order: the order of the model
// file and of the graph's parameter nodes.
func (a Architecture) specs() []tensorSpec {
	var out []tensorSpec
	in := 1
	for i, b := range a.Conv {
		f := b.Filters
		out = append(out,
			tensorSpec{fmt.Sprintf("conv%d.w", i), []int{f, in, 3, 3}, true},
			tensorSpec{fmt.Sprintf("bn%d.gamma", i), []int{f}, true},
			tensorSpec{fmt.Sprintf("bn%d.beta", i), []int{f}, true},
			tensorSpec{fmt.Sprintf("bn%d.mean", i), []int{f}, false},
			tensorSpec{fmt.Sprintf("bn%d.var", i), []int{f}, false},
		)
		in = f
	}
	c, h, _ := a.featureShape()
	in = c * h
	for l := 0; l < a.Layers; l++ {
		for _, dir := range a.directions() {
			p := fmt.Sprintf("lstm%d%s.", l, dir)
			out = append(out,
				tensorSpec{p + "wx", []int{in, 4 * a.Hidden}, true},
				tensorSpec{p + "wh", []int{a.Hidden, 4 * a.Hidden}, true},
				tensorSpec{p + "b", []int{1, 4 * a.Hidden}, true},
			)
		}
		in = a.Hidden * len(a.directions())
	}
	out = append(out,
		tensorSpec{"fc.w", []int{in, a.Classes()}, true},
		tensorSpec{"fc.b", []int{1, a.Classes()}, true},
	)
	return out
}

func (a Architecture) directions() []string {
	if a.Bidirectional {
		return []string{"f", "b"}
	}
	return []string{"f"}
}

// Model is an immutable CRNN: its architecture, its weights and where they came
// from. Share it freely; training produces new Models.
type Model struct {
	Arch Architecture
	// Info describes how the weights were made (training data, command, epochs,
	// accuracy); it is stored in the model file for people, not used by code.
	Info    map[string]string
	tensors [][]float32
}

// NewModel returns a model with freshly initialised weights, reproducible for
// a seed: He-normal convolutions, BatchNorm as identity, LSTMs uniform in
// ±1/√hidden with the forget-gate bias at 1, and a Glorot-uniform output layer.
func NewModel(arch Architecture, seed uint64) (*Model, error) {
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	m := &Model{Arch: arch, Info: map[string]string{}}
	for _, s := range arch.specs() {
		t := make([]float32, s.size())
		switch {
		case len(s.Shape) == 4: // convolution
			std := math.Sqrt(2 / float64(s.Shape[1]*9))
			for i := range t {
				t[i] = float32(rng.NormFloat64() * std)
			}
		case hasSuffix(s.Name, ".gamma"), hasSuffix(s.Name, ".var"):
			fill(t, 1)
		case hasSuffix(s.Name, ".beta"), hasSuffix(s.Name, ".mean"):
		case s.Name == "fc.w":
			lim := math.Sqrt(6 / float64(s.Shape[0]+s.Shape[1]))
			uniform(rng, t, lim)
		case s.Name == "fc.b":
		case hasSuffix(s.Name, ".b"): // LSTM bias: gates i, f, g, o
			fill(t[arch.Hidden:2*arch.Hidden], 1)
		default: // LSTM weights
			uniform(rng, t, 1/math.Sqrt(float64(arch.Hidden)))
		}
		m.tensors = append(m.tensors, t)
	}
	return m, nil
}

// Clone returns a deep copy: for a trainer to update, or to keep a snapshot.
func (m *Model) Clone() *Model {
	c := &Model{Arch: m.Arch, Info: map[string]string{}}
	for k, v := range m.Info {
		c.Info[k] = v
	}
	for _, t := range m.tensors {
		c.tensors = append(c.tensors, append([]float32(nil), t...))
	}
	return c
}

// Params is the number of weights, running statistics included.
func (m *Model) Params() int {
	n := 0
	for _, t := range m.tensors {
		n += len(t)
	}
	return n
}

func fill(t []float32, v float32) {
	for i := range t {
		t[i] = v
	}
}

func uniform(rng *rand.Rand, t []float32, lim float64) {
	for i := range t {
		t[i] = float32((rng.Float64()*2 - 1) * lim)
	}
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }
