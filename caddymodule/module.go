// Package caddymodule is the advcaptcha Caddy HTTP handler: it scores every
// request from its environment and frequency, lets ordinary visitors
// through, challenges suspicious ones and blocks confirmed attackers.
package caddymodule

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/clearance"
	"github.com/advcaptcha/advcaptcha/crawler"
	"github.com/advcaptcha/advcaptcha/internal/cache"
	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the advcaptcha bot-defense middleware. Put it in front of
// reverse_proxy (or any handler); with no options it keeps its state in
// memory and applies the defaults documented on each field.
//
// Scores run from 0 to 100: the sum of the points of every signal that
// fired (see weights), capped at 100.
type Handler struct {
	// Redis, when set, keeps all state in Redis so several Caddy instances
	// share it. Without it, state is kept in this process's memory.
	Redis *RedisConfig `json:"redis,omitempty"`

	// MaxEntities bounds how many clients (IPs, devices, accounts) the
	// in-memory store — or, with Redis, local_first's local counts —
	// tracks; the least recently seen are evicted first. Default 100000.
	MaxEntities int `json:"max_entities,omitempty"`

	// Secrets sign the device and clearance cookies. The first signs;
	// all verify, so a new secret can be put first and the old one removed
	// once cookies signed with it have expired. At least 32 bytes each;
	// placeholders such as {env.ADVCAPTCHA_SECRET} are replaced. Without
	// secrets a random key is made per process: fine for one instance,
	// wrong for several behind a load balancer.
	Secrets []string `json:"secrets,omitempty"`

	// ClearanceTTL is how long a passed challenge is honoured. Default 1h.
	ClearanceTTL caddy.Duration `json:"clearance_ttl,omitempty"`

	// Account is a placeholder whose value names the account a request
	// acts for. It must come from an authenticated source — a header your
	// authentication layer sets after checking a session, e.g.
	// "{http.request.header.X-Authenticated-User}" behind forward_auth —
	// never from anything a client can write freely: anyone can name
	// anyone's account. Requests are then also counted per account —
	// except those whose own headers already challenge them, so a refused
	// script does not spend the account's limits — and an account's label
	// challenges its requests (account_labelled), never blocks them alone.
	// Empty values are ignored.
	Account string `json:"account,omitempty"`

	// IPv4Prefix and IPv6Prefix group client addresses: an IPv6 client
	// usually controls a whole /64. Defaults 32 and 64.
	IPv4Prefix int `json:"ipv4_prefix,omitempty"`
	IPv6Prefix int `json:"ipv6_prefix,omitempty"`
	// IPv6AggregatePrefix is the IPv6 block that is also counted as a
	// whole, under limits.ipv6_block: a /48 holds 65,536 /64s, each with
	// its own budget otherwise. Default 48; at or above ipv6_prefix, off.
	IPv6AggregatePrefix int `json:"ipv6_aggregate_prefix,omitempty"`

	// Windows are the sliding windows requests are counted over, shortest
	// first. Default 1s, 1m, 1h. The strict limits apply to the first.
	Windows []caddy.Duration `json:"windows,omitempty"`

	// Limits are the soft and strict request-rate limits per entity kind.
	Limits *Limits `json:"limits,omitempty"`

	// LabelTTL is how long a confirmed-attacker label lasts. Default 1h.
	LabelTTL caddy.Duration `json:"label_ttl,omitempty"`

	// Weights override the points of named signals (0 turns one off).
	// Names: accept_encoding_missing, accept_language_missing,
	// accept_missing, client_hints_mismatch, client_hints_missing,
	// crawler_unverified, frequency_account, frequency_device,
	// frequency_ip, frequency_strict, labelled, no_device_cookie,
	// platform_mismatch, sec_fetch_missing, ua_automation, ua_incomplete,
	// ua_malformed, ua_missing, ua_unknown, audio_captcha,
	// account_labelled.
	Weights map[string]float64 `json:"weights,omitempty"`

	// ChallengeAt is the score from which a request is challenged.
	// Default 40.
	ChallengeAt float64 `json:"challenge_at,omitempty"`

	// BlockAt is the score from which a request is refused. Default 90;
	// 101 never blocks on score alone (labels still block).
	BlockAt float64 `json:"block_at,omitempty"`

	// CaptchaAt splits the challenge band (with challenge slide): a
	// request scoring from challenge_at up to captcha_at is shown the
	// slide, which alone may clear it; from captcha_at up it reads the
	// text captcha at once. Default halfway between challenge_at and
	// block_at. Set it to challenge_at to always show the captcha.
	CaptchaAt float64 `json:"captcha_at,omitempty"`

	// SlideClearanceTTL is how long a clearance earned by the slide alone
	// lasts. Default a quarter of clearance_ttl: a slide is weaker
	// evidence than a captcha.
	SlideClearanceTTL caddy.Duration `json:"slide_clearance_ttl,omitempty"`

	// SlidePasses bounds the slides that may clear clients without a
	// captcha within an hour; past them the client reads the captcha.
	SlidePasses *SlidePasses `json:"slide_passes,omitempty"`

	// CaptchaBudget bounds the captchas handed out per device and per IP
	// prefix; past it the client is asked to wait (429).
	CaptchaBudget *CaptchaBudget `json:"captcha_budget,omitempty"`

	// Exempt paths are never scored or challenged (Caddy path-matcher
	// syntax: a path without "*" matches that file only, "/dir/*" all
	// below it). A request path with ";" or a dot segment is never exempt.
	// Default: the exact files /robots.txt, /favicon.ico,
	// /.well-known/security.txt and the ACME HTTP challenge files
	// /.well-known/acme-challenge/*.
	Exempt []string `json:"exempt,omitempty"`

	// Allow lists CIDRs (or single IPs) that are never challenged.
	Allow []string `json:"allow,omitempty"`

	// Deny lists CIDRs (or single IPs) that are always refused.
	Deny []string `json:"deny,omitempty"`

	// Crawlers says what to do with clients claiming to be search-engine
	// crawlers (Googlebot, Bingbot, Applebot, DuckDuckBot, YandexBot,
	// Baiduspider): "verify" (default) checks the claim — the address
	// must be in the engine's published crawler ranges where it publishes
	// them, and its reverse DNS name, confirmed forward, must be one of
	// the engine's crawler hostnames (googleusercontent.com, every Google
	// Cloud VM, is not) — and scores impostors; "score" treats them like
	// anyone else. A verified crawler's headers are not held against it,
	// but it is still counted, rate-limited and bound by labels.
	Crawlers string `json:"crawlers,omitempty"`

	// CrawlerRanges is a file of the engines' published crawler IP
	// ranges, as written by `caddy advcaptcha crawlers refresh`. Default:
	// the snapshot built into this binary. Read at provision: reload after
	// refreshing it.
	CrawlerRanges string `json:"crawler_ranges,omitempty"`

	// OnStoreError decides what happens when the store cannot be reached:
	// "open" (default) scores from the request alone and lets through
	// what that allows; "closed" answers 503 to everyone without a valid
	// clearance cookie. Either way nothing panics, an error is logged
	// when the store goes and again when it comes back, and no restart
	// is needed.
	OnStoreError string `json:"on_store_error,omitempty"`

	// UpstreamHeaders adds X-Advcaptcha-Score, X-Advcaptcha-Decision and
	// X-Advcaptcha-Reasons to the request passed on (after removing any a
	// client sent).
	UpstreamHeaders bool `json:"upstream_headers,omitempty"`

	// Challenge is the first step of a challenge: "slide" (default) shows
	// the slide bar first and the text captcha only when the slide is not
	// clean enough; "captcha" shows the text captcha at once.
	Challenge string `json:"challenge,omitempty"`

	// Branding puts the site's name, logo and colour on the slide page.
	Branding *Branding `json:"branding,omitempty"`

	// ChallengeTTL is how long a captcha can be answered. Default 2m.
	ChallengeTTL caddy.Duration `json:"challenge_ttl,omitempty"`

	// MaxFailuresDevice and MaxFailuresIP are how many wrong captcha
	// answers a device or an IP may give in an hour before it is labelled
	// (and so blocked). Defaults 10 and 50.
	MaxFailuresDevice int `json:"max_failures_device,omitempty"`
	MaxFailuresIP     int `json:"max_failures_ip,omitempty"`
	// MaxFailuresAccount is the same for an account (see account), from
	// any device and IP. Default 20.
	//
	// Penalties escalate: each time an entity is labelled for wrong answers
	// within a week, its label lasts twice as long as the time before
	// (label_ttl, then 2×, 4×…, at most a week).
	MaxFailuresAccount int `json:"max_failures_account,omitempty"`

	// MaxAudioDevice is how many audio captchas a device may play in an
	// hour. Audio is the accessible alternative to the image, and easier
	// for machines. Default 5.
	MaxAudioDevice int `json:"max_audio_device,omitempty"`
	// MaxAudioIP is the same for an IP prefix, whatever its devices: a
	// script makes a new device per request. Default 5.
	MaxAudioIP int `json:"max_audio_ip,omitempty"`

	// SolverModel is the file of the solver model (the substitute CRNN)
	// that adversarial captchas are computed against, as written by
	// `caddy advcaptcha train`. Default: the model built into this binary.
	// It is loaded and checked at provision — a missing, truncated or
	// corrupt file, an unknown format version, or a model that does not
	// read this captcha style (image size, charset) fails the config load.
	SolverModel string `json:"solver_model,omitempty"`

	// Adversarial configures the adversarial captchas and their pool. On by
	// default.
	Adversarial *Adversarial `json:"adversarial,omitempty"`

	// AdminToken opens the operators' area under /.advcaptcha/admin/ (see
	// admin): the dashboard and the operator API (label review: confirm or
	// clear labels, read the label log); every API request must carry
	// "Authorization: Bearer <token>". At least 32 bytes; placeholders
	// such as {env.ADVCAPTCHA_ADMIN_TOKEN} are replaced. Without it (and
	// without admin.guard caddy_auth) the area does not exist.
	AdminToken string `json:"admin_token,omitempty"`

	// Admin moves the operators' area and chooses its guard.
	Admin *Admin `json:"admin,omitempty"`

	// DeviceCookie and ClearanceCookie name the cookies. Defaults
	// "advc_device" and "advc_clearance".
	DeviceCookie    string `json:"device_cookie,omitempty"`
	ClearanceCookie string `json:"clearance_cookie,omitempty"`

	logger     *zap.Logger
	storeKey   string
	store      store.Store
	keys       *clearance.Keys
	weights    riskscore.Weights
	thresholds riskscore.Thresholds
	windows    []time.Duration
	// firstCounts is the window counts of an entity seen once.
	firstCounts []float64
	freq        [numKinds]riskscore.Frequency
	exempt      caddyhttp.MatchPath
	allow       []netip.Prefix
	deny        []netip.Prefix
	crawlers    *crawler.Verifier
	failClosed  bool
	counter     *counter
	spread      *cache.Bounded[string, *networks]
	health      *storeHealth
	style       captcha.Style
	solver      *solver.Model
	pool        *adversarialPool // nil when adversarial captchas are off
	poolKey     string
	metrics     *metrics
	events      *caddyevents.App
	eventsCtx   caddy.Context
	adminToken  []byte // SHA-256 of the admin token; nil: none
	adminPath   string // where the operators' area is; "": it does not exist
	samplerKey  string
}

