package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// Adversarial configures the adversarial captchas: images perturbed against
// the solver model so that machine solvers misread them while people do not.
// They are computed ahead of time into a pool in the store (shared by every
// instance on one Redis) by generation workers, because one takes about a
// second of CPU.
type Adversarial struct {
	// Off serves plain captchas only.
	Off bool `json:"off,omitempty"`
	// Attack is how captchas are perturbed: method (fgsm, bim, mifgsm),
	// epsilon (the L∞ budget in 8-bit levels), iterations, eot (the attacker
	// filters averaged over), smooth, min_ssim… Fields left out take the
	// defaults of perturb.DefaultConfig.
	Attack *perturb.Config `json:"attack,omitempty"`
	// PoolSize is how many captchas the pool holds. Default 200.
	PoolSize int `json:"pool_size,omitempty"`
	// Workers is the number of generation workers this instance runs
	// (each uses up to one core while generating). Default 1. Set
	// external_workers instead when `caddy advcaptcha pool` processes fill
	// a shared Redis pool.
	Workers int `json:"workers,omitempty"`
	// ExternalWorkers runs no generation here: the pool is filled elsewhere.
	ExternalWorkers bool `json:"external_workers,omitempty"`
	// CPUBudget is the share of its time a worker spends generating, in
	// (0, 1]. Default 0.5, so a worker never takes more than half a core
	// from serving traffic.
	CPUBudget float64 `json:"cpu_budget,omitempty"`
	// Fallback is what is served when the pool is empty: "clean" (a plain
	// captcha, the default: cheap, but weaker) or "sync" (computed on the
	// request, about a second of CPU each — which a flood of challenge
	// requests can turn against the server). Each use is counted in
	// advcaptcha_captchas_served_total.
	Fallback string `json:"fallback,omitempty"`
}

func (a *Adversarial) provision() {
	if a.PoolSize == 0 {
		a.PoolSize = 200
	}
	if a.Workers == 0 {
		a.Workers = 1
	}
	if a.CPUBudget == 0 {
		a.CPUBudget = 0.5
	}
	if a.Fallback == "" {
		a.Fallback = "clean"
	}
}

func (a *Adversarial) attack() perturb.Config {
	if a.Attack == nil {
		return perturb.DefaultConfig()
	}
	return perturb.DefaultConfig().Merge(*a.Attack)
}

func (a *Adversarial) validate() error {
	if a.Off {
		return nil
	}
	cfg := a.attack()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("attack: %w", err)
	}
	switch {
	case a.PoolSize < 1 || a.PoolSize > 100000:
		return fmt.Errorf("pool_size %d: want 1 to 100000", a.PoolSize)
	case a.Workers < 1 || a.Workers > 64:
		return fmt.Errorf("workers %d: want 1 to 64", a.Workers)
	case a.CPUBudget <= 0 || a.CPUBudget > 1:
		return fmt.Errorf("cpu_budget %g: want more than 0, at most 1", a.CPUBudget)
	case a.Fallback != "clean" && a.Fallback != "sync":
		return fmt.Errorf("fallback %q: want clean or sync", a.Fallback)
	}
	return nil
}

// pools holds the generation workers, one set per store, pool key and worker
// settings, so several handlers (sites) with the same settings do not
// multiply the CPU spent, and a config reload that keeps them does not
// restart them.
var pools = caddy.NewUsagePool()

// adversarialPool is a running pool: its generator and filler.
type adversarialPool struct {
	gen      *captchapool.Generator
	key      string
	storeKey string
	metrics  atomic.Pointer[metrics] // of the handler provisioned last
	stop     context.CancelFunc
	done     chan struct{}
	logger   *zap.Logger
}

// Destruct stops the workers without waiting for them: a worker finishes
// the captcha it is computing (up to seconds) in the background, so a config
// reload is not held up; the pool's store reference is released when the
// last worker is done.
func (p *adversarialPool) Destruct() error {
	p.stop()
	go func() {
		<-p.done
		if _, err := stores.Delete(p.storeKey); err != nil {
			p.logger.Error("releasing the pool's store", zap.Error(err))
		}
	}()
	return nil
}

