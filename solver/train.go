package solver

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"time"

	"gorgonia.org/tensor"
)

// TrainConfig configures Train.
type TrainConfig struct {
	// Arch is the architecture of a new model; ignored when Init is set.
	Arch Architecture
	// Init is the model to fine-tune; nil trains from scratch.
	Init *Model
	// Train and Val are the training and validation samples.
	Train, Val []Sample
	// Batch is the mini-batch size (default 32), split between Workers
	// (default GOMAXPROCS), each of which owns a graph.
	Batch, Workers int
	// Epochs is the number of passes over Train (default 10).
	Epochs int
	// LR is Adam's peak learning rate (default 1e-3). It rises linearly over
	// the first Warmup steps (default 2% of all steps) and then follows a
	// cosine down to 2% of the peak.
	LR     float64
	Warmup int
	// ClipNorm bounds the global gradient norm (default 5): CTC on an
	// untrained LSTM produces the occasional huge gradient.
	ClipNorm float64
	// Augment applies random shifts, contrast and noise to training images.
	Augment bool
	// Teacher, when set, is distilled into the model: on the samples Teach
	// marks (all when Teach is nil) the cost also has TeacherWeight
	// (default 1) times the cross-entropy of the model's output at every
	// step against the teacher's on the same augmented image, so that
	// fine-tuning on new samples moves the model less where the teacher
	// already reads well (learning without forgetting).
	Teacher       *Model
	TeacherWeight float64
	// Teach, when set, has one entry per Train sample.
	Teach []bool
	// Seed makes initialisation, order and augmentation reproducible.
	Seed uint64
	// Checkpoint is where the training state is saved every CheckpointEvery
	// steps (default 200) and at the end of every epoch; Resume continues
	// from it.
	Checkpoint      string
	CheckpointEvery int
	Resume          bool
	// Progress receives a progress line with the ETA; nil is silent.
	Progress io.Writer
	// OnEpoch is called after each epoch's validation.
	OnEpoch func(EpochResult, *Model)
}

// EpochResult is the validation after one epoch.
type EpochResult struct {
	Epoch    int
	Step     int
	Loss     float64 // mean training loss over the epoch
	Accuracy float64 // whole texts read correctly
	CharAcc  float64 // 1 − edit distance / length, averaged over characters
	Elapsed  time.Duration
}

// trainState is what a checkpoint holds.
type trainState struct {
	Model  []byte
	Step   int
	M, V   [][]float32
	Losses []float64 // per step
	Epochs []EpochResult
}

