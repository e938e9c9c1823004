package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/store"
)

// summary is what the dashboard draws, from GET <admin>/summary.
type summary struct {
	OK bool      `json:"ok"`
	At time.Time `json:"at"`
	// Instance figures are this Caddy process's since its config was
	// loaded; the rest is read from the store, shared by every instance.
	Instance  instanceSummary `json:"instance"`
	Series    []seriesPoint   `json:"series"`
	SeriesSec int             `json:"series_step_seconds"`
	Pool      *poolSummary    `json:"pool,omitempty"`
	Models    modelsSummary   `json:"models"`
	Offenders []offender      `json:"offenders"`
	// Errors names the parts the store could not give (the rest is shown).
	Errors []string `json:"errors,omitempty"`
}

type instanceSummary struct {
	Store      string         `json:"store"`
	Decisions  []labelledNum  `json:"decisions"`
	Score      []scoreBucket  `json:"score"`
	Challenges []labelledNum  `json:"challenges"`
	Answers    []labelledNum  `json:"answers"`
	Served     []labelledNum  `json:"served"`
	StoreErrs  float64        `json:"store_errors"`
	Generation *generationSum `json:"generation,omitempty"`
	// CleanShare is the share of the captchas served over the last five
	// minutes that were clean, WaitShare the share of captcha requests
	// told to retry because the pool was empty (as the metrics
	// advcaptcha_captchas_clean_share and
	// advcaptcha_captcha_requests_waiting_share).
	CleanShare float64 `json:"clean_share"`
	WaitShare  float64 `json:"wait_share"`
}

