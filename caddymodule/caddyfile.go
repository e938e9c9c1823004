package caddymodule

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/advcaptcha/advcaptcha/perturb"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("advcaptcha", parseCaddyfile)
	// Bot defense runs before authentication and proxying, so no `order`
	// line is needed.
	httpcaddyfile.RegisterDirectiveOrder("advcaptcha", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m Handler
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return &m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	advcaptcha {
//		redis <address...> {
//			master_name <name>
//			cluster
//			username <user>
//			password <password>
//			sentinel_password <password>
//			db <n>
//			tls [<server_name>]
//			tls_ca_file <pem file>
//			tls_insecure_skip_verify
//			key_prefix <prefix>
//			timeout <duration>
//			local_first
//		}
//		max_entities <n>
//		secret <secret...>
//		clearance_ttl <duration>
//		account <placeholder>
//		ipv4_prefix <bits>
//		ipv6_prefix <bits>
//		ipv6_aggregate_prefix <bits>
//		windows <duration...>
//		limit ip|device|account|ipv6_block <per-window limit...>
//		strict_limit ip|device|account|ipv6_block <n>
//		label_ttl <duration>
//		weight <signal> <points>
//		challenge_at <score>
//		block_at <score>
//		captcha_at <score>
//		slide_clearance_ttl <duration>
//		slide_passes <device> <ip> <fingerprint>
//		captcha_budget <device> <ip> <window>
//		exempt <path...>
//		allow <cidr...>
//		deny <cidr...>
//		crawlers verify|score
//		crawler_ranges <file>
//		on_store_error open|closed
//		upstream_headers
//		challenge captcha|slide
//		branding {
//			title <site name>
//			logo <https URL or /path>
//			color "<#rrggbb>"  (quoted: # starts a Caddyfile comment)
//		}
//		challenge_ttl <duration>
//		max_failures device|ip|account <n>
//		max_audio <n>
//		max_audio_ip <n>
//		solver_model <file>
//		adversarial off
//		adversarial {
//			method fgsm|bim|mifgsm
//			epsilon <levels>
//			stroke_epsilon <levels>
//			step <levels>
//			iterations <n>
//			momentum <mu>
//			targeted
//			eot <filter...>|off
//			eot_samples <n>
//			smooth <sigma>
//			shift <pixels>
//			min_ssim <floor>
//			ensemble <model file...>
//			pool_size <n>
//			workers <n>
//			external_workers
//			cpu_budget <share>
//			fallback wait|clean|sync
//			clean_quota <n>
//			follow_models <interval>|off
//		}
//		admin_token <token>
//		admin {
//			path <prefix/>
//			guard token|caddy_auth
//		}
//		device_cookie <name>
//		clearance_cookie <name>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "redis":
			if err := h.unmarshalRedis(d); err != nil {
				return err
			}
		case "max_entities":
			if err := intArg(d, &h.MaxEntities); err != nil {
				return err
			}
		case "secret":
			h.Secrets = append(h.Secrets, d.RemainingArgs()...)
			if len(h.Secrets) == 0 {
				return d.ArgErr()
			}
		case "clearance_ttl":
			if err := durationArg(d, &h.ClearanceTTL); err != nil {
				return err
			}
		case "label_ttl":
			if err := durationArg(d, &h.LabelTTL); err != nil {
				return err
			}
		case "account":
			if !d.AllArgs(&h.Account) {
				return d.ArgErr()
			}
		case "ipv4_prefix":
			if err := intArg(d, &h.IPv4Prefix); err != nil {
				return err
			}
		case "ipv6_prefix":
			if err := intArg(d, &h.IPv6Prefix); err != nil {
				return err
			}
		case "ipv6_aggregate_prefix":
			if err := intArg(d, &h.IPv6AggregatePrefix); err != nil {
				return err
			}
		case "windows":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil {
					return d.Errf("windows: %v", err)
				}
				h.Windows = append(h.Windows, caddy.Duration(dur))
			}
		case "limit", "strict_limit":
			if err := h.unmarshalLimit(d, opt == "strict_limit"); err != nil {
				return err
			}
		case "weight":
			var name, pts string
			if !d.AllArgs(&name, &pts) {
				return d.ArgErr()
			}
			v, err := strconv.ParseFloat(pts, 64)
			if err != nil {
				return d.Errf("weight %s: %v", name, err)
			}
			if h.Weights == nil {
				h.Weights = map[string]float64{}
			}
			h.Weights[name] = v
		case "challenge_at":
			if err := floatArg(d, &h.ChallengeAt); err != nil {
				return err
			}
		case "block_at":
			if err := floatArg(d, &h.BlockAt); err != nil {
				return err
			}
		case "captcha_at":
			if err := floatArg(d, &h.CaptchaAt); err != nil {
				return err
			}
		case "slide_clearance_ttl":
			if err := durationArg(d, &h.SlideClearanceTTL); err != nil {
				return err
			}
		case "slide_passes":
			h.SlidePasses = &SlidePasses{}
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.ArgErr()
			}
			if err := atoiArgs(d, args, &h.SlidePasses.Device, &h.SlidePasses.IP, &h.SlidePasses.Fingerprint); err != nil {
				return err
			}
		case "captcha_budget":
			h.CaptchaBudget = &CaptchaBudget{}
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.ArgErr()
			}
			if err := atoiArgs(d, args[:2], &h.CaptchaBudget.Device, &h.CaptchaBudget.IP); err != nil {
				return err
			}
			w, err := caddy.ParseDuration(args[2])
			if err != nil {
				return d.Errf("captcha_budget window: %v", err)
			}
			h.CaptchaBudget.Window = caddy.Duration(w)
		case "max_audio_ip":
			if err := intArg(d, &h.MaxAudioIP); err != nil {
				return err
			}
		case "exempt":
			h.Exempt = append(h.Exempt, d.RemainingArgs()...)
		case "allow":
			h.Allow = append(h.Allow, d.RemainingArgs()...)
		case "deny":
			h.Deny = append(h.Deny, d.RemainingArgs()...)
		case "crawlers":
			if !d.AllArgs(&h.Crawlers) {
				return d.ArgErr()
			}
		case "crawler_ranges":
			if !d.AllArgs(&h.CrawlerRanges) {
				return d.ArgErr()
			}
		case "on_store_error":
			if !d.AllArgs(&h.OnStoreError) {
				return d.ArgErr()
			}
		case "upstream_headers":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.UpstreamHeaders = true
		case "challenge":
			if !d.AllArgs(&h.Challenge) {
				return d.ArgErr()
			}
		case "solver_model":
			if !d.AllArgs(&h.SolverModel) {
				return d.ArgErr()
			}
		case "adversarial":
			if err := h.unmarshalAdversarial(d); err != nil {
				return err
			}
		case "branding":
			b := &Branding{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				var dst *string
				switch d.Val() {
				case "title": // may be several words
					b.Title = strings.Join(d.RemainingArgs(), " ")
					if b.Title == "" {
						return d.ArgErr()
					}
					continue
				case "logo":
					dst = &b.Logo
				case "color":
					dst = &b.Color
				default:
					return d.Errf("unrecognized branding option '%s'", d.Val())
				}
				if !d.AllArgs(dst) {
					return d.ArgErr()
				}
			}
			h.Branding = b
		case "challenge_ttl":
			if err := durationArg(d, &h.ChallengeTTL); err != nil {
				return err
			}
		case "max_failures":
			var kind, n string
			if !d.AllArgs(&kind, &n) {
				return d.ArgErr()
			}
			v, err := strconv.Atoi(n)
			if err != nil {
				return d.Errf("max_failures %s: %v", kind, err)
			}
			switch kind {
			case "device":
				h.MaxFailuresDevice = v
			case "ip":
				h.MaxFailuresIP = v
			case "account":
				h.MaxFailuresAccount = v
			default:
				return d.Errf("max_failures: unknown entity %q (want device, ip or account)", kind)
			}
		case "max_audio":
			if err := intArg(d, &h.MaxAudioDevice); err != nil {
				return err
			}
		case "admin_token":
			if !d.AllArgs(&h.AdminToken) {
				return d.ArgErr()
			}
		case "admin":
			a := &Admin{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				var dst *string
				switch d.Val() {
				case "path":
					dst = &a.Path
				case "guard":
					dst = &a.Guard
				default:
					return d.Errf("unrecognized admin option '%s'", d.Val())
				}
				if !d.AllArgs(dst) {
					return d.ArgErr()
				}
			}
			h.Admin = a
		case "device_cookie":
			if !d.AllArgs(&h.DeviceCookie) {
				return d.ArgErr()
			}
		case "clearance_cookie":
			if !d.AllArgs(&h.ClearanceCookie) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized advcaptcha option '%s'", opt)
		}
	}
	return nil
}