// openPool starts (or joins) the pool for this handler's settings.
func (h *Handler) openPool(model *solver.Model) (string, *adversarialPool, error) {
	a := h.Adversarial
	sol, err := solver.New(model, solver.Options{Workers: a.Workers})
	if err != nil {
		return "", nil, err
	}
	gen := &captchapool.Generator{Style: h.style, Solvers: []*solver.Solver{sol}, Attack: a.attack()}
	// Handlers share workers only when everything about them is the same:
	// a reload that changes workers or the budget starts new ones.
	key := fmt.Sprintf("%s\x00%s\x00%d/%d/%g/%t", h.storeKey, gen.Key(), a.PoolSize, a.Workers, a.CPUBudget, a.ExternalWorkers)
	v, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) {
		// The pool holds its own reference to the store, which outlives
		// the handler that started it when a reload hands it over.
		if _, _, err := stores.LoadOrNew(h.storeKey, nil); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		p := &adversarialPool{gen: gen, key: gen.Key(), storeKey: h.storeKey, stop: cancel, done: make(chan struct{}),
			logger: h.logger.With(zap.String("pool", gen.Key()))}
		p.metrics.Store(h.metrics)
		if a.ExternalWorkers {
			close(p.done)
			return p, nil
		}
		logger := p.logger
		var logOnce sync.Once
		f := &captchapool.Filler{
			Store: h.store, Key: p.key, Size: a.PoolSize, TTL: 24 * time.Hour,
			Workers: a.Workers, CPUBudget: a.CPUBudget, Generate: gen.Generate,
			Observe: func(took time.Duration, depth int, err error) {
				m := p.metrics.Load()
				if err != nil {
					m.generation.WithLabelValues("error").Observe(took.Seconds())
					logger.Error("adversarial captcha generation", zap.Error(err))
					return
				}
				m.generation.WithLabelValues("ok").Observe(took.Seconds())
				m.poolDepth.Set(float64(depth))
				if depth == a.PoolSize {
					logOnce.Do(func() { logger.Info("adversarial captcha pool full", zap.Int("size", depth)) })
				}
			},
		}
		go func() { defer close(p.done); f.Run(ctx) }()
		logger.Info("adversarial captcha pool started", zap.String("attack", gen.Attack.String()),
			zap.String("model", gen.ModelVersion()), zap.Int("workers", a.Workers), zap.Float64("cpu_budget", a.CPUBudget))
		return p, nil
	})
	if err != nil {
		return "", nil, err
	}
	p := v.(*adversarialPool)
	p.metrics.Store(h.metrics)
	return key, p, nil
}

// nextCaptcha returns the captcha to serve: from the pool, or by the
// fallback when it is empty (or adversarial captchas are off). A plain
// captcha has Method "none".
func (v *visit) nextCaptcha(ctx context.Context) (*captchapool.Entry, error) {
	h := v.h
	if p := h.pool; p != nil {
		e, dropped, err := captchapool.Pop(ctx, h.store, p.key)
		h.metrics.poolDropped.Add(float64(dropped))
		switch {
		case err == nil:
			h.metrics.poolServed.WithLabelValues("pool").Inc()
			return e, nil
		case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, captchapool.ErrCorrupt):
			return nil, err
		case h.Adversarial.Fallback == "sync":
			e, err := p.gen.Generate(captchapool.NewSeed())
			if err != nil {
				return nil, err
			}
			h.metrics.poolServed.WithLabelValues("sync").Inc()
			return e, nil
		}
	}
	seed := captchapool.NewSeed()
	c, err := h.style.Generate(seed)
	if err != nil {
		return nil, err
	}
	png, err := captcha.EncodePNG(c.Image)
	if err != nil {
		return nil, err
	}
	h.metrics.poolServed.WithLabelValues("clean").Inc()
	return &captchapool.Entry{Text: c.Text, Seed: seed, Method: "none", PNG: png}, nil
}
