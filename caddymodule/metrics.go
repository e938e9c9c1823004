package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/riskscore"
)

// metrics are advcaptcha's Prometheus metrics on Caddy's registry. Labels
// name rules and outcomes, never clients.
type metrics struct {
	decisions  *prometheus.CounterVec // decision, reason (the signal that weighed most)
	score      prometheus.Histogram
	challenges *prometheus.CounterVec // stage (slide, captcha, audio), outcome
	storeErrs  prometheus.Counter
	storeTime  *prometheus.HistogramVec // op (score, flush)
	// scoreTime and flushTime are storeTime's two series, looked up once.
	scoreTime, flushTime prometheus.Observer

	poolDepth   prometheus.Gauge
	generation  *prometheus.HistogramVec // outcome (ok, error)
	poolServed  *prometheus.CounterVec   // source (pool, sync, clean, wait)
	poolDropped prometheus.Counter
	poolForged  *prometheus.CounterVec // reason (unsigned, unknown_key, bad_mac)
	// recent counts the sources over the last minutes, for the clean
	// share (a gauge, and the dashboard).
	recent *servedWindow

	modelChanges  *prometheus.CounterVec // outcome (loaded, refused)
	answers       *prometheus.CounterVec // captcha (clean, adversarial), client (attacker, other), outcome (correct, wrong), model
	modelFidelity *prometheus.GaugeVec   // version, of (answers, characters)
}

func newMetrics(registry *prometheus.Registry) *metrics {
	var reg prometheus.Registerer
	if registry != nil { // a nil *Registry in an interface would not be nil
		reg = registry
	}
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "decisions_total",
			Help: "Requests by decision and by the signal that contributed most to it.",
		}, []string{"decision", "reason"}),
		score: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "advcaptcha", Name: "score",
			Help:    "Risk scores of fully scored requests (0–100).",
			Buckets: []float64{0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100},
		}),
		challenges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "challenges_total",
			Help: "Challenge steps by stage (slide, captcha, audio) and outcome (issued, passed, failed, refused).",
		}, []string{"stage", "outcome"}),
		storeErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "store_errors_total",
			Help: "Store operations that failed.",
		}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "advcaptcha", Name: "store_seconds",
			Help:    "Time of the store round trip that scores a request (op=score) or flushes cleared clients' counts (op=flush), failures included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
		}, []string{"op"}),
		poolDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "advcaptcha", Name: "pool_depth",
			Help: "Adversarial captchas waiting in the pool, as last seen by this instance's workers.",
		}),
		generation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "advcaptcha", Name: "captcha_generation_seconds",
			Help:    "Time to compute one adversarial captcha (a batch's time shared among its captchas), by outcome (ok, error).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 16, 32},
		}, []string{"outcome"}),
		poolServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "captchas_served_total",
			Help: "Captcha requests by what answered them: pool (adversarial, precomputed), sync (adversarial, computed on request because the pool was empty), clean (plain: adversarial captchas off, the pool empty with fallback clean, or within clean_quota), wait (the pool empty with fallback wait: the client was told to retry, no captcha served).",
		}, []string{"source"}),
		poolDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "pool_corrupt_total",
			Help: "Pool entries dropped because they did not decode or failed their checksum.",
		}),
		poolForged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "pool_forged_total",
			Help: "Pool entries dropped, never served, because they were not authenticated with the gateway's secret, by reason: unsigned (no MAC), unknown_key (signed with a secret not configured here), bad_mac (wrong MAC: edited or forged). Anything but a few after a secret change means someone writes to the store.",
		}, []string{"reason"}),
		modelChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "model_changes_total",
			Help: "Newly published solver model versions this instance's pools switched to (loaded) or refused: refused (corrupt, expired, another captcha style), unauthenticated (no valid MAC from the gateway's secret, or a model file other than the one published: forged).",
		}, []string{"outcome"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "captcha_answers_total",
			Help: "Captcha answers by captcha (clean, adversarial), client (attacker: labelled when answering; other), outcome (correct, wrong) and the model version the captcha was computed against: attackers' success rate on clean and adversarial captchas per version.",
		}, []string{"captcha", "client", "outcome", "model"}),
		modelFidelity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "advcaptcha", Name: "model_fidelity",
			Help: "Agreement with held-out attacker answers that the model extraction measured for a published solver version, of whole answers or of their characters (what publishing judges by), when this instance switched to it.",
		}, []string{"version", "of"}),
	}
	m.decisions = register(reg, m.decisions)
	m.score = register(reg, m.score)
	m.challenges = register(reg, m.challenges)
	m.storeErrs = register(reg, m.storeErrs)
	m.storeTime = register(reg, m.storeTime)
	m.scoreTime, m.flushTime = m.storeTime.WithLabelValues("score"), m.storeTime.WithLabelValues("flush")
	m.poolDepth = register(reg, m.poolDepth)
	m.generation = register(reg, m.generation)
	m.poolServed = register(reg, m.poolServed)
	m.poolDropped = register(reg, m.poolDropped)
	m.poolForged = register(reg, m.poolForged)
	m.recent = register(reg, newServedWindow())
	m.modelChanges = register(reg, m.modelChanges)
	m.answers = register(reg, m.answers)
	m.modelFidelity = register(reg, m.modelFidelity)
	return m
}

