package solver

import (
	"math"
)

// The engine computes what the gorgonia graph of modeInfer and modeGradient
// computes — log-probabilities, and the gradient of the summed CTC loss with
// respect to the input pixels with BatchNorm on its running statistics — for
// a batch of images at a time, without building or running a graph: the
// adversarial attacks need only these two passes, and gorgonia spends most of
// their time outside the matrix products (a tape of small ops, an allocation
// per node per run, the LSTM as 25 × 2 separate products of one image).
//
// It lives in package solver rather than a package of its own because it
// reads a Model's weights and an Architecture's layout (specs, featureShape),
// which the package keeps unexported so that Models stay immutable, and
// because Solver dispatches to it; training keeps the graph (it needs weight
// gradients and batch statistics).
//
// Layout: the convolution blocks hold activations channel-major over the
// whole batch, (C, B, H, W), so that each block is one matrix product
// (C_out × 9·C_in) · (9·C_in × B·H·W) with the input unfolded (im2col) in
// chunks of images; BatchNorm's inference-mode affine map is folded into the
// convolution's weights and bias. The LSTM's input projection is one product
// over all steps and images, (T·B × in) · (in × 4H), and each step adds one
// product of the batch's previous outputs, (B × H) · (H × 4H). Everything is
// float32; the CTC recursions run in float64, as Solver.Loss always has.
type engine struct {
	arch    Architecture
	convs   []convLayer
	lstm    [][]lstmDir // [layer][direction]
	fcW     []float32   // (in, classes)
	fcB     []float32   // (classes)
	feat    int         // the LSTM's input width: channels × height after the convolutions
	steps   int
	classes int
	dirs    int
}

// convLayer is one convolution block with BatchNorm folded in.
type convLayer struct {
	cin, cout int
	h, w      int       // input and convolution output (stride 1, padding 1)
	ph, pw    int       // pooling window and stride
	oh, ow    int       // after pooling
	weights   []float32 // (cout, cin·9): gamma/√(var+eps) · w
	bias      []float32 // (cout): beta − gamma·mean/√(var+eps)
}

func (c *convLayer) pooled() bool { return c.ph > 1 || c.pw > 1 }

// lstmDir is one direction of one LSTM layer; gates i, f, g, o.
type lstmDir struct {
	in      int
	wx      []float32 // (in, 4H)
	wh      []float32 // (H, 4H)
	b       []float32 // (4H)
	reverse bool
}

// newEngine folds m's weights into an engine. The engine keeps its own
// copies: it does not change when m's tensors do (they do not: Models are
// immutable).
func newEngine(m *Model) *engine {
	a := m.Arch
	e := &engine{arch: a, steps: a.Steps(), classes: a.Classes(), dirs: len(a.directions())}
	p := 0
	cin, h, w := 1, a.Height, a.Width
	for _, b := range a.Conv {
		wt, gamma, beta, mean, variance := m.tensors[p], m.tensors[p+1], m.tensors[p+2], m.tensors[p+3], m.tensors[p+4]
		k := cin * 9
		l := convLayer{cin: cin, cout: b.Filters, h: h, w: w, ph: b.PoolH, pw: b.PoolW, oh: h / b.PoolH, ow: w / b.PoolW,
			weights: make([]float32, b.Filters*k), bias: make([]float32, b.Filters)}
		for co := 0; co < b.Filters; co++ {
			// As bnForward: scale and shift in float64.
			invstd := 1 / math.Sqrt(float64(variance[co])+a.BNEpsilon)
			scale := float64(gamma[co]) * invstd
			l.bias[co] = float32(float64(beta[co]) - scale*float64(mean[co]))
			for j := 0; j < k; j++ {
				l.weights[co*k+j] = float32(float64(wt[co*k+j]) * scale)
			}
		}
		e.convs = append(e.convs, l)
		cin, h, w = b.Filters, l.oh, l.ow
		p += 5
	}
	e.feat = cin * h
	in := e.feat
	for range a.Layers {
		var dirs []lstmDir
		for d := 0; d < e.dirs; d++ {
			dirs = append(dirs, lstmDir{in: in, reverse: d == 1,
				wx: clone32(m.tensors[p]), wh: clone32(m.tensors[p+1]), b: clone32(m.tensors[p+2])})
			p += 3
		}
		e.lstm = append(e.lstm, dirs)
		in = a.Hidden * e.dirs
	}
	e.fcW, e.fcB = clone32(m.tensors[p]), clone32(m.tensors[p+1])
	return e
}

