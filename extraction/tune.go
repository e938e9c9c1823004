package extraction

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/advcaptcha/advcaptcha/solver"
)

// TuneConfig is one extraction run: fine-tune the substitute on attackers'
// answers mixed with clean ground truth, and measure it before and after.
type TuneConfig struct {
	// Base is the substitute in use now: what the new model is measured
	// against, and what is fine-tuned unless Learner is set.
	Base *solver.Model
	// Learner, when set, is fine-tuned instead of Base: a model the served
	// captchas were not computed against. A model fine-tuned from Base keeps
	// misreading captchas made white-box against Base, so it can hardly agree
	// with the attackers on them, while another architecture can learn
	// some of their answers (bench/extractlab/RESULTS.md, "Figures behind
	// the defaults").
	// It must read images of Base's size and charset; it is usually
	// published as a companion of Root, being less clean-accurate.
	Learner *solver.Model
	// Pairs are attacker-labelled images to train on (the text is the
	// attacker's answer) and HeldOut those kept to measure fidelity.
	Pairs, HeldOut []solver.Sample
	// Clean are correctly labelled clean captchas mixed into training so
	// the substitute keeps reading ordinary captchas; CleanVal measure it.
	Clean, CleanVal []solver.Sample
	// Hardening are adversarial captchas computed against the models the
	// current version is attacked with, labelled with their truth: what an
	// attacker that adapts fine-tunes on (its solving farm labels our
	// captchas for it), the idea being that a substitute that learns to
	// read where the attacker did makes perturbations that go past what the
	// attacker learnt. Off unless set: offline it brought no gain beyond
	// noise and cost clean accuracy (bench/extractlab/RESULTS.md).
	Hardening []solver.Sample
	// Training settings; defaults 2 epochs of 16 at lr 3e-4.
	Epochs, Batch, Workers int
	LR                     float64
	Seed                   uint64
	// PairShares are the settings to try, one fine-tuning each: the least
	// share of each epoch's samples that are attacker answers (repeated
	// until they make up this much next to Clean; 0: not repeated). Each
	// model is measured and judged, and the most faithful one the rule
	// accepts is the result, so a setting that follows the attackers
	// further is taken when it keeps enough clean accuracy, and a milder
	// one otherwise. Default DefaultPairShares.
	//
	// Why {0.5, 0}: repeating the answers to half of each epoch follows
	// the attackers further than not repeating them, and the adapted
	// attacker reads fewer of the captchas computed against the result;
	// but it costs about as much clean accuracy as a companion may lose,
	// at times more. Share 0 costs far less, so it is the fallback when
	// share 0.5 is refused, after a second, distilled try of the refused
	// share (Distill). The price is a second fine-tuning per run, a third
	// when that try is needed. Choosing among settings on the held-out
	// answers favours the chosen one's fidelity a little, so what a setting
	// does to the attacker is measured on fresh captchas, not on these.
	// Figures: bench/extractlab/RESULTS.md ("Figures behind the defaults")
	// and bench/simulate/RESULTS.md.
	PairShares []float64
	// Distill is the weight at which the root (the base when it has none)
	// is distilled into the model on the clean captchas, next to their CTC
	// loss (solver.TrainConfig.Teacher), when a pair share's model is
	// refused for its clean accuracy: that share is fine-tuned again with
	// the distillation, which costs less clean accuracy and follows the
	// answers a little less far. Default DefaultDistill; negative: never.
	Distill float64
	// MinFidelityGain is how much a new model's character fidelity must
	// rise over the base's to count as following the attackers better
	// (default 0.02: two points). Characters, not whole answers: on a few
	// dozen held-out answers of an attacker that reads under a fifth of
	// our captchas, whole-answer agreement hardly differs between models,
	// while character agreement separates them and ranks them as the
	// adapted attacker's success against their captchas does
	// (bench/extractlab/RESULTS.md, "Figures behind the defaults").
	MinFidelityGain float64
	// MaxCleanDrop is how much clean accuracy a new model may lose and
	// still be better (default 0.01: one point).
	MaxCleanDrop float64
	// Companion lets a model that follows the attackers better but reads
	// clean captchas worse than MaxCleanDrop allows be published next to
	// Root instead of replacing the base: captchas are then computed
	// against both, so they keep fooling solvers that read clean captchas
	// well while they follow the attackers'. It must still read clean
	// captchas within CompanionMaxCleanDrop (default
	// DefaultCompanionMaxCleanDrop) of Root. Extractions lose more clean
	// accuracy than a replacement of the base may, so alone hardly any
	// could be published, while as companions they cut the adapted
	// attacker's success (bench/extractlab/RESULTS.md,
	// bench/simulate/RESULTS.md).
	// The price: each captcha costs about twice the CPU to generate.
	Companion             bool
	CompanionMaxCleanDrop float64
	// Root is the clean-accurate model a companion is published next to:
	// the one the current version is attacked together with, or the base
	// when it has none (nil: the base).
	Root *solver.Model
	// MinHeldOut is the fewest held-out pairs that make a fidelity
	// measurement worth acting on (default 20).
	MinHeldOut int
	Progress   io.Writer
}