func (c *TrainConfig) defaults() {
	if c.Batch <= 0 {
		c.Batch = 32
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	c.Workers = min(c.Workers, c.Batch)
	if c.Epochs <= 0 {
		c.Epochs = 10
	}
	if c.LR <= 0 {
		c.LR = 1e-3
	}
	if c.ClipNorm <= 0 {
		c.ClipNorm = 5
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 200
	}
	if c.TeacherWeight <= 0 {
		c.TeacherWeight = 1
	}
}

// Train trains a model with mini-batch Adam and returns it with its history.
// Cancelling ctx stops after the current step with a checkpoint written.
func Train(ctx context.Context, cfg TrainConfig) (*Model, []EpochResult, error) {
	cfg.defaults()
	if len(cfg.Train) == 0 {
		return nil, nil, errors.New("train: no training samples")
	}
	var model *Model
	var err error
	if cfg.Init != nil {
		model = cfg.Init.Clone()
	} else if model, err = NewModel(cfg.Arch, cfg.Seed); err != nil {
		return nil, nil, err
	}
	a := model.Arch
	if t := cfg.Teacher; t != nil {
		if t.Arch.Steps() != a.Steps() || t.Arch.Charset != a.Charset || t.Arch.Height != a.Height || t.Arch.Width != a.Width {
			return nil, nil, fmt.Errorf("train: the teacher (%v) does not read as the model (%v) does", t.Arch, a)
		}
	}
	if cfg.Teach != nil && len(cfg.Teach) != len(cfg.Train) {
		return nil, nil, fmt.Errorf("train: %d Teach entries for %d samples", len(cfg.Teach), len(cfg.Train))
	}
	for _, set := range [][]Sample{cfg.Train, cfg.Val} {
		for _, s := range set {
			if len(s.Pixels) != a.Height*a.Width {
				return nil, nil, fmt.Errorf("train: a sample has %d pixels, the model reads %d×%d", len(s.Pixels), a.Height, a.Width)
			}
		}
	}
	specs := a.specs()
	st := &trainState{}
	for _, t := range model.tensors {
		st.M = append(st.M, make([]float32, len(t)))
		st.V = append(st.V, make([]float32, len(t)))
	}
	if cfg.Resume && cfg.Checkpoint != "" {
		if loaded, err := loadCheckpoint(cfg.Checkpoint); err == nil {
			m, err := Unmarshal(loaded.Model)
			if err != nil {
				return nil, nil, fmt.Errorf("train: checkpoint: %w", err)
			}
			if m.Arch.String() != a.String() {
				return nil, nil, fmt.Errorf("train: checkpoint is a %v, not a %v", m.Arch, a)
			}
			model, st = m, loaded
			a = model.Arch
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
	}

	// One graph per worker, each for its share of the batch.
	shares := make([]int, cfg.Workers)
	for i := range cfg.Batch {
		shares[i%cfg.Workers]++
	}
	graphs := make([]*graph, cfg.Workers)
	var teachers []*graph
	for i := range graphs {
		if graphs[i], err = buildGraphDistilling(a, modeTrain, shares[i], tensor.Float32, cfg.Teacher != nil); err != nil {
			return nil, nil, err
		}
		if cfg.Teacher != nil {
			tg, err := buildGraph(cfg.Teacher.Arch, modeInfer, shares[i], tensor.Float32)
			if err != nil {
				return nil, nil, err
			}
			tg.setWeights(cfg.Teacher)
			teachers = append(teachers, tg)
		}
	}
	val, err := buildGraph(a, modeInfer, min(cfg.Batch, max(len(cfg.Val), 1)), tensor.Float32)
	if err != nil {
		return nil, nil, err
	}

	perEpoch := len(cfg.Train) / cfg.Batch
	if perEpoch == 0 {
		perEpoch = 1
	}
	total := perEpoch * cfg.Epochs
	warmup := cfg.Warmup
	if warmup <= 0 {
		warmup = max(1, total/50)
	}
	lrAt := func(step int) float64 {
		if step < warmup {
			return cfg.LR * float64(step+1) / float64(warmup)
		}
		p := float64(step-warmup) / float64(max(1, total-warmup))
		return cfg.LR * (0.02 + 0.98*0.5*(1+math.Cos(math.Pi*math.Min(p, 1))))
	}

	grads := make([][]float32, len(specs))
	for i, s := range specs {
		if s.Trainable {
			grads[i] = make([]float32, s.size())
		}
	}
	start := time.Now()
	startStep := st.Step
	var epochLoss float64
	var epochN int
	for st.Step < total {
		if err := ctx.Err(); err != nil {
			if cfg.Checkpoint != "" {
				if err := saveCheckpoint(cfg.Checkpoint, model, st); err != nil {
					return nil, nil, err
				}
			}
			return model, st.Epochs, err
		}
		epoch, pos := st.Step/perEpoch, st.Step%perEpoch
		order := rand.New(rand.NewPCG(cfg.Seed, uint64(epoch))).Perm(len(cfg.Train))
		batch := order[pos*cfg.Batch : min((pos+1)*cfg.Batch, len(order))]
		if len(batch) < cfg.Batch { // a dataset smaller than a batch
			for len(batch) < cfg.Batch {
				batch = append(batch, order[len(batch)%len(order)])
			}
		}

		loss, err := trainStep(graphs, teachers, shares, model, cfg, batch, st.Step, grads)
		if err != nil {
			return nil, nil, fmt.Errorf("train: step %d: %w", st.Step, err)
		}
		clip(grads, cfg.ClipNorm)
		adam(model.tensors, grads, st.M, st.V, st.Step+1, lrAt(st.Step))
		updateRunningStats(model, graphs)
		st.Losses = append(st.Losses, loss)
		epochLoss += loss
		epochN++
		st.Step++

		if cfg.Progress != nil {
			progress(cfg.Progress, st.Step, total, perEpoch, loss, time.Since(start), st.Step-startStep)
		}
		if st.Step%perEpoch == 0 || st.Step == total {
			r := validate(val, model, cfg.Val)
			r.Epoch, r.Step, r.Loss, r.Elapsed = st.Step/perEpoch, st.Step, epochLoss/float64(max(epochN, 1)), time.Since(start)
			epochLoss, epochN = 0, 0
			st.Epochs = append(st.Epochs, r)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "\nepoch %d: loss %.3f  validation: text %.2f%%  char %.2f%%  (%v)\n",
					r.Epoch, r.Loss, 100*r.Accuracy, 100*r.CharAcc, r.Elapsed.Round(time.Second))
			}
			if cfg.OnEpoch != nil {
				cfg.OnEpoch(r, model)
			}
		}
		if cfg.Checkpoint != "" && (st.Step%cfg.CheckpointEvery == 0 || st.Step%perEpoch == 0 || st.Step == total) {
			if err := saveCheckpoint(cfg.Checkpoint, model, st); err != nil {
				return nil, nil, err
			}
		}
	}
	return model, st.Epochs, nil
}

