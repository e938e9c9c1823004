package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
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
	// Fallback is what is served when the pool is empty (every instance
	// took its captchas faster than the workers made them, or the workers
	// are down). Each use is counted in advcaptcha_captchas_served_total
	// by source, and the share of clean captchas in
	// advcaptcha_captchas_clean_share and on the dashboard.
	//
	//   - "wait" (the default): no captcha is served; the client is told to
	//     come back in a few seconds (status 503 with Retry-After; an HTML
	//     page that reloads by itself; JSON clients get
	//     {"decision":"challenge","retry_after":N}). A person waits a few
	//     seconds under a flood instead of getting a captcha any solver
	//     reads; an attacker who drains the pool gets nothing easier. With
	//     CleanQuota, a client may get a few clean captchas an hour instead
	//     of waiting, so that a person is not held up for long when
	//     generation is down.
	//   - "clean": a plain captcha at once. Cheap and never makes anyone
	//     wait, but whoever drains the pool (a few hundred requests) turns
	//     every further captcha into one the shipped solver model reads
	//     almost always: choose it only where availability matters more
	//     than resisting solvers.
	//   - "sync": an adversarial captcha computed on the request: about a
	//     second of CPU each on an idle machine, tens of seconds under a
	//     flood, which a flood of challenge requests turns against the
	//     server; choose it only with a challenge budget that bounds them.
	Fallback string `json:"fallback,omitempty"`
	// CleanQuota, with fallback wait, lets each device and each IP prefix
	// have up to this many clean captchas an hour while the pool is empty,
	// instead of waiting. Default 0: never a clean captcha.
	CleanQuota int `json:"clean_quota,omitempty"`
	// FollowModels is how often the store is checked for a newly published
	// solver model version (`caddy advcaptcha model publish`, or the
	// learning loop): the pool then generates against it, without a
	// restart. Default 30s; "off" (a negative value) keeps the configured
	// model.
	FollowModels caddy.Duration `json:"follow_models,omitempty"`
	// Ensemble lists further substitute model files attacked together with
	// the solver model: each step follows the mean of their gradients
	// (each L1-normalised), so a perturbation must fool several
	// architectures at once, which is what makes it transfer to solvers
	// never seen. Each costs one more gradient per step. The learning loop
	// replaces the solver model only; these stay.
	Ensemble []string `json:"ensemble,omitempty"`
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
		a.Fallback = "wait"
	}
	if a.FollowModels == 0 {
		a.FollowModels = caddy.Duration(30 * time.Second)
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
	case a.Fallback != "wait" && a.Fallback != "clean" && a.Fallback != "sync":
		return fmt.Errorf("fallback %q: want wait, clean or sync", a.Fallback)
	case a.CleanQuota < 0 || a.CleanQuota > 1000:
		return fmt.Errorf("clean_quota %d: want 0 to 1000", a.CleanQuota)
	case a.CleanQuota > 0 && a.Fallback != "wait":
		return fmt.Errorf("clean_quota %d: only with fallback wait (fallback %s serves every client)", a.CleanQuota, a.Fallback)
	case a.FollowModels > 0 && time.Duration(a.FollowModels) < 100*time.Millisecond:
		return fmt.Errorf("follow_models %v: check at most every 100ms", time.Duration(a.FollowModels))
	}
	return nil
}

// pools holds the generation workers, one set per store, attack, starting
// model and worker settings, so several handlers (sites) with the same
// settings do not multiply the CPU spent, and a config reload that keeps
// them does not restart them.
var pools = caddy.NewUsagePool()

// adversarialPool is a running pool. It generates against one model
// version at a time; when a new version is published in the store it
// switches to it (a new generation with its own pool key) without a
// restart.
type adversarialPool struct {
	cfg   Adversarial
	style captcha.Style
	// ensemble are the fixed further substitutes (Adversarial.Ensemble).
	ensemble []*solver.Solver
	store    store.Store
	storeKey string
	// poolKeys sign and verify pool entries, modelKeys published model
	// versions, both derived from the gateway's secret.
	poolKeys, modelKeys *secretkey.Keys
	cur                 atomic.Pointer[generation]
	// last is the handler provisioned last: its metrics count the pool's
	// work and it emits the pool's events.
	last   atomic.Pointer[Handler]
	ctx    context.Context
	stop   context.CancelFunc
	done   sync.WaitGroup // the watcher and every generation's workers
	logger *zap.Logger
	// lastEmptyLog is when (Unix ns) noteEmpty last logged.
	lastEmptyLog atomic.Int64
}

