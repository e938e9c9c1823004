package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/solver"
)

// pools holds the generation services, one per store, attack, starting
// model and worker settings, so several handlers (sites) with the same
// settings do not multiply the CPU spent, and a config reload that keeps
// them does not restart them.
var pools = caddy.NewUsagePool()

// adversarialPool is the gateway's end of a generation service
// (captchapool.Service, which fills the pool and follows published model
// versions): it is the service's Observer, counting its work in the
// metrics, logging it and emitting its events.
type adversarialPool struct {
	cfg      Adversarial
	svc      *captchapool.Service
	storeKey string
	logger   *zap.Logger
	// report is where the service's work is counted and its events
	// emitted: those of the handler provisioned last.
	report atomic.Pointer[poolReport]
	// full is the generation whose pool was last seen full: that is
	// logged once per generation.
	full atomic.Pointer[captchapool.Generation]
	// lastEmptyLog is when (Unix ns) noteEmpty last logged.
	lastEmptyLog atomic.Int64
}

// poolReport is a handler's metrics and events app, for the pool it shares.
type poolReport struct {
	metrics   *metrics
	events    *caddyevents.App
	eventsCtx caddy.Context
}

func (r *poolReport) emit(name string, data map[string]any) {
	if r.events != nil {
		r.events.Emit(r.eventsCtx, name, data)
	}
}

// generation is what the pool serves from now, as the dashboard shows it.
type generation struct {
	gen   *captchapool.Generator
	model string // the version of the (followed) solver model
	key   string // the store queue of this version's captchas
}

func (p *adversarialPool) current() generation {
	g := p.svc.Current()
	return generation{gen: g.Generator, model: g.Model, key: g.Key}
}

// Destruct stops the service without waiting for it: a worker finishes
// the captcha it is computing (up to seconds) in the background, so a
// config reload is not held up; the pool's store reference is released
// when the last worker is done.
func (p *adversarialPool) Destruct() error {
	p.svc.Stop()
	go func() {
		p.svc.Wait()
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

// openPool starts (or joins) the generation service for this handler's
// settings, generating against model and the ensemble.
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
	report := &poolReport{metrics: h.metrics, events: h.events, eventsCtx: h.eventsCtx}
	// Handlers share a service only when everything about them is the
	// same: a reload that changes the attack, workers, the budget or the
	// secrets starts a new one.
	key := fmt.Sprintf("%s\x00%s\x00%d/%d/%g/%t/%v\x00%s/%d", h.storeKey, captchapool.PoolKey(h.style, attack, versions),
		a.PoolSize, a.Workers, a.CPUBudget, a.ExternalWorkers, time.Duration(a.FollowModels), keysFingerprint(secrets), len(secrets))
	v, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) {
		// The pool holds its own reference to the store, which outlives
		// the handler that started it when a reload hands it over.
		if _, _, err := stores.LoadOrNew(h.storeKey, nil); err != nil {
			return nil, err
		}
		p := &adversarialPool{cfg: *a, storeKey: h.storeKey, logger: h.logger.With(zap.String("attack", attack.String()))}
		p.report.Store(report)
		svc, err := captchapool.Start(context.Background(), captchapool.ServiceConfig{
			Store: h.store, Style: h.style, Attack: attack, Model: model, Ensemble: ensemble,
			PoolKeys: poolKeys, ModelKeys: modelKeys, Size: a.PoolSize, Workers: a.Workers,
			External: a.ExternalWorkers, CPUBudget: a.CPUBudget, Follow: time.Duration(a.FollowModels), Observer: p,
		})
		if err != nil {
			_, _ = stores.Delete(h.storeKey)
			return nil, err
		}
		p.svc = svc
		return p, nil
	})
	if err != nil {
		return "", nil, err
	}
	p := v.(*adversarialPool)
	p.report.Store(report)
	return key, p, nil
}

// Generating logs the model the pool generates against from now on.
func (p *adversarialPool) Generating(g *captchapool.Generation) {
	p.logger.Info("adversarial captcha pool generating", zap.String("model", g.Generator.ModelVersion()),
		zap.Int("workers", p.cfg.Workers), zap.Float64("cpu_budget", p.cfg.CPUBudget), zap.Bool("external_workers", p.cfg.ExternalWorkers))
}

// Generated counts a generation by outcome and its time, and the pool's
// depth; a failure is logged, and so is the pool's first filling.
func (p *adversarialPool) Generated(g *captchapool.Generation, took time.Duration, depth int, err error) {
	m := p.report.Load().metrics
	if err != nil {
		m.generation.WithLabelValues("error").Observe(took.Seconds())
		p.logger.Error("adversarial captcha generation", zap.String("model", g.Generator.ModelVersion()), zap.Error(err))
		return
	}
	m.generation.WithLabelValues("ok").Observe(took.Seconds())
	m.poolDepth.Set(float64(depth))
	if depth == p.cfg.PoolSize && p.full.Swap(g) != g {
		p.logger.Info("adversarial captcha pool full", zap.String("model", g.Generator.ModelVersion()), zap.Int("size", depth))
	}
}

// Followed counts a published version the pool now generates against
// (model_changes_total{outcome="loaded"}), sets its fidelity, and emits
// advcaptcha_model_loaded.
func (p *adversarialPool) Followed(v *modelregistry.Version) {
	r := p.report.Load()
	if v.Fidelity > 0 || v.CharFidelity > 0 {
		r.metrics.modelFidelity.WithLabelValues(v.Version, "answers").Set(v.Fidelity)
		r.metrics.modelFidelity.WithLabelValues(v.Version, "characters").Set(v.CharFidelity)
	}
	r.metrics.modelChanges.WithLabelValues("loaded").Inc()
	r.emit("advcaptcha_model_loaded", map[string]any{"version": v.Version, "fidelity": v.Fidelity})
}

// Refused reports a published version the pool will not follow: counted
// (model_changes_total by reason), logged as an error and emitted.
func (p *adversarialPool) Refused(version, reason string, err error) {
	r := p.report.Load()
	r.metrics.modelChanges.WithLabelValues(reason).Inc()
	msg := "published model version refused; keeping the current one"
	if reason == "unauthenticated" {
		msg = "published model version refused: not authenticated with the gateway's secret (forged, or published with another secret); keeping the current one"
	}
	p.logger.Error(msg, zap.String("version", version), zap.Error(err))
	r.emit("advcaptcha_model_refused", map[string]any{"version": version, "error": err.Error(), "reason": reason})
}

// RegistryError logs a registry that could not be read.
func (p *adversarialPool) RegistryError(err error) {
	p.logger.Warn("reading the model registry", zap.Error(err))
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