// Limits are request-rate limits per kind of entity. Each soft list has
// one limit per window (0: none); past a soft limit the entity's frequency
// signal grows, reaching full weight at twice the limit. Past a strict
// limit (over the first window) the entity is labelled a confirmed
// attacker for label_ttl.
type Limits struct {
	// IP soft limits per window. Default 50/1s, 600/1m, 6000/1h: an IP
	// can be a whole office behind NAT.
	IP []float64 `json:"ip,omitempty"`
	// Device soft limits per window. Default 30/1s, 400/1m, 4000/1h.
	Device []float64 `json:"device,omitempty"`
	// Account soft limits per window. Default 30/1s, 400/1m, 4000/1h.
	Account []float64 `json:"account,omitempty"`
	// StrictIP over the first window. Default 300.
	StrictIP float64 `json:"strict_ip,omitempty"`
	// StrictDevice over the first window. Default 100 (the paper's example).
	StrictDevice float64 `json:"strict_device,omitempty"`
	// StrictAccount over the first window. Default 100.
	StrictAccount float64 `json:"strict_account,omitempty"`
	// IPv6Block soft limits per window for a whole IPv6 block
	// (ipv6_aggregate_prefix), whatever /64s its requests come from.
	// Default 16 times the IP limits: one network's budget, not 65,536.
	IPv6Block []float64 `json:"ipv6_block,omitempty"`
	// StrictIPv6Block over the first window. Default 16 × strict_ip.
	StrictIPv6Block float64 `json:"strict_ipv6_block,omitempty"`
}