// Measurement is a model measured against held-out attacker answers and
// clean captchas.
type Measurement struct {
	// Fidelity is the share of held-out attacker answers the model
	// reproduces exactly, CharFidelity the share of their characters
	// (one minus the edit distance over the answers' length): what the
	// publishing rule judges by. CleanAccuracy is the share of clean
	// captchas read right.
	Fidelity, CharFidelity, CleanAccuracy float64
}

// TuneResult is what an extraction run measured.
type TuneResult struct {
	Model *solver.Model
	// Before is the base's measurement, After the new model's.
	Before, After Measurement
	// Better says whether the new model should be published, and Why;
	// AsCompanion that it is to be attacked together with the root
	// (TuneConfig.Root), not alone.
	Better      bool
	AsCompanion bool
	Why         string
	// RootCleanAccuracy is the root's clean accuracy, when it was needed.
	RootCleanAccuracy float64
	// PairShare is the setting of TuneConfig.PairShares that made Model,
	// and Distill the weight the root was distilled at (0: not); Tried has
	// every fine-tuning's measurement and verdict, in the order run.
	PairShare, Distill float64
	Tried              []Attempt
}

// Attempt is one fine-tuning of an extraction run and its verdict.
type Attempt struct {
	PairShare, Distill  float64
	After               Measurement
	Better, AsCompanion bool
	Why                 string
}

// DefaultCompanionMaxCleanDrop is TuneConfig.CompanionMaxCleanDrop when
// it is not set.
const DefaultCompanionMaxCleanDrop = 0.10

// DefaultDistill is TuneConfig.Distill when it is not set.
//
// Why 1: distilling keeps several points more clean accuracy for a few
// points of character fidelity. Where the undistilled model is refused
// (past a companion's bound), the distilled one fools the adapted attacker
// better than the share-0 model the rule would fall back to; where the
// undistilled model is accepted it does better than the distilled one,
// which is why distilling is a second try and not the first. A heavier
// weight keeps more clean accuracy and less fidelity. Figures:
// bench/extractlab/RESULTS.md ("Figures behind the defaults").
const DefaultDistill = 1.0

// DefaultPairShares are TuneConfig.PairShares when none are set: answers
// at half of each epoch, else not repeated (TuneConfig.PairShares says why).
var DefaultPairShares = []float64{0.5, 0}

// ErrTooFewPairs is returned when there is not enough to train or measure.
var ErrTooFewPairs = errors.New("too few attacker answers")