type labelledNum struct {
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

type scoreBucket struct {
	UpTo  float64 `json:"le"`
	Count float64 `json:"count"` // in this bucket alone, not cumulative
}

type generationSum struct {
	Count   uint64  `json:"count"`
	MeanSec float64 `json:"mean_seconds"`
}

type poolSummary struct {
	Depth  int    `json:"depth"`
	Size   int    `json:"size"`
	Model  string `json:"model"`
	Method string `json:"method"`
}

type modelsSummary struct {
	Serving string                  `json:"serving,omitempty"`
	Current *modelregistry.Version  `json:"current,omitempty"`
	History []modelregistry.Version `json:"history"`
}

// offender is an entity the label log names, newest first, with what the
// store says of it now.
type offender struct {
	Entity  string    `json:"entity"`
	Kind    string    `json:"kind"`
	Labels  int       `json:"labels"` // label events in the window read
	Reasons []string  `json:"reasons"`
	LastAt  time.Time `json:"last_at"`
	Source  string    `json:"source"`
	// Active is whether the entity is labelled now; Expires when it ends.
	Active  bool      `json:"active"`
	Expires time.Time `json:"expires,omitzero"`
	Cleared bool      `json:"cleared"`
	// PerMinute is its request count over the middle window (1 min by
	// default).
	PerMinute float64 `json:"per_minute"`
}

// Bounds of the summary: how much of the label log it reads and how many
// entities it looks up.
const (
	summaryLabelEvents = 500
	summaryOffenders   = 25
)

func (v *visit) serveSummary(w http.ResponseWriter) error {
	h := v.h
	ctx, cancel := context.WithTimeout(v.r.Context(), 2*time.Second)
	defer cancel()
	s := summary{OK: true, At: time.Now().UTC(), SeriesSec: int(seriesStep / time.Second)}
	s.Instance = h.metrics.instanceSummary()
	s.Instance.Store = "memory"
	if h.Redis != nil {
		s.Instance.Store = "redis"
	}
	s.Series = dashboardSeries.points()
	failed := func(part string, err error) {
		h.health.failed(err, h.OnStoreError)
		s.Errors = append(s.Errors, part+": store unavailable")
	}
	if p := h.pool; p != nil {
		g := p.current()
		n, err := h.store.QueueLen(ctx, g.key)
		if err != nil {
			failed("pool", err)
		}
		s.Pool = &poolSummary{Depth: n, Size: p.cfg.PoolSize, Model: g.gen.ModelVersion(), Method: p.cfg.attack().String()}
		s.Models.Serving = g.model
	} else if h.solver != nil {
		s.Models.Serving = h.solver.Version()
	}
	reg := modelregistry.New(h.store, nil) // listed for display, unverified
	if hist, err := reg.History(ctx); err != nil {
		failed("models", err)
	} else {
		s.Models.History = hist
		if cur, err := reg.Current(ctx); err == nil {
			s.Models.Current = cur
		}
	}
	if s.Models.History == nil {
		s.Models.History = []modelregistry.Version{}
	}
	var err error
	if s.Offenders, err = h.offenders(ctx, v.now); err != nil {
		failed("labels", err)
	}
	if s.Offenders == nil {
		s.Offenders = []offender{}
	}
	return writeJSON(w, http.StatusOK, s)
}

// offenders folds the newest label events into one row per entity and adds
// what the store says of each now, in one round trip.
func (h *Handler) offenders(ctx context.Context, now time.Time) ([]offender, error) {
	recs, err := h.store.Latest(ctx, extraction.LabelLog, summaryLabelEvents)
	if err != nil {
		return nil, err
	}
	byEntity := map[string]*offender{}
	var out []*offender
	for _, r := range recs { // newest first
		var ev extraction.LabelEvent
		if json.Unmarshal(r.Value, &ev) != nil || ev.Entity == "" {
			continue
		}
		o := byEntity[ev.Entity]
		if o == nil {
			if len(out) == summaryOffenders {
				continue
			}
			kind, _, _ := strings.Cut(ev.Entity, ":")
			o = &offender{Entity: ev.Entity, Kind: kind, LastAt: ev.At, Source: ev.Source, Cleared: ev.Kind == extraction.Cleared, Reasons: []string{}}
			byEntity[ev.Entity] = o
			out = append(out, o)
		}
		if ev.Kind == extraction.Labelled {
			o.Labels++
			if len(o.Reasons) < 5 && !slices.Contains(o.Reasons, ev.Reason) {
				o.Reasons = append(o.Reasons, ev.Reason)
			}
		}
	}
	hits := make([]store.Hit, 0, len(out))
	for _, o := range out {
		kind, id, _ := strings.Cut(o.Entity, ":")
		hits = append(hits, store.Hit{Entity: store.Entity{Kind: store.Kind(kind), ID: id}})
	}
	if len(hits) > 0 {
		tallies, err := h.store.Observe(ctx, now, hits)
		if err != nil {
			return nil, err
		}
		mid := min(1, len(h.windows)-1)
		for i, t := range tallies {
			o := out[i]
			if t.Label != nil && t.Label.Expires.After(now) {
				o.Active, o.Expires = true, t.Label.Expires
			}
			if mid < len(t.Counts) {
				o.PerMinute = t.Counts[mid]
			}
		}
	}
	rows := make([]offender, len(out))
	for i, o := range out {
		rows[i] = *o
	}
	return rows, nil
}

// instanceSummary reads this configuration's advcaptcha metrics.
func (m *metrics) instanceSummary() instanceSummary {
	s := instanceSummary{
		Decisions:  collectLabelled(m.decisions),
		Challenges: collectLabelled(m.challenges),
		Answers:    collectLabelled(m.answers),
		Served:     collectLabelled(m.poolServed),
	}
	s.CleanShare, s.WaitShare = m.recent.shares(time.Now())
	forEachMetric(m.storeErrs, func(d *dto.Metric) { s.StoreErrs = d.GetCounter().GetValue() })
	forEachMetric(m.score, func(d *dto.Metric) {
		prev := 0.0
		for _, b := range d.GetHistogram().GetBucket() {
			n := float64(b.GetCumulativeCount())
			s.Score = append(s.Score, scoreBucket{UpTo: b.GetUpperBound(), Count: n - prev})
			prev = n
		}
	})
	forEachMetric(m.generation, func(d *dto.Metric) {
		for _, l := range d.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() == "ok" && d.GetHistogram().GetSampleCount() > 0 {
				hs := d.GetHistogram()
				s.Generation = &generationSum{Count: hs.GetSampleCount(), MeanSec: hs.GetSampleSum() / float64(hs.GetSampleCount())}
			}
		}
	})
	return s
}

func collectLabelled(c prometheus.Collector) []labelledNum {
	out := []labelledNum{}
	forEachMetric(c, func(d *dto.Metric) {
		n := labelledNum{Labels: map[string]string{}, Value: d.GetCounter().GetValue()}
		for _, l := range d.GetLabel() {
			n.Labels[l.GetName()] = l.GetValue()
		}
		out = append(out, n)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Value > out[j].Value })
	return out
}

func forEachMetric(c prometheus.Collector, fn func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			fn(&d)
		}
	}
}

// The dashboard's time series: this process's decisions and captcha answers
// per seriesStep over the last seriesLen steps, kept across config reloads.
const (
	seriesStep = 10 * time.Second
	seriesLen  = 360 // one hour
)

// seriesPoint is one step of the series; answers are [correct, total].
type seriesPoint struct {
	At                int64      `json:"t"` // Unix seconds at the step's start
	Allow             float64    `json:"allow"`
	Challenge         float64    `json:"challenge"`
	Block             float64    `json:"block"`
	CleanAttacker     [2]float64 `json:"clean_attacker"`
	AdversarialAttack [2]float64 `json:"adversarial_attacker"`
	CleanOther        [2]float64 `json:"clean_other"`
	AdversarialOther  [2]float64 `json:"adversarial_other"`
	// Served counts captcha requests by source: pool, sync, clean, wait.
	Served [len(servedSources)]float64 `json:"served"`
	// Generated counts the adversarial captchas this instance's workers
	// made: the supply, against Served's demand.
	Generated float64 `json:"generated"`
}

