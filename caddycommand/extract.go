package caddycommand

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// maxAnswerLen bounds the attacker answers used as training labels: the
// solver's 25 steps read at most 12 characters (CTC needs a step between
// repeated letters).
const maxAnswerLen = 12

// lastExtractionKey holds the watch's extraction.Mark.
const lastExtractionKey = "extraction:last"

func extractCommand() *cobra.Command {
	var rf redisFlags
	var sf secretFlags
	var out, initPath, learnerPath string
	var lookback time.Duration
	var tune, publish, companion bool
	var cleanN, cleanValN, hardenN, epochs, batch, workers, minHeldOut int
	var attack attackFlags
	var lr, maxCleanDrop, companionMaxDrop, minGain, distill float64
	var pairShares []float64
	var seed uint64
	var watch bool
	var metricsAddr string
	var trigger extraction.Trigger
	var poll time.Duration
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
clean captchas, and measures fidelity (agreement with the held-out answers,
of whole answers and of characters) and clean accuracy before and after.
With --publish the new model is published only if fidelity in characters
rose by at least --min-fidelity-gain and clean accuracy fell by at most
--max-clean-drop —
or, with --companion (the default), by at most --companion-max-drop from
the clean-accurate root model, in which case it is published as a companion:
captchas are computed against it and the root together (twice the CPU per
captcha) — and only if the published version is still the one it started from (two
extractions at once cannot both publish). The last line reads
"extraction: …: published VERSION" or "extraction: …: not published (why)".
Publishing signs the version with the gateway's secret (the Caddyfile's
secret, in ADVCAPTCHA_SECRET or --secret), without which --publish refuses
to run and the gateways would refuse the version; --tune needs it too to
start from a published version, which must be authenticated.

--harden N also mixes N fresh adversarial captchas made against the current
version's models (with the attack flags, which must match the gateway's),
labelled with their truth, into training — what an adapting attacker trains
on. Off by default: offline it brought no gain beyond noise and cost 5–7
points of clean accuracy (bench/extractlab/RESULTS.md).

