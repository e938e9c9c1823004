package caddycommand

import (
	"context"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

func trainCommand() *cobra.Command {
	var data, val []string
	var out, init, conv, curve, checkpoint, about, trainFilter string
	var epochs, batch, workers, hidden, layers, height, width, trainPasses int
	var lr, valSplit float64
	var seed uint64
	var noAugment, resume, bidi bool
	c := &cobra.Command{
		Use:   "train --data DIR [--data DIR…] --out MODEL [flags]",
		Short: "Train a solver model on labels.csv datasets",
		Long: `Trains the CRNN solver with mini-batch Adam on the datasets that
"advcaptcha dataset" writes, validating after every epoch (whole text and per
character), saving a checkpoint (MODEL.ckpt) every 200 steps and at every
epoch's end, and drawing the training curve (MODEL.curve.png). Interrupted
(Ctrl-C), it saves a checkpoint; --resume continues from it. --init MODEL
fine-tunes an existing model instead of starting from scratch. --filter trains
on preprocessed images (e.g. binarize: Otsu), as the classic captcha-breaking
pipeline does; such a model reads through the same filter (eval --filter).

The architecture flags describe a new model; the default is the paper's
Table 6 with height-only pooling in the last two blocks.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(data) == 0 || out == "" {
				return errors.New("--data and --out are required")
			}
			arch := solver.DefaultArchitecture()
			arch.Hidden, arch.Layers, arch.Bidirectional = hidden, layers, bidi
			arch.Height, arch.Width = height, width
			if conv != "" {
				blocks, err := parseConv(conv)
				if err != nil {
					return err
				}
				arch.Conv = blocks
			}
			var initModel *solver.Model
			if init != "" {
				m, err := solver.Load(init)
				if err != nil {
					return err
				}
				initModel, arch = m, m.Arch
			}
			if err := arch.Validate(); err != nil {
				return fmt.Errorf("architecture: %w", err)
			}
			train, err := loadSets(data, arch)
			if err != nil {
				return err
			}
			var valSet []solver.Sample
			if len(val) > 0 {
				if valSet, err = loadSets(val, arch); err != nil {
					return err
				}
			} else {
				n := int(math.Round(valSplit * float64(len(train))))
				train, valSet = train[:len(train)-n], train[len(train)-n:]
			}
			if trainFilter != "" {
				// An attacker's pipeline: every image, training and
				// validation, preprocessed before the network sees it (and
				// so at test time: eval --filter with the same filter).
				f, ok := perturb.FilterByName(trainFilter)
				if !ok || trainPasses < 1 {
					return fmt.Errorf("--filter %q --passes %d: unknown filter or fewer than one pass", trainFilter, trainPasses)
				}
				for _, set := range [][]solver.Sample{train, valSet} {
					for i := range set {
						set[i].Pixels = preprocess(set[i].Pixels, arch.Height, arch.Width, f, trainPasses)
					}
				}
			}
			if checkpoint == "" {
				checkpoint = out + ".ckpt"
			}
			if curve == "" {
				curve = out + ".curve.png"
			}
			fmt.Fprintf(os.Stderr, "training %v on %d captchas, validating on %d (BLAS: %s)\n", arch, len(train), len(valSet), solver.BLAS)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			cfg := solver.TrainConfig{
				Arch: arch, Init: initModel, Train: train, Val: valSet,
				Batch: batch, Workers: workers, Epochs: epochs, LR: lr,
				Augment: !noAugment, Seed: seed, Checkpoint: checkpoint, Resume: resume,
				Progress: os.Stderr,
			}
			// The epoch with the best validation is kept in MODEL.best:
			// a run that diverges late (it happens at high learning rates)
			// loses nothing it had reached. A resumed run compares with the
			// file already there.
			bestPath, best := out+".best", -1.0
			if m, err := solver.Load(bestPath); err == nil {
				best, _ = strconv.ParseFloat(m.Info["val_text"], 64)
			}
			cfg.OnEpoch = func(r solver.EpochResult, m *solver.Model) {
				if err := writeCurve(curve, checkpoint); err != nil {
					fmt.Fprintf(os.Stderr, "training curve: %v\n", err)
				}
				if len(cfg.Val) == 0 || r.Accuracy <= best {
					return
				}
				best = r.Accuracy
				snap := m.Clone()
				snap.Info = map[string]string{"val_text": fmt.Sprintf("%.4f", r.Accuracy), "val_char": fmt.Sprintf("%.4f", r.CharAcc),
					"epoch": strconv.Itoa(r.Epoch), "step": strconv.Itoa(r.Step), "about": about,
					"command": "caddy advcaptcha train " + strings.Join(os.Args[3:], " ")}
				if err := snap.Save(bestPath); err != nil {
					fmt.Fprintf(os.Stderr, "best model: %v\n", err)
				}
			}
			model, epochsDone, err := solver.Train(ctx, cfg)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("interrupted; checkpoint saved in %s (continue with --resume)", checkpoint)
				}
				return err
			}
			last := epochsDone[len(epochsDone)-1]
			model.Info = map[string]string{
				"trained":    time.Now().UTC().Format(time.RFC3339),
				"data":       strings.Join(data, ","),
				"train_size": strconv.Itoa(len(train)),
				"val_size":   strconv.Itoa(len(valSet)),
				"epochs":     strconv.Itoa(len(epochsDone)),
				"val_text":   fmt.Sprintf("%.4f", last.Accuracy),
				"val_char":   fmt.Sprintf("%.4f", last.CharAcc),
				"command":    "caddy advcaptcha train " + strings.Join(os.Args[3:], " "),
				"about":      about,
			}
			if init != "" {
				model.Info["init"] = init
			}
			if trainFilter != "" {
				model.Info["preprocess"] = fmt.Sprintf("%s ×%d", trainFilter, trainPasses)
			}
			if err := model.Save(out); err != nil {
				return err
			}
			if err := writeCurve(curve, checkpoint); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s (version %s), curve %s\n", out, model.Version(), curve)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&data, "data", nil, "training dataset directory (repeatable)")
	f.StringArrayVar(&val, "val", nil, "validation dataset directory (repeatable); default: hold out --val-split of --data")
	f.Float64Var(&valSplit, "val-split", 0.02, "share of --data held out for validation when there is no --val")
	f.StringVar(&out, "out", "", "model file to write")
	f.StringVar(&init, "init", "", "model to fine-tune instead of training from scratch")
	f.StringVar(&checkpoint, "checkpoint", "", "checkpoint file (default MODEL.ckpt)")
	f.BoolVar(&resume, "resume", false, "continue from the checkpoint")
	f.StringVar(&curve, "curve", "", "training-curve PNG (default MODEL.curve.png)")
	f.IntVar(&epochs, "epochs", 10, "passes over the training data")
	f.IntVar(&batch, "batch", 32, "mini-batch size")
	f.IntVar(&workers, "workers", 0, "graphs computing a batch in parallel (default: number of CPUs)")
	f.Float64Var(&lr, "lr", 1e-3, "peak learning rate")
	f.Uint64Var(&seed, "seed", 1, "seed of initialisation, order and augmentation")
	f.BoolVar(&noAugment, "no-augment", false, "train on the images as they are")
	f.StringVar(&conv, "conv", "", `convolution blocks as FILTERS/POOLHxPOOLW,… (default "64/2x2,128/2x2,128/2x1,64/2x1")`)
	f.IntVar(&hidden, "hidden", 256, "LSTM units per layer")
	f.IntVar(&layers, "layers", 2, "LSTM layers")
	f.BoolVar(&bidi, "bidirectional", false, "bidirectional LSTM layers")
	f.IntVar(&height, "height", 30, "input height")
	f.IntVar(&width, "width", 100, "input width")
	f.StringVar(&about, "about", "", "free text stored in the model file")
	f.StringVar(&trainFilter, "filter", "", "preprocess every training and validation image with this attacker filter (binarize, median, …), as a solver that binarises before reading is trained; evaluate it with eval --filter")
	f.IntVar(&trainPasses, "passes", 1, "how many times --filter is applied")
	return c
}

func parseConv(s string) ([]solver.ConvBlock, error) {
	var out []solver.ConvBlock
	for _, part := range strings.Split(s, ",") {
		var b solver.ConvBlock
		if _, err := fmt.Sscanf(strings.TrimSpace(part), "%d/%dx%d", &b.Filters, &b.PoolH, &b.PoolW); err != nil {
			return nil, fmt.Errorf("--conv %q: want FILTERS/POOLHxPOOLW, e.g. 64/2x2: %v", part, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func loadSets(dirs []string, arch solver.Architecture) ([]solver.Sample, error) {
	var out []solver.Sample
	for _, d := range dirs {
		s, err := solver.LoadDataset(d, arch)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}

func writeCurve(path, checkpoint string) error {
	losses, epochs, err := solver.CheckpointHistory(checkpoint)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, solver.Curve(losses, epochs)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func evalCommand() *cobra.Command {
	var model, filter string
	var passes int
	var data []string
	var misreads bool
	c := &cobra.Command{
		Use:   "eval [--model MODEL] --data DIR [--data DIR…]",
		Short: "Measure a solver model's accuracy on labels.csv datasets",
		Long: `Reads every captcha of the datasets with the model (the shipped default
model without --model) and prints the accuracy by text length, per character,
and last the line "solved N/M = P%". With --filter, each image is first
preprocessed as attackers do — gaussian, median, mean, bilateral, binarize (Otsu),
adaptive (local-mean binarisation), flatten (even out the light), flatbinarize (flatten,
then Otsu), threshold100, close or open (3×3 grey morphology), flatbinclose (flatten, Otsu,
close), resize, jpeg or edges (Sobel outlines) — applied --passes times and saved back to 8 bits.
With --misreads, every captcha read wrong is listed first as "misread N TEXT READ"
(N counts from 0 over the datasets in order; READ is "" when nothing was read).`,
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(data) == 0 {
				return errors.New("--data is required")
			}
			m, err := loadModelOrDefault(model)
			if err != nil {
				return err
			}
			samples, err := loadSets(data, m.Arch)
			if err != nil {
				return err
			}
			if filter != "" {
				f, ok := perturb.FilterByName(filter)
				if !ok || passes < 1 {
					return fmt.Errorf("--filter %q --passes %d: unknown filter or fewer than one pass", filter, passes)
				}
				for i := range samples {
					samples[i].Pixels = preprocess(samples[i].Pixels, m.Arch.Height, m.Arch.Width, f, passes)
				}
			}
			s, err := solver.New(m, solver.Options{Batch: 16})
			if err != nil {
				return err
			}
			start := time.Now()
			r, err := solver.Evaluate(s, samples)
			if err != nil {
				return err
			}
			if misreads {
				for _, e := range r.Misreads {
					fmt.Printf("misread %d %s %q\n", e.Index, e.Text, e.Read)
				}
			}
			fmt.Printf("model %s (%v)\n", m.Version(), m.Arch)
			for _, l := range r.ByLength {
				fmt.Printf("length %d: %d/%d = %.1f%%\n", l.Length, l.Solved, l.Total, 100*float64(l.Solved)/float64(l.Total))
			}
			fmt.Printf("per character: %.2f%%   (%.1f ms per captcha)\n", 100*r.CharAcc, float64(time.Since(start).Milliseconds())/float64(len(samples)))
			fmt.Printf("solved %d/%d = %.1f%%\n", r.Solved, r.Total, 100*float64(r.Solved)/float64(r.Total))
			return nil
		},
	}
	c.Flags().StringVar(&model, "model", "", "model file (default: the shipped model)")
	c.Flags().StringArrayVar(&data, "data", nil, "dataset directory (repeatable)")
	c.Flags().StringVar(&filter, "filter", "", "preprocess each image with this attacker filter first")
	c.Flags().IntVar(&passes, "passes", 1, "how many times the filter is applied")
	c.Flags().BoolVar(&misreads, "misreads", false, "list every captcha read wrong, with what was read")
	return c
}

// preprocess applies an attacker's filter passes times to an 8-bit image,
// quantizing back to 8 bits as a saved image would be.
func preprocess(px []uint8, h, w int, f perturb.Filter, passes int) []uint8 {
	img := make([]float32, len(px))
	for i, v := range px {
		img[i] = float32(v) / 255
	}
	for range passes {
		img = f.Apply(img, h, w)
	}
	return perturb.ToGray(img, h, w).Pix
}

func loadModelOrDefault(path string) (*solver.Model, error) {
	if path != "" {
		return solver.Load(path)
	}
	return solver.Default()
}