// trainStep runs the workers on their shares of the batch and leaves the mean
// gradient in grads; it returns the mean loss.
func trainStep(graphs, teachers []*graph, shares []int, model *Model, cfg TrainConfig, batch []int, step int, grads [][]float32) (float64, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(graphs))
	lo := 0
	for w, g := range graphs {
		idx := batch[lo : lo+shares[w]]
		lo += shares[w]
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.setWeights(model)
			imgs := make([][]float32, len(idx))
			texts := make([]string, len(idx))
			for i, j := range idx {
				s := cfg.Train[j]
				img := s.Image()
				if cfg.Augment {
					augment(img, model.Arch.Height, model.Arch.Width, rand.New(rand.NewPCG(cfg.Seed^0xa09, uint64(step)<<20|uint64(j))))
				}
				imgs[i], texts[i] = img, s.Text
			}
			g.setInput(imgs)
			if errs[w] = g.setTargets(texts); errs[w] != nil {
				return
			}
			if teachers != nil {
				if errs[w] = setTeacher(g, teachers[w], imgs, idx, cfg); errs[w] != nil {
					return
				}
			}
			errs[w] = g.run()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	n := float32(len(batch))
	var loss float64
	for w, g := range graphs {
		loss += float64(values32(g.cost)[0])
		if g.distillCost != nil {
			loss += float64(values32(g.distillCost)[0])
		}
		k := 0
		for _, gr := range grads {
			if gr == nil {
				continue
			}
			d := values32(g.grads[k])
			k++
			if w == 0 {
				for j, v := range d {
					gr[j] = v / n
				}
			} else {
				for j, v := range d {
					gr[j] += v / n
				}
			}
		}
	}
	loss /= float64(len(batch))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("loss is %v", loss)
	}
	return loss, nil
}

// setTeacher runs the teacher on a worker's images and binds its weighted
// probabilities as the training graph's distillation targets, zero for
// samples cfg.Teach leaves out.
func setTeacher(g, teacher *graph, imgs [][]float32, idx []int, cfg TrainConfig) error {
	teacher.setInput(imgs)
	if err := teacher.run(); err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	lp, tv := values32(teacher.logProbs), g.teacherVal.Float32s()
	B, K := len(idx), g.arch.Classes()
	weight := float32(cfg.TeacherWeight)
	for row := range len(tv) / K { // row t·B+b
		j := idx[row%B]
		dst, src := tv[row*K:(row+1)*K], lp[row*K:(row+1)*K]
		if cfg.Teach != nil && !cfg.Teach[j] {
			clear(dst)
			continue
		}
		for k, v := range src {
			dst[k] = weight * float32(math.Exp(float64(v)))
		}
	}
	return nil
}

func clip(grads [][]float32, maxNorm float64) {
	var sq float64
	for _, g := range grads {
		for _, v := range g {
			sq += float64(v) * float64(v)
		}
	}
	if norm := math.Sqrt(sq); norm > maxNorm {
		s := float32(maxNorm / norm)
		for _, g := range grads {
			for j := range g {
				g[j] *= s
			}
		}
	}
}

// adam is one Adam update (β1 0.9, β2 0.999, ε 1e-8) of every trainable tensor.
func adam(params, grads, m, v [][]float32, t int, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1 := 1 - math.Pow(b1, float64(t))
	c2 := 1 - math.Pow(b2, float64(t))
	step := float32(lr * math.Sqrt(c2) / c1)
	for i, g := range grads {
		if g == nil {
			continue
		}
		p, mi, vi := params[i], m[i], v[i]
		for j, gj := range g {
			mi[j] = b1*mi[j] + (1-b1)*gj
			vi[j] = b2*vi[j] + (1-b2)*gj*gj
			p[j] -= step * mi[j] / (float32(math.Sqrt(float64(vi[j]))) + eps)
		}
	}
}