--learner FILE fine-tunes that model instead of the published version (which
the result is still measured and judged against): a model the served
captchas were not computed against can learn to agree with the attackers on
them, which one fine-tuned from the published version hardly can.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if out == "" {
				return errors.New("--out is required")
			}
			if distill < 0 {
				return fmt.Errorf("--distill %g: want a weight, 0 for none", distill)
			}
			if distill == 0 {
				distill = -1 // extraction.TuneConfig's "off"
			}
			if companionMaxDrop <= 0 || companionMaxDrop >= 1 {
				return fmt.Errorf("--companion-max-drop %g: want a share of clean captchas in (0, 1)", companionMaxDrop)
			}
			if publish && !tune {
				return errors.New("--publish needs --tune")
			}
			// Publishing signs the version with the gateway's secret;
			// fine-tuning needs it to authenticate the published
			// version it starts from (when there is one).
			modelKeys, err := sf.modelKeys()
			switch {
			case errors.Is(err, errNoSecret) && publish:
				return fmt.Errorf("--publish %w", err)
			case errors.Is(err, errNoSecret):
				modelKeys = nil
			case err != nil:
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := rf.open()
			if err != nil {
				return err
			}
			defer st.Close()
			attackCfg, err := attack.config()
			if err != nil {
				return fmt.Errorf("the hardening captchas' attack: %w", err)
			}
			x := &extractRun{w: w, st: st, modelKeys: modelKeys, out: out, initPath: initPath, learnerPath: learnerPath, lookback: lookback, tune: tune, publish: publish,
				cleanN: cleanN, cleanValN: cleanValN, hardenN: hardenN, attack: attackCfg, cfg: extraction.TuneConfig{Epochs: epochs, Batch: batch, Workers: workers,
					LR: lr, PairShares: pairShares, Seed: seed, MinFidelityGain: minGain, MaxCleanDrop: maxCleanDrop, MinHeldOut: minHeldOut, Progress: os.Stderr,
					Companion: companion, CompanionMaxCleanDrop: companionMaxDrop, Distill: distill}}
			if !watch {
				if metricsAddr != "" {
					return errors.New("--metrics needs --watch (a single run prints its outcome)")
				}
				pairs, err := x.collect(ctx)
				if err != nil {
					return err
				}
				return x.run(ctx, pairs)
			}
			if metricsAddr != "" {
				x.metrics = newExtractMetrics()
				addr, err := x.metrics.serve(ctx, metricsAddr)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "metrics on http://%s/metrics\n", addr)
			}
			return x.watch(ctx, trigger, poll)
		},
	}
	f := c.Flags()
	rf.register(f)
	sf.register(f)
	f.StringVar(&out, "out", "", "directory for the pairs (and the new model)")
	f.DurationVar(&lookback, "lookback", time.Hour, "answers given up to this long before a label count")
	f.BoolVar(&tune, "tune", false, "fine-tune the substitute on the answers")
	f.BoolVar(&publish, "publish", false, "publish the new model when it is better")
	f.StringVar(&initPath, "init", "", "model to start from when none is published (default: the built-in one)")
	f.StringVar(&learnerPath, "learner", "", "fine-tune this model (e.g. another architecture, bench/adversarial/solvers/second.crnn) instead of the published version, which it is still measured against; usually published as a companion of the root")
	f.IntVar(&cleanN, "clean", 1000, "fresh clean captchas mixed into training (make simulate and bench/extractlab measured the extraction with 1,000)")
	f.IntVar(&cleanValN, "clean-val", 500, "fresh clean captchas to measure clean accuracy on")
	f.IntVar(&hardenN, "harden", 0, "fresh adversarial captchas against the current version's models (made with the attack flags, which must be the gateway's), with their truth, mixed into training: what an adapting attacker trains on (0: off; about a second of CPU each)")
	attack.registerAttack(f)
	f.IntVar(&epochs, "epochs", 2, "passes over the training data")
	f.IntVar(&batch, "batch", 16, "mini-batch size")
	f.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "training workers")
	f.Float64Var(&lr, "lr", 3e-4, "peak learning rate")
	f.Float64SliceVar(&pairShares, "pair-share", extraction.DefaultPairShares, "least share of attacker answers in each epoch: they are repeated to reach it next to --clean (0: not repeated); several, comma-separated, fine-tune once each and keep the most faithful model the publishing rule accepts")
	f.Float64Var(&minGain, "min-fidelity-gain", 0.02, "how much the share of held-out answers' characters the new model reproduces must rise for it to be published")
	f.Float64Var(&maxCleanDrop, "max-clean-drop", 0.01, "clean accuracy the new model may lose and still be published")
	f.BoolVar(&companion, "companion", true, "publish a more faithful model that lost more clean accuracy than --max-clean-drop (at most --companion-max-drop) as a companion of the clean-accurate root model")
	f.Float64Var(&companionMaxDrop, "companion-max-drop", extraction.DefaultCompanionMaxCleanDrop, "clean accuracy a companion may lose below the root model")
	f.Float64Var(&distill, "distill", extraction.DefaultDistill, "a pair share refused for its clean accuracy is fine-tuned again with the root model distilled into it on the clean captchas at this weight, which costs less clean accuracy (0: no second try)")
	f.IntVar(&minHeldOut, "min-heldout", 20, "fewest held-out answers to decide on")
	f.Uint64Var(&seed, "seed", 0, "seed of the clean captchas and the training order (default random)")
	f.BoolVar(&watch, "watch", false, "keep running: extract (with --tune/--publish) whenever a trigger is due")
	f.DurationVar(&trigger.Every, "every", 0, "with --watch: run at least this often")
	f.IntVar(&trigger.NewPairs, "after-pairs", 0, "with --watch: run once this many new attacker answers arrived")
	f.Float64Var(&trigger.SuccessAbove, "success-above", 0, "with --watch: run when attackers solve more than this share of adversarial captchas")
	f.IntVar(&trigger.MinAnswers, "min-answers", 50, "with --watch: fewest adversarial answers to judge --success-above on")
	f.DurationVar(&poll, "poll", time.Minute, "with --watch: how often to read the logs")
	f.StringVar(&metricsAddr, "metrics", "", "with --watch: serve Prometheus metrics (answers collected, runs and their outcome, the last run's fidelity) on this address's /metrics, e.g. localhost:9181")
	return c
}

// extractRun is one configured extract command.
type extractRun struct {
	w  io.Writer
	st *store.Redis
	// modelKeys verify the published version fine-tuned from and sign the
	// one published (nil without the secret: no --publish).
	modelKeys         *secretkey.Keys
	out, initPath     string
	learnerPath       string
	lookback          time.Duration
	tune, publish     bool
	cleanN, cleanValN int
	hardenN           int
	attack            perturb.Config
	cfg               extraction.TuneConfig
	metrics           *extractMetrics // nil unless --watch --metrics
}

// collect reads the logs and reports what they hold.
func (x *extractRun) collect(ctx context.Context) ([]extraction.Pair, error) {
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		return nil, err
	}
	pairs, stats, err := extraction.Collect(ctx, x.st, extraction.Options{Lookback: x.lookback, Style: &style})
	if err != nil {
		return nil, err
	}
	x.metrics.collected(stats)
	fmt.Fprintf(x.w, "logs: %d captchas served, %d answers (%d without their served record), %d label records\n",
		stats.Served, stats.Answers, stats.Orphans, stats.Labels)
	fmt.Fprintf(x.w, "attackers' answers: %d (%d not reproducible); everyone else's: %d\n", stats.Attacker, stats.Unreproducible, stats.Other)
	return pairs, nil
}