func (h *Handler) unmarshalRedis(d *caddyfile.Dispenser) error {
	r := &RedisConfig{}
	r.Addresses = d.RemainingArgs()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "master_name":
			if !d.AllArgs(&r.MasterName) {
				return d.ArgErr()
			}
		case "cluster":
			r.Cluster = true
		case "username":
			if !d.AllArgs(&r.Username) {
				return d.ArgErr()
			}
		case "password":
			if !d.AllArgs(&r.Password) {
				return d.ArgErr()
			}
		case "sentinel_password":
			if !d.AllArgs(&r.SentinelPassword) {
				return d.ArgErr()
			}
		case "db":
			if err := intArg(d, &r.DB); err != nil {
				return err
			}
		case "tls":
			if r.TLS == nil {
				r.TLS = &RedisTLS{}
			}
			if d.NextArg() {
				r.TLS.ServerName = d.Val()
			}
		case "tls_ca_file":
			if r.TLS == nil {
				r.TLS = &RedisTLS{}
			}
			if !d.AllArgs(&r.TLS.CAFile) {
				return d.ArgErr()
			}
		case "tls_insecure_skip_verify":
			if r.TLS == nil {
				r.TLS = &RedisTLS{}
			}
			r.TLS.InsecureSkipVerify = true
		case "key_prefix":
			if !d.AllArgs(&r.KeyPrefix) {
				return d.ArgErr()
			}
		case "timeout":
			if err := durationArg(d, &r.Timeout); err != nil {
				return err
			}
		case "local_first":
			if d.NextArg() {
				return d.ArgErr()
			}
			r.LocalFirst = true
		default:
			return d.Errf("unrecognized redis option '%s'", d.Val())
		}
	}
	if len(r.Addresses) == 0 {
		return d.Err("redis: at least one address is required")
	}
	h.Redis = r
	return nil
}

