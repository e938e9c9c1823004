package solver

import (
	"fmt"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type mode int

const (
	// modeInfer computes log-probabilities only.
	modeInfer mode = iota
	// modeGradient adds the CTC loss and its gradient with respect to the
	// input pixels, with BatchNorm in inference mode.
	modeGradient
	// modeTrain adds the CTC loss and its gradients with respect to the
	// trainable weights, with BatchNorm on batch statistics.
	modeTrain
)

// graph is one compiled CRNN for a fixed batch size and mode. It is not safe
// for concurrent use; a Solver hands each goroutine its own.
type graph struct {
	arch  Architecture
	mode  mode
	batch int
	dtype tensor.Dtype

	g        *G.ExprGraph
	vm       G.VM
	x        *G.Node   // (B,1,H,W), pixels in [0,1]
	params   []*G.Node // in specs() order
	logProbs *G.Node   // (T,B,K)
	targets  *G.Node   // (B,T) class indices, padded
	inLens   *G.Node   // (B), always T: the CTC gradient is NaN past an input's length
	tgtLens  *G.Node   // (B)
	cost     *G.Node   // summed CTC loss
	// distillCost, in a training graph built to distil, is the summed
	// cross-entropy of the model's outputs against a teacher's
	// probabilities (T,B,K) bound in teacherVal, already weighted (zero
	// rows leave their sample to CTC alone): the gradients are of both
	// costs.
	distillCost *G.Node
	grads       G.Nodes // d cost / d x, or / d trainable params
	bns         []*bnLeakyOp

	// Bound values, reused between runs.
	xVal, targetsVal, tgtLensVal, teacherVal *tensor.Dense
	paramVals                                []*tensor.Dense
}

// buildMu serialises graph construction: gorgonia v0.9.18 numbers the
// groups of new nodes (conv, pooling) from an unguarded global counter, a data
// race when two goroutines build graphs at once. Running graphs is safe.
var buildMu sync.Mutex

func buildGraph(arch Architecture, m mode, batch int, dtype tensor.Dtype) (*graph, error) {
	return buildGraphDistilling(arch, m, batch, dtype, false)
}

// buildGraphDistilling is buildGraph that, for a training graph and with
// distill set, adds the teacher input and its term to the cost.
func buildGraphDistilling(arch Architecture, m mode, batch int, dtype tensor.Dtype, distill bool) (*graph, error) {
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	gr := &graph{arch: arch, mode: m, batch: batch, dtype: dtype, g: G.NewGraph()}
	if distill && m == modeTrain {
		gr.teacherVal = tensor.New(tensor.Of(dtype), tensor.WithShape(arch.Steps(), batch, arch.Classes()))
	}
	if err := gr.build(); err != nil {
		return nil, fmt.Errorf("solver: building the %v graph for batch %d: %w", arch, batch, err)
	}
	return gr, nil
}

func (gr *graph) build() error {
	a, B, g := gr.arch, gr.batch, gr.g
	gr.xVal = tensor.New(tensor.Of(gr.dtype), tensor.WithShape(B, 1, a.Height, a.Width))
	gr.x = G.NewTensor(g, gr.dtype, 4, G.WithShape(B, 1, a.Height, a.Width), G.WithName("x"), G.WithValue(gr.xVal))
	for _, s := range a.specs() {
		v := tensor.New(tensor.Of(gr.dtype), tensor.WithShape(s.Shape...))
		n := G.NewTensor(g, gr.dtype, len(s.Shape), G.WithShape(s.Shape...), G.WithName(s.Name), G.WithValue(v))
		gr.params = append(gr.params, n)
		gr.paramVals = append(gr.paramVals, v)
	}

	// Convolution blocks.
	h, p := gr.x, 0
	for _, b := range a.Conv {
		conv, err := G.Conv2d(h, gr.params[p], tensor.Shape{3, 3}, []int{1, 1}, []int{1, 1}, []int{1, 1})
		if err != nil {
			return err
		}
		act, op, err := bnLeaky(conv, gr.params[p+1], gr.params[p+2], gr.params[p+3], gr.params[p+4],
			gr.mode == modeTrain, a.BNEpsilon, a.LeakySlope)
		if err != nil {
			return err
		}
		gr.bns = append(gr.bns, op)
		h = act
		if b.PoolH > 1 || b.PoolW > 1 {
			if h, err = G.MaxPool2D(h, tensor.Shape{b.PoolH, b.PoolW}, []int{0, 0}, []int{b.PoolH, b.PoolW}); err != nil {
				return err
			}
		}
		p += 5
	}

	// (B,C,H,W) → one row per (step, batch): (T·B, C·H).
	c, fh, T := a.featureShape()
	seq, err := G.Transpose(h, 3, 0, 1, 2)
	if err != nil {
		return err
	}
	if seq, err = G.Reshape(seq, tensor.Shape{T * B, c * fh}); err != nil {
		return err
	}

	for l := 0; l < a.Layers; l++ {
		var outs [][]*G.Node // per direction, per step: (B,H)
		for d := range a.directions() {
			o, err := gr.lstm(seq, gr.params[p], gr.params[p+1], gr.params[p+2], d == 1)
			if err != nil {
				return fmt.Errorf("lstm %d: %w", l, err)
			}
			outs = append(outs, o)
			p += 3
		}
		steps := make([]*G.Node, T)
		for t := 0; t < T; t++ {
			if len(outs) == 1 {
				steps[t] = outs[0][t]
			} else if steps[t], err = G.Concat(1, outs[0][t], outs[1][t]); err != nil {
				return err
			}
		}
		if seq, err = G.Concat(0, steps...); err != nil {
			return err
		}
	}

	logits, err := G.Mul(seq, gr.params[p])
	if err != nil {
		return err
	}
	if logits, err = G.BroadcastAdd(logits, gr.params[p+1], nil, []byte{0}); err != nil {
		return err
	}
	lp, err := G.LogSoftMax(logits, 1)
	if err != nil {
		return err
	}
	if gr.logProbs, err = G.Reshape(lp, tensor.Shape{T, B, a.Classes()}); err != nil {
		return err
	}

	if gr.mode != modeInfer {
		gr.targetsVal = tensor.New(tensor.Of(tensor.Int), tensor.WithShape(B, T))
		gr.tgtLensVal = tensor.New(tensor.Of(tensor.Int), tensor.WithShape(B))
		inLens := tensor.New(tensor.Of(tensor.Int), tensor.WithShape(B))
		for i := range inLens.Ints() {
			inLens.Ints()[i] = T
		}
		gr.targets = G.NewTensor(g, tensor.Int, 2, G.WithShape(B, T), G.WithName("targets"), G.WithValue(gr.targetsVal))
		gr.inLens = G.NewTensor(g, tensor.Int, 1, G.WithShape(B), G.WithName("input_lengths"), G.WithValue(inLens))
		gr.tgtLens = G.NewTensor(g, tensor.Int, 1, G.WithShape(B), G.WithName("target_lengths"), G.WithValue(gr.tgtLensVal))
		if gr.cost, err = G.CTCLoss(gr.logProbs, gr.targets, gr.inLens, gr.tgtLens, G.ReductionSum); err != nil {
			return err
		}
		outputs := G.Nodes{gr.cost}
		if gr.teacherVal != nil {
			teacher := G.NewTensor(g, gr.dtype, 3, G.WithShape(gr.teacherVal.Shape()...), G.WithName("teacher"), G.WithValue(gr.teacherVal))
			agree, err := G.HadamardProd(teacher, gr.logProbs)
			if err != nil {
				return err
			}
			if agree, err = G.Sum(agree); err != nil {
				return err
			}
			if gr.distillCost, err = G.Neg(agree); err != nil {
				return err
			}
			outputs = append(outputs, gr.distillCost)
		}
		wrt := []*G.Node{gr.x}
		if gr.mode == modeTrain {
			wrt = wrt[:0]
			for i, s := range a.specs() {
				if s.Trainable {
					wrt = append(wrt, gr.params[i])
				}
			}
		}
		// Backpropagate from each term rather than from their sum:
		// gorgonia v0.9.18 cannot add CTC's value (a 0-dimensional tensor)
		// to a scalar, and its CTC gradient wants a scalar seed.
		one := G.NewConstant(1.0)
		if gr.dtype == tensor.Float32 {
			one = G.NewConstant(float32(1))
		}
		one = g.AddNode(one)
		seeds := make(G.Nodes, len(outputs))
		for i := range seeds {
			seeds[i] = one
		}
		if gr.grads, err = G.Backpropagate(outputs, seeds, G.Nodes(wrt)); err != nil {
			return err
		}
	}
	gr.vm = G.NewTapeMachine(g)
	return nil
}

// lstm unrolls one LSTM layer over the sequence (T·B, in) and returns its
// output at every step, in step order whatever the direction. Gates are
// ordered i, f, g, o as in PyTorch.
func (gr *graph) lstm(seq, wx, wh, bias *G.Node, reverse bool) ([]*G.Node, error) {
	B, H, T := gr.batch, gr.arch.Hidden, gr.arch.Steps()
	// The input projection of all steps is one matrix product.
	xp, err := G.Mul(seq, wx)
	if err != nil {
		return nil, err
	}
	if xp, err = G.BroadcastAdd(xp, bias, nil, []byte{0}); err != nil {
		return nil, err
	}
	// Steps and gates are taken with single-index slices of (T,B,4H) and
	// (B,4,H). A graph merges nodes whose ops hash alike, and gorgonia
	// v0.9.18 hashes a slice's bounds truncated to one byte: ranges such
	// as rows 0:16 and 256:272, or the gate columns 0:256 and 256:512,
	// would become one node. Single indices below 256 hash apart
	// (Architecture.Validate keeps T below 256).
	if xp, err = G.Reshape(xp, tensor.Shape{T, B, 4 * H}); err != nil {
		return nil, err
	}
	outs := make([]*G.Node, T)
	var hPrev, cPrev *G.Node
	for k := 0; k < T; k++ {
		t := k
		if reverse {
			t = T - 1 - k
		}
		gates, err := G.Slice(xp, G.S(t))
		if err != nil {
			return nil, err
		}
		// Slicing drops a dimension, two at batch 1: restore them.
		if gates, err = G.Reshape(gates, tensor.Shape{B, 4 * H}); err != nil {
			return nil, err
		}
		if hPrev != nil {
			rec, err := G.Mul(hPrev, wh)
			if err != nil {
				return nil, err
			}
			if gates, err = G.Add(gates, rec); err != nil {
				return nil, err
			}
		}
		byGate, err := G.Reshape(gates, tensor.Shape{B, 4, H})
		if err != nil {
			return nil, err
		}
		gate := func(i int, f func(*G.Node) (*G.Node, error)) (*G.Node, error) {
			s, err := G.Slice(byGate, nil, G.S(i))
			if err != nil {
				return nil, err
			}
			if s, err = G.Reshape(s, tensor.Shape{B, H}); err != nil {
				return nil, err
			}
			return f(s)
		}
		in, err := gate(0, G.Sigmoid)
		if err != nil {
			return nil, err
		}
		cand, err := gate(2, G.Tanh)
		if err != nil {
			return nil, err
		}
		out, err := gate(3, G.Sigmoid)
		if err != nil {
			return nil, err
		}
		c, err := G.HadamardProd(in, cand)
		if err != nil {
			return nil, err
		}
		if cPrev != nil {
			forget, err := gate(1, G.Sigmoid)
			if err != nil {
				return nil, err
			}
			kept, err := G.HadamardProd(forget, cPrev)
			if err != nil {
				return nil, err
			}
			if c, err = G.Add(kept, c); err != nil {
				return nil, err
			}
		}
		tc, err := G.Tanh(c)
		if err != nil {
			return nil, err
		}
		h, err := G.HadamardProd(out, tc)
		if err != nil {
			return nil, err
		}
		outs[t] = h
		hPrev, cPrev = h, c
	}
	return outs, nil
}

// setWeights copies a model's weights into the graph's bound parameter values.
func (gr *graph) setWeights(m *Model) {
	for i, t := range m.tensors {
		switch gr.dtype {
		case tensor.Float32:
			copy(gr.paramVals[i].Float32s(), t)
		case tensor.Float64:
			d := gr.paramVals[i].Float64s()
			for j, v := range t {
				d[j] = float64(v)
			}
		}
	}
}

// setInput copies B images (H·W pixels each, values 0–1) into the input.
func (gr *graph) setInput(images [][]float32) {
	n := gr.arch.Height * gr.arch.Width
	switch gr.dtype {
	case tensor.Float32:
		d := gr.xVal.Float32s()
		for b, img := range images {
			copy(d[b*n:(b+1)*n], img)
		}
	case tensor.Float64:
		d := gr.xVal.Float64s()
		for b, img := range images {
			for j, v := range img {
				d[b*n+j] = float64(v)
			}
		}
	}
}

// setTargets encodes texts as class indices; it fails on a character outside
// the charset or a text CTC cannot align to the sequence.
func (gr *graph) setTargets(texts []string) error {
	T := gr.arch.Steps()
	tg, ln := gr.targetsVal.Ints(), gr.tgtLensVal.Ints()
	for i := range tg {
		tg[i] = 0
	}
	for b, text := range texts {
		classes, err := encode(gr.arch, text)
		if err != nil {
			return err
		}
		if need := ctcMinSteps(classes); need > T {
			return fmt.Errorf("text %q needs %d steps, the model has %d", text, need, T)
		}
		copy(tg[b*T:], classes)
		ln[b] = len(classes)
	}
	return nil
}

// run executes the graph once; the caller reads node values before the next run.
func (gr *graph) run() error {
	gr.vm.Reset()
	return gr.vm.RunAll()
}

func values32(n *G.Node) []float32 {
	switch d := n.Value().Data().(type) {
	case float32:
		return []float32{d}
	case float64:
		return []float32{float32(d)}
	case []float32:
		return d
	case []float64:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out
	}
	return nil
}