func clone32(v []float32) []float32 { return append([]float32(nil), v...) }

// colBudget bounds the unfolded input (im2col) of one matrix product, in
// floats: the images of a batch are unfolded a chunk at a time, so that a
// large batch does not hold an unfolded copy of every image at once (the
// first 64-filter block unfolds 576 rows per pixel). 2 M floats still makes
// products thousands of columns wide.
const colBudget = 2 << 20

// chunk is how many images one im2col chunk of c holds, at most n.
func (c *convLayer) chunk(n int) int {
	per := c.cin * 9 * c.h * c.w
	return max(1, min(n, colBudget/per))
}

// workspace holds every buffer of a forward and input-gradient pass for up
// to capacity images: a pass allocates nothing. It is not safe for
// concurrent use; a Solver hands each goroutine its own.
type workspace struct {
	e        *engine
	capacity int

	x      []float32   // the input, (B, H, W)
	act    [][]float32 // per block: after BatchNorm and LeakyReLU, (C, B, H, W)
	pool   [][]float32 // per block: after pooling (nil without pooling)
	mask   [][]int32   // per block: which element of act each pooled value is
	col    []float32   // one im2col chunk, forward and backward
	seq    [][]float32 // seq[0] the LSTM input (T·B, feat); seq[l+1] layer l's output (T·B, dirs·H)
	gates  [][]float32 // per layer and direction: the gate activations (T·B, 4H)
	cell   [][]float32 // c_t (T·B, H)
	tanhC  [][]float32 // tanh(c_t) (T·B, H)
	logp   []float32   // (T·B, classes): (T, B, classes) as the graph's logProbs
	hasGrd bool

	// The backward pass's, allocated on its first use.
	dlogits      []float32
	dseqA, dseqB []float32
	dgates       []float32
	dh, dc       []float32
	gA, gB       []float32 // a block's gradient before pooling, and after it
	dx           []float32 // the input gradient (B, H, W)
	alpha, beta  []float64 // the CTC recursions (T, 2T+1)
	lcab         []float64 // (T, classes)
}

func (e *engine) newWorkspace(capacity int) *workspace {
	ws := &workspace{e: e}
	ws.grow(capacity)
	return ws
}

// grow makes room for n images, dropping the buffers of a smaller capacity.
func (ws *workspace) grow(n int) {
	if n <= ws.capacity {
		return
	}
	e, a := ws.e, ws.e.arch
	ws.capacity = n
	T, H := e.steps, a.Hidden
	ws.x = make([]float32, n*a.Height*a.Width)
	ws.act, ws.pool, ws.mask = nil, nil, nil
	colSize := 0
	for i := range e.convs {
		c := &e.convs[i]
		ws.act = append(ws.act, make([]float32, c.cout*n*c.h*c.w))
		if c.pooled() {
			ws.pool = append(ws.pool, make([]float32, c.cout*n*c.oh*c.ow))
			ws.mask = append(ws.mask, make([]int32, c.cout*n*c.oh*c.ow))
		} else {
			ws.pool, ws.mask = append(ws.pool, nil), append(ws.mask, nil)
		}
		colSize = max(colSize, c.cin*9*c.h*c.w*c.chunk(n))
	}
	ws.col = make([]float32, colSize)
	ws.seq = [][]float32{make([]float32, T*n*e.feat)}
	ws.gates, ws.cell, ws.tanhC = nil, nil, nil
	for range e.lstm {
		ws.seq = append(ws.seq, make([]float32, T*n*e.dirs*H))
		for range e.dirs {
			ws.gates = append(ws.gates, make([]float32, T*n*4*H))
			ws.cell = append(ws.cell, make([]float32, T*n*H))
			ws.tanhC = append(ws.tanhC, make([]float32, T*n*H))
		}
	}
	ws.logp = make([]float32, T*n*e.classes)
	if ws.hasGrd {
		ws.hasGrd = false
		ws.growGrad()
	}
}

