package caddycommand

import (
	"bytes"
	"context"
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
// that make adversarial captchas; unset flags keep perturb.DefaultConfig.
type attackFlags struct {
	method, eot         string
	epsilon, iterations int
	step, eotSamples    int
	shift               int
	smooth, minSSIM     float64
	targeted            bool
	models              []string
}

func (a *attackFlags) register(f *pflag.FlagSet) {
	a.registerAttack(f)
	f.StringArrayVar(&a.models, "model", nil, "substitute model file, repeatable for an ensemble (default: the shipped model)")
}

// registerAttack registers the flags of the attack alone, for commands that
// take the models from elsewhere.
func (a *attackFlags) registerAttack(f *pflag.FlagSet) {
	d := perturb.DefaultConfig()
	f.StringVar(&a.method, "method", string(d.Method), "fgsm, bim or mifgsm")
	f.IntVar(&a.epsilon, "epsilon", d.Epsilon, "L∞ budget in 8-bit levels")
	f.IntVar(&a.iterations, "iterations", d.Iterations, "iterations of bim and mifgsm")
	f.IntVar(&a.step, "step", 0, "step in levels (default max(1, ⌈2.5·ε/iterations⌉))")
	f.StringVar(&a.eot, "eot", strings.Join(d.EOT, ","), `attacker filters to average over, comma-separated, or "off"`)
	f.IntVar(&a.eotSamples, "eot-samples", d.EOTSamples, "draws per step")
	f.Float64Var(&a.smooth, "smooth", d.Smooth, "σ in pixels of the gradient smoothing (0: off)")
	f.IntVar(&a.shift, "shift", d.Shift, "random translation of each draw, up to this many pixels (0: off)")
	f.Float64Var(&a.minSSIM, "min-ssim", d.MinSSIM, "SSIM floor to the clean image (0: off)")
	f.BoolVar(&a.targeted, "targeted", false, "aim for a wrong text instead of away from the true one")
}

func (a *attackFlags) config() (perturb.Config, error) {
	c := perturb.Config{
		Method: perturb.Method(a.method), Epsilon: a.epsilon, Iterations: a.iterations, Step: a.step,
		EOTSamples: a.eotSamples, Shift: a.shift, Smooth: a.smooth, MinSSIM: a.minSSIM, Targeted: a.targeted,
	}
	if a.eot != "off" && a.eot != "" {
		c.EOT = strings.Split(a.eot, ",")
	}
	return c, c.Validate()
}

// generator builds the generator the flags describe, with workers graphs
// per substitute.
func (a *attackFlags) generator(workers int) (*captchapool.Generator, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		return nil, err
	}
	paths := a.models
	if len(paths) == 0 {
		paths = []string{""}
	}
	g := &captchapool.Generator{Style: style, Attack: cfg}
	for _, p := range paths {
		m, err := loadModelOrDefault(p)
		if err != nil {
			return nil, err
		}
		if err := m.Reads(style.Height, style.Width, style.Charset); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Version(), err)
		}
		s, err := solver.New(m, solver.Options{Workers: workers})
		if err != nil {
			return nil, err
		}
		g.Solvers = append(g.Solvers, s)
	}
	return g, nil
}

