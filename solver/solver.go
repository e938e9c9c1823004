package solver

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"runtime"
	"sync"

	"gorgonia.org/tensor"
)

// Options configure a Solver.
type Options struct {
	// Workers bounds how many graphs run at once (default GOMAXPROCS). Each
	// worker keeps its compiled graphs for reuse.
	Workers int
	// Batch is the largest batch one pass takes; longer inputs are
	// processed in chunks. Default 32 for the engine (its matrix products
	// gain from width), 8 for gorgonia graphs (one is built per size).
	Batch int
	// Graph runs inference and input gradients in gorgonia graphs, as
	// training does, instead of the engine (engine.go). The environment
	// variable ADVCAPTCHA_SOLVER_ENGINE=gorgonia sets it for every solver:
	// to compare the two, or to fall back.
	Graph bool
}

// EngineEnv names the environment variable that selects gorgonia graphs
// (the value "gorgonia") over the engine for every Solver.
const EngineEnv = "ADVCAPTCHA_SOLVER_ENGINE"

// Solver runs a Model from any number of goroutines. Graph construction is
// slow and retains memory, so graphs are built lazily once per (mode, batch
// size) and worker, then reused.
type Solver struct {
	model *Model
	opts  Options
	sem   chan struct{}

	mu   sync.Mutex
	idle map[graphKey][]*graph

	versionOnce sync.Once
	version     string

	// eng is nil when the solver runs gorgonia graphs (Options.Graph).
	eng    *engine
	idleWS []*workspace
}

type graphKey struct {
	mode  mode
	batch int
}

// NewEach returns a solver for each model, with the same options.
func NewEach(models []*Model, opts Options) ([]*Solver, error) {
	out := make([]*Solver, len(models))
	for i, m := range models {
		s, err := New(m, opts)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Version(), err)
		}
		out[i] = s
	}
	return out, nil
}

// New returns a Solver for m.
func New(m *Model, opts Options) (*Solver, error) {
	if m == nil {
		return nil, errors.New("solver: nil model")
	}
	if err := m.Arch.Validate(); err != nil {
		return nil, fmt.Errorf("solver: %w", err)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if os.Getenv(EngineEnv) == "gorgonia" {
		opts.Graph = true
	}
	s := &Solver{model: m, sem: make(chan struct{}, opts.Workers), idle: map[graphKey][]*graph{}}
	if opts.Batch <= 0 {
		opts.Batch = 32
		if opts.Graph {
			opts.Batch = 8
		}
	}
	if !opts.Graph {
		s.eng = newEngine(m)
	}
	s.opts = opts
	return s, nil
}

// Engine names what runs the solver's inference and input gradients:
// "engine" or "gorgonia" (Options.Graph).
func (s *Solver) Engine() string {
	if s.eng == nil {
		return "gorgonia"
	}
	return "engine"
}

// acquireWS borrows a workspace for n images.
func (s *Solver) acquireWS(n int) *workspace {
	s.sem <- struct{}{}
	s.mu.Lock()
	var ws *workspace
	if l := len(s.idleWS); l > 0 {
		ws = s.idleWS[l-1]
		s.idleWS = s.idleWS[:l-1]
	}
	s.mu.Unlock()
	if ws == nil {
		ws = s.eng.newWorkspace(n)
	}
	ws.grow(n)
	return ws
}

func (s *Solver) releaseWS(ws *workspace) {
	s.mu.Lock()
	s.idleWS = append(s.idleWS, ws)
	s.mu.Unlock()
	<-s.sem
}

// Model returns the model the solver runs.
func (s *Solver) Model() *Model { return s.model }

// ModelVersion is Model().Version(), computed once: it hashes the whole
// model, which a generator asks for with every captcha it makes.
func (s *Solver) ModelVersion() string {
	s.versionOnce.Do(func() { s.version = s.model.Version() })
	return s.version
}

func (s *Solver) acquire(k graphKey) (*graph, error) {
	s.sem <- struct{}{}
	s.mu.Lock()
	if l := s.idle[k]; len(l) > 0 {
		g := l[len(l)-1]
		s.idle[k] = l[:len(l)-1]
		s.mu.Unlock()
		return g, nil
	}
	s.mu.Unlock()
	g, err := buildGraph(s.model.Arch, k.mode, k.batch, tensor.Float32)
	if err != nil {
		<-s.sem
		return nil, err
	}
	g.setWeights(s.model)
	return g, nil
}

func (s *Solver) release(k graphKey, g *graph) {
	s.mu.Lock()
	s.idle[k] = append(s.idle[k], g)
	s.mu.Unlock()
	<-s.sem
}

// Image is a grayscale image as Height·Width pixels in row-major order, with
// values from 0 (black) to 1 (white).
type Image []float32

// FromImage converts an image of the model's input size to an Image.
func (s *Solver) FromImage(img image.Image) (Image, error) {
	return FromImage(img, s.model.Arch.Height, s.model.Arch.Width)
}

// FromImage converts an h×w image to grayscale pixels in [0,1].
func FromImage(img image.Image, h, w int) (Image, error) {
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		return nil, fmt.Errorf("image is %d×%d, the model reads %d×%d", b.Dx(), b.Dy(), w, h)
	}
	out := make(Image, h*w)
	if g, ok := img.(*image.Gray); ok {
		for y := 0; y < h; y++ {
			row := g.Pix[y*g.Stride : y*g.Stride+w]
			for x, v := range row {
				out[y*w+x] = float32(v) / 255
			}
		}
		return out, nil
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			out[y*w+x] = float32(color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y) / 255
		}
	}
	return out, nil
}

