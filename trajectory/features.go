package trajectory

import (
	"math"
	"slices"
)

// Features describe a drag.
type Features struct {
	Points   int
	Duration float64 // ms, press to release
	Path     float64 // px travelled
	NetX     float64 // px, signed
	// Straightness is net displacement over path length: 1 is a ruler line.
	Straightness float64
	YRange       float64 // px between the highest and lowest point
	// SpeedCV is the coefficient of variation of the speed between
	// samples: a hand accelerates and decelerates, a script often does not.
	SpeedCV float64
	// EvenIntervals is the share of sampling intervals within 1% of the
	// median interval (NaN with fewer than 8): scripts often sample at a
	// perfectly even rate, perhaps but for a shorter last step.
	EvenIntervals float64
	Intervals     int
	// MedianInterval is the median positive sampling interval in ms (NaN
	// with fewer than 8): a browser that hands the page every sample a
	// mouse sent (Chromium's coalesced events) gives a hand's drag ~8 ms;
	// a driver that sends one move at a time gets about one a frame, and
	// fewer on a loaded machine.
	MedianInterval float64
	// PeakAt is where the peak speed falls, as a fraction of the duration.
	PeakAt float64
	// RoughnessY is the energy of the second difference of y over that of
	// the first, after resampling to 16 ms: about 3 for white noise (a
	// jittered line), well under 1 for a hand's smooth path.
	RoughnessY float64
	// SpeedRoughness is the same measure for the speed along the path
	// (NaN with fewer than 8 resampled steps): a hand's speed wavers,
	// a Bézier or easing curve's does not. People in the development
	// data: ≥ 0.66 (p1); eased Bézier paths at 60 Hz: ≤ 0.14.
	SpeedRoughness float64
	// BackMoves is the fraction of steps against the drag's direction.
	BackMoves float64
	// Overshoot is how far (px) the drag went past where it ended.
	Overshoot float64
	// Pauses counts stops of 100 ms or more inside the drag.
	Pauses int

	// The judge's features (judge.go), chosen for what path generators do
	// not easily fake and measured so that the sampling rate (60–240 Hz,
	// coalesced or batched events) changes them little.

	// VelPeaks counts the prominent peaks of the speed, smoothed over
	// ~50 ms on a 16 ms grid: a hand's drag is a main movement and
	// corrective sub-movements; a Bézier or eased curve has one peak.
	VelPeaks int
	// StartLag and HomeTail are the shares of the duration spent before
	// the drag has covered 3% of its distance (reaction, the button
	// settling) and after it first came within 3% of where it ended
	// (homing in, checking, releasing).
	StartLag, HomeTail float64
	// EndDwell is how long (ms) the pointer rested, within 1 px, before
	// the release.
	EndDwell float64
	// Jerk is the log of the dimensionless jerk of the smoothed path
	// (duration⁵/length² ∫ jerk²): high for a hand's several sub-movements.
	Jerk float64
	// StepDt is the correlation, between successive events, of the change
	// in step length and the change in interval (NaN when the intervals
	// hardly vary): a sampled hand moves further in a longer interval; a
	// path's points re-timed with "human" intervals do not.
	StepDt float64
	// IntervalCV is the coefficient of variation of the positive
	// intervals; Duplicates the share of events that repeat a timestamp.
	IntervalCV, Duplicates float64
	// Tremor is the RMS (px) of the path's deviation across the direction
	// of travel from its own ~80 ms moving average.
	Tremor float64
	// AccelRough is SpeedRoughness one level up: the energy of the third
	// difference of the smoothed progress over that of the second.
	AccelRough float64
	// MidBand is the speed's fluctuation between ~2 and ~15 Hz (the
	// smoothed speed minus its 240 ms moving average, RMS) over the mean
	// speed, less what rounding positions to the coordinate grid explains:
	// a hand's sub-movements and wavering, absent from an eased curve
	// however its points are timed.
	MidBand float64
	// PrimaryReach and PrimaryTime describe the primary sub-movement: where
	// the smoothed speed (as for VelPeaks) first falls, after its peak, to a
	// valley under 15% of the peak, the share of the distance covered and
	// of the duration spent (1 and near 1 when it never does). A hand's
	// drag to a target is a ballistic movement that ends short of or past
	// it and corrections; a curve traversed under an easing slows down
	// into the end in one movement, whatever the easing and the timing.
	PrimaryReach, PrimaryTime float64
	// SecondBump is the largest prominence, over the smoothed speed's peaks
	// (as for VelPeaks) other than the highest, as a share of the highest
	// (0 for one bell; NaN when too short): how far a sub-movement other
	// than the main one rises above the valleys around it. A hand's
	// corrections make one; a curve traversed under an easing, however
	// sharp and however timed, is one bell and rounding noise.
	SecondBump float64
}

