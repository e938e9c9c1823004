// Command extractlab studies the extraction offline on what one
// `bench/simulate -keep DIR` run collected: the adapted attacker and the
// attacker answers the gateway recorded. It fine-tunes the shipped
// substitute on those answers with the settings given, reports fidelity
// and clean accuracy, then has the adapted attacker read fresh captchas
// perturbed against the new substitute (alone, or in an ensemble with the
// one it replaces) — stage (e) of the simulation without the gateway.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

var (
	dir      = flag.String("dir", "", "a directory bench/simulate -keep wrote")
	epochs   = flag.Int("epochs", 2, "fine-tuning epochs")
	lr       = flag.Float64("lr", 3e-4, "fine-tuning learning rate")
	share    = flag.Float64("share", 0, "least share of attacker answers in each epoch (0: not repeated)")
	cleanN   = flag.Int("clean", 1000, "clean captchas mixed into the fine-tuning")
	evalN    = flag.Int("n", 40, "fresh adversarial captchas the adapted attacker reads")
	ensemble = flag.Bool("ensemble", false, "perturb against the new substitute and the one it replaces together")
	save     = flag.String("save", "", "if set, where to save the fine-tuned substitute")
	from     = flag.String("from", "", "skip the fine-tuning: start from this model (one -save wrote)")
	answers  = flag.Int("answers", -1, "if 0 or more, train on only this many attacker answers (0: a control run on clean captchas alone)")
	recal    = flag.Bool("recalibrate", false, "after fine-tuning, re-estimate BatchNorm's running statistics on clean captchas (a pass at a negligible learning rate)")
	harden   = flag.String("harden", "", "a dataset directory (advcaptcha dataset --adversarial) of captchas perturbed against the shipped substitute, labelled with their truth, to mix into the fine-tuning: what an adapted attacker learnt from")
	more     = flag.String("more", "", "a dataset directory (advcaptcha dataset --adversarial, against the shipped substitute) the adapted attacker answers here; its readings join the answers to train on, as if the gateway had collected that many more")
	initPath = flag.String("init", "", "fine-tune this model instead of the shipped substitute (which stays the base of -ensemble): an extraction into another architecture")
	judges   = flag.String("judges", "", "comma-separated solvers (e.g. bench/adversarial/solvers/narrow.crnn) that read the same captchas as the adapted attacker: does a new version keep fooling solvers that did not adapt?")
	evalSeed = flag.Uint64("eval-seed", 94_000_000, "first seed of the captchas the adapted attacker reads")
	poison   = flag.String("poison", "", "rewrite the attacker's answers (to train on and held out) as an attacker poisoning the extraction would: shift (each character the next in the charset, a mapping a model can learn), reverse (each answer backwards), random (random characters)")
	poisonN  = flag.Float64("poison-share", 1, "with -poison, the share of answers rewritten (the rest left as the attacker read them)")
	distill  = flag.Float64("distill", 0, "if the fine-tuning is refused for its clean accuracy, fine-tune again with the shipped substitute distilled on the clean captchas at this weight, as the extraction does (0: no second try)")
	compDrop = flag.Float64("companion-max-drop", 0, "if set, judge the new model as the gateway does, as a companion that may read clean captchas this much worse than the shipped substitute")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx := context.Background()
	base, err := solver.Default()
	if err != nil {
		return err
	}
	tuned := base // the model fine-tuned
	if *initPath != "" {
		if tuned, err = solver.Load(*initPath); err != nil {
			return err
		}
		fmt.Printf("fine-tuning %s (%v), not the shipped substitute\n", tuned.Version(), tuned.Arch)
	}
	attackerModel, err := solver.Load(filepath.Join(*dir, "attacker-adapted.crnn"))
	if err != nil {
		return err
	}
	// The extraction as the gateway's runs it, on the dataset in -dir
	// (offline: no store), with the lab's changes to what it learns from.
	var tc extraction.TuneConfig // what it learnt from, for the measurements below
	o, err := extraction.Run(ctx, extraction.RunConfig{
		Dir: *dir, Tune: true, Init: tuned, CleanN: *cleanN, CleanValN: 500, CleanSeed: 92_000_000,
		Tuning: extraction.TuneConfig{Epochs: *epochs, LR: *lr, PairShares: []float64{*share}, Seed: 22, Progress: os.Stderr,
			Companion: *compDrop > 0, CompanionMaxCleanDrop: *compDrop, Distill: cmp.Or(*distill, -1)},
		TuneFunc: func(ctx context.Context, c extraction.TuneConfig) (*extraction.TuneResult, error) {
			c.Root = base
			if err := adjust(&c, base, attackerModel); err != nil {
				return nil, err
			}
			tc = c
			return fineTune(ctx, c)
		},
	})
	if err != nil {
		return err
	}
	res := o.Result
	if res == nil {
		return fmt.Errorf("extraction: %s", o.Why)
	}
	clean, held, cleanVal := tc.Clean, tc.HeldOut, tc.CleanVal
	if *recal {
		m, _, err := solver.Train(ctx, solver.TrainConfig{Init: res.Model, Train: clean, Batch: 16, Epochs: 1, LR: 1e-12, Seed: 23})
		if err != nil {
			return err
		}
		res.Model = m
		fmt.Printf("recalibrated BatchNorm on %d clean captchas\n", len(clean))
	}
	for _, m := range []struct {
		name  string
		model *solver.Model
	}{{"before", tuned}, {"after", res.Model}} {
		ms, err := extraction.Measure(m.model, held, cleanVal, 0)
		if err != nil {
			return err
		}
		fmt.Printf("%s: fidelity %.1f%% of answers, %.1f%% of characters; clean accuracy %.1f%%\n",
			m.name, 100*ms.Fidelity, 100*ms.CharFidelity, 100*ms.CleanAccuracy)
	}
	if *save != "" {
		if err := res.Model.Save(*save); err != nil {
			return err
		}
	}

	models := []*solver.Model{res.Model}
	if *ensemble {
		models = append(models, base)
	}
	var subs []*solver.Solver
	for _, m := range models {
		s, err := solver.New(m, solver.Options{Workers: 1})
		if err != nil {
			return err
		}
		subs = append(subs, s)
	}
	readers := []string{"adapted attacker"}
	var readerModels []*solver.Model
	readerModels = append(readerModels, attackerModel)
	if *judges != "" {
		for _, p := range strings.Split(*judges, ",") {
			m, err := solver.Load(p)
			if err != nil {
				return err
			}
			readers, readerModels = append(readers, filepath.Base(p)), append(readerModels, m)
		}
	}
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		return err
	}
	var rs []*solver.Solver
	for _, m := range readerModels {
		r, err := solver.New(m, solver.Options{})
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	solved := make([]atomic.Int64, len(rs))
	var wg sync.WaitGroup
	next := make(chan uint64)
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				c, err := style.Generate(seed)
				if err == nil {
					var r *perturb.Result
					if r, err = perturb.AttackContext(ctx, subs, perturb.Target{Image: c.Image, Text: c.Text, Seed: seed, Strokes: c.Glyphs.Pix}, perturb.DefaultConfig()); err == nil {
						for k, reader := range rs {
							var in solver.Image
							if in, err = reader.FromImage(r.Image); err != nil {
								break
							}
							var p []solver.Prediction
							if p, err = reader.Predict([]solver.Image{in}); err != nil {
								break
							}
							if p[0].Text == c.Text {
								solved[k].Add(1)
							}
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range *evalN {
		select {
		case next <- *evalSeed + uint64(i):
		case err := <-errs:
			return err
		}
	}
	close(next)
	wg.Wait()
	for k, name := range readers {
		fmt.Printf("%s on captchas against the new substitute%s: %d/%d = %.1f%%\n", name,
			map[bool]string{true: " and the old (ensemble)"}[*ensemble], solved[k].Load(), *evalN, 100*float64(solved[k].Load())/float64(*evalN))
	}
	return nil
}

// adjust makes the lab's changes to what the extraction learns from:
// fewer answers (-answers), more (-more), poisoned ones (-poison), and
// hardening captchas (-harden), read as the shipped substitute base reads.
func adjust(c *extraction.TuneConfig, base, attackerModel *solver.Model) error {
	if *answers >= 0 && *answers < len(c.Pairs) {
		c.Pairs = c.Pairs[:*answers]
	}
	if *more != "" {
		extra, err := solver.LoadDataset(*more, base.Arch)
		if err != nil {
			return err
		}
		answerer, err := solver.New(attackerModel, solver.Options{})
		if err != nil {
			return err
		}
		imgs := make([]solver.Image, len(extra))
		for i, e := range extra {
			imgs[i] = e.Image()
		}
		preds, err := answerer.Predict(imgs)
		if err != nil {
			return err
		}
		right := 0
		for i, p := range preds {
			if p.Text == extra[i].Text {
				right++
			}
			if p.Text == "" {
				continue // an empty answer is not a query the gateway would record
			}
			c.Pairs = append(c.Pairs, solver.Sample{Pixels: extra[i].Pixels, Text: p.Text})
		}
		fmt.Printf("more answers: the adapted attacker answered %d captchas of %s, %d right; %d answers to train on now\n", len(extra), *more, right, len(c.Pairs))
	}
	if *poison != "" {
		if err := poisonAnswers(*poison, *poisonN, base.Arch.Charset, c.Pairs, c.HeldOut); err != nil {
			return err
		}
		fmt.Printf("poisoned: %.0f%% of the attacker's answers rewritten (%s)\n", 100**poisonN, *poison)
	}
	if *harden != "" {
		hard, err := solver.LoadDataset(*harden, base.Arch)
		if err != nil {
			return err
		}
		c.Clean = append(c.Clean, hard...)
		fmt.Printf("hardening: %d adversarial captchas against the shipped substitute, with their truth\n", len(hard))
	}
	return nil
}

// fineTune is the extraction's fine-tuning, or in its place a model -from
// names, or (-answers 0) the control run on clean captchas alone.
func fineTune(ctx context.Context, c extraction.TuneConfig) (*extraction.TuneResult, error) {
	start := time.Now()
	switch {
	case *from != "":
		m, err := solver.Load(*from)
		if err != nil {
			return nil, err
		}
		fmt.Printf("from %s\n", *from)
		return &extraction.TuneResult{Model: m}, nil
	case *answers == 0:
		// The control: the same fine-tuning on clean captchas alone says
		// how much clean accuracy the procedure itself costs.
		m, _, err := solver.Train(ctx, solver.TrainConfig{Init: c.Base, Train: c.Clean, Batch: 16, Epochs: *epochs, LR: *lr, Augment: true, Seed: 22, Progress: os.Stderr})
		if err != nil {
			return nil, err
		}
		fmt.Printf("control: %d epochs at lr %g on %d clean (and hardening) captchas alone; took %v\n",
			*epochs, *lr, len(c.Clean), time.Since(start).Round(time.Second))
		return &extraction.TuneResult{Model: m}, nil
	}
	res, err := extraction.FineTune(ctx, c)
	if err != nil {
		return nil, err
	}
	fmt.Printf("settings: epochs %d lr %g share %g clean %d distill %g; %d answers to train on, %d held out; took %v\n",
		*epochs, *lr, *share, *cleanN, *distill, len(c.Pairs), len(c.HeldOut), time.Since(start).Round(time.Second))
	fmt.Printf("%s; better %v\n", res.Why, res.Better)
	return res, nil
}

// poisonAnswers rewrites the answers in place as an attacker that wants
// the extraction to learn something other than its solver would: a
// consistent mapping (shift, reverse) a model can learn and that costs it
// clean accuracy, or noise (random) it cannot learn; share of them, the
// rest left as they were.
func poisonAnswers(mode string, share float64, charset string, sets ...[]solver.Sample) error {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, set := range sets {
		for i := range set {
			if rng.Float64() >= share {
				continue
			}
			r := []byte(set[i].Text)
			switch mode {
			case "shift":
				for j, c := range r {
					if k := strings.IndexByte(charset, c); k >= 0 {
						r[j] = charset[(k+1)%len(charset)]
					}
				}
			case "reverse":
				slices.Reverse(r)
			case "random":
				for j := range r {
					r[j] = charset[rng.IntN(len(charset))]
				}
			default:
				return fmt.Errorf("-poison %q: want shift, reverse or random", mode)
			}
			set[i].Text = string(r)
		}
	}
	return nil
}
