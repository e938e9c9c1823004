package extraction

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/store"
)

// LogReader reads store logs; store.Store is one.
type LogReader interface {
	Range(ctx context.Context, log, after string, max int) ([]store.Record, error)
}

// Options tune Collect.
type Options struct {
	// Lookback makes answers given before a label count: an answer is an
	// attacker's when its device or IP was labelled at most this long
	// after it (attackers are often caught a little after they start).
	// Default 1h; a negative value counts only labels already in force.
	Lookback time.Duration
	// Style reproduces clean captchas from their recorded seeds. Default
	// captcha.DefaultStyle(), the gateway's style.
	Style *captcha.Style
	// ReadBatch is how many records one store read returns. Default 1000.
	ReadBatch int
}

// Pair is one answer of a confirmed attacker to a captcha we served: the
// exact image, what was true, and what their solver read.
type Pair struct {
	ID        string // the challenge id, unique
	PNG       []byte // the image served, byte for byte
	Truth     string
	Answer    string
	Correct   bool
	Method    string // "none" for a clean captcha
	Model     string
	LatencyMS int64
	IP        string
	Device    string
	At        time.Time
	// Reason says why the answer counts as an attacker's: the label that
	// covers it.
	Reason string
}

// Stats counts what Collect saw.
type Stats struct {
	Served         int // served records
	Answers        int // answer records
	Orphans        int // answers whose served record is not in the log (trimmed or expired)
	Unreproducible int // clean captchas whose recipe no longer gives the recorded image
	Attacker       int // answers of labelled clients: the pairs
	Other          int // answers of everyone else
	Labels         int // label records
}

func (o *Options) normalize() {
	if o.Lookback == 0 {
		o.Lookback = time.Hour
	}
	if o.ReadBatch <= 0 {
		o.ReadBatch = 1000
	}
	if o.Style == nil {
		s := captcha.DefaultStyle()
		o.Style = &s
	}
}

// Collect reads the label and captcha logs and returns the attackers'
// answers with their images, oldest first. It only reads: running it again
// gives the same pairs plus those recorded (or labelled) since.
func Collect(ctx context.Context, logs LogReader, opts Options) ([]Pair, Stats, error) {
	opts.normalize()
	var st Stats
	labels := labelIndex{}
	err := scan(ctx, logs, LabelLog, opts.ReadBatch, func(r store.Record) error {
		var ev LabelEvent
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			return fmt.Errorf("label record %s: %w", r.ID, err)
		}
		st.Labels++
		labels.add(ev)
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	served := map[string]*CaptchaEvent{}
	var pairs []Pair
	err = scan(ctx, logs, CaptchaLog, opts.ReadBatch, func(r store.Record) error {
		ev := new(CaptchaEvent)
		if err := json.Unmarshal(r.Value, ev); err != nil {
			return fmt.Errorf("captcha record %s: %w", r.ID, err)
		}
		switch ev.Kind {
		case Served:
			st.Served++
			served[ev.ID] = ev
		case Answer:
			st.Answers++
			s, ok := served[ev.ID]
			if !ok {
				st.Orphans++
				return nil
			}
			delete(served, ev.ID) // a challenge takes one answer
			reason, attacker := labels.attacker(ev, opts.Lookback)
			if !attacker {
				st.Other++
				return nil
			}
			png, err := image(s, opts.Style)
			if err != nil {
				st.Unreproducible++
				return nil
			}
			st.Attacker++
			pairs = append(pairs, Pair{
				ID: ev.ID, PNG: png, Truth: s.Truth, Answer: ev.Answer, Correct: ev.Correct != nil && *ev.Correct,
				Method: s.Method, Model: s.Model, LatencyMS: ev.LatencyMS, IP: ev.IP, Device: ev.Device,
				At: ev.At, Reason: reason,
			})
		}
		return nil
	})
	return pairs, st, err
}

func scan(ctx context.Context, logs LogReader, log string, batch int, fn func(store.Record) error) error {
	after := ""
	for {
		recs, err := logs.Range(ctx, log, after, batch)
		if err != nil {
			return fmt.Errorf("read log %s: %w", log, err)
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(recs) < batch {
			return nil
		}
		after = recs[len(recs)-1].ID
	}
}

// image returns the served image: recorded, or reproduced from its recipe
// and checked against the recorded hash.
func image(s *CaptchaEvent, style *captcha.Style) ([]byte, error) {
	png := s.PNG
	if png == nil {
		if s.Renderer != captcha.RendererVersion {
			return nil, fmt.Errorf("renderer %q, this binary has %q", s.Renderer, captcha.RendererVersion)
		}
		c, err := style.Generate(s.Seed)
		if err != nil {
			return nil, err
		}
		if png, err = captcha.EncodePNG(c.Image); err != nil {
			return nil, err
		}
	}
	want, err := hex.DecodeString(s.PNGSHA256)
	if err != nil {
		return nil, fmt.Errorf("image hash: %w", err)
	}
	sum := sha256.Sum256(png)
	if !bytes.Equal(sum[:], want) {
		return nil, fmt.Errorf("image does not match its recorded hash")
	}
	return png, nil
}

// labelIndex holds every entity's label history.
type labelIndex map[string]*history

type history struct {
	spans   []span      // labels, in the order set
	cleared []time.Time // operator clears: every label set before one was a mistake
}

type span struct {
	from, to time.Time
	reason   string
}

func (x labelIndex) add(ev LabelEvent) {
	h := x[ev.Entity]
	if h == nil {
		h = new(history)
		x[ev.Entity] = h
	}
	switch ev.Kind {
	case Labelled:
		h.spans = append(h.spans, span{from: ev.At, to: ev.Expires, reason: ev.Source + ": " + ev.Reason})
	case Cleared:
		for i := range h.spans {
			if h.spans[i].to.After(ev.At) {
				h.spans[i].to = ev.At
			}
		}
		if ev.Source == SourceOperator {
			h.cleared = append(h.cleared, ev.At)
		}
	}
}

// attacker says whether an answer is a confirmed attacker's, and why: its
// device or IP was labelled when it answered or within lookback after, and
// no operator has since said that label was wrong.
func (x labelIndex) attacker(ev *CaptchaEvent, lookback time.Duration) (string, bool) {
	entities := [2]string{store.Entity{Kind: store.KindDevice, ID: ev.Device}.Key(), store.Entity{Kind: store.KindIP, ID: ev.IP}.Key()}
	var reasons []string
	for _, e := range entities {
		h := x[e]
		if h == nil {
			continue
		}
		for _, s := range h.spans {
			if h.clearedAfter(s.from) {
				continue
			}
			if !ev.At.Before(s.from.Add(-max(lookback, 0))) && !ev.At.After(s.to) {
				reasons = append(reasons, e+" "+s.reason)
				break
			}
		}
	}
	if ev.Labelled && len(reasons) == 0 && !x.clearedAfter(entities[:], ev.At) {
		reasons = append(reasons, "labelled when answering")
	}
	if len(reasons) == 0 {
		return "", false
	}
	sort.Strings(reasons)
	return reasons[0], true
}

func (h *history) clearedAfter(t time.Time) bool {
	for _, c := range h.cleared {
		if !c.Before(t) {
			return true
		}
	}
	return false
}

func (x labelIndex) clearedAfter(entities []string, t time.Time) bool {
	for _, e := range entities {
		if h := x[e]; h != nil && h.clearedAfter(t) {
			return true
		}
	}
	return false
}
