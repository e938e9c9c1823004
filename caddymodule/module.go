// Package caddymodule is the advcaptcha Caddy HTTP handler: it scores every
// request from its environment and frequency, lets ordinary visitors
// through, challenges suspicious ones and blocks confirmed attackers.
package caddymodule

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/clearance"
	"github.com/advcaptcha/advcaptcha/crawler"
	"github.com/advcaptcha/advcaptcha/internal/cache"
	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/solver"
)

func init() {
	caddy.RegisterModule(Handler{})
}

func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.advcaptcha",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	riskscore.Warm()
	repl := caddy.NewReplacer()
	// An adversarial block that a build without a built-in model cannot
	// serve is an error; the implicit default only warns.
	adversarialConfigured := h.Adversarial != nil && !h.Adversarial.Off
	h.applyDefaults()
	if err := h.compile(); err != nil {
		return err
	}
	// Everything that can be checked without the network is checked
	// before anything is opened or started: an invalid configuration
	// never connects to Redis or starts generation workers.
	if err := h.Validate(); err != nil {
		return err
	}

	var err error
	var secrets [][]byte
	for i, s := range h.Secrets {
		v := repl.ReplaceKnown(s, "")
		if v == "" {
			return fmt.Errorf("secrets: secret %d is empty after replacing placeholders (is its environment variable set?)", i+1)
		}
		secrets = append(secrets, []byte(v))
	}
	if len(secrets) == 0 {
		secrets = [][]byte{processSecret()}
		if h.Redis != nil {
			h.logger.Warn("no secret configured: cookies are signed with a per-process key, so instances sharing this Redis will not accept each other's clearances; set `secret`")
		}
	}
	if h.keys, err = clearance.NewKeys(secrets...); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}

	if h.AdminToken != "" {
		tok := repl.ReplaceKnown(h.AdminToken, "")
		if len(tok) < 32 {
			return fmt.Errorf("admin_token: %d bytes after replacing placeholders; at least 32 are needed (is its environment variable set?)", len(tok))
		}
		sum := sha256.Sum256([]byte(tok))
		h.adminToken = sum[:]
	}
	if err := h.Admin.validate(h.adminToken != nil); err != nil {
		return fmt.Errorf("admin: %w", err)
	}

	// MatchPath.Provision rewrites its patterns in place: it gets its own
	// copy, so neither the config nor defaultExempt (shared by every
	// handler) is written while requests read them.
	h.exempt = caddyhttp.MatchPath(slices.Clone(h.Exempt))
	if err := h.exempt.Provision(ctx); err != nil {
		return fmt.Errorf("exempt: %w", err)
	}
	if h.allow, err = parsePrefixes(h.Allow); err != nil {
		return fmt.Errorf("allow: %w", err)
	}
	if h.deny, err = parsePrefixes(h.Deny); err != nil {
		return fmt.Errorf("deny: %w", err)
	}
	if h.Crawlers == "verify" {
		var ranges *crawler.Ranges // nil: the built-in snapshot
		if h.CrawlerRanges != "" {
			if ranges, err = crawler.LoadRanges(h.CrawlerRanges); err != nil {
				return fmt.Errorf("crawler_ranges: %w", err)
			}
		}
		h.crawlers = crawler.New(crawler.Options{Ranges: ranges})
	}
	h.failClosed = h.OnStoreError == "closed"

	var redisCfg *RedisConfig
	if h.Redis != nil {
		c := *h.Redis
		c.Addresses = nil
		for _, a := range h.Redis.Addresses {
			c.Addresses = append(c.Addresses, repl.ReplaceKnown(a, ""))
		}
		c.Username = repl.ReplaceKnown(c.Username, "")
		c.Password = repl.ReplaceKnown(c.Password, "")
		c.SentinelPassword = repl.ReplaceKnown(c.SentinelPassword, "")
		redisCfg = &c
	}
	if h.storeKey, h.store, err = openStore(redisCfg, h.MaxEntities, h.windows); err != nil {
		return err
	}
	h.metrics = newMetrics(ctx.GetMetricsRegistry())
	// Events go to the events app when one is configured (it is, once
	// anything subscribes); without one nobody could hear them.
	if ev, err := ctx.AppIfConfigured("events"); err == nil {
		h.events, h.eventsCtx = ev.(*caddyevents.App), ctx
	} else if !errors.Is(err, caddy.ErrNotConfigured) {
		return fmt.Errorf("the events app: %w", err)
	}
	h.health = &storeHealth{logger: h.logger, errors: h.metrics.storeErrs}
	h.style = captcha.DefaultStyle()
	if err := h.style.Validate(); err != nil {
		return fmt.Errorf("captcha style: %w", err)
	}
	if h.solver, err = loadSolver(h.SolverModel, h.style); err != nil {
		return fmt.Errorf("solver_model: %w", err)
	}
	var ensemble []*solver.Model
	for _, path := range h.Adversarial.Ensemble {
		m, err := loadSolver(path, h.style)
		if err != nil {
			return fmt.Errorf("adversarial: ensemble %s: %w", path, err)
		}
		ensemble = append(ensemble, m)
	}
	switch {
	case h.Adversarial.Off:
	case h.solver == nil && adversarialConfigured:
		return fmt.Errorf("adversarial: needs solver_model: %w", solver.ErrNoDefaultModel)
	case h.solver == nil:
		h.logger.Warn("serving plain captchas: this build has no built-in solver model and solver_model is not set")
	default:
		if h.poolKey, h.pool, err = h.openPool(h.solver, ensemble); err != nil {
			return fmt.Errorf("adversarial: %w", err)
		}
	}
	h.counter = newCounter(h)
	h.spread = cache.New[string, *networks](h.MaxEntities, spreadWindow)
	if h.adminToken != nil || h.Admin.Guard == "caddy_auth" {
		h.adminPath = h.Admin.Path
		if h.samplerKey, err = h.startSampler(); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	return nil
}

