package solver

import (
	"fmt"
	"hash"
	"math"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// bnLeakyOp is BatchNorm followed by LeakyReLU over NCHW input, as one op.
//
// It exists because gorgonia v0.9.18's own BatchNorm is wrong under the
// TapeMachine (its prealloc path assumes the output already holds the input and
// its inference-mode backward uses the batch variance); writing the two steps as
// one op also saves the five elementwise ops gorgonia's LeakyRelu is built from.
//
// Inputs: x (N,C,H,W), gamma (C), beta (C), running mean (C), running variance
// (C). In training mode the op normalises with the batch statistics and records
// them (the trainer folds them into the running statistics); in inference mode
// it uses the running statistics, which makes it an affine map per channel whose
// input gradient the adversarial attacks need exactly.
type bnLeakyOp struct {
	pureOp
	train bool
	dtype tensor.Dtype
	eps   float64
	slope float64
	id    int64

	// Per-channel statistics of the last forward pass, read by the backward
	// ops of the same graph run (the tape runs the forward op first).
	mean, invstd []float64
	// batchVar is the unbiased batch variance of the last training pass.
	batchVar []float64
}

var bnLeakyIDs atomic.Int64

// pureOp holds the gorgonia Op methods of an op that returns a new value and
// neither calls outside Go nor overwrites its inputs.
type pureOp struct{}

func (pureOp) ReturnsPtr() bool     { return false }
func (pureOp) CallsExtern() bool    { return false }
func (pureOp) OverwritesInput() int { return -1 }

func bnLeaky(x, gamma, beta, mean, variance *G.Node, train bool, eps, slope float64) (*G.Node, *bnLeakyOp, error) {
	op := &bnLeakyOp{train: train, dtype: x.Dtype(), eps: eps, slope: slope, id: bnLeakyIDs.Add(1)}
	out, err := G.ApplyOp(op, x, gamma, beta, mean, variance)
	return out, op, err
}

func (op *bnLeakyOp) Arity() int { return 5 }

// Type is concrete: hm type variables for the two tensor ranks make
// gorgonia infer the output as a vector.
func (op *bnLeakyOp) Type() hm.Type {
	a, b := G.TensorType{Dims: 4, Of: op.dtype}, G.TensorType{Dims: 1, Of: op.dtype}
	return hm.NewFnType(a, b, b, b, b, a)
}
func (op *bnLeakyOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op *bnLeakyOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *bnLeakyOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *bnLeakyOp) String() string        { return fmt.Sprintf("BNLeaky#%d{train=%v}", op.id, op.train) }

func (op *bnLeakyOp) DiffWRT(int) []bool { return []bool{true, true, true, false, false} }

func (op *bnLeakyOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	args := []*G.Node{in[0], in[1], in[2], in[3], in[4], grad}
	dx, err := G.ApplyOp(&bnLeakyGradOp{fwd: op, kind: gradX}, args...)
	if err != nil {
		return nil, err
	}
	dg, err := G.ApplyOp(&bnLeakyGradOp{fwd: op, kind: gradGamma}, args...)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(&bnLeakyGradOp{fwd: op, kind: gradBeta}, args...)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dg, db, nil, nil}, nil
}

func (op *bnLeakyOp) Do(vals ...G.Value) (G.Value, error) {
	x, err := denseArgs(vals)
	if err != nil {
		return nil, err
	}
	out := tensor.New(tensor.Of(x[0].Dtype()), tensor.WithShape(x[0].Shape().Clone()...))
	switch x[0].Dtype() {
	case tensor.Float32:
		bnForward(op, x[0].Float32s(), x[1].Float32s(), x[2].Float32s(), x[3].Float32s(), x[4].Float32s(), out.Float32s(), x[0].Shape())
	case tensor.Float64:
		bnForward(op, x[0].Float64s(), x[1].Float64s(), x[2].Float64s(), x[3].Float64s(), x[4].Float64s(), out.Float64s(), x[0].Shape())
	default:
		return nil, fmt.Errorf("BNLeaky: unsupported dtype %v", x[0].Dtype())
	}
	return out, nil
}

type float interface{ float32 | float64 }

func bnForward[T float](op *bnLeakyOp, x, gamma, beta, rmean, rvar, out []T, shape tensor.Shape) {
	n, c, hw := shape[0], shape[1], shape[2]*shape[3]
	if len(op.mean) != c {
		op.mean, op.invstd, op.batchVar = make([]float64, c), make([]float64, c), make([]float64, c)
	}
	for ch := 0; ch < c; ch++ {
		if op.train {
			var sum, sq float64
			for b := 0; b < n; b++ {
				for _, v := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
					sum += float64(v)
				}
			}
			m := float64(n * hw)
			mean := sum / m
			for b := 0; b < n; b++ {
				for _, v := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
					d := float64(v) - mean
					sq += d * d
				}
			}
			op.mean[ch] = mean
			op.invstd[ch] = 1 / math.Sqrt(sq/m+op.eps)
			op.batchVar[ch] = sq / math.Max(m-1, 1)
		} else {
			op.mean[ch] = float64(rmean[ch])
			op.invstd[ch] = 1 / math.Sqrt(float64(rvar[ch])+op.eps)
		}
		scale := float64(gamma[ch]) * op.invstd[ch]
		shift := float64(beta[ch]) - scale*op.mean[ch]
		s, sh, slope := T(scale), T(shift), T(op.slope)
		for b := 0; b < n; b++ {
			lo := (b*c + ch) * hw
			src, dst := x[lo:lo+hw], out[lo:lo+hw]
			for i, v := range src {
				z := s*v + sh
				if z < 0 {
					z *= slope
				}
				dst[i] = z
			}
		}
	}
}