// countDropped counts the pool entries Pop dropped.
func (m *metrics) countDropped(d captchapool.Dropped) {
	if d.Corrupt > 0 {
		m.poolDropped.Add(float64(d.Corrupt))
	}
	for reason, n := range d.Forged {
		m.poolForged.WithLabelValues(reason).Add(float64(n))
	}
}

// served counts a captcha request answered by source (pool, sync, clean,
// wait).
func (m *metrics) served(source string) {
	m.poolServed.WithLabelValues(source).Inc()
	m.recent.add(source, time.Now())
}

// The window over which the clean share is measured.
const (
	shareStep  = 10 * time.Second
	shareSteps = 30 // five minutes
)

// servedSources are the sources servedWindow counts, in its order.
var servedSources = [...]string{"pool", "sync", "clean", "wait"}

// servedWindow counts captcha requests by source over the last
// shareSteps·shareStep, and exports the share of clean captchas among those
// served and the share of requests told to wait. It is a collector so that
// the handlers of one configuration share it like the other metrics.
type servedWindow struct {
	mu    sync.Mutex
	steps [shareSteps]struct {
		at int64 // the step's number (Unix time / shareStep)
		n  [len(servedSources)]float64
	}
	cleanDesc, waitDesc *prometheus.Desc
}

func newServedWindow() *servedWindow {
	return &servedWindow{
		cleanDesc: prometheus.NewDesc("advcaptcha_captchas_clean_share",
			"Share of the captchas served over the last 5 minutes that were clean (plain) rather than adversarial; 0 when none was served.", nil, nil),
		waitDesc: prometheus.NewDesc("advcaptcha_captcha_requests_waiting_share",
			"Share of the requests for a captcha over the last 5 minutes that were told to retry because the pool was empty (fallback wait).", nil, nil),
	}
}

func (w *servedWindow) add(source string, now time.Time) {
	i := 0
	for i < len(servedSources) && servedSources[i] != source {
		i++
	}
	if i == len(servedSources) {
		return
	}
	step := now.UnixNano() / int64(shareStep)
	w.mu.Lock()
	s := &w.steps[step%shareSteps]
	if s.at != step {
		s.at, s.n = step, [len(servedSources)]float64{}
	}
	s.n[i]++
	w.mu.Unlock()
}

// totals are the counts by source (servedSources' order) over the window
// ending at now.
func (w *servedWindow) totals(now time.Time) (n [len(servedSources)]float64) {
	step := now.UnixNano() / int64(shareStep)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.steps {
		if s.at > step-shareSteps && s.at <= step {
			for i := range n {
				n[i] += s.n[i]
			}
		}
	}
	return n
}

// shares are the clean share among captchas served and the share of
// captcha requests told to wait, over the window ending at now.
func (w *servedWindow) shares(now time.Time) (clean, wait float64) {
	n := w.totals(now)
	if served := n[0] + n[1] + n[2]; served > 0 {
		clean = n[2] / served
	}
	if all := n[0] + n[1] + n[2] + n[3]; all > 0 {
		wait = n[3] / all
	}
	return clean, wait
}

func (w *servedWindow) Describe(ch chan<- *prometheus.Desc) { ch <- w.cleanDesc; ch <- w.waitDesc }

func (w *servedWindow) Collect(ch chan<- prometheus.Metric) {
	clean, wait := w.shares(time.Now())
	ch <- prometheus.MustNewConstMetric(w.cleanDesc, prometheus.GaugeValue, clean)
	ch <- prometheus.MustNewConstMetric(w.waitDesc, prometheus.GaugeValue, wait)
}

// countAnswer counts a captcha answer for the attackers' success rate.
func (m *metrics) countAnswer(method, model string, attacker, correct bool) {
	captchaKind, client, outcome := "adversarial", "other", "wrong"
	if method == "none" {
		captchaKind, model = "clean", "none"
	}
	if attacker {
		client = "attacker"
	}
	if correct {
		outcome = "correct"
	}
	m.answers.WithLabelValues(captchaKind, client, outcome, model).Inc()
}

// register registers c, or returns the collector already registered under
// its name: several advcaptcha handlers in one config share the metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// topReason is the signal that added the most points, for the label.
func topReason(a *riskscore.Assessment) string {
	best, name := 0.0, "none"
	for _, r := range a.Reasons {
		if r.Points > best {
			best, name = r.Points, r.Signal.String()
		}
	}
	return name
}
