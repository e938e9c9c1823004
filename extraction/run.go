package extraction

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

// MaxAnswerLen bounds the attacker answers used as training labels: the
// solver's 25 steps read at most 12 characters (CTC needs a step between
// repeated letters).
const MaxAnswerLen = 12

// Store is what Run needs of the gateway's shared state: its logs and its
// model registry. store.Redis and store.Memory are ones.
type Store interface {
	LogReader
	modelregistry.KV
}

// RunConfig configures Run: the learning loop's one pass, collect →
// fine-tune → judge → publish. Only Store (or Dir) is required; what is
// left zero is off or the default said.
type RunConfig struct {
	// Store holds the gateway's logs and model registry. Nil: Dir already
	// holds a dataset (an earlier run's, or `bench/simulate -keep`'s) and
	// Run fine-tunes on it as it is: it reads no logs, writes no file and
	// publishes nothing.
	Store Store
	// Keys verify the published version fine-tuned from and sign the one
	// published (modelregistry.Keys of the gateway's secret). Without them
	// Run can neither start from a published version nor publish.
	Keys *secretkey.Keys
	// Dir receives the dataset (train/, heldout/, pairs.csv; see
	// WriteDataset) and the new model, model-VERSION.crnn. "": a
	// temporary directory, removed when Run returns.
	Dir string
	// Lookback is Options.Lookback for reading the logs.
	Lookback time.Duration
	// Since, when set, keeps only the answers given at or after it.
	Since time.Time

	// Tune fine-tunes the substitute on the answers; without it Run only
	// writes the dataset. Publish publishes the new model when the rule
	// accepts it (it needs Tune and Keys), and only if the published
	// version is still the one it started from.
	Tune, Publish bool
	// Init is the model to start from when no version is published (nil:
	// the built-in one); with no Store, the model to start from.
	Init *solver.Model
	// Learner is TuneConfig.Learner: fine-tuned instead of the published
	// version, which it is still measured against.
	Learner *solver.Model
	// CleanN fresh clean captchas are mixed into training (0: none) and
	// CleanValN measure clean accuracy (FineTune needs some), from seed
	// CleanSeed on (0: Tuning.Seed).
	CleanN, CleanValN int
	CleanSeed         uint64
	// HardenN fresh adversarial captchas, made with Attack (which must be
	// the gateway's) against the models the current version is attacked
	// with, are mixed into training with their truth
	// (TuneConfig.Hardening). 0: none.
	HardenN int
	Attack  perturb.Config
	// Tuning holds the fine-tuning's settings; Run fills in the models and
	// the samples. Seed 0 draws one.
	Tuning TuneConfig
	// TuneFunc fine-tunes in place of FineTune, given the config Run
	// prepared: a hook to change the samples or the settings, or to
	// fine-tune otherwise (bench/extractlab). Nil: FineTune.
	TuneFunc func(context.Context, TuneConfig) (*TuneResult, error)
	// Log receives the run's report, a line a step; its last line reads
	// "extraction: …: published VERSION" or "extraction: …: not published
	// (why)". Nil: none.
	Log io.Writer
}

// Status is how a run ended: the values of the command's
// advcaptcha_extraction_runs_total outcome label.
type Status string

// Statuses of Outcome.
const (
	StatusPublished     Status = "published"           // replaced the published version
	StatusCompanion     Status = "published_companion" // published next to the root
	StatusNotBetter     Status = "not_better"          // measured, refused by the rule
	StatusNotPublished  Status = "not_published"       // better, but no Publish, or another run published first
	StatusTooFewAnswers Status = "too_few_answers"     // nothing, or too little, to learn from
	StatusFailed        Status = "failed"              // an error stopped it
	StatusWritten       Status = "written"             // dataset written, no Tune
)

// Outcome is what a run did and measured.
type Outcome struct {
	Status Status
	// Why says why it ended so, as the last line of the report does.
	Why string
	// Stats are what the logs held, and Pairs the attacker answers used
	// (those since RunConfig.Since); Dataset what was written of them.
	Stats   Stats
	Pairs   int
	Dataset DatasetStats
	// Result is the fine-tuning's, nil when none was measured.
	Result *TuneResult
	// From is the published version fine-tuned from ("" when none was),
	// ModelPath where the new model was saved ("" when not kept), and
	// Published the version published, nil when none was.
	From      string
	ModelPath string
	Published *modelregistry.Version
}

