package trajectory

import (
	"fmt"
	"math"
	"strconv"
)

// Reason is one finding about a drag and its points.
type Reason struct {
	Name   string
	Points float64
	// Certain marks findings no hand produces (slides under 0.1 s): they
	// label the device a confirmed attacker, not just refuse the slide.
	Certain bool
	Detail  string
}

// Result is the verdict on a drag.
type Result struct {
	Features Features
	Score    float64 // 0–100
	Reasons  []Reason
}

// Refuse is the score from which a slide is refused.
const Refuse = 50

// Accepted reports whether the slide passes.
func (r *Result) Accepted() bool { return r.Score < Refuse }

// Certain reports whether a finding was certain (a machine for sure).
func (r *Result) Certain() bool {
	for _, x := range r.Reasons {
		if x.Certain {
			return true
		}
	}
	return false
}

// Hard rules: a slide under 0.1 s is a machine for sure (the paper), one
// with under five events has no motion to judge. Everything else is the
// judge's (judge.go): a model's probability mapped onto the score, so
// that no single unusual trait refuses a person. A perfectly straight,
// level drag is named (perfectly_linear) but costs few points on its own:
// people on a slide bar, on a trackpad especially, often keep y constant.
const (
	fastMS          = 100 // paper: slides under 0.1 s are machines
	minPoints       = 5
	linearPoints    = 10
	tooFewPoints    = 60
	reasonFromScore = 20 // the judge names its finding from this score on
)

// Score judges a trajectory.
func Score(t Trajectory) Result {
	f := Extract(t)
	r := Result{Features: f}
	add := func(name string, pts float64, certain bool, detail string) {
		r.Reasons = append(r.Reasons, Reason{Name: name, Points: pts, Certain: certain, Detail: detail})
		r.Score = math.Min(100, r.Score+pts)
	}
	if f.Duration < fastMS {
		add("too_fast", 100, true, fmt.Sprintf("%.0f ms", f.Duration))
	}
	if f.Points < minPoints {
		add("too_few_points", tooFewPoints, false, strconv.Itoa(f.Points))
	}
	if f.Points >= 6 && f.YRange == 0 && f.Straightness > 0.9999 {
		add("perfectly_linear", linearPoints, false, "")
	}
	if f.Points >= minPoints && f.Duration >= fastMS {
		x := f.Vector()
		var contrib Inputs
		p := judge.Prob(&x, &contrib)
		s := judge.ScoreOf(p)
		if s >= reasonFromScore {
			r.Reasons = append(r.Reasons, judgeReason(p, s, &contrib))
		}
		r.Score = math.Min(100, r.Score+s)
	}
	return r
}