// SlidePasses are how many slides may clear clients without a captcha
// within an hour, per device, per IP prefix (a network's people share it)
// and per reported browser fingerprint.
type SlidePasses struct {
	// Device default 3.
	Device int `json:"device,omitempty"`
	// IP default 5.
	IP int `json:"ip,omitempty"`
	// Fingerprint default 5.
	Fingerprint int `json:"fingerprint,omitempty"`
}

// CaptchaBudget is how many captchas (first ones, refreshes and the new
// one after a wrong answer alike) a device and an IP prefix may be handed
// in a window.
type CaptchaBudget struct {
	// Device default 10.
	Device int `json:"device,omitempty"`
	// IP default 30.
	IP int `json:"ip,omitempty"`
	// Window default 10m.
	Window caddy.Duration `json:"window,omitempty"`
}

// Entity kinds, indexing per-kind configuration.
const (
	kindIP = iota
	kindDevice
	kindAccount
	kindNet // the IPv6 block an IPv6 prefix belongs to (ipv6_aggregate_prefix)
	numKinds
)

var (
	storeKinds  = [numKinds]store.Kind{store.KindIP, store.KindDevice, store.KindAccount, store.KindNet}
	freqSignals = [numKinds]riskscore.Signal{riskscore.FrequencyIP, riskscore.FrequencyDevice, riskscore.FrequencyAccount, riskscore.FrequencyIP}
)