// updateRunningStats folds the batch statistics the workers' BatchNorm ops
// recorded into the model's running mean and variance (momentum 0.1).
func updateRunningStats(model *Model, graphs []*graph) {
	const momentum = 0.1
	for l := range graphs[0].bns {
		mean, vr := model.tensors[5*l+3], model.tensors[5*l+4]
		for c := range mean {
			var bm, bv float64
			for _, g := range graphs {
				bm += g.bns[l].mean[c]
				bv += g.bns[l].batchVar[c]
			}
			bm /= float64(len(graphs))
			bv /= float64(len(graphs))
			mean[c] = float32((1-momentum)*float64(mean[c]) + momentum*bm)
			vr[c] = float32((1-momentum)*float64(vr[c]) + momentum*bv)
		}
	}
}

func validate(g *graph, model *Model, val []Sample) EpochResult {
	var r EpochResult
	if len(val) == 0 {
		return r
	}
	g.setWeights(model)
	a := model.Arch
	var correct, chars, errs int
	for lo := 0; lo < len(val); lo += g.batch {
		chunk := val[lo:min(lo+g.batch, len(val))]
		imgs := make([][]float32, g.batch)
		for i := range imgs {
			imgs[i] = chunk[min(i, len(chunk)-1)].Image()
		}
		g.setInput(imgs)
		if err := g.run(); err != nil {
			return r
		}
		preds := greedyDecode(a, values32(g.logProbs), a.Steps(), g.batch)
		for i, s := range chunk {
			if preds[i].Text == s.Text {
				correct++
			}
			chars += len([]rune(s.Text))
			errs += editDistance([]rune(preds[i].Text), []rune(s.Text))
		}
	}
	r.Accuracy = float64(correct) / float64(len(val))
	r.CharAcc = math.Max(0, 1-float64(errs)/float64(chars))
	return r
}

func editDistance(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// augment perturbs a training image the way captchas of one style vary: a
// shift of a few pixels (the background filled with white), contrast and
// brightness, and pixel noise.
func augment(img Image, h, w int, rng *rand.Rand) {
	dx, dy := rng.IntN(7)-3, rng.IntN(5)-2
	if dx != 0 || dy != 0 {
		src := append(Image(nil), img...)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				sx, sy := x-dx, y-dy
				if sx < 0 || sy < 0 || sx >= w || sy >= h {
					img[y*w+x] = 1
				} else {
					img[y*w+x] = src[sy*w+sx]
				}
			}
		}
	}
	contrast := float32(0.8 + 0.4*rng.Float64())
	bright := float32(0.1 * (rng.Float64()*2 - 1))
	noise := 0.03 * rng.Float64()
	for i, v := range img {
		v = (v-0.5)*contrast + 0.5 + bright + float32(rng.NormFloat64()*noise)
		img[i] = min(max(v, 0), 1)
	}
}

func progress(out io.Writer, step, total, perEpoch int, loss float64, elapsed time.Duration, done int) {
	const width = 30
	if step%10 != 0 && step != total {
		return
	}
	per := elapsed / time.Duration(max(done, 1))
	eta := per * time.Duration(total-step)
	fill := width * step / total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < fill {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(out, "\repoch %d [%s] step %d/%d  loss %.3f  %.2fs/step  ETA %v   ",
		step/perEpoch+1, bar, step, total, loss, per.Seconds(), eta.Round(time.Second))
	if f, ok := out.(*os.File); ok && !isTerminal(f) {
		fmt.Fprintln(out)
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func saveCheckpoint(path string, m *Model, st *trainState) error {
	st.Model = m.Marshal()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := gob.NewEncoder(f).Encode(st); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return os.Rename(tmp, path)
}

func loadCheckpoint(path string) (*trainState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st trainState
	if err := gob.NewDecoder(f).Decode(&st); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return &st, nil
}

// CheckpointHistory returns the per-step losses and per-epoch validations a
// checkpoint recorded, for plotting.
func CheckpointHistory(path string) ([]float64, []EpochResult, error) {
	st, err := loadCheckpoint(path)
	if err != nil {
		return nil, nil, err
	}
	return st.Losses, st.Epochs, nil
}
