package solver

import "math"

// gradient runs the forward pass of images and the backward pass of the
// summed CTC loss of labels (class indices, one sequence per image, each of
// at most ctcMinSteps ≤ T) down to the pixels. It returns the input
// gradient (n, H, W), valid until the next pass, and writes each image's
// loss into losses (len n). BatchNorm is in inference mode, as in
// modeGradient.
func (ws *workspace) gradient(images []Image, labels [][]int, losses []float64) []float32 {
	ws.growGrad()
	ws.forward(images)
	e, a, n := ws.e, ws.e.arch, len(images)
	T, K, H := e.steps, e.classes, a.Hidden

	for b := 0; b < n; b++ {
		losses[b] = ws.ctcGrad(b, n, labels[b])
	}

	// The output layer: d seq = d logits · fcᵀ.
	inW := e.dirs * H
	dcur := ws.dseqA[:T*n*inW]
	sgemm(false, true, T*n, inW, K, 1, ws.dlogits[:T*n*K], K, e.fcW, K, 0, dcur, inW)
	other := ws.dseqB
	for l := len(e.lstm) - 1; l >= 0; l-- {
		inW := e.lstm[l][0].in
		dprev := other[:T*n*inW]
		for d := range e.lstm[l] {
			ws.lstmBackward(l, d, n, dcur, dprev, d > 0)
		}
		dcur, other = dprev, dcur[:cap(dcur)]
	}

	// d seq (T·B, C·fh) → the last block's pooled gradient (C, B, fh, T).
	last := &e.convs[len(e.convs)-1]
	fh, F := last.oh, e.feat
	dp := ws.gB[:last.cout*n*fh*T]
	for ch := 0; ch < last.cout; ch++ {
		for b := 0; b < n; b++ {
			for y := 0; y < fh; y++ {
				dst := dp[((ch*n+b)*fh+y)*T : ((ch*n+b)*fh+y+1)*T]
				col := ch*fh + y
				for t := range dst {
					dst[t] = dcur[(t*n+b)*F+col]
				}
			}
		}
	}

	slope := float32(a.LeakySlope)
	for l := len(e.convs) - 1; l >= 0; l-- {
		c := &e.convs[l]
		hw := c.h * c.w
		dact := ws.gA[:c.cout*n*hw]
		if c.pooled() {
			clear(dact)
			for i, m := range ws.mask[l][:c.cout*n*c.oh*c.ow] {
				dact[m] += ws.gB[i]
			}
		} else {
			copy(dact, ws.gB[:c.cout*n*hw])
		}
		// Through LeakyReLU (the sign of its output is its input's).
		for i, v := range ws.act[l][:c.cout*n*hw] {
			if v < 0 || (v == 0 && slope == 0) {
				dact[i] *= slope
			}
		}
		din := ws.gB[:c.cin*n*hw]
		if l == 0 {
			din = ws.dx[:n*hw]
		}
		clear(din)
		k, ld := c.cin*9, n*hw
		per := c.chunk(n)
		for b0 := 0; b0 < n; b0 += per {
			b1 := min(b0+per, n)
			nc := (b1 - b0) * hw
			dcol := ws.col[:k*nc]
			sgemm(true, false, k, nc, c.cout, 1, c.weights, k, dact[b0*hw:], ld, 0, dcol, nc)
			col2im(c, dcol, din, n, b0, b1)
		}
	}
	return ws.dx[:n*a.Height*a.Width]
}