// CaddyModule returns the Caddy module information.
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

	for _, w := range h.Windows {
		h.windows = append(h.windows, time.Duration(w))
		h.firstCounts = append(h.firstCounts, 1)
	}
	lim := h.Limits
	if len(lim.IP)+len(lim.Device)+len(lim.Account) == 0 {
		h.logger.Warn("custom windows without soft limits: only the strict limits apply")
	}
	for k, soft := range [numKinds][]float64{lim.IP, lim.Device, lim.Account, lim.IPv6Block} {
		h.freq[k] = riskscore.Frequency{Windows: h.windows, Soft: soft, Strict: [numKinds]float64{lim.StrictIP, lim.StrictDevice, lim.StrictAccount, lim.StrictIPv6Block}[k],
			StrictChallenges: k == kindAccount} // anyone can name an account: its limits challenge, never block
	}

	var err error
	if h.weights, err = riskscore.DefaultWeights.WithOverrides(h.Weights); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	h.thresholds = riskscore.Thresholds{Challenge: h.ChallengeAt, Block: h.BlockAt}

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
	if err := h.Adversarial.validate(); err != nil {
		return fmt.Errorf("adversarial: %w", err)
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

func (h *Handler) applyDefaults() {
	if h.Admin == nil {
		h.Admin = &Admin{}
	}
	h.Admin.provision()
	if h.ClearanceTTL == 0 {
		h.ClearanceTTL = caddy.Duration(time.Hour)
	}
	if h.IPv4Prefix == 0 {
		h.IPv4Prefix = 32
	}
	if h.IPv6Prefix == 0 {
		h.IPv6Prefix = 64
	}
	customWindows := len(h.Windows) > 0
	if !customWindows {
		h.Windows = []caddy.Duration{caddy.Duration(time.Second), caddy.Duration(time.Minute), caddy.Duration(time.Hour)}
	}
	if h.Limits == nil {
		h.Limits = &Limits{}
	}
	if !customWindows {
		if h.Limits.IP == nil {
			h.Limits.IP = []float64{50, 600, 6000}
		}
		if h.Limits.Device == nil {
			h.Limits.Device = []float64{30, 400, 4000}
		}
		if h.Limits.Account == nil {
			h.Limits.Account = []float64{30, 400, 4000}
		}
	}
	if h.Limits.StrictIP == 0 {
		h.Limits.StrictIP = 300
	}
	if h.Limits.StrictDevice == 0 {
		h.Limits.StrictDevice = 100
	}
	if h.Limits.StrictAccount == 0 {
		h.Limits.StrictAccount = 100
	}
	if h.Limits.IPv6Block == nil && len(h.Limits.IP) > 0 {
		for _, l := range h.Limits.IP {
			h.Limits.IPv6Block = append(h.Limits.IPv6Block, ipv6BlockFactor*l)
		}
	}
	if h.Limits.StrictIPv6Block == 0 {
		h.Limits.StrictIPv6Block = ipv6BlockFactor * h.Limits.StrictIP
	}
	if h.IPv6AggregatePrefix == 0 {
		h.IPv6AggregatePrefix = 48
	}
	if h.LabelTTL == 0 {
		h.LabelTTL = caddy.Duration(time.Hour)
	}
	if h.ChallengeAt == 0 {
		h.ChallengeAt = riskscore.DefaultThresholds.Challenge
	}
	if h.BlockAt == 0 {
		h.BlockAt = riskscore.DefaultThresholds.Block
	}
	if h.CaptchaAt == 0 {
		h.CaptchaAt = (h.ChallengeAt + h.BlockAt) / 2
	}
	if h.SlideClearanceTTL == 0 {
		h.SlideClearanceTTL = h.ClearanceTTL / 4
	}
	if h.SlidePasses == nil {
		h.SlidePasses = &SlidePasses{}
	}
	h.SlidePasses.Device = cmp.Or(h.SlidePasses.Device, 3)
	h.SlidePasses.IP = cmp.Or(h.SlidePasses.IP, 5)
	h.SlidePasses.Fingerprint = cmp.Or(h.SlidePasses.Fingerprint, 5)
	if h.CaptchaBudget == nil {
		h.CaptchaBudget = &CaptchaBudget{}
	}
	h.CaptchaBudget.Device = cmp.Or(h.CaptchaBudget.Device, 10)
	h.CaptchaBudget.IP = cmp.Or(h.CaptchaBudget.IP, 30)
	h.CaptchaBudget.Window = cmp.Or(h.CaptchaBudget.Window, caddy.Duration(10*time.Minute))
	if h.Exempt == nil {
		h.Exempt = slices.Clone(defaultExempt)
	}
	if h.Crawlers == "" {
		h.Crawlers = "verify"
	}
	if h.OnStoreError == "" {
		h.OnStoreError = "open"
	}
	if h.DeviceCookie == "" {
		h.DeviceCookie = "advc_device"
	}
	if h.ClearanceCookie == "" {
		h.ClearanceCookie = "advc_clearance"
	}
	if h.Redis != nil && h.Redis.KeyPrefix == "" {
		h.Redis.KeyPrefix = "advc:"
	}
	if h.Challenge == "" {
		h.Challenge = "slide"
	}
	if h.ChallengeTTL == 0 {
		h.ChallengeTTL = caddy.Duration(2 * time.Minute)
	}
	if h.MaxFailuresDevice == 0 {
		h.MaxFailuresDevice = 10
	}
	if h.MaxFailuresAccount == 0 {
		h.MaxFailuresAccount = 20
	}
	if h.MaxFailuresIP == 0 {
		h.MaxFailuresIP = 50
	}
	if h.MaxAudioDevice == 0 {
		h.MaxAudioDevice = 5
	}
	if h.MaxAudioIP == 0 {
		h.MaxAudioIP = 5
	}
	if h.Adversarial == nil {
		h.Adversarial = &Adversarial{}
	}
	h.Adversarial.provision()
}

// Validate checks the configuration. Each error names the field at fault.
func (h *Handler) Validate() error {
	if err := h.thresholds.Validate(); err != nil {
		return fmt.Errorf("challenge_at/block_at: %w", err)
	}
	if h.IPv4Prefix < 8 || h.IPv4Prefix > 32 {
		return fmt.Errorf("ipv4_prefix: %d is outside 8–32", h.IPv4Prefix)
	}
	if h.IPv6Prefix < 16 || h.IPv6Prefix > 128 {
		return fmt.Errorf("ipv6_prefix: %d is outside 16–128", h.IPv6Prefix)
	}
	if h.IPv6AggregatePrefix < 16 || h.IPv6AggregatePrefix > 128 {
		return fmt.Errorf("ipv6_aggregate_prefix: %d is outside 16–128", h.IPv6AggregatePrefix)
	}
	for i, w := range h.windows {
		if w < time.Millisecond || (i > 0 && w <= h.windows[i-1]) {
			return fmt.Errorf("windows: %v: windows must be at least 1ms and increasing", w)
		}
	}
	for k, name := range [numKinds]string{"limits.ip", "limits.device", "limits.account", "limits.ipv6_block"} {
		if err := h.freq[k].Validate(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if time.Duration(h.ClearanceTTL) < time.Second {
		return fmt.Errorf("clearance_ttl: %v is shorter than 1s", time.Duration(h.ClearanceTTL))
	}
	if d := time.Duration(h.SlideClearanceTTL); d < time.Second || d > time.Duration(h.ClearanceTTL) {
		return fmt.Errorf("slide_clearance_ttl: %v is outside 1s–clearance_ttl (%v)", d, time.Duration(h.ClearanceTTL))
	}
	if h.CaptchaAt < h.ChallengeAt || h.CaptchaAt > h.BlockAt {
		return fmt.Errorf("captcha_at: %g is outside challenge_at (%g) – block_at (%g)", h.CaptchaAt, h.ChallengeAt, h.BlockAt)
	}
	if p := h.SlidePasses; p.Device < 1 || p.IP < 1 || p.Fingerprint < 1 {
		return fmt.Errorf("slide_passes: limits must be at least 1 (device %d, ip %d, fingerprint %d)", p.Device, p.IP, p.Fingerprint)
	}
	if b := h.CaptchaBudget; b.Device < 1 || b.IP < 1 || time.Duration(b.Window) < time.Second {
		return fmt.Errorf("captcha_budget: device %d and ip %d must be at least 1, window %v at least 1s", b.Device, b.IP, time.Duration(b.Window))
	}
	if d := time.Duration(h.ChallengeTTL); d < 10*time.Second || d > time.Hour {
		return fmt.Errorf("challenge_ttl: %v is outside 10s–1h", d)
	}
	if h.MaxAudioDevice < 1 || h.MaxAudioIP < 1 {
		return fmt.Errorf("max_audio/max_audio_ip: limits must be at least 1 (device %d, ip %d)", h.MaxAudioDevice, h.MaxAudioIP)
	}
	if h.MaxFailuresDevice < 1 || h.MaxFailuresIP < 1 || h.MaxFailuresAccount < 1 {
		return fmt.Errorf("max_failures: limits must be at least 1 (device %d, ip %d, account %d)", h.MaxFailuresDevice, h.MaxFailuresIP, h.MaxFailuresAccount)
	}
	if time.Duration(h.LabelTTL) < time.Second {
		return fmt.Errorf("label_ttl: %v is shorter than 1s", time.Duration(h.LabelTTL))
	}
	switch h.OnStoreError {
	case "open", "closed":
	default:
		return fmt.Errorf(`on_store_error: %q is neither "open" nor "closed"`, h.OnStoreError)
	}
	switch h.Challenge {
	case "captcha", "slide":
	default:
		return fmt.Errorf(`challenge: %q is neither "captcha" nor "slide"`, h.Challenge)
	}
	if b := h.Branding; b != nil {
		if b.Color == "" {
			b.Color = defaultBranding.Color
		}
		if !cssColor.MatchString(b.Color) {
			return fmt.Errorf("branding.color: %q is not a #rgb or #rrggbb colour", b.Color)
		}
		if u, err := url.Parse(b.Logo); b.Logo != "" && (err != nil || (u.Scheme != "https" && !(u.Scheme == "" && strings.HasPrefix(b.Logo, "/")))) {
			return fmt.Errorf("branding.logo: %q must be an https URL or a path on this site", b.Logo)
		}
	}
	switch h.Crawlers {
	case "verify", "score":
	default:
		return fmt.Errorf(`crawlers: %q is neither "verify" nor "score"`, h.Crawlers)
	}
	if h.Redis != nil && len(h.Redis.Addresses) == 0 {
		return errors.New("redis: no address")
	}
	for _, c := range []string{h.DeviceCookie, h.ClearanceCookie} {
		if !validCookieName(c) {
			return fmt.Errorf("device_cookie/clearance_cookie: %q is not a valid cookie name", c)
		}
	}
	return nil
}

// Cleanup releases the handler's reference to its store and flushes its
// pending counts.
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
// request, exempt paths included, so an application can trust them.
const decisionHeaderPrefix = "X-Advcaptcha-"

func stripDecisionHeaders(hdr http.Header) {
	for k := range hdr {
		if len(k) >= len(decisionHeaderPrefix) && strings.EqualFold(k[:len(decisionHeaderPrefix)], decisionHeaderPrefix) {
			delete(hdr, k)
		}
	}
}

// isExempt reports whether r is for an exempt path. A path holding a ";"
// or a dot segment (plain or percent-encoded) is never exempt: servers
// behind the gateway may read "/.well-known/..;/admin" as "/admin".
func (h *Handler) isExempt(r *http.Request) bool {
	if len(h.Exempt) == 0 || !h.exempt.Match(r) {
		return false
	}
	return !ambiguousPath(r.URL.EscapedPath())
}

// ambiguousPath reports whether an escaped path holds a ";" or a "." or
// ".." segment in any spelling a server might decode.
func ambiguousPath(p string) bool {
	p = strings.ToLower(p)
	return strings.ContainsAny(p, ";\\") || strings.Contains(p, "%3b") || strings.Contains(p, "%5c") || strings.Contains(p, "%2f") ||
		hasDotSegment(p)
}

// hasDotSegment reports whether a lower-cased escaped path holds a "." or
// ".." segment, "%2e" spellings included: browsers and servers resolve
// them, which can turn a harmless-looking path into another one.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg = strings.ReplaceAll(seg, "%2e", "."); seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// defaultExempt are files crawlers and certificate authorities must reach
// without a challenge; nothing else is exempt by default.
var defaultExempt = []string{"/robots.txt", "/favicon.ico", "/.well-known/security.txt", "/.well-known/acme-challenge/*"}

// ipv6BlockFactor scales the IP limits to an IPv6 block's by default.
const ipv6BlockFactor = 16

// denyWeights makes a deny-list hit a full-weight reason whatever the
// configured weights are.
var denyWeights = func() (w riskscore.Weights) {
	for i := range w {
		w[i] = 100
	}
	return w
}()

// visit is one request's passage through the handler.
type visit struct {
	h          *Handler
	r          *http.Request
	now        time.Time
	addr       netip.Addr
	ipID       string
	netID      string // the IPv6 block, "" for IPv4
	device     string
	account    string
	newDev     bool
	isCleared  bool
	assessment riskscore.Assessment
	reasonBuf  [8]riskscore.Reason
	entityBuf  [numKinds]store.Entity
	hitBuf     [numKinds]store.Hit
	kindBuf    [numKinds]int
	storeDown  bool
	scored     bool // the full assessment ran (not cleared, listed or exempt)
}

func (v *visit) identify() {
	v.assessment.Reasons = v.reasonBuf[:0]
	v.addr = clientAddr(v.r)
	v.ipID = prefixID(v.addr, v.h.IPv4Prefix, v.h.IPv6Prefix)
	if v.addr.Is6() && v.h.IPv6AggregatePrefix < v.h.IPv6Prefix {
		v.netID = prefixID(v.addr, 32, v.h.IPv6AggregatePrefix)
	}
	if c := cookieValue(v.r.Header, v.h.DeviceCookie); c != "" {
		if id, err := v.h.keys.VerifyDevice(c); err == nil {
			v.device = id
		}
	}
	if v.h.Account != "" {
		if repl, ok := v.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			v.account = strings.TrimSpace(repl.ReplaceKnown(v.h.Account, ""))
		}
	}
}

// newDevice gives a cookie-less client a device id and its cookie.
func (v *visit) newDevice(w http.ResponseWriter) {
	id, cookie, err := v.h.keys.NewDevice(rand.Reader)
	if err != nil {
		return
	}
	v.device, v.newDev = id, true
	http.SetCookie(w, &http.Cookie{
		Name: v.h.DeviceCookie, Value: cookie, Path: "/",
		MaxAge: 400 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: viaHTTPS(v.r),
	})
}

// checkClearance reports whether the request carries a valid clearance.
func (v *visit) checkClearance() bool {
	if v.newDev {
		return false
	}
	c := cookieValue(v.r.Header, v.h.ClearanceCookie)
	if c == "" {
		return false
	}
	v.isCleared = v.h.keys.VerifyClearance(c, v.device, v.r.UserAgent(), v.now) == nil
	return v.isCleared
}

// entities lists what this request is counted against.
func (v *visit) entities() []store.Entity {
	ents := append(v.entityBuf[:0], store.Entity{Kind: store.KindIP, ID: v.ipID}, store.Entity{Kind: store.KindDevice, ID: v.device})
	if v.account != "" {
		ents = append(ents, store.Entity{Kind: store.KindAccount, ID: v.account})
	}
	if v.netID != "" {
		ents = append(ents, store.Entity{Kind: store.KindNet, ID: v.netID})
	}
	return ents
}

// score runs the full assessment: headers, crawler claims, and one store
// round trip for frequencies and labels.
func (v *visit) score() (riskscore.Decision, error) {
	h, a := v.h, &v.assessment
	v.scored = true
	ua := riskscore.Environment(a, &h.weights, v.r.Header, secureContext(v.r))
	crawler := false
	if ua.Crawler != "" && h.crawlers != nil {
		if crawler = h.crawlers.Verify(v.r.Context(), ua.Crawler, v.addr); crawler {
			// A verified crawler is known, not trusted: its headers are
			// not a browser's and are not held against it, but it is
			// counted, rate-limited and bound by labels like anyone.
			a.Reasons, a.Score = a.Reasons[:0], 0
		} else {
			a.Add(&h.weights, riskscore.CrawlerUnverified, 1, ua.Crawler)
		}
	}
	if v.newDev && !crawler {
		a.Add(&h.weights, riskscore.NoDeviceCookie, 1, "")
	}
	ents := v.entities()
	// A device id minted on this request has no counts and no label in the
	// store, and is not written there either: its count starts with its
	// second request, the first to carry the cookie. A client that drops
	// its cookies — most bots — would otherwise leave one store record per
	// request that nothing ever reads; its requests still count against
	// its IP.
	// An account is counted only when the request's own headers do not
	// already challenge it: the account value comes from the request, and
	// a script refused for what it is must not spend the limits of the
	// account it names (its label would fall on the account's owner).
	hits, kinds := v.hitBuf[:0], v.kindBuf[:0]
	for _, e := range ents {
		i := kindIndex(e.Kind)
		if i == kindDevice && v.newDev {
			continue
		}
		n := int64(1)
		if i == kindAccount && a.Score >= h.ChallengeAt {
			n = 0
		}
		hits, kinds = append(hits, store.Hit{Entity: e, N: n}), append(kinds, i)
	}
	start := time.Now()
	tallies, err := h.store.Observe(v.r.Context(), v.now, hits)
	h.metrics.scoreTime.Observe(time.Since(start).Seconds())
	if err != nil {
		h.health.failed(err, h.OnStoreError)
		v.storeDown = true
		return h.thresholds.Decide(a), err
	}
	h.health.ok()
	if v.newDev {
		// This request is the device's only one so far.
		h.freq[kindDevice].Assess(a, &h.weights, freqSignals[kindDevice], h.firstCounts)
	}
	for j, t := range tallies {
		i := kinds[j]
		switch {
		case t.Label != nil && i == kindAccount:
			// An account label challenges, never blocks by itself: anyone
			// can name an account, and its owner must not be locked out.
			a.Add(&h.weights, riskscore.AccountLabelled, 1, t.Label.Reason)
		case t.Label != nil:
			a.Add(&h.weights, riskscore.Labelled, 1, string(storeKinds[i])+": "+t.Label.Reason)
		}
		if t.Audio > 0 && i == kindDevice {
			// Each audio play adds a third of the signal's weight.
			a.Add(&h.weights, riskscore.AudioCaptcha, float64(t.Audio)/3, strconv.FormatInt(t.Audio, 10)+" plays")
		}
		if hits[j].N == 0 {
			continue // read, not counted (an account, see above)
		}
		if h.freq[i].Assess(a, &h.weights, freqSignals[i], t.Counts) && t.Label == nil {
			h.label(v.r.Context(), hits[j].Entity, "strict rate limit: "+formatCount(t.Counts[0], h.windows[0]))
		}
	}
	return h.thresholds.Decide(a), nil
}

func formatCount(c float64, w time.Duration) string {
	return strconv.FormatFloat(c, 'f', 0, 64) + " in " + w.String()
}

// record publishes the decision: placeholders, access-log fields, and a
// log line for every request that is not allowed.
func (v *visit) record(d riskscore.Decision) (score, reasons string) {
	h, a := v.h, &v.assessment
	score = strconv.FormatFloat(a.Score, 'f', -1, 64)
	reasons = a.ReasonList()
	if v.isCleared && len(a.Reasons) == 0 {
		reasons = "cleared"
	}
	if repl, ok := v.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(func(key string) (any, bool) {
			switch key {
			case "http.advcaptcha.score":
				return score, true
			case "http.advcaptcha.decision":
				return d.String(), true
			case "http.advcaptcha.reasons":
				return reasons, true
			}
			return nil, false
		})
	}
	reason := "cleared"
	if !v.isCleared || len(a.Reasons) > 0 {
		reason = topReason(a)
		if v.scored {
			h.metrics.score.Observe(a.Score)
		}
	}
	h.metrics.decisions.WithLabelValues(d.String(), reason).Inc()
	if extra, ok := v.r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Add(zap.Object("advcaptcha", logFields{score: a.Score, decision: d, reasons: reasons}))
	}
	if d != riskscore.Allow {
		h.logger.Info("decision",
			zap.String("decision", d.String()),
			zap.Float64("score", a.Score),
			zap.String("reasons", reasonDetails(a)),
			zap.String("ip", v.ipID),
			zap.String("device", v.device),
			zap.Bool("store_down", v.storeDown))
	}
	return score, reasons
}

