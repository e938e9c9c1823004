package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/advcaptcha/advcaptcha/riskscore"
)

// metrics are advcaptcha's Prometheus metrics on Caddy's registry. Labels
// name rules and outcomes, never clients.
type metrics struct {
	decisions  *prometheus.CounterVec // decision, reason (the signal that weighed most)
	score      prometheus.Histogram
	challenges *prometheus.CounterVec // stage (slide, captcha, audio), outcome
	storeErrs  prometheus.Counter
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
	}
	m.decisions = register(reg, m.decisions)
	m.score = register(reg, m.score)
	m.challenges = register(reg, m.challenges)
	m.storeErrs = register(reg, m.storeErrs)
	return m
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