// run writes the pairs and, with --tune, fine-tunes and maybe publishes;
// the outcome goes to the metrics, if served.
func (x *extractRun) run(ctx context.Context, pairs []extraction.Pair) error {
	outcome, res, err := x.runOnce(ctx, pairs)
	if outcome == "" { // an error before a verdict
		outcome = outcomeFailed
	}
	x.metrics.ran(outcome, res)
	return err
}

// runOnce is run without the metrics: its outcome is "" when an error
// came before any verdict, and not_published when another extraction
// published first.
func (x *extractRun) runOnce(ctx context.Context, pairs []extraction.Pair) (outcome string, _ *extraction.TuneResult, _ error) {
	w := x.w
	if len(pairs) == 0 {
		fmt.Fprintln(w, "extraction: no attacker answers yet: not published (nothing to learn from)")
		return outcomeNoAnswers, nil, nil
	}
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		return "", nil, err
	}
	ds, err := extraction.WriteDataset(x.out, pairs, style.Charset, maxAnswerLen)
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintf(w, "wrote %s: %d to train on, %d held out, %d unusable answers\n", x.out, ds.Train, ds.HeldOut, ds.Unusable)
	if !x.tune {
		return outcomeWritten, nil, nil
	}
	reg := modelregistry.New(x.st, x.modelKeys)
	base, root, expect, err := extractionBase(ctx, reg, x.initPath)
	if err != nil {
		return "", nil, err
	}
	cfg := x.cfg
	cfg.Base, cfg.Root = base, root
	if cfg.Pairs, err = loadIfAny(filepath.Join(x.out, "train"), base.Arch, ds.Train); err != nil {
		return "", nil, err
	}
	if cfg.HeldOut, err = loadIfAny(filepath.Join(x.out, "heldout"), base.Arch, ds.HeldOut); err != nil {
		return "", nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = captchapool.NewSeed()
	}
	if cfg.Clean, err = cleanSamples(&style, x.cleanN, cfg.Seed); err != nil {
		return "", nil, err
	}
	if cfg.CleanVal, err = cleanSamples(&style, x.cleanValN, cfg.Seed+uint64(x.cleanN)); err != nil {
		return "", nil, err
	}
	if x.hardenN > 0 {
		hardenSeed := cfg.Seed + uint64(x.cleanN+x.cleanValN)
		var against string
		if cfg.Hardening, against, err = hardening(base, root, style, x.attack, x.hardenN, hardenSeed); err != nil {
			return "", nil, err
		}
		fmt.Fprintf(w, "made %d hardening captchas against %s (%s)\n", len(cfg.Hardening), against, x.attack)
	}
	tuned := base
	if x.learnerPath != "" {
		if cfg.Learner, err = solver.Load(x.learnerPath); err != nil {
			return "", nil, fmt.Errorf("--learner: %w", err)
		}
		tuned = cfg.Learner
		fmt.Fprintf(w, "fine-tuning the learner %s, measured against %s\n", tuned.Version(), base.Version())
	}
	fmt.Fprintf(w, "fine-tuning %s on %d answers, %d clean and %d hardening captchas (seed %d)\n",
		tuned.Version(), len(cfg.Pairs), len(cfg.Clean), len(cfg.Hardening), cfg.Seed)
	if cfg.Distill > 0 {
		fmt.Fprintf(w, "a pair share refused for clean accuracy is fine-tuned again with %s distilled at weight %g\n", cmp.Or(root, base).Version(), cfg.Distill)
	}
	res, err := extraction.FineTune(ctx, cfg)
	if errors.Is(err, extraction.ErrTooFewPairs) {
		fmt.Fprintf(w, "extraction: %v: not published (too few answers)\n", err)
		return outcomeNoAnswers, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if len(res.Tried) > 1 {
		for _, a := range res.Tried {
			fmt.Fprintf(w, "%s: %s\n", a.Setting(), a.Why)
		}
	}
	m := res.Model
	m.Info = map[string]string{
		"trained": time.Now().UTC().Format(time.RFC3339),
		"about": fmt.Sprintf("model extraction from %s: %d attacker answers (%d held out), %d clean and %d hardening captchas (seed %d)",
			tuned.Version(), len(cfg.Pairs), len(cfg.HeldOut), len(cfg.Clean), len(cfg.Hardening), cfg.Seed),
		"init": tuned.Version(), "fidelity": fmt.Sprintf("%.4f", res.After.Fidelity),
		"char_fidelity":  fmt.Sprintf("%.4f", res.After.CharFidelity),
		"clean_accuracy": fmt.Sprintf("%.4f", res.After.CleanAccuracy), "epochs": strconv.Itoa(cfg.Epochs),
		"pair_share": strconv.FormatFloat(res.PairShare, 'g', -1, 64),
	}
	path := filepath.Join(x.out, "model-"+m.Version()+".crnn")
	if err := m.Save(path); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(w, "wrote %s\n", path)
	switch {
	case !res.Better:
		fmt.Fprintf(w, "extraction: %s: not published (not better)\n", res.Why)
		return outcomeNotBetter, res, nil
	case !x.publish:
		fmt.Fprintf(w, "extraction: %s: not published (no --publish)\n", res.Why)
		return outcomeNotPublished, res, nil
	default:
		var with []*solver.Model
		if res.AsCompanion {
			with = append(with, cfg.Root)
		}
		v, err := reg.Publish(ctx, m, expect, modelregistry.Version{
			Note: "extraction: " + res.Why, Fidelity: res.After.Fidelity, CharFidelity: res.After.CharFidelity, CleanAccuracy: res.After.CleanAccuracy,
		}, with...)
		if err != nil {
			fmt.Fprintf(w, "extraction: %s: not published (%v)\n", res.Why, err)
			if errors.Is(err, modelregistry.ErrConflict) || errors.Is(err, modelregistry.ErrBusy) {
				return outcomeNotPublished, res, err
			}
			return outcomeFailed, res, err
		}
		fmt.Fprintf(w, "extraction: %s: published %s\n", res.Why, v.Version)
		if res.AsCompanion {
			return outcomeCompanion, res, nil
		}
		return outcomePublished, res, nil
	}
}