// generation is the pool's state for one model version.
type generation struct {
	gen   *captchapool.Generator
	model string // the version of the (followed) solver model
	key   string // the store queue of this version's captchas
	// prevKey is the queue of the version before, served from while this
	// one fills.
	prevKey string
	stop    context.CancelFunc
}

func (p *adversarialPool) current() *generation { return p.cur.Load() }

// Destruct stops the watcher and the workers without waiting for them: a
// worker finishes the captcha it is computing (up to seconds) in the
// background, so a config reload is not held up; the pool's store reference
// is released when the last worker is done.
func (p *adversarialPool) Destruct() error {
	p.stop()
	go func() {
		p.done.Wait()
		if _, err := stores.Delete(p.storeKey); err != nil {
			p.logger.Error("releasing the pool's store", zap.Error(err))
		}
	}()
	return nil
}

// secrets are the handler's configured secrets with their placeholders
// replaced, as Provision reads them (which has checked them); with none
// configured, the per-process secret, and configured false.
func (h *Handler) secrets() (secrets [][]byte, configured bool) {
	repl := caddy.NewReplacer()
	for _, s := range h.Secrets {
		if v := repl.ReplaceKnown(s, ""); v != "" {
			secrets = append(secrets, []byte(v))
		}
	}
	if len(secrets) == 0 {
		return [][]byte{processSecret()}, false
	}
	return secrets, true
}

// openPool starts (or joins) the pool for this handler's settings.
func (h *Handler) openPool(model *solver.Model, ensemble []*solver.Model) (string, *adversarialPool, error) {
	a := h.Adversarial
	attack := a.attack()
	versions := model.Version()
	for _, m := range ensemble {
		versions += "+" + m.Version()
	}
	secrets, configured := h.secrets()
	if a.ExternalWorkers && !configured {
		return "", nil, errors.New("external_workers needs `secret`: pool entries are signed with a key derived from the gateway's secret, " +
			"and without one this instance has a per-process key that `caddy advcaptcha pool` cannot have, so every captcha it made would be dropped as forged; " +
			"set `secret` and give the workers the same (--secret or ADVCAPTCHA_SECRET)")
	}
	if !configured && h.Redis != nil && a.FollowModels > 0 {
		h.logger.Warn("no secret configured: model versions published in Redis cannot be authenticated and will be refused; set `secret` and give the publishers the same (--secret or ADVCAPTCHA_SECRET)")
	}
	poolKeys, err := captchapool.Keys(secrets...)
	if err != nil {
		return "", nil, fmt.Errorf("secrets: %w", err)
	}
	modelKeys, err := modelregistry.Keys(secrets...)
	if err != nil {
		return "", nil, fmt.Errorf("secrets: %w", err)
	}
	// Handlers share workers only when everything about them is the same:
	// a reload that changes workers, the budget or the secrets starts new
	// ones.
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%d/%d/%g/%t/%v\x00%s/%d", h.storeKey, attack.String(), versions,
		a.PoolSize, a.Workers, a.CPUBudget, a.ExternalWorkers, time.Duration(a.FollowModels), keysFingerprint(secrets), len(secrets))
	v, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) {
		// The pool holds its own reference to the store, which outlives
		// the handler that started it when a reload hands it over.
		if _, _, err := stores.LoadOrNew(h.storeKey, nil); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		p := &adversarialPool{cfg: *a, style: h.style, store: h.store, storeKey: h.storeKey, ctx: ctx, stop: cancel,
			poolKeys: poolKeys, modelKeys: modelKeys, logger: h.logger.With(zap.String("attack", attack.String()))}
		p.last.Store(h)
		err := p.startEnsemble(ensemble)
		if err == nil {
			err = p.switchTo(model, nil)
		}
		if err != nil {
			cancel()
			_, _ = stores.Delete(h.storeKey)
			return nil, err
		}
		if a.FollowModels > 0 {
			p.done.Add(1)
			go func() { defer p.done.Done(); p.follow(time.Duration(a.FollowModels)) }()
		}
		return p, nil
	})
	if err != nil {
		return "", nil, err
	}
	p := v.(*adversarialPool)
	p.last.Store(h)
	return key, p, nil
}

// startEnsemble builds the fixed further substitutes every generation
// attacks together with its model.
func (p *adversarialPool) startEnsemble(models []*solver.Model) error {
	sols, err := solver.NewEach(models, solver.Options{Workers: p.cfg.Workers})
	if err != nil {
		return fmt.Errorf("ensemble: %w", err)
	}
	p.ensemble = sols
	return nil
}