// Extract computes the features of a validated trajectory.
func Extract(t Trajectory) Features {
	f := Features{Points: len(t)}
	if len(t) < 2 {
		return f
	}
	first, last := t[0], t[len(t)-1]
	f.Duration = last.T - first.T
	f.NetX = last.X - first.X
	dir := 1.0
	if f.NetX < 0 {
		dir = -1
	}
	minY, maxY := first.Y, first.Y
	maxAlong := 0.0
	speeds := make([]float64, 0, len(t)-1)
	dts := make([]float64, 0, len(t)-1)
	peak, peakT := -1.0, 0.0
	back := 0
	for i := 1; i < len(t); i++ {
		p, q := t[i-1], t[i]
		ddx, ddy := q.X-p.X, q.Y-p.Y
		d := math.Sqrt(ddx*ddx + ddy*ddy)
		f.Path += d
		minY, maxY = math.Min(minY, q.Y), math.Max(maxY, q.Y)
		maxAlong = math.Max(maxAlong, dir*(q.X-first.X))
		if dir*(q.X-p.X) < 0 {
			back++
		}
		dt := q.T - p.T
		if dt > 0 {
			dts = append(dts, dt)
			s := d / dt
			speeds = append(speeds, s)
			if s > peak {
				peak, peakT = s, (p.T+q.T)/2-first.T
			}
			if dt >= 100 && d < 2 {
				f.Pauses++
			}
		}
	}
	f.YRange = maxY - minY
	if f.Path > 0 {
		f.Straightness = math.Hypot(f.NetX, last.Y-first.Y) / f.Path
	} else {
		f.Straightness = 1
	}
	f.BackMoves = float64(back) / float64(len(t)-1)
	f.Overshoot = math.Max(0, maxAlong-dir*f.NetX)
	f.SpeedCV = cv(speeds)
	f.Intervals = len(dts)
	f.EvenIntervals, f.MedianInterval = intervalStats(dts)
	if f.Duration > 0 {
		f.PeakAt = peakT / f.Duration
	}
	xs, ys := resample(t, 16)
	f.RoughnessY = roughness(ys)
	f.SpeedRoughness = math.NaN()
	if len(xs) >= 9 {
		steps := speeds[:0] // reuse: the per-event speeds are done with
		for i := 0; i+1 < len(xs); i++ {
			dx, dy := xs[i+1]-xs[i], ys[i+1]-ys[i]
			steps = append(steps, math.Sqrt(dx*dx+dy*dy))
		}
		f.SpeedRoughness = roughness(steps)
	}
	judgeFeatures(t, &f, xs, ys)
	return f
}

// intervalStats returns the share of intervals within 1% of their median,
// and the median.
func intervalStats(dts []float64) (share, median float64) {
	if len(dts) < 8 {
		return math.NaN(), math.NaN()
	}
	sorted := append([]float64(nil), dts...)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	n := 0
	for _, d := range dts {
		if math.Abs(d-med) <= 0.01*med {
			n++
		}
	}
	return float64(n) / float64(len(dts)), med
}

func cv(v []float64) float64 {
	if len(v) < 2 {
		return math.NaN()
	}
	mean := 0.0
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	if mean == 0 {
		return 0
	}
	ss := 0.0
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss/float64(len(v))) / mean
}

// Resample is the path at even steps of time (ms), as the judge's
// roughness inputs read it — for tools that try new inputs on the same
// grid.
func Resample(t Trajectory, step float64) (xs, ys []float64) { return resample(t, step) }

// resample interpolates the path at even steps of time, so that the
// roughness measures do not depend on how a browser happened to sample.
func resample(t Trajectory, step float64) (xs, ys []float64) {
	n := min(4*MaxPoints+2, int((t[len(t)-1].T-t[0].T)/step)+2)
	xs, ys = make([]float64, 0, n), make([]float64, 0, n)
	j := 0
	for at := t[0].T; at <= t[len(t)-1].T; at += step {
		for j+1 < len(t) && t[j+1].T < at {
			j++
		}
		if j+1 >= len(t) {
			xs, ys = append(xs, t[len(t)-1].X), append(ys, t[len(t)-1].Y)
			break
		}
		a, b := t[j], t[j+1]
		frac := 0.0
		if b.T > a.T {
			frac = (at - a.T) / (b.T - a.T)
		}
		xs, ys = append(xs, a.X+frac*(b.X-a.X)), append(ys, a.Y+frac*(b.Y-a.Y))
		if len(xs) > 4*MaxPoints {
			break
		}
	}
	return xs, ys
}

// roughness is Σ(Δ²y)² / Σ(Δy)² (0 when y never moves).
func roughness(y []float64) float64 {
	if len(y) < 8 {
		return 0
	}
	var e1, e2 float64
	for i := 1; i < len(y); i++ {
		d := y[i] - y[i-1]
		e1 += d * d
		if i >= 2 {
			d2 := d - (y[i-1] - y[i-2])
			e2 += d2 * d2
		}
	}
	if e1 == 0 {
		return 0
	}
	return e2 / e1
}