func (ws *workspace) growGrad() {
	if ws.hasGrd {
		return
	}
	ws.hasGrd = true
	e, a, n := ws.e, ws.e.arch, ws.capacity
	T, H := e.steps, a.Hidden
	ws.dlogits = make([]float32, T*n*e.classes)
	width := max(e.feat, e.dirs*H)
	ws.dseqA, ws.dseqB = make([]float32, T*n*width), make([]float32, T*n*width)
	ws.dgates = make([]float32, T*n*4*H)
	ws.dh, ws.dc = make([]float32, n*H), make([]float32, n*H)
	var ga, gb int
	for i := range e.convs {
		c := &e.convs[i]
		ga = max(ga, c.cout*n*c.h*c.w)
		gb = max(gb, c.cout*n*c.oh*c.ow, c.cin*n*c.h*c.w)
	}
	ws.gA, ws.gB = make([]float32, ga), make([]float32, gb)
	ws.dx = make([]float32, n*a.Height*a.Width)
	ws.alpha, ws.beta = make([]float64, T*(2*T+1)), make([]float64, T*(2*T+1))
	ws.lcab = make([]float64, T*e.classes)
}

// forward computes the log-probabilities of images (at most the capacity)
// into ws.logp[:T·n·classes], laid out (T, n, classes).
func (ws *workspace) forward(images []Image) {
	e, a, n := ws.e, ws.e.arch, len(images)
	hw := a.Height * a.Width
	for b, img := range images {
		copy(ws.x[b*hw:(b+1)*hw], img)
	}
	in := ws.x[:n*hw]
	for l := range e.convs {
		c := &e.convs[l]
		out := ws.act[l][:c.cout*n*c.h*c.w]
		ws.convForward(c, in, out, n)
		in = out
		if c.pooled() {
			in = ws.pool[l][:c.cout*n*c.oh*c.ow]
			maxPool(c, out, in, ws.mask[l], n)
		}
	}

	// (C, B, fh, T) → one row per (step, image): (T·B, C·fh), the graph's
	// transpose (3, 0, 1, 2) and reshape.
	T, F := e.steps, e.feat
	last := &e.convs[len(e.convs)-1]
	fh := last.oh
	seq := ws.seq[0][:T*n*F]
	for ch := 0; ch < last.cout; ch++ {
		for b := 0; b < n; b++ {
			for y := 0; y < fh; y++ {
				src := in[((ch*n+b)*fh+y)*T : ((ch*n+b)*fh+y+1)*T]
				col := ch*fh + y
				for t, v := range src {
					seq[(t*n+b)*F+col] = v
				}
			}
		}
	}

	for l := range e.lstm {
		for d := range e.lstm[l] {
			ws.lstmForward(l, d, n)
		}
	}

	// The output layer and log-softmax over classes.
	K := e.classes
	x := ws.seq[len(e.lstm)]
	inW := e.dirs * a.Hidden
	lp := ws.logp[:T*n*K]
	sgemm(false, false, T*n, K, inW, 1, x, inW, e.fcW, K, 0, lp, K)
	for r := 0; r < T*n; r++ {
		row := lp[r*K : (r+1)*K]
		best := float32(math.Inf(-1))
		for c, v := range row {
			v += e.fcB[c]
			row[c] = v
			best = max(best, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - best))
		}
		ls := float32(math.Log(sum))
		for c, v := range row {
			row[c] = v - best - ls
		}
	}
}

// convForward is one block's convolution, BatchNorm and LeakyReLU: out
// (cout, n, h, w) from in (cin, n, h, w).
func (ws *workspace) convForward(c *convLayer, in, out []float32, n int) {
	hw, k := c.h*c.w, c.cin*9
	ldo := n * hw
	per := c.chunk(n)
	for b0 := 0; b0 < n; b0 += per {
		b1 := min(b0+per, n)
		nc := (b1 - b0) * hw
		col := ws.col[:k*nc]
		im2col(c, in, col, n, b0, b1)
		sgemm(false, false, c.cout, nc, k, 1, c.weights, k, col, nc, 0, out[b0*hw:], ldo)
	}
	slope := float32(ws.e.arch.LeakySlope)
	for co := 0; co < c.cout; co++ {
		row, bias := out[co*ldo:(co+1)*ldo], c.bias[co]
		for i, v := range row {
			v += bias
			if v < 0 {
				v *= slope
			}
			row[i] = v
		}
	}
}

