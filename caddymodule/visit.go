package caddymodule

import (
	"crypto/rand"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/store"
)

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

// logFields puts the decision in Caddy's access log as one object.
type logFields struct {
	score    float64
	decision riskscore.Decision
	reasons  string
}

func (f logFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddFloat64("score", f.score)
	enc.AddString("decision", f.decision.String())
	enc.AddString("reasons", f.reasons)
	return nil
}

// reasonDetails lists reasons with what was seen, for the log line.
func reasonDetails(a *riskscore.Assessment) string {
	var b strings.Builder
	for i, r := range a.Reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}