// seriesRing holds the points; samplers add to it.
type seriesRing struct {
	mu  sync.Mutex
	pts []seriesPoint // oldest first, at most seriesLen
}

var dashboardSeries = &seriesRing{}

func (r *seriesRing) points() []seriesPoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seriesPoint{}, r.pts...)
}

// add merges a delta into the point of its step (several samplers, one
// per loaded configuration, may add to the same step).
func (r *seriesRing) add(d seriesPoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.pts); n > 0 && r.pts[n-1].At == d.At {
		dst, src := r.pts[n-1].counts(), d.counts()
		for i := range dst {
			*dst[i] += *src[i]
		}
		return
	}
	r.pts = append(r.pts, d)
	if len(r.pts) > seriesLen {
		r.pts = append(r.pts[:0:0], r.pts[len(r.pts)-seriesLen:]...)
	}
}

// totals reads the counters a series point is made of.
func (m *metrics) totals() seriesPoint {
	var p seriesPoint
	forEachMetric(m.decisions, func(d *dto.Metric) {
		v := d.GetCounter().GetValue()
		for _, l := range d.GetLabel() {
			if l.GetName() != "decision" {
				continue
			}
			switch l.GetValue() {
			case "allow":
				p.Allow += v
			case "challenge":
				p.Challenge += v
			case "block":
				p.Block += v
			}
		}
	})
	forEachMetric(m.answers, func(d *dto.Metric) {
		lv := map[string]string{}
		for _, l := range d.GetLabel() {
			lv[l.GetName()] = l.GetValue()
		}
		var a *[2]float64
		switch lv["captcha"] + "/" + lv["client"] {
		case "clean/attacker":
			a = &p.CleanAttacker
		case "adversarial/attacker":
			a = &p.AdversarialAttack
		case "clean/other":
			a = &p.CleanOther
		default:
			a = &p.AdversarialOther
		}
		v := d.GetCounter().GetValue()
		a[1] += v
		if lv["outcome"] == "correct" {
			a[0] += v
		}
	})
	forEachMetric(m.generation, func(d *dto.Metric) {
		for _, l := range d.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() == "ok" {
				p.Generated += float64(d.GetHistogram().GetSampleCount())
			}
		}
	})
	forEachMetric(m.poolServed, func(d *dto.Metric) {
		for _, l := range d.GetLabel() {
			if l.GetName() == "source" {
				if i := slices.Index(servedSources[:], l.GetValue()); i >= 0 {
					p.Served[i] += d.GetCounter().GetValue()
				}
			}
		}
	})
	return p
}

// counts are the point's numbers, for arithmetic over all of them.
func (p *seriesPoint) counts() [16]*float64 {
	return [16]*float64{&p.Allow, &p.Challenge, &p.Block,
		&p.CleanAttacker[0], &p.CleanAttacker[1], &p.AdversarialAttack[0], &p.AdversarialAttack[1],
		&p.CleanOther[0], &p.CleanOther[1], &p.AdversarialOther[0], &p.AdversarialOther[1],
		&p.Served[0], &p.Served[1], &p.Served[2], &p.Served[3], &p.Generated}
}

func (p seriesPoint) minus(q seriesPoint) seriesPoint {
	d := p
	dst, sub := d.counts(), q.counts()
	for i := range dst {
		*dst[i] -= *sub[i]
	}
	return d
}

// samplers runs one sampler per configuration's metrics (the handlers of
// one config share their collectors), so each request is counted once.
var samplers = caddy.NewUsagePool()

type sampler struct{ stop context.CancelFunc }

func (s *sampler) Destruct() error { s.stop(); return nil }

// startSampler adds this configuration's counts to the dashboard series
// every seriesStep until the configuration is unloaded. Its counters start
// at zero with the configuration, so the first delta is everything since.
func (h *Handler) startSampler() (string, error) {
	key := fmt.Sprintf("%p", h.metrics.decisions)
	_, _, err := samplers.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithCancel(context.Background())
		m, logger := h.metrics, h.logger
		go func() {
			defer func() {
				if r := recover(); r != nil {
					logger.Error("dashboard sampler stopped", zap.Any("panic", r))
				}
			}()
			var last seriesPoint
			t := time.NewTicker(time.Until(time.Now().Truncate(seriesStep).Add(seriesStep)))
			defer t.Stop()
			first := true
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if first {
						t.Reset(seriesStep)
						first = false
					}
					cur := m.totals()
					d := cur.minus(last)
					last = cur
					d.At = now.Add(-seriesStep / 2).Truncate(seriesStep).Unix()
					dashboardSeries.add(d)
				}
			}
		}()
		return &sampler{stop: cancel}, nil
	})
	return key, err
}
