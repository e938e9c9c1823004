// Package trajectory judges a slide-bar drag: it validates the pointer
// trajectory a browser recorded from press to release, extracts the
// features that tell a hand from a script (duration, straightness, speed
// profile, sampling regularity, roughness…) and scores them with named
// reasons. It implements the behaviour part of the paper's Appendix B:
// slides faster than 0.1 s, perfectly linear tracks and rough, jagged
// tracks are machines.
package trajectory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Point is one pointer sample: x and y in CSS pixels relative to the press
// point (y grows downwards), t in milliseconds since the press.
type Point struct{ X, Y, T float64 }

// Limits on what a client may send.
const (
	MaxPoints    = 4096
	MaxBodyBytes = 256 << 10
	maxCoord     = 10_000 // px: no screen is wider
	maxDuration  = 60_000 // ms: nobody holds a slider for a minute
)

// Trajectory is a validated drag, press first, release last.
type Trajectory []Point

// Decode reads {"points": [[x, y, t], ...]} from at most MaxBodyBytes and
// validates it. Anything else is an error saying what is wrong.
func Decode(r io.Reader) (Trajectory, error) {
	lr := &io.LimitedReader{R: r, N: MaxBodyBytes + 1}
	var body struct {
		Points [][]float64 `json:"points"`
	}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(&body); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("trajectory larger than %d bytes", MaxBodyBytes)
		}
		return nil, fmt.Errorf("malformed trajectory JSON: %v", err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("trajectory larger than %d bytes", MaxBodyBytes)
	}
	return FromArrays(body.Points)
}

// FromArrays builds and validates a trajectory from [x, y, t] triples.
func FromArrays(pts [][]float64) (Trajectory, error) {
	if len(pts) > MaxPoints {
		return nil, fmt.Errorf("%d points; at most %d are accepted", len(pts), MaxPoints)
	}
	t := make(Trajectory, len(pts))
	for i, p := range pts {
		if len(p) != 3 {
			return nil, fmt.Errorf("point %d has %d values, want [x, y, t]", i, len(p))
		}
		t[i] = Point{p[0], p[1], p[2]}
	}
	return t, t.Validate()
}

// Validate checks that the trajectory could have come from a pointer.
func (t Trajectory) Validate() error {
	switch {
	case len(t) < 2:
		return errors.New("a trajectory needs at least the press and the release")
	case len(t) > MaxPoints:
		return fmt.Errorf("%d points; at most %d are accepted", len(t), MaxPoints)
	}
	for i, p := range t {
		for _, v := range [3]float64{p.X, p.Y, p.T} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("point %d is not finite", i)
			}
		}
		if math.Abs(p.X) > maxCoord || math.Abs(p.Y) > maxCoord {
			return fmt.Errorf("point %d is %v px away; coordinates are limited to %d px", i, math.Max(math.Abs(p.X), math.Abs(p.Y)), maxCoord)
		}
		if p.T < 0 || p.T > maxDuration {
			return fmt.Errorf("point %d is at %v ms; times run from 0 to %d ms", i, p.T, maxDuration)
		}
		if i > 0 && p.T < t[i-1].T {
			return fmt.Errorf("point %d goes back in time (%v ms after %v ms)", i, p.T, t[i-1].T)
		}
	}
	return nil
}