// lstmBackward takes the gradient of layer l's output dout (T·B, dirs·H)
// back through direction d to its input, written into din (T·B, in) — added
// to it when accumulate (the second direction).
func (ws *workspace) lstmBackward(l, d, n int, dout, din []float32, accumulate bool) {
	e := ws.e
	dir := &e.lstm[l][d]
	T, H := e.steps, e.arch.Hidden
	G4 := 4 * H
	ldo, off := e.dirs*H, d*H
	k := l*e.dirs + d
	gates, cell, tc := ws.gates[k], ws.cell[k], ws.tanhC[k]
	dg := ws.dgates[:T*n*G4]
	dh, dc := ws.dh[:n*H], ws.dc[:n*H]
	clear(dh)
	clear(dc)
	for s := T - 1; s >= 0; s-- {
		t, prev := s, s-1
		if dir.reverse {
			t, prev = T-1-s, T-s
		}
		first := s == 0
		for b := 0; b < n; b++ {
			r := t*n + b
			gr := gates[r*G4 : (r+1)*G4]
			dgr := dg[r*G4 : (r+1)*G4]
			th := tc[r*H : (r+1)*H]
			do := dout[r*ldo+off : r*ldo+off+H]
			dhb, dcb := dh[b*H:(b+1)*H], dc[b*H:(b+1)*H]
			var cp []float32
			if !first {
				cp = cell[(prev*n+b)*H : (prev*n+b+1)*H]
			}
			gi, gf, gg, gO := gr[:H], gr[H:2*H], gr[2*H:3*H], gr[3*H:]
			di, df, dgg, dO := dgr[:H], dgr[H:2*H], dgr[2*H:3*H], dgr[3*H:]
			for j := 0; j < H; j++ {
				dhv := do[j] + dhb[j]
				i, cand, o, tv := gi[j], gg[j], gO[j], th[j]
				dov := dhv * tv
				dcv := dcb[j] + dhv*o*(1-tv*tv)
				di[j] = dcv * cand * i * (1 - i)
				dgg[j] = dcv * i * (1 - cand*cand)
				dO[j] = dov * o * (1 - o)
				if first {
					df[j] = 0
				} else {
					f := gf[j]
					df[j] = dcv * cp[j] * f * (1 - f)
					dcb[j] = dcv * f
				}
			}
		}
		if !first {
			// d h_{t-1} = d gates_t · Whᵀ.
			sgemm(false, true, n, H, G4, 1, dg[t*n*G4:], G4, dir.wh, G4, 0, dh, H)
		}
	}
	var beta float32
	if accumulate {
		beta = 1
	}
	sgemm(false, true, T*n, dir.in, G4, 1, dg, G4, dir.wx, G4, beta, din, dir.in)
}

// ctcGrad is image b's CTC loss (the negative log-likelihood of labels)
// from ws.logp, and writes the gradient of that loss with respect to the
// image's logits into ws.dlogits — what gorgonia's CTC op and log-softmax
// backward compute: d/d logp = exp(logp) − exp(log γ + nll − logp), with γ
// the alignments' posterior per step and class, then through log-softmax.
func (ws *workspace) ctcGrad(b, n int, labels []int) float64 {
	e := ws.e
	T, K := e.steps, e.classes
	S := 2*len(labels) + 1
	label := func(s int) int {
		if s%2 == 0 {
			return 0
		}
		return labels[s/2]
	}
	lp := func(t, c int) float64 { return float64(ws.logp[(t*n+b)*K+c]) }
	negInf := math.Inf(-1)
	alpha, beta := ws.alpha[:T*S], ws.beta[:T*S]
	for i := range alpha {
		alpha[i], beta[i] = negInf, negInf
	}
	alpha[0] = lp(0, 0)
	if S > 1 {
		alpha[1] = lp(0, label(1))
	}
	for t := 1; t < T; t++ {
		for s := 0; s < S; s++ {
			v := alpha[(t-1)*S+s]
			if s > 0 {
				v = logAdd(v, alpha[(t-1)*S+s-1])
			}
			if s > 1 && label(s) != 0 && label(s) != label(s-2) {
				v = logAdd(v, alpha[(t-1)*S+s-2])
			}
			alpha[t*S+s] = v + lp(t, label(s))
		}
	}
	ll := alpha[(T-1)*S+S-1]
	if S > 1 {
		ll = logAdd(ll, alpha[(T-1)*S+S-2])
	}
	nll := -ll

	beta[(T-1)*S+S-1] = lp(T-1, 0)
	if S > 1 {
		beta[(T-1)*S+S-2] = lp(T-1, label(S-2))
	}
	for t := T - 2; t >= 0; t-- {
		for s := 0; s < S; s++ {
			v := beta[(t+1)*S+s]
			if s < S-1 {
				v = logAdd(v, beta[(t+1)*S+s+1])
			}
			if s < S-2 && label(s+2) != label(s) {
				v = logAdd(v, beta[(t+1)*S+s+2])
			}
			beta[t*S+s] = v + lp(t, label(s))
		}
	}

	lcab := ws.lcab[:T*K]
	for i := range lcab {
		lcab[i] = negInf
	}
	for t := 0; t < T; t++ {
		for s := 0; s < S; s++ {
			c := label(s)
			lcab[t*K+c] = logAdd(lcab[t*K+c], alpha[t*S+s]+beta[t*S+s])
		}
	}
	for t := 0; t < T; t++ {
		row := ws.logp[(t*n+b)*K : (t*n+b+1)*K]
		drow := ws.dlogits[(t*n+b)*K : (t*n+b+1)*K]
		var sum float64
		g := lcab[t*K : (t+1)*K] // reused for the gradient of logp
		for c, v := range row {
			p := math.Exp(float64(v))
			g[c] = p - math.Exp(g[c]+nll-float64(v))
			sum += g[c]
		}
		for c, v := range row {
			drow[c] = float32(g[c] - math.Exp(float64(v))*sum)
		}
	}
	return nll
}
