package solver

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"

	"github.com/advcaptcha/advcaptcha/captcha"
)

// graphPass runs the gorgonia graph of mode over imgs (and texts, for
// modeGradient) and returns its log-probabilities (T,B,K), its input
// gradient and its summed CTC cost, as float64.
func graphPass(t *testing.T, m *Model, md mode, dtype tensor.Dtype, imgs []Image, texts []string) (lp, grad []float64, cost float64) {
	t.Helper()
	g, err := buildGraph(m.Arch, md, len(imgs), dtype)
	if err != nil {
		t.Fatal(err)
	}
	g.setWeights(m)
	in := make([][]float32, len(imgs))
	for i := range imgs {
		in[i] = imgs[i]
	}
	g.setInput(in)
	if md != modeInfer {
		if err := g.setTargets(texts); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.run(); err != nil {
		t.Fatal(err)
	}
	to64 := func(v any) []float64 {
		switch d := v.(type) {
		case []float64:
			return append([]float64(nil), d...)
		case []float32:
			out := make([]float64, len(d))
			for i, x := range d {
				out[i] = float64(x)
			}
			return out
		case float32:
			return []float64{float64(d)}
		case float64:
			return []float64{d}
		}
		t.Fatalf("unexpected value %T", v)
		return nil
	}
	lp = to64(g.logProbs.Value().Data())
	if md != modeInfer {
		grad = to64(g.grads[0].Value().Data())
		cost = to64(g.cost.Value().Data())[0]
	}
	return lp, grad, cost
}

func engineLabels(t *testing.T, a Architecture, texts []string) [][]int {
	t.Helper()
	out := make([][]int, len(texts))
	for i, s := range texts {
		c, err := encode(a, s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

// enginePass runs the engine over imgs: log-probabilities, input gradient
// and per-image losses.
func enginePass(t *testing.T, ws *workspace, imgs []Image, texts []string) (lp, grad []float32, losses []float64) {
	t.Helper()
	a := ws.e.arch
	losses = make([]float64, len(imgs))
	g := ws.gradient(imgs, engineLabels(t, a, texts), losses)
	n := len(imgs) * a.Steps() * a.Classes()
	return append([]float32(nil), ws.logp[:n]...), append([]float32(nil), g...), losses
}

// gradErr is the largest absolute difference of two gradients relative to
// the largest magnitude of want, and their cosine similarity.
func gradErr(got []float32, want []float64) (rel, cos float64) {
	var maxDiff, maxWant, dot, n1, n2 float64
	for i, w := range want {
		g := float64(got[i])
		maxDiff = max(maxDiff, math.Abs(g-w))
		maxWant = max(maxWant, math.Abs(w))
		dot += g * w
		n1 += g * g
		n2 += w * w
	}
	return maxDiff / maxWant, dot / math.Sqrt(n1*n2)
}

func maxAbsDiff(got []float32, want []float64) float64 {
	var d float64
	for i, w := range want {
		d = max(d, math.Abs(float64(got[i])-w))
	}
	return d
}

// realCaptchas renders n captchas of the default style as the solver reads them.
func realCaptchas(t *testing.T, n int, seed uint64) ([]Image, []string) {
	t.Helper()
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		t.Fatal(err)
	}
	var imgs []Image
	var texts []string
	for i := range n {
		c, err := style.Generate(seed + uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		img, err := FromImage(c.Image, style.Height, style.Width)
		if err != nil {
			t.Fatal(err)
		}
		imgs, texts = append(imgs, img), append(texts, c.Text)
	}
	return imgs, texts
}

// The engine computes what the gorgonia graph computes, on the shipped model
// and real captchas (half of them lightly attacked, so that not every image
// is read with certainty), alone and in a batch of 16: log-probabilities,
// each image's CTC loss (and their sum against gorgonia's own CTC op), what
// it reads, and the input gradient the attacks follow.
//
// The reference is the float64 graph in batches of 8. Not the float32 graph:
// its CTC op works in float32, and on a confidently read captcha (loss
// 0.005) the gradient exp(logp) − posterior is a difference of two numbers
// near 1, so its own gradient is 1–2% off the float64 one (logged below; the
// engine runs the CTC recursions in float64). Not batches of 16 either:
// gorgonia hashes slice bounds truncated to a byte, and in a graph of 16
// images the backward pass of the LSTM layers' concatenation mixes up the
// rows of steps 16+ with those of steps 0+ (rows 256:272 and 0:16), which
// garbles its input gradient (cosine 0.1–0.98 to the float64 one).
func TestEngineMatchesGraphOnDefaultModel(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err) // the repository always carries models/default.crnn
	}
	a := m.Arch
	imgs, texts := realCaptchas(t, 16, 100)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, img := range imgs[8:] {
		for j := range img {
			img[j] = min(max(img[j]+float32(rng.IntN(61)-30)/255, 0), 1)
		}
	}
	const ref = 8
	px, T, K := a.Height*a.Width, a.Steps(), a.Classes()
	wantLP := make([][]float64, len(imgs)) // per image (T, K)
	wantGrad := make([][]float64, len(imgs))
	var worst32, worstLP, worstLoss, worstRel, worstCos = 0.0, 0.0, 0.0, 0.0, 1.0
	for lo := 0; lo < len(imgs); lo += ref {
		bi, bt := imgs[lo:lo+ref], texts[lo:lo+ref]
		lp, grad, cost := graphPass(t, m, modeGradient, tensor.Float64, bi, bt)
		_, grad32, _ := graphPass(t, m, modeGradient, tensor.Float32, bi, bt)
		var sum float64
		for i := range bi {
			wantLP[lo+i] = make([]float64, T*K)
			for s := 0; s < T; s++ {
				copy(wantLP[lo+i][s*K:(s+1)*K], lp[(s*ref+i)*K:(s*ref+i+1)*K])
			}
			wantGrad[lo+i] = grad[i*px : (i+1)*px]
			g32 := make([]float32, px)
			for j := range g32 {
				g32[j] = float32(grad32[i*px+j])
			}
			rel, _ := gradErr(g32, wantGrad[lo+i])
			worst32 = max(worst32, rel)
			sum += ctcLoss64(wantLP[lo+i], T, K, engineLabels(t, a, bt[i:i+1])[0])
		}
		if math.Abs(sum-cost) > 1e-6*max(cost, 1) {
			t.Fatalf("the float64 reference: per-image losses sum to %.9f, its CTC op says %.9f", sum, cost)
		}
	}
	e := newEngine(m)
	for _, n := range []int{1, 16} {
		ws := e.newWorkspace(n)
		for lo := 0; lo < len(imgs); lo += n {
			bi, bt := imgs[lo:lo+n], texts[lo:lo+n]
			lp, grad, losses := enginePass(t, ws, bi, bt)
			for i := range bi {
				im := lo + i
				got := make([]float32, T*K)
				for s := 0; s < T; s++ {
					copy(got[s*K:(s+1)*K], lp[(s*n+i)*K:(s*n+i+1)*K])
				}
				d := maxAbsDiff(got, wantLP[im])
				worstLP = max(worstLP, d)
				if d > 1e-4 {
					t.Errorf("batch %d image %d: log-probabilities differ by %.2g", n, im, d)
				}
				want := ctcLoss64(wantLP[im], T, K, engineLabels(t, a, bt[i:i+1])[0])
				worstLoss = max(worstLoss, math.Abs(losses[i]-want)/max(want, 1e-3))
				if math.Abs(losses[i]-want) > 1e-4*max(want, 1e-3) {
					t.Errorf("batch %d image %d: loss %.7f, graph %.7f", n, im, losses[i], want)
				}
				wl := make([]float32, T*K)
				for j, v := range wantLP[im] {
					wl[j] = float32(v)
				}
				gp, ep := greedyDecode(a, wl, T, 1)[0], greedyDecode(a, got, T, 1)[0]
				if gp.Text != ep.Text || math.Abs(gp.Confidence-ep.Confidence) > 1e-4 {
					t.Errorf("batch %d image %d: engine reads %q (%.5f), graph %q (%.5f)", n, im, ep.Text, ep.Confidence, gp.Text, gp.Confidence)
				}
				rel, cos := gradErr(grad[i*px:(i+1)*px], wantGrad[im])
				worstRel, worstCos = max(worstRel, rel), min(worstCos, cos)
				if rel > 0.05 || cos < 0.9999 {
					t.Errorf("batch %d image %d (loss %.4f): gradient differs by %.2g of its largest element, cosine %.7f", n, im, losses[i], rel, cos)
				}
			}
		}
	}
	t.Logf("engine against the float64 graph, batches 1 and 16: log-probabilities ≤ %.2g apart, losses ≤ %.2g relative, gradients ≤ %.2g of their largest element (cosine ≥ %.7f); the float32 graph's gradients ≤ %.2g", worstLP, worstLoss, worstRel, worstCos, worst32)
}

// ctcLoss64 is ctcLoss on one image's (T, K) float64 log-probabilities.
func ctcLoss64(lp []float64, T, K int, labels []int) float64 {
	lp32 := make([]float32, len(lp))
	for i, v := range lp {
		lp32[i] = float32(v)
	}
	return ctcLoss(lp32, T, 1, K, 0, labels)
}

// Against the float64 graph, on a small network with non-trivial BatchNorm
// statistics, in both directions: the engine's float32 results are within
// float32 rounding of the exact ones.
func TestEngineMatchesFloat64Graph(t *testing.T) {
	for _, bidi := range []bool{false, true} {
		a := tinyArch()
		a.Bidirectional = bidi
		m := perturbedModel(t, a, 3)
		imgs := randomImages(3, a.Height, a.Width, 4)
		texts := []string{"ab", "cca", "b"}
		glp, ggrad, gcost := graphPass(t, m, modeGradient, tensor.Float64, imgs, texts)
		lp, grad, losses := enginePass(t, newEngine(m).newWorkspace(3), imgs, texts)
		if d := maxAbsDiff(lp, glp); d > 1e-5 {
			t.Errorf("bidi=%v: log-probabilities differ by %.2g", bidi, d)
		}
		var sum float64
		for _, l := range losses {
			sum += l
		}
		if math.Abs(sum-gcost) > 1e-5*gcost {
			t.Errorf("bidi=%v: summed loss %.8f, graph %.8f", bidi, sum, gcost)
		}
		if rel, cos := gradErr(grad, ggrad); rel > 1e-5 || cos < 0.9999999 {
			t.Errorf("bidi=%v: input gradient differs by %.2g of its largest element, cosine %.9f", bidi, rel, cos)
		}
	}
}

// The engine's input gradient against central finite differences of its
// own loss, pixel by pixel on a small bidirectional network and along the
// gradient on the shipped model with a real captcha.
func TestEngineGradientMatchesFiniteDifferences(t *testing.T) {
	a := tinyArch()
	a.Bidirectional = true
	m := perturbedModel(t, a, 7)
	imgs := randomImages(2, a.Height, a.Width, 8)
	texts := []string{"ab", "cca"}
	ws := newEngine(m).newWorkspace(2)
	labels := engineLabels(t, a, texts)
	losses := make([]float64, 2)
	grad := append([]float32(nil), ws.gradient(imgs, labels, losses)...)
	loss := func() float64 {
		ws.forward(imgs)
		var s float64
		for b := range imgs {
			s += ctcLoss(ws.logp, a.Steps(), len(imgs), a.Classes(), b, labels[b])
		}
		return s
	}
	px := a.Height * a.Width
	checked := 0
	for _, p := range []int{0, 5, 17, 40, 77, 127, 128 + 3, 128 + 64, 255} {
		b, i := p/px, p%px
		orig := imgs[b][i]
		const h = 1e-2
		imgs[b][i] = orig + h
		up := loss()
		imgs[b][i] = orig - h
		down := loss()
		imgs[b][i] = orig
		num := (up - down) / float64((orig+h)-(orig-h))
		if math.Abs(num-float64(grad[p])) > 2e-3+2e-2*math.Abs(num) {
			t.Errorf("d loss/d pixel %d: engine %.6f, numeric %.6f", p, grad[p], num)
		}
		checked++
	}
	if checked != 9 {
		t.Fatal("not every pixel checked")
	}

	dm, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	da := dm.Arch
	cimgs, ctexts := realCaptchas(t, 2, 7)
	dws := newEngine(dm).newWorkspace(1)
	for k := range cimgs {
		img, lbl := cimgs[k:k+1], engineLabels(t, da, ctexts[k:k+1])
		g := append([]float32(nil), dws.gradient(img, lbl, losses[:1])...)
		// Along the normalised gradient, the loss rises at |g|.
		var norm float64
		for _, v := range g {
			norm += float64(v) * float64(v)
		}
		norm = math.Sqrt(norm)
		at := func(s float64) float64 {
			x := make(Image, len(img[0]))
			for i, v := range img[0] {
				x[i] = v + float32(s*float64(g[i])/norm)
			}
			dws.forward([]Image{x})
			return ctcLoss(dws.logp, da.Steps(), 1, da.Classes(), 0, lbl[0])
		}
		const h = 1e-2
		num := (at(h) - at(-h)) / (2 * h)
		if math.Abs(num-norm) > 0.05*norm {
			t.Errorf("captcha %q: directional derivative %.5f, gradient norm %.5f", ctexts[k], num, norm)
		}
		if testing.Verbose() {
			t.Logf("captcha %q: loss %.4f, directional derivative %.6f, gradient norm %.6f", ctexts[k], losses[0], num, norm)
		}
	}
}

// A pass in steady state allocates nothing, and a batch gives each image
// what it gives alone.
func TestEngineSteadyStateAndBatchConsistency(t *testing.T) {
	m, err := NewModel(DefaultArchitecture(), 3)
	if err != nil {
		t.Fatal(err)
	}
	a := m.Arch
	imgs := randomImages(5, a.Height, a.Width, 9)
	texts := []string{"ab3xy", "hhhh", "k2", "zzz9aa", "m"}
	e := newEngine(m)
	ws := e.newWorkspace(5)
	labels := engineLabels(t, a, texts)
	losses := make([]float64, 5)
	batch := append([]float32(nil), ws.gradient(imgs, labels, losses)...)
	// gonum's Sgemm allocates for the goroutines it splits a large product
	// over, so only the OpenBLAS build can promise no allocations; the
	// gonum build is held to its products' share (a few per product).
	gradAllocs := testing.AllocsPerRun(3, func() { ws.gradient(imgs, labels, losses) })
	fwdAllocs := testing.AllocsPerRun(3, func() { ws.forward(imgs) })
	switch {
	case sgemmAllocates:
		t.Logf("gonum build: a gradient pass allocates %v times, a forward pass %v (gonum's Sgemm); the openblas build checks for none", gradAllocs, fwdAllocs)
	case gradAllocs != 0 || fwdAllocs != 0:
		t.Errorf("a gradient pass allocates %v times, a forward pass %v", gradAllocs, fwdAllocs)
	}
	one := e.newWorkspace(1)
	px := a.Height * a.Width
	for i := range imgs {
		var l [1]float64
		g := one.gradient(imgs[i:i+1], labels[i:i+1], l[:])
		if math.Abs(l[0]-losses[i]) > 1e-5*l[0] {
			t.Errorf("image %d: loss %.6f alone, %.6f in the batch", i, l[0], losses[i])
		}
		want := make([]float64, px)
		for j, v := range g {
			want[j] = float64(v)
		}
		if rel, _ := gradErr(batch[i*px:(i+1)*px], want); rel > 1e-4 {
			t.Errorf("image %d: gradient in the batch differs from alone by %.2g", i, rel)
		}
	}
}

// TestParallelChunksKeepOrder: a batch larger than Options.Batch runs its
// chunks on several workers at once and returns what one worker returns,
// image by image, in order.
func TestParallelChunksKeepOrder(t *testing.T) {
	m, err := NewModel(DefaultArchitecture(), 5)
	if err != nil {
		t.Fatal(err)
	}
	a := m.Arch
	imgs := randomImages(5, a.Height, a.Width, 17)
	texts := []string{"ab3xy", "hhhh", "k2", "zzz9aa", "m"}
	one, err := New(m, Options{Workers: 1, Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	many, err := New(m, Options{Workers: 2, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := one.InputGradient(imgs, texts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := many.InputGradient(imgs, texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Grads) != 5 || len(got.Loss) != 5 || len(got.Predictions) != 5 {
		t.Fatalf("%d gradients, %d losses, %d predictions for 5 images", len(got.Grads), len(got.Loss), len(got.Predictions))
	}
	for i := range imgs {
		ref := make([]float64, len(want.Grads[i]))
		for j, v := range want.Grads[i] {
			ref[j] = float64(v)
		}
		if rel, _ := gradErr(got.Grads[i], ref); rel > 1e-4 || math.Abs(got.Loss[i]-want.Loss[i]) > 1e-5*want.Loss[i] {
			t.Errorf("image %d: gradient %.2g apart, loss %.6f against %.6f", i, rel, got.Loss[i], want.Loss[i])
		}
	}
	if _, err := many.InputGradient(imgs, []string{"ab", "cd", "ef", "gh", "ééé"}); err == nil {
		t.Error("a text the model cannot read, in the last chunk, was accepted")
	}
}