// writeAdversarialDataset writes count adversarial captchas as a labels.csv
// dataset, with attack.json describing how they were made.
func writeAdversarialDataset(dir string, count int, seed uint64, g *captchapool.Generator) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := g.GenerateMany(seed, count, func(done int) {
		if done%50 == 0 || done == count {
			fmt.Fprintf(os.Stderr, "\r%d/%d adversarial captchas", done, count)
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	rows := make([][2]string, count)
	var ssim float64
	fooled := 0
	width := max(6, len(strconv.Itoa(count-1)))
	for i, e := range entries {
		rows[i] = [2]string{fmt.Sprintf("%0*d.png", width, i), e.Text}
		if err := os.WriteFile(filepath.Join(dir, rows[i][0]), e.PNG, 0o644); err != nil {
			return err
		}
		ssim += e.SSIM
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
		"substitute_fooled": float64(fooled) / float64(count),
	}, "", "  ")
	return os.WriteFile(filepath.Join(dir, "attack.json"), append(info, '\n'), 0o644)
}

func sheetCommand() *cobra.Command {
	var count, zoom int
	var out, methods, epsilons string
	var seed uint64
	var attack attackFlags
	c := &cobra.Command{
		Use:   "sheet --out FILE.png [--count N] [--methods fgsm,bim,mifgsm] [--epsilons 4,8,16] [attack flags]",
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
			g, err := attack.generator(runtime.GOMAXPROCS(0))
			if err != nil {
				return err
			}
			for i := range count {
				c, err := g.Style.Generate(seed + uint64(i))
				if err != nil {
					return err
				}
				cells[i*cols] = &captcha.Captcha{Text: "clean: " + c.Text, Image: c.Image}
			}
			for mi, m := range ms {
				for ei, e := range eps {
					attack.method, attack.epsilon = m, e
					if g.Attack, err = attack.config(); err != nil {
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
		Use:   "pool --redis ADDR [--redis ADDR…] [attack flags]",
		Short: "Fill a shared Redis pool with adversarial captchas",
		Long: `Runs generation workers outside the gateway: they keep the pool that gateways
with "adversarial { external_workers }" serve from at its size. The attack
flags and the model must be the gateway's, or the pool key differs and the
gateways do not see these captchas; like the gateways, the workers switch to
a model version published in Redis (--follow-models), if it is
authenticated. The Redis password, if any, is read from the environment
variable ADVCAPTCHA_REDIS_PASSWORD. Stops on SIGINT/SIGTERM.

Every captcha is signed with a key derived from the gateway's secret (the
Caddyfile's secret), given in the environment variable ADVCAPTCHA_SECRET or
with --secret: the gateways drop, and count in
advcaptcha_pool_forged_total, entries that do not verify. The command
refuses to run without it.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if follow > 0 && len(attack.models) > 1 {
				return errors.New("--follow-models follows one substitute; with an ensemble set --follow-models 0")
			}
			poolKeys, err := sf.poolKeys()
			if err != nil {
				return err
			}
			modelKeys, err := sf.modelKeys()
			if err != nil {
				return err
			}
			st, err := rf.open()
			if err != nil {
				return err
			}
			defer st.Close()
			g, err := attack.generator(workers)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			reg := modelregistry.New(st, modelKeys)
			for {
				key := g.Key()
				fmt.Fprintf(w, "filling %s%s to %d: %s against %s, %d workers\n", rf.prefix, key, size, g.Attack, g.ModelVersion(), workers)
				f := &captchapool.Filler{
					Store: st, Key: key, Keys: poolKeys, Size: size, TTL: 24 * time.Hour, Workers: workers, CPUBudget: budget,
					Generate: g.GenerateContext,
					Observe: func(took time.Duration, depth int, err error) {
						if err != nil {
							fmt.Fprintln(cmd.ErrOrStderr(), "generation:", err)
							return
						}
						fmt.Fprintf(w, "\rdepth %d/%d, last captcha %v   ", depth, size, took.Round(time.Millisecond))
					},
				}
				runCtx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); f.Run(runCtx) }()
				next := awaitNewModel(ctx, w, reg, g.Solvers[0].Model().Version(), follow)
				cancel()
				<-done
				fmt.Fprintln(w)
				if next == nil {
					return nil
				}
				// Against the version and its companions, in the
				// registry's order: the gateways' pool key is the same.
				solvers, err := solver.NewEach(next, solver.Options{Workers: workers})
				if err != nil {
					return err
				}
				g = &captchapool.Generator{Style: g.Style, Solvers: solvers, Attack: g.Attack}
			}
		},
	}
	f := c.Flags()
	rf.register(f)
	sf.register(f)
	f.IntVar(&size, "size", 200, "pool size, as the gateway's pool_size")
	f.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "generation workers")
	f.Float64Var(&budget, "cpu-budget", 1, "share of its time each worker spends generating")
	f.DurationVar(&follow, "follow-models", 30*time.Second, "how often to check Redis for a newly published model (0: never)")
	attack.register(f)
	return c
}

// awaitNewModel returns the models of a newly published version (its own
// first, then those it is attacked together with) that read the default
// captcha style, checking every interval, or nil when ctx ends (at once
// when interval is 0). A version that does not load or is not
// authenticated with the gateway's secret is reported once and skipped.
func awaitNewModel(ctx context.Context, w io.Writer, reg *modelregistry.Registry, have string, interval time.Duration) []*solver.Model {
	if interval <= 0 {
		<-ctx.Done()
		return nil
	}
	style := captcha.DefaultStyle()
	_ = style.Validate()
	refused := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		cur, err := reg.Current(ctx)
		if cur == nil || cur.Version == have || cur.Version == refused {
			continue
		}
		var ms []*solver.Model
		if err == nil {
			ms, err = reg.Models(ctx, cur)
		}
		for _, m := range ms {
			if err == nil {
				err = m.Reads(style.Height, style.Width, style.Charset)
			}
		}
		if err != nil {
			fmt.Fprintf(w, "\npublished model version %s refused, keeping %s: %v\n", cur.Version, have, err)
			refused = cur.Version
			continue
		}
		fmt.Fprintf(w, "\nswitching to the published model version %s\n", cur.Version)
		return ms
	}
}