type bnGradKind int

const (
	gradX bnGradKind = iota
	gradGamma
	gradBeta
)

// bnLeakyGradOp computes one of the three gradients of bnLeakyOp from
// (x, gamma, beta, mean, var, dy), using the statistics the forward op of the
// same run recorded.
type bnLeakyGradOp struct {
	pureOp
	fwd  *bnLeakyOp
	kind bnGradKind
}

func (op *bnLeakyGradOp) Arity() int { return 6 }
func (op *bnLeakyGradOp) Type() hm.Type {
	a, b := G.TensorType{Dims: 4, Of: op.fwd.dtype}, G.TensorType{Dims: 1, Of: op.fwd.dtype}
	if op.kind == gradX {
		return hm.NewFnType(a, b, b, b, b, a, a)
	}
	return hm.NewFnType(a, b, b, b, b, a, b)
}
func (op *bnLeakyGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if op.kind == gradX {
		return in[0].(tensor.Shape).Clone(), nil
	}
	return in[1].(tensor.Shape).Clone(), nil
}
func (op *bnLeakyGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *bnLeakyGradOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *bnLeakyGradOp) String() string {
	return fmt.Sprintf("BNLeakyGrad#%d/%d", op.fwd.id, op.kind)
}

func (op *bnLeakyGradOp) Do(vals ...G.Value) (G.Value, error) {
	v, err := denseArgs(vals)
	if err != nil {
		return nil, err
	}
	shape := v[0].Shape()
	if op.kind != gradX {
		shape = v[1].Shape()
	}
	out := tensor.New(tensor.Of(v[0].Dtype()), tensor.WithShape(shape.Clone()...))
	switch v[0].Dtype() {
	case tensor.Float32:
		bnBackward(op, v[0].Float32s(), v[1].Float32s(), v[2].Float32s(), v[5].Float32s(), out.Float32s(), v[0].Shape())
	case tensor.Float64:
		bnBackward(op, v[0].Float64s(), v[1].Float64s(), v[2].Float64s(), v[5].Float64s(), out.Float64s(), v[0].Shape())
	default:
		return nil, fmt.Errorf("BNLeakyGrad: unsupported dtype %v", v[0].Dtype())
	}
	return out, nil
}

func bnBackward[T float](op *bnLeakyGradOp, x, gamma, beta, dy, out []T, shape tensor.Shape) {
	f := op.fwd
	n, c, hw := shape[0], shape[1], shape[2]*shape[3]
	m := float64(n * hw)
	for ch := 0; ch < c; ch++ {
		mean, invstd, g := f.mean[ch], f.invstd[ch], float64(gamma[ch])
		bt := float64(beta[ch])
		// dz = dy · LeakyReLU'(z), with z = γ·x̂ + β.
		dzAt := func(v, d T) (xhat, dz float64) {
			xhat, dz = (float64(v)-mean)*invstd, float64(d)
			if g*xhat+bt < 0 {
				dz *= f.slope
			}
			return xhat, dz
		}
		// The two sums are what all three gradients share.
		var sumDz, sumDzXhat float64
		for b := 0; b < n; b++ {
			lo := (b*c + ch) * hw
			for i, v := range x[lo : lo+hw] {
				xhat, dz := dzAt(v, dy[lo+i])
				sumDz += dz
				sumDzXhat += dz * xhat
			}
		}
		switch op.kind {
		case gradGamma:
			out[ch] = T(sumDzXhat)
			continue
		case gradBeta:
			out[ch] = T(sumDz)
			continue
		}
		k := g * invstd
		for b := 0; b < n; b++ {
			lo := (b*c + ch) * hw
			for i, v := range x[lo : lo+hw] {
				xhat, dz := dzAt(v, dy[lo+i])
				if f.train {
					// Through the batch statistics as well as directly.
					out[lo+i] = T(k * (dz - sumDz/m - xhat*sumDzXhat/m))
				} else {
					out[lo+i] = T(k * dz)
				}
			}
		}
	}
}

// denseArgs asserts that every value is a contiguous dense tensor; a view (a
// transposed or sliced tensor) is materialised first.
func denseArgs(vals []G.Value) ([]*tensor.Dense, error) {
	out := make([]*tensor.Dense, len(vals))
	for i, v := range vals {
		d, ok := v.(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("argument %d is %T, want a dense tensor", i, v)
		}
		if d.RequiresIterator() {
			d = d.Materialize().(*tensor.Dense)
		}
		out[i] = d
	}
	return out, nil
}

func hashString(s string) uint32 {
	// FNV-1a: gorgonia only needs the hash to tell ops apart.
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