// im2col unfolds images b0…b1-1 of in (cin, n, h, w) into col, one row per
// (input channel, kernel row, kernel column) — the order of the weights'
// (cout, cin, 3, 3) layout — and one column per output pixel, zero outside
// the image (padding 1).
func im2col(c *convLayer, in, col []float32, n, b0, b1 int) {
	h, w, hw := c.h, c.w, c.h*c.w
	nc := (b1 - b0) * hw
	for ci := 0; ci < c.cin; ci++ {
		for ky := 0; ky < 3; ky++ {
			for kx := 0; kx < 3; kx++ {
				row := col[((ci*3+ky)*3+kx)*nc : ((ci*3+ky)*3+kx+1)*nc]
				for b := b0; b < b1; b++ {
					src := in[(ci*n+b)*hw : (ci*n+b+1)*hw]
					dst := row[(b-b0)*hw : (b-b0+1)*hw]
					for y := 0; y < h; y++ {
						d := dst[y*w : (y+1)*w]
						sy := y + ky - 1
						if sy < 0 || sy >= h {
							clear(d)
							continue
						}
						s := src[sy*w : (sy+1)*w]
						switch kx {
						case 0:
							d[0] = 0
							copy(d[1:], s[:w-1])
						case 1:
							copy(d, s)
						default:
							copy(d[:w-1], s[1:])
							d[w-1] = 0
						}
					}
				}
			}
		}
	}
}

// col2im adds the unfolded gradient col back onto din (cin, n, h, w), the
// transpose of im2col.
func col2im(c *convLayer, col, din []float32, n, b0, b1 int) {
	h, w, hw := c.h, c.w, c.h*c.w
	nc := (b1 - b0) * hw
	for ci := 0; ci < c.cin; ci++ {
		for ky := 0; ky < 3; ky++ {
			for kx := 0; kx < 3; kx++ {
				row := col[((ci*3+ky)*3+kx)*nc : ((ci*3+ky)*3+kx+1)*nc]
				for b := b0; b < b1; b++ {
					dst := din[(ci*n+b)*hw : (ci*n+b+1)*hw]
					src := row[(b-b0)*hw : (b-b0+1)*hw]
					for y := 0; y < h; y++ {
						sy := y + ky - 1
						if sy < 0 || sy >= h {
							continue
						}
						g := src[y*w : (y+1)*w]
						d := dst[sy*w : (sy+1)*w]
						switch kx {
						case 0:
							d = d[:w-1]
							for x, v := range g[1:] {
								d[x] += v
							}
						case 1:
							for x, v := range g {
								d[x] += v
							}
						default:
							d = d[1:]
							for x, v := range g[:w-1] {
								d[x] += v
							}
						}
					}
				}
			}
		}
	}
}

// maxPool pools act (C, n, h, w) into out (C, n, oh, ow), recording in mask
// the index in act of each maximum: the first in row-major order among
// equals, as gorgonia's max-pool (which matters on a captcha's white
// background, where neighbouring activations are equal).
func maxPool(c *convLayer, act, out []float32, mask []int32, n int) {
	hw, ohw := c.h*c.w, c.oh*c.ow
	if c.ph == 2 && (c.pw == 2 || c.pw == 1) && c.oh*2 == c.h && c.ow*c.pw == c.w {
		maxPool2(c, act, out, mask, n)
		return
	}
	for plane := 0; plane < c.cout*n; plane++ {
		src := act[plane*hw : (plane+1)*hw]
		dst, m := out[plane*ohw:(plane+1)*ohw], mask[plane*ohw:(plane+1)*ohw]
		for py := 0; py < c.oh; py++ {
			for px := 0; px < c.ow; px++ {
				best, idx := float32(-math.MaxFloat32), py*c.ph*c.w+px*c.pw
				for dy := 0; dy < c.ph; dy++ {
					r := (py*c.ph+dy)*c.w + px*c.pw
					for dx, v := range src[r : r+c.pw] {
						if v > best {
							best, idx = v, r+dx
						}
					}
				}
				dst[py*c.ow+px] = best
				m[py*c.ow+px] = int32(plane*hw + idx)
			}
		}
	}
}