// Run is one pass of the learning loop: it reads the attackers' answers
// from the gateway's logs, writes them as a dataset, fine-tunes the
// substitute on them, judges the new model against the one in use and
// publishes it when the rule accepts it — each step only as far as cfg
// asks. The Outcome is never nil: on an error its Status is StatusFailed,
// or StatusNotPublished when another run published first.
func Run(ctx context.Context, cfg RunConfig) (*Outcome, error) {
	o := &Outcome{Status: StatusFailed}
	r, err := newRunner(cfg, o)
	if err != nil {
		return o, err
	}
	if cfg.Store == nil {
		return o, r.tune(ctx, cfg.Dir)
	}
	pairs, err := r.collect(ctx)
	if err != nil {
		return o, err
	}
	return o, r.run(ctx, pairs)
}

// runner is one run under way.
type runner struct {
	cfg   RunConfig
	o     *Outcome
	log   io.Writer
	style captcha.Style
}

func newRunner(cfg RunConfig, o *Outcome) (*runner, error) {
	switch {
	case cfg.Publish && !cfg.Tune:
		return nil, errors.New("extraction: publishing needs tuning")
	case cfg.Publish && cfg.Store == nil:
		return nil, errors.New("extraction: publishing needs the store")
	case cfg.Store == nil && cfg.Dir == "":
		return nil, errors.New("extraction: no store and no dataset directory")
	}
	r := &runner{cfg: cfg, o: o, log: cmp.Or[io.Writer](cfg.Log, io.Discard), style: captcha.DefaultStyle()}
	if err := r.style.Validate(); err != nil {
		return nil, fmt.Errorf("extraction: captcha style: %w", err)
	}
	return r, nil
}

// collect reads the logs, reports what they hold, and returns the
// attackers' answers since cfg.Since.
func (r *runner) collect(ctx context.Context) ([]Pair, error) {
	pairs, stats, err := Collect(ctx, r.cfg.Store, Options{Lookback: r.cfg.Lookback, Style: &r.style})
	if err != nil {
		return nil, fmt.Errorf("extraction: reading the logs: %w", err)
	}
	r.o.Stats = stats
	fmt.Fprintf(r.log, "logs: %d captchas served, %d answers (%d without their served record), %d label records\n",
		stats.Served, stats.Answers, stats.Orphans, stats.Labels)
	fmt.Fprintf(r.log, "attackers' answers: %d (%d not reproducible); everyone else's: %d\n", stats.Attacker, stats.Unreproducible, stats.Other)
	if !r.cfg.Since.IsZero() {
		fresh := pairs[:0:0]
		for _, p := range pairs {
			if !p.At.Before(r.cfg.Since) {
				fresh = append(fresh, p)
			}
		}
		pairs = fresh
		fmt.Fprintf(r.log, "attackers' answers since %s: %d\n", r.cfg.Since.UTC().Format(time.RFC3339), len(pairs))
	}
	return pairs, nil
}