func (h *Handler) unmarshalAdversarial(d *caddyfile.Dispenser) error {
	a := &Adversarial{}
	switch args := d.RemainingArgs(); {
	case len(args) == 1 && args[0] == "off":
		a.Off = true
		h.Adversarial = a
		return nil
	case len(args) > 0:
		return d.ArgErr()
	}
	at := &perturb.Overrides{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "method":
			var m string
			if !d.AllArgs(&m) {
				return d.ArgErr()
			}
			at.Method = perturb.Method(m)
		case "epsilon":
			err = intSetting(d, &at.Epsilon)
		case "stroke_epsilon":
			err = intSetting(d, &at.StrokeEpsilon)
		case "step":
			err = intSetting(d, &at.Step)
		case "iterations":
			err = intSetting(d, &at.Iterations)
		case "momentum":
			err = floatSetting(d, &at.Momentum)
		case "targeted":
			at.Targeted = new(true)
		case "eot":
			eot := d.RemainingArgs()
			if len(eot) == 0 {
				return d.ArgErr()
			}
			if len(eot) == 1 && eot[0] == "off" {
				eot = []string{}
			}
			at.EOT = &eot
		case "eot_samples":
			err = intSetting(d, &at.EOTSamples)
		case "smooth":
			err = floatSetting(d, &at.Smooth)
		case "shift":
			err = intSetting(d, &at.Shift)
		case "min_ssim":
			err = floatSetting(d, &at.MinSSIM)
		case "ensemble":
			if a.Ensemble = d.RemainingArgs(); len(a.Ensemble) == 0 {
				return d.ArgErr()
			}
		case "pool_size":
			err = intArg(d, &a.PoolSize)
		case "workers":
			err = intArg(d, &a.Workers)
		case "external_workers":
			a.ExternalWorkers = true
		case "cpu_budget":
			err = floatArg(d, &a.CPUBudget)
		case "fallback":
			if !d.AllArgs(&a.Fallback) {
				return d.ArgErr()
			}
		case "clean_quota":
			err = intArg(d, &a.CleanQuota)
		case "follow_models":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			if v == "off" {
				a.FollowModels = -1
				break
			}
			dur, perr := caddy.ParseDuration(v)
			if perr != nil || dur <= 0 {
				return d.Errf("follow_models: %q is not a positive duration or off", v)
			}
			a.FollowModels = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized adversarial option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if !reflect.ValueOf(*at).IsZero() {
		a.Attack = at
	}
	h.Adversarial = a
	return nil
}

func (h *Handler) unmarshalLimit(d *caddyfile.Dispenser, strict bool) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	kind := d.Val()
	var nums []float64
	for _, a := range d.RemainingArgs() {
		v, err := strconv.ParseFloat(a, 64)
		if err != nil {
			return d.Errf("limit %s: %v", kind, err)
		}
		nums = append(nums, v)
	}
	if len(nums) == 0 || (strict && len(nums) != 1) {
		return d.ArgErr()
	}
	if h.Limits == nil {
		h.Limits = &Limits{}
	}
	var soft *[]float64
	var hard *float64
	switch kind {
	case "ip":
		soft, hard = &h.Limits.IP, &h.Limits.StrictIP
	case "device":
		soft, hard = &h.Limits.Device, &h.Limits.StrictDevice
	case "account":
		soft, hard = &h.Limits.Account, &h.Limits.StrictAccount
	case "ipv6_block":
		soft, hard = &h.Limits.IPv6Block, &h.Limits.StrictIPv6Block
	default:
		return d.Errf("limit: unknown entity %q (want ip, device, account or ipv6_block)", kind)
	}
	if strict {
		*hard = nums[0]
	} else {
		*soft = nums
	}
	return nil
}

func intArg(d *caddyfile.Dispenser, dst *int) error {
	opt := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s: %v", opt, err)
	}
	*dst = v
	return nil
}

// atoiArgs parses the option's arguments into dst, one each.
func atoiArgs(d *caddyfile.Dispenser, args []string, dst ...*int) error {
	for i, a := range args {
		v, err := strconv.Atoi(a)
		if err != nil {
			return d.Errf("%s: %v", d.Val(), err)
		}
		*dst[i] = v
	}
	return nil
}

func floatArg(d *caddyfile.Dispenser, dst *float64) error {
	opt := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return d.Errf("%s: %v", opt, err)
	}
	*dst = v
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", opt, err)
	}
	*dst = caddy.Duration(v)
	return nil
}
