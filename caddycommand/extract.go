package caddycommand

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/solver"
)

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
		Use:   "extract (--config Caddyfile | --redis ADDR) --out DIR [--tune [--publish]]",
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
version's models (with the gateway's attack: --config, or the attack flags),
labelled with their truth, into training — what an adapting attacker trains
on. Off by default: offline it brought no gain beyond noise and cost 5–7
points of clean accuracy (bench/extractlab/RESULTS.md).

--learner FILE fine-tunes that model instead of the published version (which
the result is still measured and judged against): a model the served
captchas were not computed against can learn to agree with the attackers on
them, which one fine-tuned from the published version hardly can.

--config reads the gateway's own Caddyfile (or Caddy JSON config): its
Redis connection and its adversarial attack; the flags given replace what
it says.`,
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
			if metricsAddr != "" && !watch {
				return errors.New("--metrics needs --watch (a single run prints its outcome)")
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
			cfg := extraction.RunConfig{Keys: modelKeys, Dir: out, Lookback: lookback, Tune: tune, Publish: publish,
				CleanN: cleanN, CleanValN: cleanValN, HardenN: hardenN, Log: w,
				Tuning: extraction.TuneConfig{Epochs: epochs, Batch: batch, Workers: workers,
					LR: lr, PairShares: pairShares, Seed: seed, MinFidelityGain: minGain, MaxCleanDrop: maxCleanDrop, MinHeldOut: minHeldOut, Progress: os.Stderr,
					Companion: companion, CompanionMaxCleanDrop: companionMaxDrop, Distill: distill}}
			if cfg.Attack, err = attack.config(); err != nil {
				return fmt.Errorf("the hardening captchas' attack: %w", err)
			}
			if tune && initPath != "" {
				if cfg.Init, err = solver.Load(initPath); err != nil {
					return fmt.Errorf("--init: %w", err)
				}
			}
			if tune && learnerPath != "" {
				if cfg.Learner, err = solver.Load(learnerPath); err != nil {
					return fmt.Errorf("--learner: %w", err)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			st, err := rf.open()
			if err != nil {
				return err
			}
			defer st.Close()
			cfg.Store = st
			if !watch {
				_, err := extraction.Run(ctx, cfg)
				return secretHint(err)
			}
			opts := extraction.WatchOptions{Trigger: trigger, Poll: poll}
			if metricsAddr != "" {
				m := newExtractMetrics()
				addr, err := m.serve(ctx, metricsAddr)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "metrics on http://%s/metrics\n", addr)
				opts.OnCollect, opts.OnRun = m.collected, m.ran
			}
			err = extraction.Watch(ctx, cfg, opts)
			if errors.Is(err, extraction.ErrNoTrigger) {
				return errors.New("--watch needs a trigger: --every, --after-pairs or --success-above")
			}
			return err
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

// secretHint says how to give the secret when a run needed it to read
// the published version.
func secretHint(err error) error {
	if errors.Is(err, modelregistry.ErrNoKeys) {
		return fmt.Errorf("%w: --tune %w", err, errNoSecret)
	}
	return err
}
