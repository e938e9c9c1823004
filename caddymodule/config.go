package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/clearance"
	"github.com/advcaptcha/advcaptcha/crawler"
	"github.com/advcaptcha/advcaptcha/internal/cache"
	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

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
	if h.Branding != nil && h.Branding.Color == "" {
		h.Branding.Color = defaultBranding.Color
	}
	if h.Adversarial == nil {
		h.Adversarial = &Adversarial{}
	}
	h.Adversarial.provision()
}

// compile derives the handler's working form of the configuration (windows,
// frequency rules, weights, thresholds) once the defaults are applied.
func (h *Handler) compile() error {
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
	return nil
}

// Validate checks the configuration; each error names the field at fault.
// Provision runs it before it opens the store or starts workers, so an
// invalid configuration starts nothing; it reads and never changes the
// configuration, so Caddy's own call after Provision finds the same.
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
	if err := h.Adversarial.validate(); err != nil {
		return fmt.Errorf("adversarial: %w", err)
	}
	return nil
}

// Cleanup releases the handler's reference to its store and flushes its

var defaultExempt = []string{"/robots.txt", "/favicon.ico", "/.well-known/security.txt", "/.well-known/acme-challenge/*"}

// ipv6BlockFactor scales the IP limits to an IPv6 block's by default.
const ipv6BlockFactor = 16

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

var cssColor = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Branding lets a site owner make the challenge page theirs.
type Branding struct {
	// Title is the site's name, shown in the page title and as the
	// logo's alternative text.
	Title string `json:"title,omitempty"`
	// Logo is the URL of a logo image (same site, or https).
	Logo string `json:"logo,omitempty"`
	// Color is the CSS colour of the slider (a #rgb or #rrggbb value).
	// Default #2b7a3d.
	Color string `json:"color,omitempty"`
}

var defaultBranding = Branding{Color: "#2b7a3d"}