func (s *Solver) checkImages(images []Image) error {
	n := s.model.Arch.Height * s.model.Arch.Width
	for i, img := range images {
		if len(img) != n {
			return fmt.Errorf("solver: image %d has %d pixels, want %d×%d", i, len(img), s.model.Arch.Height, s.model.Arch.Width)
		}
	}
	return nil
}

// Predict reads every image.
func (s *Solver) Predict(images []Image) ([]Prediction, error) {
	out := make([]Prediction, 0, len(images))
	err := s.forward(images, func(lp []float32, batch int, chunk []Image) {
		p := greedyDecode(s.model.Arch, lp, s.model.Arch.Steps(), batch)
		out = append(out, p[:len(chunk)]...)
	})
	return out, err
}

// Loss returns the CTC loss (the negative log-likelihood) of each image's text.
func (s *Solver) Loss(images []Image, texts []string) ([]float64, error) {
	if len(texts) != len(images) {
		return nil, fmt.Errorf("solver: %d images and %d texts", len(images), len(texts))
	}
	a := s.model.Arch
	labels := make([][]int, len(texts))
	for i, t := range texts {
		var err error
		if labels[i], err = encode(a, t); err != nil {
			return nil, fmt.Errorf("solver: %w", err)
		}
	}
	out := make([]float64, 0, len(images))
	err := s.forward(images, func(lp []float32, batch int, chunk []Image) {
		for i := range chunk {
			out = append(out, ctcLoss(lp, a.Steps(), batch, a.Classes(), i, labels[len(out)]))
		}
	})
	return out, err
}

// forward runs the inference graph over images in chunks of Options.Batch and
// hands each chunk's (T,B,K) log-probabilities to use.
func (s *Solver) forward(images []Image, use func(lp []float32, batch int, chunk []Image)) error {
	if err := s.checkImages(images); err != nil {
		return err
	}
	for lo := 0; lo < len(images); lo += s.opts.Batch {
		chunk := images[lo:min(lo+s.opts.Batch, len(images))]
		if s.eng != nil {
			ws := s.acquireWS(len(chunk))
			ws.forward(chunk)
			a := s.model.Arch
			use(ws.logp[:a.Steps()*len(chunk)*a.Classes()], len(chunk), chunk)
			s.releaseWS(ws)
			continue
		}
		// Short chunks are padded so that one graph size serves every call.
		batch := min(s.opts.Batch, len(images))
		k := graphKey{modeInfer, batch}
		g, err := s.acquire(k)
		if err != nil {
			return err
		}
		g.setInput(padImages(chunk, batch))
		err = g.run()
		if err == nil {
			use(values32(g.logProbs), batch, chunk)
		}
		s.release(k, g)
		if err != nil {
			return fmt.Errorf("solver: forward: %w", err)
		}
	}
	return nil
}

func padImages(chunk []Image, batch int) [][]float32 {
	out := make([][]float32, batch)
	for i := range out {
		if i < len(chunk) {
			out[i] = chunk[i]
		} else {
			out[i] = chunk[0]
		}
	}
	return out
}

// Gradient is the result of InputGradient.
type Gradient struct {
	// Grads holds d(loss)/d(pixel) for each image.
	Grads []Image
	// Loss is the CTC loss (negative log-likelihood of the text) of each image.
	Loss []float64
	// Predictions are what the solver read, from the same forward pass.
	Predictions []Prediction
}

