package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/perturb"
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
	// defaults of perturb.DefaultConfig; a field set to 0 is 0 (smooth,
	// shift and min_ssim 0 are off), and eot [] is off.
	Attack *perturb.Overrides `json:"attack,omitempty"`
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

// AttackConfig is the attack configured: perturb.DefaultConfig with Attack
// applied. The pool key hashes it (with the attack's own defaults), and so
// does `caddy advcaptcha pool` for the same settings given as flags.
func (a *Adversarial) AttackConfig() perturb.Config { return perturb.DefaultConfig().Apply(a.Attack) }

func (a *Adversarial) attack() perturb.Config { return a.AttackConfig() }

// intSetting and floatSetting parse an attack setting of the adversarial
// block into a field that is then set, 0 included.
func intSetting(d *caddyfile.Dispenser, dst **int) error {
	*dst = new(int)
	return intArg(d, *dst)
}

func floatSetting(d *caddyfile.Dispenser, dst **float64) error {
	*dst = new(float64)
	return floatArg(d, *dst)
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
		e, dropped, err := p.svc.Pop(ctx)
		h.metrics.countDropped(dropped)
		switch {
		case err == nil:
			h.metrics.served("pool")
			return e, nil
		case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, captchapool.ErrCorrupt):
			return nil, err
		case h.Adversarial.Fallback == "sync":
			e, err := p.svc.Current().Generator.Generate(captchapool.NewSeed())
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
