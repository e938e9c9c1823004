package caddycommand

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

// attackFlags are the flags that describe an attack, shared by the commands
// that make adversarial captchas. The attack is perturb.DefaultConfig with
// the gateway's settings (--config, where the command has it) applied, then
// the flags given: a flag left out changes nothing, one given — 0 included —
// replaces the setting, exactly as the same setting in the gateway's
// `adversarial` block does (so both hash to the same pool key).
type attackFlags struct {
	method, eot                        string
	epsilon, strokeEpsilon, iterations int
	step, eotSamples                   int
	shift                              int
	smooth, minSSIM                    float64
	momentum                           float64
	targeted                           bool
	models                             []string
	fs                                 *pflag.FlagSet
}

func (a *attackFlags) register(f *pflag.FlagSet) {
	a.registerAttack(f)
	f.StringArrayVar(&a.models, "model", nil, "substitute model file, repeatable for an ensemble (default: the gateway's solver_model and ensemble with --config, else the shipped model)")
}

// registerAttack registers the flags of the attack alone, for commands that
// take the models from elsewhere.
func (a *attackFlags) registerAttack(f *pflag.FlagSet) {
	a.fs = f
	d := perturb.DefaultConfig().WithDefaults()
	f.StringVar(&a.method, "method", string(d.Method), "fgsm, bim or mifgsm")
	f.IntVar(&a.epsilon, "epsilon", d.Epsilon, "L∞ budget in 8-bit levels")
	f.IntVar(&a.strokeEpsilon, "stroke-epsilon", d.StrokeEpsilon, "budget on the text's strokes and the pixel around them (0: --epsilon everywhere)")
	f.IntVar(&a.iterations, "iterations", d.Iterations, "iterations of bim and mifgsm")
	f.IntVar(&a.step, "step", 0, "step in levels (default max(1, ⌈2.5·ε/iterations⌉))")
	f.Float64Var(&a.momentum, "momentum", d.Momentum, "MI-FGSM's decay μ")
	f.StringVar(&a.eot, "eot", strings.Join(d.EOT, ","), `attacker filters to average over, comma-separated, or "off"`)
	f.IntVar(&a.eotSamples, "eot-samples", d.EOTSamples, "draws per step")
	f.Float64Var(&a.smooth, "smooth", d.Smooth, "σ in pixels of the gradient smoothing (0: off)")
	f.IntVar(&a.shift, "shift", d.Shift, "random translation of each draw, up to this many pixels (0: off)")
	f.Float64Var(&a.minSSIM, "min-ssim", d.MinSSIM, "SSIM floor to the clean image (0: off)")
	f.BoolVar(&a.targeted, "targeted", false, "aim for a wrong text instead of away from the true one")
}

// overrides are the attack flags given on the command line.
func (a *attackFlags) overrides() *perturb.Overrides {
	o := &perturb.Overrides{}
	given := func(name string) bool { return a.fs != nil && a.fs.Changed(name) }
	if given("method") {
		o.Method = perturb.Method(a.method)
	}
	for name, v := range map[string]struct {
		dst **int
		val *int
	}{
		"epsilon": {&o.Epsilon, &a.epsilon}, "stroke-epsilon": {&o.StrokeEpsilon, &a.strokeEpsilon}, "iterations": {&o.Iterations, &a.iterations}, "step": {&o.Step, &a.step},
		"eot-samples": {&o.EOTSamples, &a.eotSamples}, "shift": {&o.Shift, &a.shift},
	} {
		if given(name) {
			*v.dst = v.val
		}
	}
	for name, v := range map[string]struct {
		dst **float64
		val *float64
	}{
		"momentum": {&o.Momentum, &a.momentum}, "smooth": {&o.Smooth, &a.smooth}, "min-ssim": {&o.MinSSIM, &a.minSSIM},
	} {
		if given(name) {
			*v.dst = v.val
		}
	}
	if given("targeted") {
		o.Targeted = &a.targeted
	}
	if given("eot") {
		eot := []string{}
		if a.eot != "off" && a.eot != "" {
			eot = strings.Split(a.eot, ",")
		}
		o.EOT = &eot
	}
	return o
}