func (h *Handler) Cleanup() error {
	if h.counter != nil {
		h.counter.stop()
	}
	if h.samplerKey != "" {
		if _, err := samplers.Delete(h.samplerKey); err != nil {
			return err
		}
	}
	if h.poolKey != "" {
		if _, err := pools.Delete(h.poolKey); err != nil {
			return err
		}
	}
	if h.storeKey != "" {
		_, err := stores.Delete(h.storeKey)
		return err
	}
	return nil
}

// ServeHTTP scores the request and allows, challenges or blocks it.
//
// The order matters for safety: headers only the gateway may set are
// removed before anything else; the operators' area and advcaptcha's own
// routes are answered here and never passed on, whatever the allow list
// says; only then are exemptions and lists consulted.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	stripDecisionHeaders(r.Header)
	admin := h.adminPath != "" && strings.HasPrefix(r.URL.Path, h.adminPath)
	own := !admin && strings.HasPrefix(r.URL.Path, routePrefix)
	if !admin && !own && h.isExempt(r) {
		return next.ServeHTTP(w, r)
	}
	v := visit{h: h, r: r, now: time.Now()}
	v.identify()
	if admin {
		return v.serveAdmin(w, strings.TrimPrefix(r.URL.Path, h.adminPath))
	}
	if containsAddr(h.deny, v.addr) {
		v.assessment.Add(&denyWeights, riskscore.Labelled, 1, "deny list")
		return v.respond(w, next, riskscore.Block)
	}
	if own {
		if v.device == "" {
			v.newDevice(w)
		}
		// Our own routes are counted and limited like any request: a
		// client that asks for captchas a thousand times is a client
		// making a thousand requests. A label alone does not close them:
		// a labelled attacker's answers are what the learning loop
		// learns from (and a right one still does not let it through).
		a := &v.assessment
		if d, err := v.score(); err == nil && d == riskscore.Block && (!a.Has(riskscore.Labelled) || a.Has(riskscore.FrequencyStrict)) {
			return v.respond(w, next, d)
		}
		return v.serveOwnRoute(w)
	}
	if containsAddr(h.allow, v.addr) {
		return v.respond(w, next, riskscore.Allow)
	}
	if v.device == "" {
		v.newDevice(w)
	}
	if v.checkClearance() {
		ents := v.entities()
		if !h.counter.revoked(ents) && !h.clearanceSpread(v.device, v.ipID) {
			h.counter.add(ents)
			return v.respond(w, next, riskscore.Allow)
		}
		v.isCleared = false
	}
	d, err := v.score()
	if err != nil && h.failClosed {
		v.record(riskscore.Block)
		return writeUnavailable(w, r)
	}
	return v.respond(w, next, d)
}

// decisionHeaderPrefix starts the headers the gateway passes upstream
// (upstream_headers). A client's own copies are removed from every

// checks that it reads the captchas of style. It returns nil, nil for an
// empty path in a build without a built-in model.
func loadSolver(path string, style captcha.Style) (*solver.Model, error) {
	var m *solver.Model
	var err error
	if path == "" {
		if m, err = solver.Default(); errors.Is(err, solver.ErrNoDefaultModel) {
			return nil, nil
		}
	} else {
		m, err = solver.Load(path)
	}
	if err != nil {
		return nil, err
	}
	if err := m.Reads(style.Height, style.Width, style.Charset); err != nil {
		return nil, fmt.Errorf("model %s does not fit the captcha style: %w", m.Version(), err)
	}
	return m, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
