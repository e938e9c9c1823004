package riskscore

import (
	"fmt"
	"strconv"
	"strings"
)

// Decision is what the gateway does with a request.
type Decision uint8

const (
	Allow Decision = iota
	Challenge
	Block
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Challenge:
		return "challenge"
	case Block:
		return "block"
	}
	return "unknown"
}

// Reason is one signal's contribution to a score.
type Reason struct {
	Signal Signal
	// Points is what the signal added: its weight times its strength.
	Points float64
	// Detail says what was seen (the automation token, the limit crossed);
	// it is for logs, never for keys.
	Detail string
}

func (r Reason) String() string {
	s := r.Signal.String() + "=" + strconv.FormatFloat(r.Points, 'f', -1, 64)
	if r.Detail != "" {
		s += "(" + r.Detail + ")"
	}
	return s
}

// Assessment accumulates reasons into a score.
type Assessment struct {
	Reasons []Reason
	// Score is the sum of the reasons' points, capped at 100.
	Score float64
}

// Add records a signal with a strength between 0 and 1. Signals whose
// weight is 0 (turned off) or strength is not positive add nothing.
func (a *Assessment) Add(w *Weights, s Signal, strength float64, detail string) {
	if strength > 1 {
		strength = 1
	}
	pts := w[s] * strength
	if !(pts > 0) {
		return
	}
	pts = float64(int(pts*10+0.5)) / 10 // one decimal keeps reasons readable
	a.Reasons = append(a.Reasons, Reason{Signal: s, Points: pts, Detail: detail})
	a.Score += pts
	if a.Score > 100 {
		a.Score = 100
	}
}

// Has reports whether the signal fired.
func (a *Assessment) Has(s Signal) bool {
	for _, r := range a.Reasons {
		if r.Signal == s {
			return true
		}
	}
	return false
}

// ReasonList formats the reasons as "name=points,name=points", the form
// used in placeholders and upstream headers.
func (a *Assessment) ReasonList() string {
	var b strings.Builder
	for i, r := range a.Reasons {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.Signal.String())
		b.WriteByte('=')
		b.WriteString(strconv.FormatFloat(r.Points, 'f', -1, 64))
	}
	return b.String()
}

// Thresholds map a score to a decision.
type Thresholds struct {
	// Challenge: scores at or above it are challenged. Default 40.
	Challenge float64
	// Block: scores at or above it are refused. Default 90.
	Block float64
}

// DefaultThresholds are used when none are configured.
var DefaultThresholds = Thresholds{Challenge: 40, Block: 90}

// Validate checks 0 < Challenge ≤ Block ≤ 100 (a Block above 100 turns
// blocking off, which is allowed: 101).
func (t Thresholds) Validate() error {
	if !(t.Challenge > 0 && t.Challenge <= 100) {
		return fmt.Errorf("challenge threshold %v must be in (0, 100]", t.Challenge)
	}
	if !(t.Block >= t.Challenge && t.Block <= 101) {
		return fmt.Errorf("block threshold %v must be between the challenge threshold %v and 101", t.Block, t.Challenge)
	}
	return nil
}

// Decide maps a score to a decision. A label always blocks.
func (t Thresholds) Decide(a *Assessment) Decision {
	switch {
	case a.Has(Labelled) || a.Has(FrequencyStrict) || a.Score >= t.Block:
		return Block
	case a.Score >= t.Challenge:
		return Challenge
	}
	return Allow
}