// cookieValue returns the value of the first cookie called name, or "".
// Unlike http.Request.Cookie it parses nothing else and allocates nothing,
// which matters on the hot path of every request.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			k, val, ok := strings.Cut(part, "=")
			if ok && k == name {
				val = strings.TrimSpace(val)
				if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
					val = val[1 : len(val)-1]
				}
				return val
			}
		}
	}
	return ""
}

// respond records the decision and carries it out.
func (v *visit) respond(w http.ResponseWriter, next caddyhttp.Handler, d riskscore.Decision) error {
	score, reasons := v.record(d)
	switch d {
	case riskscore.Allow:
		if v.h.UpstreamHeaders {
			v.r.Header.Set("X-Advcaptcha-Score", score)
			v.r.Header.Set("X-Advcaptcha-Decision", d.String())
			v.r.Header.Set("X-Advcaptcha-Reasons", reasons)
		}
		return next.ServeHTTP(w, v.r)
	case riskscore.Challenge:
		returnTo := "/"
		if v.r.Method == http.MethodGet || v.r.Method == http.MethodHead {
			returnTo = safeReturn(v.r.URL.RequestURI())
		}
		if v.h.Challenge == "slide" && v.assessment.Score < v.h.CaptchaAt {
			return v.serveSlidePage(w, returnTo)
		}
		return v.serveNewChallenge(w, returnTo, "", false, maxRefreshes)
	default:
		return writeBlocked(w, v.r)
	}
}

