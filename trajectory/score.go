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

// Rules and their points. Each scripted form the paper or practice names
// is caught by at least one rule worth Refuse on its own or by two that
// together are; any single soft rule alone stays under Refuse, so one
// unusual trait does not refuse a person.
const (
	fastMS          = 100 // paper: slides under 0.1 s are machines
	minPoints       = 5
	constSpeedCV    = 0.2  // people: ≥ 0.33 in the development data (p1)
	evenSampling    = 0.9  // share of intervals within 1% of the median
	roughnessJagged = 1.7  // people: ≤ 1.6 (p99); a jittered line ≥ 1.8
	speedTooSmooth  = 0.25 // people: ≥ 0.66 (p1); eased Bézier paths ≤ 0.14
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
		add("too_few_points", 60, false, strconv.Itoa(f.Points))
	}
	if f.Points >= 6 && f.YRange == 0 && f.Straightness > 0.9999 {
		add("perfectly_linear", 45, false, "")
	}
	if f.Points >= 6 && f.SpeedCV < constSpeedCV {
		add("constant_speed", 45, false, fmt.Sprintf("cv %.3f", f.SpeedCV))
	}
	if f.EvenIntervals >= evenSampling { // false for NaN
		add("even_sampling", 45, false, fmt.Sprintf("%.0f%% of intervals alike", 100*f.EvenIntervals))
	}
	if f.SpeedRoughness < speedTooSmooth { // false for NaN
		add("too_smooth", 50, false, fmt.Sprintf("speed roughness %.3f", f.SpeedRoughness))
	}
	if f.RoughnessY > roughnessJagged {
		add("jagged", 60, false, fmt.Sprintf("%.2f", f.RoughnessY))
	}
	return r
}