// config is the attack: the defaults, the gateway's settings (--config)
// and the flags given, in that order.
func (a *attackFlags) config() (perturb.Config, error) {
	gw, err := gatewayOf(a.fs).attack()
	if err != nil {
		return perturb.Config{}, err
	}
	c := perturb.DefaultConfig().Apply(gw).Apply(a.overrides())
	return c, c.Validate()
}

// generator builds the generator the flags describe, making captchas of
// style (the zero Style is the default), with workers graphs per substitute.
func (a *attackFlags) generator(workers int, style captcha.Style) (*captchapool.Generator, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if err := style.Validate(); err != nil {
		return nil, err
	}
	models, err := a.substitutes(style)
	if err != nil {
		return nil, err
	}
	sols, err := solver.NewEach(models, solver.Options{Workers: workers})
	if err != nil {
		return nil, err
	}
	return &captchapool.Generator{Style: style, Solvers: sols, Attack: cfg}, nil
}

// substitutes loads the models attacked, the first the one a pool follows
// (the gateway's solver_model) and then the ensemble: --model, else the
// gateway's (--config), else the shipped model. Each must read style.
func (a *attackFlags) substitutes(style captcha.Style) ([]*solver.Model, error) {
	paths := a.models
	if len(paths) == 0 {
		var err error
		if paths, err = gatewayOf(a.fs).models(); err != nil {
			return nil, err
		}
	}
	if len(paths) == 0 {
		paths = []string{""}
	}
	out := make([]*solver.Model, len(paths))
	for i, p := range paths {
		m, err := loadModelOrDefault(p)
		if err != nil {
			return nil, err
		}
		if err := m.Reads(style.Height, style.Width, style.Charset); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Version(), err)
		}
		out[i] = m
	}
	return out, nil
}