// clientAddr is the client's address as Caddy determined it, honouring
// the server's trusted_proxies; headers from untrusted peers are ignored.
func clientAddr(r *http.Request) netip.Addr {
	if s, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap().WithZone("")
}

// prefixID names the address block a client is counted under.
func prefixID(a netip.Addr, v4, v6 int) string {
	if !a.IsValid() {
		return "unknown"
	}
	bits := v6
	if a.Is4() {
		bits = v4
	}
	if bits >= a.BitLen() {
		return a.WithZone("").String()
	}
	p, err := a.WithZone("").Prefix(bits)
	if err != nil {
		return "unknown"
	}
	return p.String()
}

// viaHTTPS reports whether the client reached us over HTTPS: directly, or
// through a trusted proxy (the server's trusted_proxies) that says so.
// A client's own X-Forwarded-Proto is ignored.
func viaHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// secureContext reports whether browsers would send Sec-Fetch-* and client
// hints to this origin: over HTTPS, or to loopback.
func secureContext(r *http.Request) bool {
	if viaHTTPS(r) {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func containsAddr(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// storeHealth logs store failures once when they start (then at most every
// 30s) and once when the store recovers.
type storeHealth struct {
	logger  *zap.Logger
	errors  prometheus.Counter
	down    atomic.Bool
	lastLog atomic.Int64
}

func (s *storeHealth) failed(err error, mode string) {
	s.errors.Inc()
	now := time.Now().UnixNano()
	if !s.down.Swap(true) || now-s.lastLog.Load() > int64(30*time.Second) {
		s.lastLog.Store(now)
		s.logger.Error("store unavailable; failing "+mode, zap.Error(err))
	}
}

func (s *storeHealth) ok() {
	if s.down.Load() && s.down.Swap(false) {
		s.logger.Info("store recovered")
	}
}

var cssColor = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)

// loadSolver loads the solver model (the built-in one for an empty path) and
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