// FineTune runs an extraction: it measures the base, fine-tunes a copy (of
// the learner, if set) once for each pair share, measures each copy, and
// returns the one to publish, if any: more faithful to the attackers'
// answers than the base without losing clean accuracy (or, as a companion,
// within its bound of the root).
func FineTune(ctx context.Context, cfg TuneConfig) (*TuneResult, error) {
	if cfg.Epochs <= 0 {
		cfg.Epochs = 2
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	if cfg.LR <= 0 {
		cfg.LR = 3e-4
	}
	if cfg.MinFidelityGain == 0 {
		cfg.MinFidelityGain = 0.02
	}
	if cfg.MaxCleanDrop == 0 {
		cfg.MaxCleanDrop = 0.01
	}
	if cfg.CompanionMaxCleanDrop == 0 {
		cfg.CompanionMaxCleanDrop = DefaultCompanionMaxCleanDrop
	}
	if cfg.MinHeldOut <= 0 {
		cfg.MinHeldOut = 20
	}
	if cfg.Distill == 0 {
		cfg.Distill = DefaultDistill
	}
	if len(cfg.Pairs) == 0 || len(cfg.HeldOut) < cfg.MinHeldOut {
		return nil, fmt.Errorf("%w: %d to train on and %d held out (want at least 1 and %d)", ErrTooFewPairs, len(cfg.Pairs), len(cfg.HeldOut), cfg.MinHeldOut)
	}
	if len(cfg.CleanVal) == 0 {
		return nil, errors.New("no clean captchas to measure clean accuracy on")
	}
	shares := cfg.PairShares
	if len(shares) == 0 {
		shares = DefaultPairShares
	}
	init := cfg.Base
	if cfg.Learner != nil {
		init = cfg.Learner
		if a, b := init.Arch, cfg.Base.Arch; a.Height != b.Height || a.Width != b.Width || a.Charset != b.Charset {
			return nil, fmt.Errorf("learner reads %d×%d %q, the substitute %d×%d %q", a.Width, a.Height, a.Charset, b.Width, b.Height, b.Charset)
		}
	}
	before, err := Measure(cfg.Base, cfg.HeldOut, cfg.CleanVal, cfg.Workers)
	if err != nil {
		return nil, err
	}
	rootClean := before.CleanAccuracy
	if cfg.Companion && cfg.Root != nil && cfg.Root != cfg.Base {
		root, err := Measure(cfg.Root, cfg.HeldOut, cfg.CleanVal, cfg.Workers)
		if err != nil {
			return nil, err
		}
		rootClean = root.CleanAccuracy
	}
	var best *TuneResult
	tried := make([]Attempt, 0, len(shares))
	for _, share := range shares {
		for _, distill := range []float64{0, cfg.Distill} {
			if distill < 0 {
				break
			}
			res, err := fineTuneOnce(ctx, cfg, init, share, distill)
			if err != nil {
				return nil, err
			}
			res.Before, res.RootCleanAccuracy = before, rootClean
			if res.After, err = Measure(res.Model, cfg.HeldOut, cfg.CleanVal, cfg.Workers); err != nil {
				return nil, err
			}
			cleanRefused := judge(res, cfg)
			tried = append(tried, Attempt{PairShare: share, Distill: distill, After: res.After, Better: res.Better, AsCompanion: res.AsCompanion, Why: res.Why})
			if best == nil || preferred(res, best) {
				best = res
			}
			if !cleanRefused {
				break // distilling is for a model that learnt the answers at too great a cost
			}
		}
	}
	best.Tried = tried
	switch {
	case len(tried) == 1:
	case best.Better:
		best.Why += fmt.Sprintf(" (%s, the most faithful accepted of %d tried)", best.setting(), len(tried))
	default:
		best.Why = fmt.Sprintf("none of %d fine-tunings accepted; the most faithful (%s): %s", len(tried), best.setting(), best.Why)
	}
	return best, nil
}

// fineTuneOnce fine-tunes init on the pairs at a pair share, mixed with
// the clean and hardening captchas, with the root distilled at a weight
// (0: not).
func fineTuneOnce(ctx context.Context, cfg TuneConfig, init *solver.Model, share, distill float64) (*TuneResult, error) {
	var train []solver.Sample
	for range pairRepeats(len(cfg.Pairs), len(cfg.Clean), share) {
		train = append(train, cfg.Pairs...)
	}
	tc := solver.TrainConfig{
		Init: init, Batch: cfg.Batch, Workers: cfg.Workers, Epochs: cfg.Epochs,
		LR: cfg.LR, Augment: true, Seed: cfg.Seed, Progress: cfg.Progress,
	}
	if distill > 0 {
		// The teacher's readings are worth learning on clean captchas
		// only: on the answers and hardening captchas they are what the
		// model is to move away from.
		tc.Teacher, tc.TeacherWeight = cmp.Or(cfg.Root, cfg.Base), distill
		tc.Teach = cleanOnly(len(train), len(cfg.Clean), len(cfg.Hardening))
	}
	train = append(train, cfg.Clean...)
	train = append(train, cfg.Hardening...)
	tc.Train = train
	model, _, err := solver.Train(ctx, tc)
	if err != nil {
		return nil, fmt.Errorf("fine-tune (pair share %g, distilled at %g): %w", share, distill, err)
	}
	return &TuneResult{Model: model, PairShare: share, Distill: distill}, nil
}

// setting names the fine-tuning that made the result.
func (r *TuneResult) setting() string {
	return Attempt{PairShare: r.PairShare, Distill: r.Distill}.Setting()
}

// Setting names the fine-tuning, e.g. "pair share 0.5, root distilled at 1".
func (a Attempt) Setting() string {
	if a.Distill > 0 {
		return fmt.Sprintf("pair share %g, root distilled at %g", a.PairShare, a.Distill)
	}
	return fmt.Sprintf("pair share %g", a.PairShare)
}

// preferred says whether a is a better result than b: one the rule
// accepts over one it refuses, then the more faithful in characters (which
// ranks models as the adapted attacker's success against their captchas
// does; see MinFidelityGain), the first tried on a tie.
func preferred(a, b *TuneResult) bool {
	if a.Better != b.Better {
		return a.Better
	}
	return a.After.CharFidelity > b.After.CharFidelity
}

// judge decides from the measurements whether the new model is published,
// alone or as a companion of the root; it says whether it was refused for
// its clean accuracy alone.
func judge(res *TuneResult, cfg TuneConfig) (cleanRefused bool) {
	b, a := res.Before, res.After
	measured := fmt.Sprintf("fidelity %.1f%% → %.1f%% of characters (%.1f%% → %.1f%% of answers), clean accuracy %.1f%% → %.1f%%",
		100*b.CharFidelity, 100*a.CharFidelity, 100*b.Fidelity, 100*a.Fidelity, 100*b.CleanAccuracy, 100*a.CleanAccuracy)
	switch {
	case a.CharFidelity < b.CharFidelity+cfg.MinFidelityGain:
		res.Why = fmt.Sprintf("fidelity did not improve by %.0f points: %s", 100*cfg.MinFidelityGain, measured)
	case a.CleanAccuracy >= b.CleanAccuracy-cfg.MaxCleanDrop &&
		a.CleanAccuracy >= res.RootCleanAccuracy-cfg.MaxCleanDrop:
		// As good on clean captchas as the base and the root: alone. (A
		// base that is itself a companion reads worse than the root; a
		// model only as good as it stays a companion, or the versions
		// would drift from the root a point at a time.)
		res.Better = true
		res.Why = measured
	case !cfg.Companion:
		res.Why = "clean accuracy fell: " + measured
		return true
	case a.CleanAccuracy < res.RootCleanAccuracy-cfg.CompanionMaxCleanDrop:
		res.Why = fmt.Sprintf("clean accuracy fell too far even for a companion of a model at %.1f%%: %s", 100*res.RootCleanAccuracy, measured)
		return true
	default:
		res.Better, res.AsCompanion = true, true
		res.Why = fmt.Sprintf("%s: published as a companion of the model at %.1f%%", measured, 100*res.RootCleanAccuracy)
	}
	return false
}

// Measure measures a model against held-out attacker answers and clean
// captchas.
func Measure(m *solver.Model, heldOut, clean []solver.Sample, workers int) (Measurement, error) {
	s, err := solver.New(m, solver.Options{Workers: workers})
	if err != nil {
		return Measurement{}, err
	}
	f, err := solver.Evaluate(s, heldOut)
	if err != nil {
		return Measurement{}, fmt.Errorf("measure fidelity: %w", err)
	}
	c, err := solver.Evaluate(s, clean)
	if err != nil {
		return Measurement{}, fmt.Errorf("measure clean accuracy: %w", err)
	}
	return Measurement{
		Fidelity:      float64(f.Solved) / float64(f.Total),
		CharFidelity:  f.CharAcc,
		CleanAccuracy: float64(c.Solved) / float64(c.Total),
	}, nil
}

// cleanOnly marks the clean captchas of a training set that holds pairs,
// then clean captchas, then hardening captchas.
func cleanOnly(pairs, clean, hardening int) []bool {
	teach := make([]bool, pairs+clean+hardening)
	for i := range clean {
		teach[pairs+i] = true
	}
	return teach
}

// pairRepeats is how many times pairs answers go into an epoch with clean
// captchas so that they are at least share of it (once when share is not
// in (0, 1)).
func pairRepeats(pairs, clean int, share float64) int {
	if share <= 0 || share >= 1 || pairs == 0 {
		return 1
	}
	want := share / (1 - share) * float64(clean)
	return max(1, int(math.Ceil(want/float64(pairs))))
}
