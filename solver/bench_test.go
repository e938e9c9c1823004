package solver

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// The same measurements as bench/solver/torch_crnn.py, on the default
// architecture with random weights (speed does not depend on the weights).

func randomImages(n, h, w int, seed uint64) []Image {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Image, n)
	for i := range out {
		out[i] = make(Image, h*w)
		for j := range out[i] {
			out[i][j] = rng.Float32()
		}
	}
	return out
}

// benchSolver is a solver of the default architecture run with opts, and
// n images with their texts. Options.Batch defaults to n on one worker.
func benchSolver(b *testing.B, n int, opts Options) (*Solver, []Image, []string) {
	m, err := NewModel(DefaultArchitecture(), 1)
	if err != nil {
		b.Fatal(err)
	}
	if opts.Batch == 0 {
		opts.Workers, opts.Batch = 1, n
	}
	s, err := New(m, opts)
	if err != nil {
		b.Fatal(err)
	}
	texts := make([]string, n)
	for i := range texts {
		texts[i] = "ab3xy"
	}
	return s, randomImages(n, 30, 100, 1), texts
}

func reportFLOPs(b *testing.B, perOp float64) {
	b.ReportMetric(perOp*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// The batched rows: one op is a whole batch, so ms/op over the batch is
// the figure per image (bench/solver/run.sh divides), as in PyTorch's rows.

func benchForward(b *testing.B, batch int) {
	s, imgs, _ := benchSolver(b, batch, Options{})
	s.Predict(imgs) // build the graph outside the timing
	for b.Loop() {
		if _, err := s.Predict(imgs); err != nil {
			b.Fatal(err)
		}
	}
	reportFLOPs(b, float64(batch)*DefaultArchitecture().FLOPs())
}

func benchGradient(b *testing.B, batch int, opts Options) {
	s, imgs, texts := benchSolver(b, batch, opts)
	s.InputGradient(imgs, texts)
	for b.Loop() {
		if _, err := s.InputGradient(imgs, texts); err != nil {
			b.Fatal(err)
		}
	}
	reportFLOPs(b, 2*float64(batch)*DefaultArchitecture().FLOPs())
}

// BenchmarkGradientWorkersBatch32 is a batch of 32 on every core: two
// chunks of 16 side by side, one per worker (with OPENBLAS_NUM_THREADS=1,
// each product on its worker's core), as the solver runs a batch larger
// than Options.Batch.
func BenchmarkGradientWorkersBatch32(b *testing.B) { benchGradient(b, 32, Options{Batch: 16}) }

func BenchmarkForward(b *testing.B)         { benchForward(b, 1) }
func BenchmarkForwardBatch16(b *testing.B)  { benchForward(b, 16) }
func BenchmarkForwardBatch32(b *testing.B)  { benchForward(b, 32) }
func BenchmarkGradient(b *testing.B)        { benchGradient(b, 1, Options{}) }
func BenchmarkGradientBatch16(b *testing.B) { benchGradient(b, 16, Options{}) }
func BenchmarkGradientBatch32(b *testing.B) { benchGradient(b, 32, Options{}) }

// BenchmarkAttack10 is ten signed-gradient steps on one image, the inner loop
// of an iterative attack; BenchmarkAttack10Batch32 the same on 32 images at
// once, as a generator working on many captchas would run it.
func BenchmarkAttack10(b *testing.B)        { benchAttack10(b, 1) }
func BenchmarkAttack10Batch32(b *testing.B) { benchAttack10(b, 32) }

func benchAttack10(b *testing.B, batch int) {
	s, imgs, texts := benchSolver(b, batch, Options{})
	s.InputGradient(imgs, texts)
	xs := make([]Image, batch)
	for b.Loop() {
		for k := range xs {
			xs[k] = append(xs[k][:0], imgs[k]...)
		}
		for range 10 {
			g, err := s.InputGradient(xs, texts)
			if err != nil {
				b.Fatal(err)
			}
			for k, x := range xs {
				for i, v := range g.Grads[k] {
					switch {
					case v > 0:
						x[i] = min(x[i]+2.0/255, 1)
					case v < 0:
						x[i] = max(x[i]-2.0/255, 0)
					}
				}
			}
		}
	}
	reportFLOPs(b, 20*float64(batch)*DefaultArchitecture().FLOPs())
}

// BenchmarkTrainStep32 is one training step on 32 images: both workers'
// forward and backward passes, gradient clipping, Adam and the BatchNorm
// statistics, as Train runs it.
func BenchmarkTrainStep32(b *testing.B) {
	a := DefaultArchitecture()
	var samples []Sample
	for i, img := range randomImages(32, 30, 100, 2) {
		px := make([]uint8, len(img))
		for j, v := range img {
			px[j] = uint8(v * 255)
		}
		samples = append(samples, Sample{px, []string{"abc23", "xyz", "hhhh", "a2b3c4"}[i%4]})
	}
	cfg := TrainConfig{Train: samples, Batch: 32, Workers: 2, Augment: true}
	cfg.defaults()
	m, _ := NewModel(a, 1)
	shares := []int{16, 16}
	graphs := make([]*graph, 2)
	for i := range graphs {
		var err error
		if graphs[i], err = buildGraph(a, modeTrain, 16, tensor.Float32); err != nil {
			b.Fatal(err)
		}
	}
	grads := make([][]float32, len(m.tensors))
	mo, vo := make([][]float32, len(m.tensors)), make([][]float32, len(m.tensors))
	for i, s := range a.specs() {
		mo[i], vo[i] = make([]float32, s.size()), make([]float32, s.size())
		if s.Trainable {
			grads[i] = make([]float32, s.size())
		}
	}
	batch := make([]int, 32)
	for i := range batch {
		batch[i] = i
	}
	step := 0
	for b.Loop() {
		if _, err := trainStep(graphs, nil, shares, m, cfg, batch, step, grads); err != nil {
			b.Fatal(err)
		}
		clip(grads, cfg.ClipNorm)
		step++
		adam(m.tensors, grads, mo, vo, step, 1e-3)
		updateRunningStats(m, graphs)
	}
	reportFLOPs(b, 32*3*a.FLOPs())
}
