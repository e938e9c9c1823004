package caddycommand

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/advcaptcha/advcaptcha/extraction"
)

// extractMetrics are what `extract --watch --metrics ADDR` serves on
// /metrics: the pairs the logs hold, the runs and their outcomes, and the
// last run's measurements. A nil *extractMetrics records nothing (a
// one-shot run prints its outcome instead).
type extractMetrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	pairs    *prometheus.GaugeVec
	fidelity *prometheus.GaugeVec
	clean    *prometheus.GaugeVec
	lastRun  prometheus.Gauge
}

func newExtractMetrics() *extractMetrics {
	m := &extractMetrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "advcaptcha", Name: "extraction_runs_total",
			Help: "Extraction runs by outcome: published, published_companion, not_better (refused by the publishing rule), not_published (better, but no --publish or another run published first), too_few_answers, failed, written (no --tune).",
		}, []string{"outcome"}),
		pairs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "advcaptcha", Name: "extraction_answers",
			Help: "Answers in the gateway's captcha log when it was last read, by client: attacker (a confirmed attacker's, the pairs extraction trains on), other, unreproducible (an attacker's whose image could not be rebuilt).",
		}, []string{"client"}),
		fidelity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "advcaptcha", Name: "extraction_fidelity",
			Help: "The last measured run's agreement with held-out attacker answers, of the model it started from (base) and of the new one (new), of whole answers or of characters (what publishing judges by).",
		}, []string{"model", "of"}),
		clean: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "advcaptcha", Name: "extraction_clean_accuracy",
			Help: "The last measured run's share of clean captchas read right, by the model it started from (base) and by the new one (new).",
		}, []string{"model"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "advcaptcha", Name: "extraction_last_run_timestamp_seconds",
			Help: "When the last extraction run ended (Unix time).",
		}),
	}
	m.reg.MustRegister(m.runs, m.pairs, m.fidelity, m.clean, m.lastRun)
	return m
}

// serve serves /metrics on addr until ctx ends; it returns once listening.
func (m *extractMetrics) serve(ctx context.Context, addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() { _ = srv.Serve(l) }() // ends with ErrServerClosed
	return l.Addr(), nil
}

// collected records what a read of the logs found.
func (m *extractMetrics) collected(s extraction.Stats) {
	if m == nil {
		return
	}
	m.pairs.WithLabelValues("attacker").Set(float64(s.Attacker))
	m.pairs.WithLabelValues("other").Set(float64(s.Other))
	m.pairs.WithLabelValues("unreproducible").Set(float64(s.Unreproducible))
}

// ran records a run's outcome and, when it measured a model, what it
// measured (the outcome's Status says how the run ended, error or not).
func (m *extractMetrics) ran(o *extraction.Outcome, _ error) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(string(o.Status)).Inc()
	m.lastRun.Set(float64(time.Now().UnixNano()) / 1e9)
	res := o.Result
	if res == nil {
		return
	}
	for model, ms := range map[string]extraction.Measurement{"base": res.Before, "new": res.After} {
		m.fidelity.WithLabelValues(model, "answers").Set(ms.Fidelity)
		m.fidelity.WithLabelValues(model, "characters").Set(ms.CharFidelity)
		m.clean.WithLabelValues(model).Set(ms.CleanAccuracy)
	}
}