// switchTo makes the pool generate against model, together with the
// published version's companions (with) and the configured ensemble: it
// starts workers on the model's own queue and then stops the previous
// version's.
func (p *adversarialPool) switchTo(model *solver.Model, with []*solver.Model) error {
	solvers, err := solver.NewEach(append([]*solver.Model{model}, with...), solver.Options{Workers: p.cfg.Workers})
	if err != nil {
		return err
	}
	gen := &captchapool.Generator{Style: p.style, Solvers: append(solvers, p.ensemble...), Attack: p.cfg.attack()}
	ctx, cancel := context.WithCancel(p.ctx)
	g := &generation{gen: gen, model: model.Version(), key: gen.Key(), stop: cancel}
	if old := p.current(); old != nil {
		g.prevKey = old.key
	}
	logger := p.logger.With(zap.String("model", gen.ModelVersion()))
	if !p.cfg.ExternalWorkers {
		var logOnce sync.Once
		size := p.cfg.PoolSize
		f := &captchapool.Filler{
			Store: p.store, Key: g.key, Keys: p.poolKeys, Size: size, TTL: 24 * time.Hour,
			Workers: p.cfg.Workers, CPUBudget: p.cfg.CPUBudget, Generate: gen.GenerateContext,
			Observe: func(took time.Duration, depth int, err error) {
				m := p.last.Load().metrics
				if err != nil {
					m.generation.WithLabelValues("error").Observe(took.Seconds())
					logger.Error("adversarial captcha generation", zap.Error(err))
					return
				}
				m.generation.WithLabelValues("ok").Observe(took.Seconds())
				m.poolDepth.Set(float64(depth))
				if depth == size {
					logOnce.Do(func() { logger.Info("adversarial captcha pool full", zap.Int("size", depth)) })
				}
			},
		}
		p.done.Add(1)
		go func() { defer p.done.Done(); f.Run(ctx) }()
	}
	old := p.cur.Swap(g)
	if old != nil {
		old.stop()
	}
	logger.Info("adversarial captcha pool generating", zap.Int("workers", p.cfg.Workers),
		zap.Float64("cpu_budget", p.cfg.CPUBudget), zap.Bool("external_workers", p.cfg.ExternalWorkers))
	return nil
}

// follow checks the model registry every interval and switches to a newly
// published version. A version that cannot be loaded (corrupt, expired, or
// for another captcha style) or that is not authenticated with the
// gateway's secret (forged) is refused once, loudly, and the pool keeps
// the model it has.
func (p *adversarialPool) follow(interval time.Duration) {
	reg := modelregistry.New(p.store, p.modelKeys)
	refused := ""
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cur, err := reg.Current(p.ctx)
		switch {
		case errors.Is(err, modelregistry.ErrNone), p.ctx.Err() != nil:
		case errors.Is(err, modelregistry.ErrUnauthenticated) && cur != nil:
			if cur.Version != refused && cur.Version != p.current().model {
				refused = cur.Version
				p.refuse(cur.Version, "unauthenticated", err)
			}
		case err != nil:
			p.logger.Warn("reading the model registry", zap.Error(err))
		case cur.Version == p.current().model, cur.Version == refused:
		default:
			err := p.load(reg, cur)
			m := p.last.Load().metrics
			if err == nil && (cur.Fidelity > 0 || cur.CharFidelity > 0) {
				m.modelFidelity.WithLabelValues(cur.Version, "answers").Set(cur.Fidelity)
				m.modelFidelity.WithLabelValues(cur.Version, "characters").Set(cur.CharFidelity)
			}
			if err != nil {
				refused = cur.Version
				outcome := "refused"
				if errors.Is(err, modelregistry.ErrUnauthenticated) {
					outcome = "unauthenticated"
				}
				p.refuse(cur.Version, outcome, err)
				break
			}
			refused = ""
			m.modelChanges.WithLabelValues("loaded").Inc()
			p.last.Load().emit("advcaptcha_model_loaded", map[string]any{"version": cur.Version, "fidelity": cur.Fidelity})
		}
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refuse reports a published version the pool will not follow: counted
// (model_changes_total by outcome), logged as an error and emitted.
func (p *adversarialPool) refuse(version, outcome string, err error) {
	h := p.last.Load()
	h.metrics.modelChanges.WithLabelValues(outcome).Inc()
	msg := "published model version refused; keeping the current one"
	if outcome == "unauthenticated" {
		msg = "published model version refused: not authenticated with the gateway's secret (forged, or published with another secret); keeping the current one"
	}
	p.logger.Error(msg, zap.String("version", version), zap.Error(err))
	h.emit("advcaptcha_model_refused", map[string]any{"version": version, "error": err.Error(), "reason": outcome})
}

func (p *adversarialPool) load(reg *modelregistry.Registry, v *modelregistry.Version) error {
	ms, err := reg.Models(p.ctx, v)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := m.Reads(p.style.Height, p.style.Width, p.style.Charset); err != nil {
			return fmt.Errorf("version %s: %w", m.Version(), err)
		}
	}
	return p.switchTo(ms[0], ms[1:])
}