// maxPool2 is maxPool for the default architecture's windows, 2×2 and 2
// high by 1 wide, tiling the plane exactly: the same result (the first
// maximum in row-major order), in a loop the compiler keeps free of bounds
// checks — the general loop was an eighth of a captcha's time.
func maxPool2(c *convLayer, act, out []float32, mask []int32, n int) {
	w, ow, pw := c.w, c.ow, c.pw
	hw, ohw := c.h*w, c.oh*ow
	for plane := 0; plane < c.cout*n; plane++ {
		base := plane * hw
		src := act[base : base+hw]
		dst, m := out[plane*ohw:(plane+1)*ohw], mask[plane*ohw:(plane+1)*ohw]
		for py := 0; py < c.oh; py++ {
			top := src[2*py*w : 2*py*w+w]
			bot := src[(2*py+1)*w : (2*py+1)*w+w]
			drow, mrow := dst[py*ow:py*ow+ow], m[py*ow:py*ow+ow]
			if pw == 2 {
				for px := range drow {
					x := 2 * px
					best, idx := top[x], 2*py*w+x
					if v := top[x+1]; v > best {
						best, idx = v, 2*py*w+x+1
					}
					if v := bot[x]; v > best {
						best, idx = v, (2*py+1)*w+x
					}
					if v := bot[x+1]; v > best {
						best, idx = v, (2*py+1)*w+x+1
					}
					drow[px], mrow[px] = best, int32(base+idx)
				}
				continue
			}
			for px := range drow {
				best, idx := top[px], 2*py*w+px
				if v := bot[px]; v > best {
					best, idx = v, (2*py+1)*w+px
				}
				drow[px], mrow[px] = best, int32(base+idx)
			}
		}
	}
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }

// lstmForward runs direction d of layer l over the n images' sequences,
// writing its outputs into columns d·H… of seq[l+1] and keeping the gate
// activations, cells and their tanh for the backward pass.
func (ws *workspace) lstmForward(l, d, n int) {
	e := ws.e
	dir := &e.lstm[l][d]
	T, H := e.steps, e.arch.Hidden
	G4 := 4 * H
	in := ws.seq[l]
	out := ws.seq[l+1]
	ldo, off := e.dirs*H, d*H
	k := l*e.dirs + d
	gates, cell, tc := ws.gates[k][:T*n*G4], ws.cell[k], ws.tanhC[k]
	// The input projection of every step at once, plus the bias.
	sgemm(false, false, T*n, G4, dir.in, 1, in, dir.in, dir.wx, G4, 0, gates, G4)
	for r := 0; r < T*n; r++ {
		row := gates[r*G4 : (r+1)*G4]
		for j, v := range dir.b {
			row[j] += v
		}
	}
	prev := -1
	for s := 0; s < T; s++ {
		t := s
		if dir.reverse {
			t = T - 1 - s
		}
		g := gates[t*n*G4 : (t+1)*n*G4]
		if prev >= 0 {
			sgemm(false, false, n, G4, H, 1, out[prev*n*ldo+off:], ldo, dir.wh, G4, 1, g, G4)
		}
		for b := 0; b < n; b++ {
			gr := g[b*G4 : (b+1)*G4]
			c := cell[(t*n+b)*H : (t*n+b+1)*H]
			th := tc[(t*n+b)*H : (t*n+b+1)*H]
			h := out[(t*n+b)*ldo+off : (t*n+b)*ldo+off+H]
			var cp []float32
			if prev >= 0 {
				cp = cell[(prev*n+b)*H : (prev*n+b+1)*H]
			}
			gi, gf, gg, gO := gr[:H], gr[H:2*H], gr[2*H:3*H], gr[3*H:]
			for j := 0; j < H; j++ {
				i, cand, o := sigmoid(gi[j]), tanh32(gg[j]), sigmoid(gO[j])
				cv := i * cand
				if cp != nil {
					f := sigmoid(gf[j])
					gf[j] = f
					cv = f*cp[j] + cv
				}
				gi[j], gg[j], gO[j] = i, cand, o
				c[j] = cv
				tv := tanh32(cv)
				th[j] = tv
				h[j] = o * tv
			}
		}
		prev = t
	}
}