// watch reads the logs every poll and runs an extraction whenever the
// trigger is due, until ctx ends. A failed run is reported and retried at
// the next due time; it does not stop the watch.
func (x *extractRun) watch(ctx context.Context, trigger extraction.Trigger, poll time.Duration) error {
	if trigger == (extraction.Trigger{MinAnswers: trigger.MinAnswers}) {
		return errors.New("--watch needs a trigger: --every, --after-pairs or --success-above")
	}
	// The time of the last run is kept in the store, so a restarted watch
	// does not count the same answers again.
	var last extraction.Mark
	if b, err := x.st.Peek(ctx, lastExtractionKey); err == nil {
		_ = json.Unmarshal(b, &last)
	}
	for {
		pairs, err := x.collect(ctx)
		if err != nil {
			fmt.Fprintf(x.w, "reading the logs: %v\n", err)
		} else if due, why := trigger.Due(time.Now(), last, pairs); due {
			fmt.Fprintf(x.w, "extraction due: %s\n", why)
			if err := x.run(ctx, pairs); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				fmt.Fprintf(x.w, "extraction failed: %v\n", err)
			}
			last = extraction.MarkAfter(time.Now(), pairs)
			if b, err := json.Marshal(last); err == nil {
				if err := x.st.PutOnce(ctx, lastExtractionKey, b, 30*24*time.Hour); err != nil {
					fmt.Fprintf(x.w, "recording the extraction time: %v\n", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

func loadIfAny(dir string, a solver.Architecture, n int) ([]solver.Sample, error) {
	if n == 0 {
		return nil, nil
	}
	return solver.LoadDataset(dir, a)
}

// extractionBase is the model extraction starts from, the clean-accurate
// root a companion is published next to (the one the published version is
// attacked together with, else the base itself), and the published version
// a new one must replace ("" when none is published).
func extractionBase(ctx context.Context, reg *modelregistry.Registry, initPath string) (base, root *solver.Model, expect string, err error) {
	cur, err := reg.Current(ctx)
	if errors.Is(err, modelregistry.ErrNone) {
		base, err = loadModelOrDefault(initPath)
		return base, base, "", err
	}
	if err != nil {
		return nil, nil, "", err
	}
	// Only an authenticated version is fine-tuned: one forged in the
	// store would otherwise be learned from and published signed.
	ms, err := reg.Models(ctx, cur)
	if errors.Is(err, modelregistry.ErrNoKeys) {
		return nil, nil, "", fmt.Errorf("--tune starts from the published version %s: %w", cur.Version, errNoSecret)
	}
	if err != nil {
		return nil, nil, "", err
	}
	base, root = ms[0], ms[0]
	if len(ms) > 1 {
		root = ms[1]
	}
	return base, root, cur.Version, nil
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

// hardening makes n adversarial captchas from seed on, against what the
// gateway attacks now — the base, with the root when the base is its
// companion — as training samples with their truth; against names those
// models.
func hardening(base, root *solver.Model, style captcha.Style, attack perturb.Config, n int, seed uint64) (samples []solver.Sample, against string, err error) {
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
