package caddycommand

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/solver"
)

// maxAnswerLen bounds the attacker answers used as training labels: the
// solver's 25 steps read at most 12 characters (CTC needs a step between
// repeated letters).
const maxAnswerLen = 12

func extractCommand() *cobra.Command {
	var rf redisFlags
	var out, initPath string
	var lookback time.Duration
	var tune, publish bool
	var cleanN, cleanValN, epochs, batch, workers, minHeldOut int
	var lr, maxCleanDrop float64
	var seed uint64
	c := &cobra.Command{
		Use:   "extract --redis ADDR --out DIR [--tune [--publish]]",
		Short: "Model extraction: train the substitute on confirmed attackers' answers",
		Long: `Reads the gateway's captcha and label logs from Redis and writes every answer
a confirmed attacker gave (with the exact image served) to DIR/train and
DIR/heldout in the labels.csv format, labelled with the attacker's answer,
plus DIR/pairs.csv. An answer is an attacker's when its device or IP was
labelled then or up to --lookback later, unless an operator cleared that
label. Rerunning is safe: it rewrites the same files plus what is new.

With --tune it fine-tunes the substitute — the published version, else
--init, else the built-in model — on those answers mixed with --clean fresh
clean captchas, and measures fidelity (held-out answers reproduced) and
clean accuracy before and after. With --publish the new model is published
only if fidelity rose and clean accuracy fell by at most --max-clean-drop,
and only if the published version is still the one it started from (two
extractions at once cannot both publish). The last line reads
"extraction: …: published VERSION" or "extraction: …: not published (why)".`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if out == "" {
				return errors.New("--out is required")
			}
			if publish && !tune {
				return errors.New("--publish needs --tune")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := rf.open()
			if err != nil {
				return err
			}
			defer st.Close()
			style := captcha.DefaultStyle()
			if err := style.Validate(); err != nil {
				return err
			}
			pairs, stats, err := extraction.Collect(ctx, st, extraction.Options{Lookback: lookback, Style: &style})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "logs: %d captchas served, %d answers (%d without their served record), %d label records\n",
				stats.Served, stats.Answers, stats.Orphans, stats.Labels)
			fmt.Fprintf(w, "attackers' answers: %d (%d not reproducible); everyone else's: %d\n", stats.Attacker, stats.Unreproducible, stats.Other)
			if len(pairs) == 0 {
				fmt.Fprintln(w, "extraction: no attacker answers yet: not published (nothing to learn from)")
				return nil
			}
			ds, err := extraction.WriteDataset(out, pairs, style.Charset, maxAnswerLen)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote %s: %d to train on, %d held out, %d unusable answers\n", out, ds.Train, ds.HeldOut, ds.Unusable)
			if !tune {
				return nil
			}

			reg := modelregistry.New(st)
			base, expect, err := extractionBase(cmd, reg, initPath)
			if err != nil {
				return err
			}
			train, err := solver.LoadDataset(filepath.Join(out, "train"), base.Arch)
			if err != nil && ds.Train > 0 {
				return err
			}
			heldOut, err := solver.LoadDataset(filepath.Join(out, "heldout"), base.Arch)
			if err != nil && ds.HeldOut > 0 {
				return err
			}
			if seed == 0 {
				seed = captchapool.NewSeed()
			}
			clean, err := cleanSamples(&style, cleanN, seed)
			if err != nil {
				return err
			}
			cleanVal, err := cleanSamples(&style, cleanValN, seed+uint64(cleanN))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "fine-tuning %s on %d answers and %d clean captchas (seed %d)\n", base.Version(), len(train), len(clean), seed)
			res, err := extraction.FineTune(ctx, extraction.TuneConfig{
				Base: base, Pairs: train, HeldOut: heldOut, Clean: clean, CleanVal: cleanVal,
				Epochs: epochs, Batch: batch, Workers: workers, LR: lr, Seed: seed,
				MaxCleanDrop: maxCleanDrop, MinHeldOut: minHeldOut, Progress: os.Stderr,
			})
			if errors.Is(err, extraction.ErrTooFewPairs) {
				fmt.Fprintf(w, "extraction: %v: not published (too few answers)\n", err)
				return nil
			}
			if err != nil {
				return err
			}
			m := res.Model
			m.Info = map[string]string{
				"trained": time.Now().UTC().Format(time.RFC3339),
				"about": fmt.Sprintf("model extraction from %s: %d attacker answers (%d held out) and %d clean captchas (seed %d)",
					base.Version(), len(train), len(heldOut), len(clean), seed),
				"init": base.Version(), "fidelity": fmt.Sprintf("%.4f", res.FidelityAfter),
				"clean_accuracy": fmt.Sprintf("%.4f", res.CleanAccuracyAfter), "epochs": strconv.Itoa(epochs),
			}
			path := filepath.Join(out, "model-"+m.Version()+".crnn")
			if err := m.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote %s\n", path)
			switch {
			case !res.Better:
				fmt.Fprintf(w, "extraction: %s: not published (%s)\n", res.Why, "not better")
			case !publish:
				fmt.Fprintf(w, "extraction: %s: not published (no --publish)\n", res.Why)
			default:
				v, err := reg.Publish(ctx, m, expect, modelregistry.Version{
					Note: "extraction: " + res.Why, Fidelity: res.FidelityAfter, CleanAccuracy: res.CleanAccuracyAfter,
				})
				if err != nil {
					fmt.Fprintf(w, "extraction: %s: not published (%v)\n", res.Why, err)
					return err
				}
				fmt.Fprintf(w, "extraction: %s: published %s\n", res.Why, v.Version)
			}
			return nil
		},
	}
	f := c.Flags()
	rf.register(f)
	f.StringVar(&out, "out", "", "directory for the pairs (and the new model)")
	f.DurationVar(&lookback, "lookback", time.Hour, "answers given up to this long before a label count")
	f.BoolVar(&tune, "tune", false, "fine-tune the substitute on the answers")
	f.BoolVar(&publish, "publish", false, "publish the new model when it is better")
	f.StringVar(&initPath, "init", "", "model to start from when none is published (default: the built-in one)")
	f.IntVar(&cleanN, "clean", 2000, "fresh clean captchas mixed into training")
	f.IntVar(&cleanValN, "clean-val", 500, "fresh clean captchas to measure clean accuracy on")
	f.IntVar(&epochs, "epochs", 2, "passes over the training data")
	f.IntVar(&batch, "batch", 16, "mini-batch size")
	f.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "training workers")
	f.Float64Var(&lr, "lr", 3e-4, "peak learning rate")
	f.Float64Var(&maxCleanDrop, "max-clean-drop", 0.01, "clean accuracy the new model may lose and still be published")
	f.IntVar(&minHeldOut, "min-heldout", 20, "fewest held-out answers to decide on")
	f.Uint64Var(&seed, "seed", 0, "seed of the clean captchas and the training order (default random)")
	return c
}

// extractionBase is the model extraction starts from, and the published
// version a new one must replace ("" when none is published).
func extractionBase(cmd *cobra.Command, reg *modelregistry.Registry, initPath string) (*solver.Model, string, error) {
	expect, err := currentVersion(cmd.Context(), reg)
	if err != nil {
		return nil, "", err
	}
	if expect != "" {
		m, err := reg.Model(cmd.Context(), expect)
		return m, expect, err
	}
	m, err := loadModelOrDefault(initPath)
	return m, "", err
}

func cleanSamples(style *captcha.Style, n int, seed uint64) ([]solver.Sample, error) {
	out := make([]solver.Sample, n)
	for i := range out {
		c, err := style.Generate(seed + uint64(i))
		if err != nil {
			return nil, err
		}
		out[i] = solver.Sample{Pixels: c.Image.Pix, Text: c.Text}
	}
	return out, nil
}