// run writes the pairs and, with Tune, fine-tunes and judges (and maybe
// publishes) a model.
func (r *runner) run(ctx context.Context, pairs []Pair) error {
	r.o.Pairs = len(pairs)
	if len(pairs) == 0 {
		return r.verdict(StatusTooFewAnswers, "no attacker answers yet", "nothing to learn from")
	}
	dir := r.cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "advcaptcha-extraction-")
		if err != nil {
			return fmt.Errorf("extraction: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	ds, err := WriteDataset(dir, pairs, r.style.Charset, MaxAnswerLen)
	if err != nil {
		return fmt.Errorf("extraction: writing the dataset: %w", err)
	}
	r.o.Dataset = ds
	fmt.Fprintf(r.log, "wrote %s: %d to train on, %d held out, %d unusable answers\n", dir, ds.Train, ds.HeldOut, ds.Unusable)
	if !r.cfg.Tune {
		r.o.Status = StatusWritten
		return nil
	}
	err = r.tune(ctx, dir)
	if r.cfg.Dir == "" {
		r.o.ModelPath = "" // removed with the directory
	}
	return err
}

// verdict ends the run with a status and its last line.
func (r *runner) verdict(s Status, why, notPublished string) error {
	r.o.Status, r.o.Why = s, why
	fmt.Fprintf(r.log, "extraction: %s: not published (%s)\n", why, notPublished)
	return nil
}

// tune fine-tunes on the dataset in dir, judges the model and, with
// Publish, publishes it.
func (r *runner) tune(ctx context.Context, dir string) error {
	cfg, w := r.cfg, r.log
	reg := modelregistry.New(cfg.Store, cfg.Keys)
	base, root, err := r.base(ctx, reg)
	if err != nil {
		return err
	}
	tc := cfg.Tuning
	tc.Base, tc.Root, tc.Learner = base, root, cfg.Learner
	if tc.Pairs, err = r.load(dir, "train", base.Arch, r.o.Dataset.Train); err != nil {
		return err
	}
	if tc.HeldOut, err = r.load(dir, "heldout", base.Arch, r.o.Dataset.HeldOut); err != nil {
		return err
	}
	if tc.Seed == 0 {
		tc.Seed = captchapool.NewSeed()
	}
	seed := cmp.Or(cfg.CleanSeed, tc.Seed)
	if tc.Clean, err = CleanSamples(r.style, cfg.CleanN, seed); err != nil {
		return fmt.Errorf("extraction: clean captchas: %w", err)
	}
	if tc.CleanVal, err = CleanSamples(r.style, cfg.CleanValN, seed+uint64(cfg.CleanN)); err != nil {
		return fmt.Errorf("extraction: clean captchas: %w", err)
	}
	if cfg.HardenN > 0 {
		var against string
		hardenSeed := seed + uint64(cfg.CleanN+cfg.CleanValN)
		if tc.Hardening, against, err = Hardening(base, root, r.style, cfg.Attack, cfg.HardenN, hardenSeed); err != nil {
			return fmt.Errorf("extraction: %w", err)
		}
		fmt.Fprintf(w, "made %d hardening captchas against %s (%s)\n", len(tc.Hardening), against, cfg.Attack)
	}
	tuned := base
	if tc.Learner != nil {
		tuned = tc.Learner
		fmt.Fprintf(w, "fine-tuning the learner %s, measured against %s\n", tuned.Version(), base.Version())
	}
	fmt.Fprintf(w, "fine-tuning %s on %d answers, %d clean and %d hardening captchas (seed %d)\n",
		tuned.Version(), len(tc.Pairs), len(tc.Clean), len(tc.Hardening), tc.Seed)
	if tc.Distill > 0 {
		fmt.Fprintf(w, "a pair share refused for clean accuracy is fine-tuned again with %s distilled at weight %g\n", cmp.Or(root, base).Version(), tc.Distill)
	}
	if cfg.Store == nil {
		r.o.Dataset = DatasetStats{Train: len(tc.Pairs), HeldOut: len(tc.HeldOut)}
		r.o.Pairs = len(tc.Pairs) + len(tc.HeldOut)
	}
	fineTune := cfg.TuneFunc
	if fineTune == nil {
		fineTune = FineTune
	}
	res, err := fineTune(ctx, tc)
	if errors.Is(err, ErrTooFewPairs) {
		return r.verdict(StatusTooFewAnswers, err.Error(), "too few answers")
	}
	if err != nil {
		return fmt.Errorf("extraction: %w", err)
	}
	r.o.Result = res
	if len(res.Tried) > 1 {
		for _, a := range res.Tried {
			fmt.Fprintf(w, "%s: %s\n", a.Setting(), a.Why)
		}
	}
	m := res.Model
	m.Info = map[string]string{
		"trained": time.Now().UTC().Format(time.RFC3339),
		"about": fmt.Sprintf("model extraction from %s: %d attacker answers (%d held out), %d clean and %d hardening captchas (seed %d)",
			tuned.Version(), len(tc.Pairs), len(tc.HeldOut), len(tc.Clean), len(tc.Hardening), tc.Seed),
		"init": tuned.Version(), "fidelity": fmt.Sprintf("%.4f", res.After.Fidelity),
		"char_fidelity":  fmt.Sprintf("%.4f", res.After.CharFidelity),
		"clean_accuracy": fmt.Sprintf("%.4f", res.After.CleanAccuracy), "epochs": strconv.Itoa(tc.Epochs),
		"pair_share": strconv.FormatFloat(res.PairShare, 'g', -1, 64),
	}
	if cfg.Store != nil {
		path := filepath.Join(dir, "model-"+m.Version()+".crnn")
		if err := m.Save(path); err != nil {
			return fmt.Errorf("extraction: saving the model: %w", err)
		}
		r.o.ModelPath = path
		fmt.Fprintf(w, "wrote %s\n", path)
	}
	switch {
	case !res.Better:
		return r.verdict(StatusNotBetter, res.Why, "not better")
	case !cfg.Publish:
		return r.verdict(StatusNotPublished, res.Why, "no --publish")
	}
	return r.publish(ctx, reg, res, root)
}

// publish publishes the accepted model, as a companion of root when the
// rule said so.
func (r *runner) publish(ctx context.Context, reg *modelregistry.Registry, res *TuneResult, root *solver.Model) error {
	var with []*solver.Model
	if res.AsCompanion {
		with = append(with, root)
	}
	v, err := reg.Publish(ctx, res.Model, r.o.From, modelregistry.Version{
		Note: "extraction: " + res.Why, Fidelity: res.After.Fidelity, CharFidelity: res.After.CharFidelity, CleanAccuracy: res.After.CleanAccuracy,
	}, with...)
	if err != nil {
		r.o.Why = res.Why
		fmt.Fprintf(r.log, "extraction: %s: not published (%v)\n", res.Why, err)
		if errors.Is(err, modelregistry.ErrConflict) || errors.Is(err, modelregistry.ErrBusy) {
			r.o.Status = StatusNotPublished
		}
		return fmt.Errorf("extraction: publishing: %w", err)
	}
	r.o.Status, r.o.Why, r.o.Published = StatusPublished, res.Why, v
	if res.AsCompanion {
		r.o.Status = StatusCompanion
	}
	fmt.Fprintf(r.log, "extraction: %s: published %s\n", res.Why, v.Version)
	return nil
}

// base is the model the run starts from, and the clean-accurate root a
// companion is published next to: the published version and the model it
// is attacked together with (else the version itself); with none
// published, or no store, cfg.Init (else the built-in model) for both.
// The published version's name goes to the outcome's From.
func (r *runner) base(ctx context.Context, reg *modelregistry.Registry) (base, root *solver.Model, err error) {
	if r.cfg.Store != nil {
		cur, err := reg.Current(ctx)
		switch {
		case err == nil:
			// Only an authenticated version is fine-tuned: one forged
			// in the store would otherwise be learned from and
			// published signed.
			ms, err := reg.Models(ctx, cur)
			if err != nil {
				return nil, nil, fmt.Errorf("extraction: starting from the published version %s: %w", cur.Version, err)
			}
			r.o.From = cur.Version
			base, root = ms[0], ms[0]
			if len(ms) > 1 {
				root = ms[1]
			}
			return base, root, nil
		case !errors.Is(err, modelregistry.ErrNone):
			return nil, nil, fmt.Errorf("extraction: reading the published version: %w", err)
		}
	}
	base = r.cfg.Init
	if base == nil {
		if base, err = solver.Default(); err != nil {
			return nil, nil, fmt.Errorf("extraction: the built-in model: %w", err)
		}
	}
	return base, base, nil
}

// load reads the dataset dir/sub, which holds n samples (unknown with no
// store: Run did not write it).
func (r *runner) load(dir, sub string, a solver.Architecture, n int) ([]solver.Sample, error) {
	if n == 0 && r.cfg.Store != nil {
		return nil, nil
	}
	s, err := solver.LoadDataset(filepath.Join(dir, sub), a)
	if err != nil {
		return nil, fmt.Errorf("extraction: %w", err)
	}
	return s, nil
}

// CleanSamples are n clean captchas of style from seed on, with their
// truth.
func CleanSamples(style captcha.Style, n int, seed uint64) ([]solver.Sample, error) {
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

// Hardening makes n adversarial captchas from seed on, against what the
// gateway attacks now — the base, with the root when the base is its
// companion — as training samples with their truth; against names those
// models.
func Hardening(base, root *solver.Model, style captcha.Style, attack perturb.Config, n int, seed uint64) (samples []solver.Sample, against string, err error) {
	models := []*solver.Model{base}
	if root != base {
		models = append(models, root)
	}
	sols, err := solver.NewEach(models, solver.Options{Workers: runtime.GOMAXPROCS(0)})
	if err != nil {
		return nil, "", err
	}
	g := &captchapool.Generator{Style: style, Solvers: sols, Attack: attack}
	entries, err := g.GenerateMany(seed, n, nil)
	if err != nil {
		return nil, "", fmt.Errorf("hardening captchas: %w", err)
	}
	samples, err = captchapool.Samples(entries)
	return samples, g.ModelVersion(), err
}