// errPoolEmpty is nextCaptcha's answer when the pool is empty and the
// fallback is wait (beyond the client's clean quota): the caller tells the
// client to come back shortly (serveWait) instead of serving a captcha.
var errPoolEmpty = errors.New("adversarial captcha pool empty")

// nextCaptcha returns the captcha to serve: from the pool, or by the
// fallback when it is empty (or adversarial captchas are off). A plain
// captcha has Method "none". With fallback wait it returns errPoolEmpty
// rather than a clean captcha (unless within the client's clean quota).
func (v *visit) nextCaptcha(ctx context.Context) (*captchapool.Entry, error) {
	h := v.h
	if p := h.pool; p != nil {
		g := p.current()
		e, dropped, err := captchapool.Pop(ctx, h.store, g.key, p.poolKeys)
		h.metrics.countDropped(dropped)
		if errors.Is(err, store.ErrNotFound) && g.prevKey != "" {
			// Just after a model change: the previous version's captchas
			// are still adversarial, serve them while the new pool fills.
			e, dropped, err = captchapool.Pop(ctx, h.store, g.prevKey, p.poolKeys)
			h.metrics.countDropped(dropped)
		}
		switch {
		case err == nil:
			h.metrics.served("pool")
			return e, nil
		case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, captchapool.ErrCorrupt):
			return nil, err
		case h.Adversarial.Fallback == "sync":
			e, err := g.gen.Generate(captchapool.NewSeed())
			if err != nil {
				return nil, err
			}
			h.metrics.served("sync")
			return e, nil
		case h.Adversarial.Fallback == "wait":
			ok, err := v.withinCleanQuota(ctx)
			if err != nil {
				return nil, err
			}
			if !ok {
				h.metrics.served("wait")
				p.noteEmpty()
				return nil, errPoolEmpty
			}
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
	h.metrics.served("clean")
	return &captchapool.Entry{Text: c.Text, Seed: seed, Method: "none", PNG: png}, nil
}

// withinCleanQuota counts a clean captcha against the client's device and
// IP prefix for the hour and says whether both are within clean_quota.
func (v *visit) withinCleanQuota(ctx context.Context) (bool, error) {
	q := int64(v.h.Adversarial.CleanQuota)
	if q <= 0 {
		return false, nil
	}
	// The device first: a person whose waiting page reloads itself spends
	// its own budget, not that of everyone behind its address.
	for _, k := range []string{"cleanq:dev:" + v.device, "cleanq:ip:" + v.ipID} {
		n, err := v.h.store.Incr(ctx, k, time.Hour)
		if err != nil {
			return false, err
		}
		if n > q {
			return false, nil
		}
	}
	return true, nil
}

// noteEmpty logs, at most once a minute per pool, that clients are being
// told to wait: the operator should add workers (or look at why they
// stopped).
func (p *adversarialPool) noteEmpty() {
	now := time.Now().UnixNano()
	last := p.lastEmptyLog.Load()
	if now-last < int64(time.Minute) || !p.lastEmptyLog.CompareAndSwap(last, now) {
		return
	}
	p.logger.Warn("adversarial captcha pool empty: clients are asked to retry (fallback wait); add workers or check that they run",
		zap.Int("pool_size", p.cfg.PoolSize), zap.Bool("external_workers", p.cfg.ExternalWorkers))
}

// keysFingerprint names the secrets (not secret) so that handlers with
// different secrets do not share a pool's workers and keys.
func keysFingerprint(secrets [][]byte) string {
	h := sha256.New()
	for _, s := range secrets {
		h.Write([]byte{byte(len(s) >> 8), byte(len(s))})
		h.Write(s)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