// writeAdversarialDataset writes count adversarial captchas as a labels.csv
// dataset, with attack.json describing how they were made.
func writeAdversarialDataset(dir string, count int, seed uint64, g *captchapool.Generator) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := g.GenerateMany(seed, count, func(done int) {
		fmt.Fprintf(os.Stderr, "\r%d/%d adversarial captchas", done, count)
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	rows := make([][2]string, count)
	var ssim, strokeSSIM float64
	fooled := 0
	width := max(6, len(strconv.Itoa(count-1)))
	for i, e := range entries {
		rows[i] = [2]string{fmt.Sprintf("%0*d.png", width, i), e.Text}
		if err := os.WriteFile(filepath.Join(dir, rows[i][0]), e.PNG, 0o644); err != nil {
			return err
		}
		ssim += e.SSIM
		stroke, err := entryStrokeSSIM(g.Style, e)
		if err != nil {
			return err
		}
		strokeSSIM += stroke
		if e.Fooled {
			fooled++
		}
	}
	if err := writeLabels(dir, rows); err != nil {
		return err
	}
	info, _ := json.MarshalIndent(map[string]any{
		"attack": g.Attack, "description": g.Attack.String(), "models": g.ModelVersion(),
		"first_seed": seed, "count": count, "mean_ssim": ssim / float64(count),
		"mean_stroke_ssim":  strokeSSIM / float64(count),
		"substitute_fooled": float64(fooled) / float64(count),
	}, "", "  ")
	return os.WriteFile(filepath.Join(dir, "attack.json"), append(info, '\n'), 0o644)
}

// entryStrokeSSIM is the SSIM of an entry's image to its clean captcha
// on the text's strokes alone (perturb.StrokeSSIM).
func entryStrokeSSIM(style captcha.Style, e *captchapool.Entry) (float64, error) {
	c, err := style.Generate(e.Seed)
	if err != nil {
		return 0, err
	}
	served, err := e.Sample()
	if err != nil {
		return 0, err
	}
	h, w := c.Image.Bounds().Dy(), c.Image.Bounds().Dx()
	return perturb.StrokeSSIM(perturb.FromGray(c.Image), perturb.FromGray(&image.Gray{Pix: served.Pixels, Stride: w, Rect: c.Image.Rect}), c.Glyphs.Pix, h, w), nil
}

func sheetCommand() *cobra.Command {
	var count, zoom int
	var out, methods, epsilons, styleJSON string
	var seed uint64
	var attack attackFlags
	c := &cobra.Command{
		Use:   "sheet --out FILE.png [--count N] [--methods fgsm,bim,mifgsm] [--epsilons 4,8,16] [--style JSON] [attack flags]",
		Short: "Write clean and adversarial captchas side by side, for each method and ε",
		Long: `Writes a contact sheet for people to judge whether adversarial captchas stay
readable: one row per captcha, the clean image first, then the same captcha
perturbed by each method at each ε, labelled with the SSIM to the clean image
and what the substitute reads.`,
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			if count < 1 || count > 100 || zoom < 1 || zoom > 8 {
				return errors.New("need 1 ≤ --count ≤ 100 and 1 ≤ --zoom ≤ 8")
			}
			eps, err := parseInts(epsilons)
			if err != nil {
				return fmt.Errorf("--epsilons: %w", err)
			}
			ms := strings.Split(methods, ",")
			cols := 1 + len(ms)*len(eps)
			cells := make([]*captcha.Captcha, count*cols)
			var style captcha.Style
			if err := json.Unmarshal([]byte(styleJSON), &style); err != nil {
				return fmt.Errorf("--style: %w", err)
			}
			g, err := attack.generator(runtime.GOMAXPROCS(0), style)
			if err != nil {
				return err
			}
			base := g.Attack
			for i := range count {
				c, err := g.Style.Generate(seed + uint64(i))
				if err != nil {
					return err
				}
				cells[i*cols] = &captcha.Captcha{Text: "clean: " + c.Text, Image: c.Image}
			}
			for mi, m := range ms {
				for ei, e := range eps {
					g.Attack = base
					g.Attack.Method, g.Attack.Epsilon = perturb.Method(m), e
					if err := g.Attack.Validate(); err != nil {
						return err
					}
					entries, err := g.GenerateMany(seed, count, nil)
					if err != nil {
						return err
					}
					for i, en := range entries {
						img, err := png.Decode(bytes.NewReader(en.PNG))
						if err != nil {
							return err
						}
						cells[i*cols+1+mi*len(eps)+ei] = &captcha.Captcha{
							Text:  fmt.Sprintf("%s eps=%d ssim=%.2f: %s", m, e, en.SSIM, en.Reading),
							Image: img.(*image.Gray),
						}
					}
				}
			}
			b, err := captcha.EncodePNG(captcha.Gallery(cells, cols, zoom))
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		},
	}
	f := c.Flags()
	f.IntVar(&count, "count", 6, "captchas (rows)")
	f.IntVar(&zoom, "zoom", 2, "scale factor")
	f.StringVar(&out, "out", "", "output PNG file")
	f.Uint64Var(&seed, "seed", 1, "seed of the first captcha")
	f.StringVar(&methods, "methods", "fgsm,bim,mifgsm", "methods, comma-separated")
	f.StringVar(&epsilons, "epsilons", "4,8,16", "budgets in levels, comma-separated")
	f.StringVar(&styleJSON, "style", "{}", "style fields that differ from the default, as JSON")
	attack.register(f)
	return c
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func poolCommand() *cobra.Command {
	var rf redisFlags
	var sf secretFlags
	var size, workers int
	var budget float64
	var follow time.Duration
	var attack attackFlags
	c := &cobra.Command{
		Use:   "pool (--config Caddyfile | --redis ADDR [--redis ADDR…]) [attack flags]",
		Short: "Fill a shared Redis pool with adversarial captchas",
		Long: `Runs generation workers outside the gateway: they keep the pool that gateways
with "adversarial { external_workers }" serve from at its size. The attack
and the models must be the gateway's, or the pool key differs and the
gateways do not see these captchas: --config reads them from the gateway's
own Caddyfile (or JSON config) — its redis, solver_model and adversarial
settings (attack, ensemble, pool_size, follow_models) — and the flags given
replace what it says. Like the gateways, the workers follow the model
versions published in Redis (--follow-models), with their companions and
the ensemble, if they are authenticated. The Redis password, if any, is
read from the environment variable ADVCAPTCHA_REDIS_PASSWORD (else from the
config). Stops on SIGINT/SIGTERM.

Every captcha is signed with a key derived from the gateway's secret (the
Caddyfile's secret), given in the environment variable ADVCAPTCHA_SECRET or
with --secret: the gateways drop, and count in
advcaptcha_pool_forged_total, entries that do not verify. The command
refuses to run without it.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			poolKeys, err := sf.poolKeys()
			if err != nil {
				return err
			}
			modelKeys, err := sf.modelKeys()
			if err != nil {
				return err
			}
			gw := gatewayOf(cmd.Flags())
			if a, err := gw.adversarial(); err != nil {
				return err
			} else if a != nil && a.Off {
				return fmt.Errorf("--config %s: the gateway's adversarial captchas are off", gw.path)
			}
			if !cmd.Flags().Changed("size") {
				if n, err := gw.poolSize(); err != nil {
					return err
				} else if n > 0 {
					size = n
				}
			}
			if !cmd.Flags().Changed("follow-models") {
				if d, set, err := gw.followModels(); err != nil {
					return err
				} else if set {
					follow = d
				}
			}
			cfg, err := attack.config()
			if err != nil {
				return err
			}
			style := captcha.DefaultStyle()
			if err := style.Validate(); err != nil {
				return err
			}
			models, err := attack.substitutes(style)
			if err != nil {
				return err
			}
			conn, err := rf.connection()
			if err != nil {
				return err
			}
			st, err := rf.open()
			if err != nil {
				return err
			}
			defer st.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			svc, err := captchapool.Start(ctx, captchapool.ServiceConfig{
				Store: st, Style: style, Attack: cfg, Model: models[0], Ensemble: models[1:],
				PoolKeys: poolKeys, ModelKeys: modelKeys, Size: size, Workers: workers, CPUBudget: budget, Follow: follow,
				Observer: &poolPrinter{out: cmd.OutOrStdout(), errs: cmd.ErrOrStderr(), prefix: conn.KeyPrefix, size: size, workers: workers},
			})
			if err != nil {
				return err
			}
			<-ctx.Done()
			svc.Stop()
			svc.Wait()
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	f := c.Flags()
	rf.register(f)
	sf.register(f)
	f.IntVar(&size, "size", 200, "pool size, as the gateway's pool_size")
	f.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "generation workers")
	f.Float64Var(&budget, "cpu-budget", 1, "share of its time each worker spends generating")
	f.DurationVar(&follow, "follow-models", 30*time.Second, "how often to check Redis for a newly published model (0: never), as the gateway's follow_models")
	attack.register(f)
	return c
}

// poolPrinter tells what the pool command's generation service does.
type poolPrinter struct {
	mu            sync.Mutex
	out, errs     io.Writer
	prefix        string
	size, workers int
	// made are when the captchas of the last rateWindow were made: the
	// rate this process supplies, which capacity is planned with.
	made []time.Time
}

// rateWindow is what the pool command's captchas/s figure is measured over.
const rateWindow = time.Minute

// rate records a captcha made now and returns the captchas per second over
// the last rateWindow (or since the first, if that is sooner).
func (p *poolPrinter) rate(now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.made = append(p.made, now)
	i := 0
	for i < len(p.made) && now.Sub(p.made[i]) > rateWindow {
		i++
	}
	p.made = p.made[i:]
	span := now.Sub(p.made[0])
	if len(p.made) < 2 || span <= 0 {
		return 0
	}
	return float64(len(p.made)-1) / span.Seconds()
}

func (p *poolPrinter) printf(w io.Writer, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(w, format, args...)
}

func (p *poolPrinter) Generating(g *captchapool.Generation) {
	p.printf(p.out, "\nfilling %s%s to %d: %s against %s, %d workers\n", p.prefix, g.Key, p.size, g.Generator.Attack, g.Generator.ModelVersion(), p.workers)
}

func (p *poolPrinter) Generated(_ *captchapool.Generation, took time.Duration, depth int, err error) {
	if err != nil {
		p.printf(p.errs, "generation: %v\n", err)
		return
	}
	r := p.rate(time.Now())
	p.printf(p.out, "\rdepth %d/%d, %.2f captchas/s over the last minute, %v each on one worker   ", depth, p.size, r, took.Round(time.Millisecond))
}

func (p *poolPrinter) Followed(v *modelregistry.Version) {
	p.printf(p.out, "\nfollowing the published model version %s\n", v.Version)
}

func (p *poolPrinter) Refused(version, reason string, err error) {
	p.printf(p.out, "\npublished model version %s refused (%s), keeping the current one: %v\n", version, reason, err)
}

func (p *poolPrinter) RegistryError(err error) {
	p.printf(p.errs, "reading the model registry: %v\n", err)
}