// InputGradient returns the gradient of the CTC loss of texts with respect to
// the input pixels: what the adversarial attacks follow.
func (s *Solver) InputGradient(images []Image, texts []string) (*Gradient, error) {
	if err := s.checkImages(images); err != nil {
		return nil, err
	}
	if len(texts) != len(images) {
		return nil, fmt.Errorf("solver: %d images and %d texts", len(images), len(texts))
	}
	res := &Gradient{}
	if chunks := (len(images) + s.opts.Batch - 1) / s.opts.Batch; s.eng != nil && chunks > 1 && s.opts.Workers > 1 {
		return s.parallelGradient(images, texts, chunks)
	}
	for lo := 0; lo < len(images); lo += s.opts.Batch {
		hi := min(lo+s.opts.Batch, len(images))
		if err := s.gradientChunk(images[lo:hi], texts[lo:hi], res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// parallelGradient is InputGradient over several chunks at once, as many
// as there are workers: one call uses every core the solver may, each chunk
// on one (the engine's products are single-threaded by default, and the
// steps between them always are).
func (s *Solver) parallelGradient(images []Image, texts []string, chunks int) (*Gradient, error) {
	parts := make([]Gradient, chunks)
	errs := make([]error, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		lo, hi := c*s.opts.Batch, min((c+1)*s.opts.Batch, len(images))
		wg.Go(func() { errs[c] = s.engineGradient(images[lo:hi], texts[lo:hi], &parts[c]) })
	}
	wg.Wait()
	res := &Gradient{}
	for c := range parts {
		if errs[c] != nil {
			return nil, errs[c]
		}
		res.Grads = append(res.Grads, parts[c].Grads...)
		res.Loss = append(res.Loss, parts[c].Loss...)
		res.Predictions = append(res.Predictions, parts[c].Predictions...)
	}
	return res, nil
}

func (s *Solver) gradientChunk(images []Image, texts []string, res *Gradient) error {
	if s.eng != nil {
		return s.engineGradient(images, texts, res)
	}
	k := graphKey{modeGradient, len(images)}
	g, err := s.acquire(k)
	if err != nil {
		return err
	}
	defer s.release(k, g)
	imgs := make([][]float32, len(images))
	for i := range images {
		imgs[i] = images[i]
	}
	g.setInput(imgs)
	if err := g.setTargets(texts); err != nil {
		return fmt.Errorf("solver: %w", err)
	}
	// The summed loss is all gorgonia's CTC op exposes; per-image losses come
	// from the log-probabilities with the same forward recursion.
	if err := g.run(); err != nil {
		return fmt.Errorf("solver: gradient: %w", err)
	}
	a := s.model.Arch
	lp := values32(g.logProbs)
	res.Predictions = append(res.Predictions, greedyDecode(a, lp, a.Steps(), len(images))...)
	for i, t := range texts {
		classes, _ := encode(a, t)
		res.Loss = append(res.Loss, ctcLoss(lp, a.Steps(), len(images), a.Classes(), i, classes))
	}
	grad := values32(g.grads[0])
	n := a.Height * a.Width
	for i := range images {
		res.Grads = append(res.Grads, append(Image(nil), grad[i*n:(i+1)*n]...))
	}
	return nil
}

// engineGradient is gradientChunk in the engine.
func (s *Solver) engineGradient(images []Image, texts []string, res *Gradient) error {
	a := s.model.Arch
	labels := make([][]int, len(texts))
	for i, t := range texts {
		classes, err := encode(a, t)
		if err != nil {
			return fmt.Errorf("solver: %w", err)
		}
		if need := ctcMinSteps(classes); need > a.Steps() {
			return fmt.Errorf("solver: text %q needs %d steps, the model has %d", t, need, a.Steps())
		}
		labels[i] = classes
	}
	n := len(images)
	losses := make([]float64, n)
	ws := s.acquireWS(n)
	defer s.releaseWS(ws)
	grad := ws.gradient(images, labels, losses)
	res.Loss = append(res.Loss, losses...)
	res.Predictions = append(res.Predictions, greedyDecode(a, ws.logp, a.Steps(), n)...)
	px := a.Height * a.Width
	all := make([]float32, n*px) // one allocation for the chunk's images
	copy(all, grad)
	for i := range images {
		res.Grads = append(res.Grads, Image(all[i*px:(i+1)*px:(i+1)*px]))
	}
	return nil
}
