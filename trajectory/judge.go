package trajectory

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// The judge: a small gradient-boosted tree model over the features below,
// trained in Go (`bench/lab trajectory/judgetool train`, see RESULTS.md) on real
// people's drags and on drags from the tools attackers use (ghost-cursor,
// WindMouse, eased Bézier, minimum jerk, sigma-lognormal, human-timed
// paths, replays; bench/trajectory). It gives the probability that a drag
// is a machine's; the thresholds that map it onto Score were set on
// people's drags the model did not see (out-of-fold, by user).

//go:embed judge_model.json
var judgeModelJSON []byte

// Model is a boosted tree ensemble with its calibrated thresholds.
type Model struct {
	Version  string   `json:"version"`
	Features []string `json:"features"`
	// Base is the initial log-odds; each tree adds a leaf value.
	Base  float64 `json:"base"`
	Trees []Tree  `json:"trees"`
	// Clean and Refuse are the probabilities that map to scores 20 and
	// Refuse (50); Calibration says how they were chosen.
	Clean       float64 `json:"clean"`
	Refuse      float64 `json:"refuse"`
	Calibration string  `json:"calibration"`
	Training    string  `json:"training"`
}

// Tree is a binary tree in flat arrays; node i is a leaf when Feature[i]
// is -1. A value below Threshold (or a missing one, NaN) goes left.
type Tree struct {
	Feature   []int     `json:"f"`
	Threshold []float64 `json:"t"`
	Left      []int     `json:"l"`
	Right     []int     `json:"r"`
	Value     []float64 `json:"v"`
}

// judge is the shipped model, parsed once.
var judge = mustModel(judgeModelJSON)

func mustModel(b []byte) *Model {
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		panic("trajectory: judge_model.json: " + err.Error())
	}
	if len(m.Features) != NumInputs {
		panic(fmt.Sprintf("trajectory: judge_model.json has %d features, the code %d", len(m.Features), NumInputs))
	}
	for i, n := range m.Features {
		if n != InputNames[i] {
			panic("trajectory: judge_model.json feature " + n + " is not " + InputNames[i])
		}
	}
	return &m
}

// JudgeModel returns the shipped model (read only).
func JudgeModel() *Model { return judge }

// InputNames are the model's inputs, in order.
var InputNames = [...]string{
	"log_duration", "curvature", "y_extent", "speed_cv", "speed_roughness",
	"y_roughness", "peak_at", "back_moves", "overshoot", "velocity_peaks",
	"start_lag", "home_tail", "end_dwell", "jerk", "step_interval_corr",
	"interval_cv", "duplicate_times", "tremor", "accel_roughness", "even_intervals", "speed_midband",
	"primary_reach", "primary_time", "second_bump",
}

// NumInputs is the number of model inputs.
const NumInputs = len(InputNames)

// Inputs is a drag's model input vector; NaN marks a missing value.
type Inputs [NumInputs]float64

func lg(v float64) float64 { return math.Log(1e-3 + math.Max(0, v)) }

// Vector turns features into the model's inputs.
func (f *Features) Vector() Inputs {
	d := math.Max(1, math.Abs(f.NetX))
	return Inputs{
		math.Log(math.Max(1, f.Duration)),
		math.Log(1e-4 + math.Max(0, 1-f.Straightness)),
		lg(f.YRange / d),
		f.SpeedCV,
		lg(f.SpeedRoughness),
		lg(f.RoughnessY),
		f.PeakAt,
		f.BackMoves,
		f.Overshoot / d,
		math.Min(10, float64(f.VelPeaks)),
		f.StartLag,
		f.HomeTail,
		math.Log1p(f.EndDwell),
		f.Jerk,
		f.StepDt,
		lg(f.IntervalCV),
		f.Duplicates,
		lg(f.Tremor),
		lg(f.AccelRough),
		f.EvenIntervals,
		lg(f.MidBand),
		f.PrimaryReach,
		f.PrimaryTime,
		math.Log(1e-3 + f.SecondBump),
	}
}

// Prob is the model's probability that the drag is a machine's, and each
// input's share of the log-odds (the path's changes, feature by feature).
func (m *Model) Prob(x *Inputs, contrib *Inputs) float64 {
	z := m.Base
	for ti := range m.Trees {
		t := &m.Trees[ti]
		i := 0
		for t.Feature[i] >= 0 {
			f := t.Feature[i]
			next := t.Right[i]
			if v := x[f]; !(v >= t.Threshold[i]) { // NaN goes left
				next = t.Left[i]
			}
			if contrib != nil {
				contrib[f] += t.Value[next] - t.Value[i]
			}
			i = next
		}
		z += t.Value[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// ScoreOf maps a probability onto the 0–100 score: Clean → 20 (under it
// a slide may clear a client), Refuse → 50, linear in between and beyond.
func (m *Model) ScoreOf(p float64) float64 {
	switch {
	case p >= m.Refuse:
		return math.Min(100, Refuse+(100-Refuse)*(p-m.Refuse)/math.Max(1e-9, 1-m.Refuse))
	case p >= m.Clean:
		return 20 + (Refuse-20)*(p-m.Clean)/(m.Refuse-m.Clean)
	default:
		return 20 * p / m.Clean
	}
}

// judgeReason names the model's finding and the inputs that weighed most
// towards a machine.
func judgeReason(p, score float64, contrib *Inputs) Reason {
	idx := make([]int, 0, NumInputs)
	for i, c := range contrib {
		if c > 0.05 {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return contrib[idx[a]] > contrib[idx[b]] })
	names := make([]string, 0, 3)
	for _, i := range idx[:min(3, len(idx))] {
		names = append(names, InputNames[i])
	}
	return Reason{Name: "machine_like", Points: score,
		Detail: fmt.Sprintf("p %.3f (%s)", p, strings.Join(names, ", "))}
}

// judgeFeatures computes the judge's features; xs, ys are the drag
// resampled every 16 ms.
func judgeFeatures(t Trajectory, f *Features, xs, ys []float64) {
	f.StepDt = math.NaN()
	f.PrimaryReach, f.PrimaryTime, f.SecondBump = math.NaN(), math.NaN(), math.NaN()
	if len(t) < 2 || f.Duration <= 0 {
		return
	}
	first, last := t[0], t[len(t)-1]
	dist := math.Max(1, math.Abs(f.NetX))
	dir := 1.0
	if f.NetX < 0 {
		dir = -1
	}

	// Start lag, homing tail and the dwell before release.
	f.StartLag, f.HomeTail = 1, 0
	for _, p := range t {
		if dir*(p.X-first.X) >= 0.03*dist {
			f.StartLag = (p.T - first.T) / f.Duration
			break
		}
	}
	for _, p := range t {
		if math.Abs(p.X-last.X) <= 0.03*dist {
			f.HomeTail = (last.T - p.T) / f.Duration
			break
		}
	}
	arrived := first.T
	for i := len(t) - 1; i >= 0; i-- {
		if math.Abs(t[i].X-last.X) > 1 || math.Abs(t[i].Y-last.Y) > 1 {
			if i+1 < len(t) {
				arrived = t[i+1].T
			}
			break
		}
	}
	f.EndDwell = last.T - arrived

	// Event-timestamp texture.
	var sum, sumSq float64
	var n, dups int
	var sa, sb, saa, sbb, sab float64
	pairs := 0
	prevD, prevDT := 0.0, 0.0
	for i := 1; i < len(t); i++ {
		dt := t[i].T - t[i-1].T
		dx, dy := t[i].X-t[i-1].X, t[i].Y-t[i-1].Y
		d := math.Sqrt(dx*dx + dy*dy)
		if dt <= 0 {
			dups++
			prevDT = 0
			continue
		}
		sum += dt
		sumSq += dt * dt
		n++
		if prevDT > 0 && prevD > 0 && d > 0 {
			// Relative changes, symmetric and bounded (±1): cheaper
			// than log ratios and as telling.
			a, b := (d-prevD)/(d+prevD), (dt-prevDT)/(dt+prevDT)
			sa, sb, saa, sbb, sab = sa+a, sb+b, saa+a*a, sbb+b*b, sab+a*b
			pairs++
		}
		prevD, prevDT = d, dt
	}
	f.Duplicates = float64(dups) / float64(len(t)-1)
	if n >= 2 {
		mean := sum / float64(n)
		f.IntervalCV = math.Sqrt(math.Max(0, sumSq/float64(n)-mean*mean)) / mean
	}
	if pairs >= 8 {
		k := float64(pairs)
		va, vb := saa/k-(sa/k)*(sa/k), sbb/k-(sb/k)*(sb/k)
		if vb > 0.025*0.025 && va > 0 {
			f.StepDt = (sab/k - (sa/k)*(sb/k)) / math.Sqrt(va*vb)
		}
	}

	// Shape on the 16 ms grid: smoothed speed, its peaks, jerk, tremor.
	m := len(xs)
	if m < 6 {
		return
	}
	var buf [2 * 512]float64
	sp := buf[:0]
	if m-1 > 512 {
		sp = make([]float64, 0, 2*(m-1))
	}
	for i := 1; i < m; i++ {
		dx, dy := xs[i]-xs[i-1], ys[i]-ys[i-1]
		sp = append(sp, math.Sqrt(dx*dx+dy*dy))
	}
	sm := smooth5(sp, sp[len(sp):len(sp)])
	maxS, im := 0.0, 0
	for i, v := range sm {
		if v > sm[im] {
			im = i
		}
		maxS = math.Max(maxS, v)
	}
	// The primary sub-movement ends at the first valley after the peak
	// under 15% of it.
	end := len(sm) - 1
	for i := im + 1; i < len(sm)-1; i++ {
		if sm[i] < 0.15*sm[im] && sm[i] <= sm[i+1] {
			end = i
			break
		}
	}
	f.PrimaryReach = dir * (xs[end+1] - xs[0]) / dist
	f.PrimaryTime = float64(end+1) / float64(len(sm))
	if maxS > 0 {
		f.SecondBump = secondBump(sm, im) / maxS
		h := 0.15 * maxS
		rising, top, bottom := true, sm[0], sm[0]
		for _, v := range sm[1:] {
			if rising {
				if v > top {
					top = v
				} else if v < top-h {
					if top > 0.1*maxS {
						f.VelPeaks++
					}
					rising, bottom = false, v
				}
			} else {
				if v < bottom {
					bottom = v
				} else if v > bottom+h {
					rising, top = true, v
				}
			}
		}
		if rising && top > 0.1*maxS {
			f.VelPeaks++
		}
	}
	// Mid-band fluctuation of the smoothed speed, less the grid's share.
	if len(sm) >= 8 {
		grid := coordGrid(t)
		var mean, ss float64
		// A running window sum keeps this linear in the points.
		const half = 7
		lo, hi, win := 0, min(len(sm)-1, half), 0.0
		for k := lo; k <= hi; k++ {
			win += sm[k]
		}
		for i := range sm {
			mean += sm[i]
			for hi < min(len(sm)-1, i+half) {
				hi++
				win += sm[hi]
			}
			for lo < max(0, i-half) {
				win -= sm[lo]
				lo++
			}
			d := sm[i] - win/float64(hi-lo+1)
			ss += d * d
		}
		mean /= float64(len(sm))
		if mean > 0 {
			// Rounding to the grid: Δx noise var g²/6, × 0.273 after smooth5.
			q := 0.273 * grid * grid / 6
			f.MidBand = math.Sqrt(math.Max(0, ss/float64(len(sm))-q)) / mean
		}
	}
	// Dimensionless jerk of the smoothed progress and cross-track position.
	var jj float64
	for i := 3; i < m; i++ {
		jx := xs[i] - 3*xs[i-1] + 3*xs[i-2] - xs[i-3]
		jy := ys[i] - 3*ys[i-1] + 3*ys[i-2] - ys[i-3]
		jj += jx*jx + jy*jy
	}
	// Σ(Δ³)²/h⁶·h = ∫jerk²; × T⁵/L².
	const h = 16.0
	T := float64(m-1) * h
	f.Jerk = math.Log(1e-9 + jj/(h*h*h*h*h)*math.Pow(T, 5)/(dist*dist))
	// Accel roughness: Σ(Δ³x)² / Σ(Δ²x)².
	var e2, e3 float64
	for i := 2; i < m; i++ {
		a := xs[i] - 2*xs[i-1] + xs[i-2]
		e2 += a * a
		if i >= 3 {
			a3 := a - (xs[i-1] - 2*xs[i-2] + xs[i-3])
			e3 += a3 * a3
		}
	}
	if e2 > 0 {
		f.AccelRough = e3 / e2
	}
	// Tremor: y's deviation from its 5-sample (~80 ms) moving average.
	var ss float64
	cnt := 0
	for i := 2; i+2 < m; i++ {
		avg := (ys[i-2] + ys[i-1] + ys[i] + ys[i+1] + ys[i+2]) / 5
		d := ys[i] - avg
		ss += d * d
		cnt++
	}
	if cnt > 0 {
		f.Tremor = math.Sqrt(ss / float64(cnt))
	}
}

// coordGrid is the coordinate grid the drag's points lie on: 1 px when
// all are whole, 0.5 when all are halves, else 0.
func coordGrid(t Trajectory) float64 {
	whole, half := true, true
	for _, p := range t {
		if p.X != math.Round(p.X) || p.Y != math.Round(p.Y) {
			whole = false
		}
		if 2*p.X != math.Round(2*p.X) || 2*p.Y != math.Round(2*p.Y) {
			half = false
			break
		}
	}
	switch {
	case whole:
		return 1
	case half:
		return 0.5
	}
	return 0
}

// smooth5 applies the [1 4 6 4 1]/16 kernel (edges clamped) into out.
func smooth5(v, out []float64) []float64 {
	n := len(v)
	at := func(i int) float64 { return v[max(0, min(n-1, i))] }
	for i := range n {
		out = append(out, (at(i-2)+4*at(i-1)+6*at(i)+4*at(i+1)+at(i+2))/16)
	}
	return out
}

// secondBump is the largest prominence of a local maximum of v lower than
// v[top] (the highest; a plateau at the top is the top): its height less
// the higher of its two bases, a base being the lowest value between it
// and the nearest higher value on that side (or the end). Linear: a pass
// each way with a stack of indices of strictly decreasing values, seg[k]
// the lowest value after idx[k] up to the next entry, floor the lowest
// before the bottom entry; the first pass leaves each index's left base.
//
// A separate peak exactly as high as v[top] counts 0, like the top's own
// plateau: the shipped model was trained so. In all generated splits and
// the shared data such ties are rare (103 of 21,596 drags): in people's
// drags counting them would change the value by under 0.005; in a few
// machine drags with quantised speeds (ghost-cursor's randomised paths,
// WindMouse) by up to 0.33, toward a person's. Changing it needs a retrain.
//
// The buffers hold 256 grid samples (a drag of 4.1 s) on the stack; a
// longer drag allocates them.
func secondBump(v []float64, top int) float64 {
	n := len(v)
	var ibuf [256]int
	var fbuf [2 * 256]float64
	idx, seg, base := ibuf[:], fbuf[:256], fbuf[256:]
	if n > 256 {
		idx, seg, base = make([]int, n), make([]float64, n), make([]float64, n)
	}
	inf := math.Inf(1)
	best := 0.0
	for pass := range 2 {
		sp, floor := 0, inf
		for j := range n {
			i := j
			if pass == 1 {
				i = n - 1 - j
			}
			x := v[i]
			m := x
			for sp > 0 && v[idx[sp-1]] <= x {
				sp--
				m = min(m, v[idx[sp]], seg[sp])
			}
			if sp > 0 {
				seg[sp-1] = min(seg[sp-1], m)
				m = min(m, seg[sp-1])
			} else {
				m = min(m, floor)
				floor = m
			}
			idx[sp], seg[sp] = i, inf
			sp++
			if pass == 0 {
				base[i] = m
			} else if x < v[top] && i > 0 && i < n-1 && x >= v[i-1] && x >= v[i+1] {
				best = max(best, x-max(base[i], m))
			}
		}
	}
	return best
}
