package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

var (
	extraFlag = flag.String("extra", "", "devcheck: candidate inputs computed here, comma-separated (see extraInputs)")
	dropFlag  = flag.String("drop", "", "devcheck: shipped inputs to withhold from the model, comma-separated")
	seedsFlag = flag.String("seeds", "1,2,3", "devcheck: training seeds")
	unseenDir = flag.String("unseen", "", "devcheck: a gen.js --standin (DIR/standin) or --variety (DIR/dev) generation whose eased drags are scored, not trained on (but see -train-standin)")
	refCap    = flag.Float64("cap", 0.98, "devcheck: the refusal line's cap (the shipped rule clamps to [0.5, 0.98])")
	refQ      = flag.Float64("q", 0.995, "devcheck: the people's quantile the line is set at (shipped: 0.995)")
	trainSI   = flag.String("train-standin", "", "train on -unseen's stand-in drags as a family (sharp_eased): all, or A / B — one half of its easing groups × timing styles, the other half then scored as unseen (noneA / noneB: the same halves scored, nothing trained)")
)

// The stand-in's halves for -train-standin A / B: easing groups (the
// library's own points re-timed count as one) and timing styles (frames
// as one). Half A trains on A's groups at A's styles and is judged on B's
// groups at B's styles, and the other way round.
var (
	siGroupsA = map[string]bool{"s_inoutpow": true, "s_beta": true, "s_logistic": true}
	siStylesA = map[string]bool{"lognormal": true, "gauss": true, "raf": true}
)

// standinHalf is the half of the stand-in a drag belongs to: "A", "B" or
// "" (a mixed cell, in neither).
func standinHalf(d drag) string {
	ga, sa := siGroupsA[d.easing], siStylesA[d.intervals]
	switch {
	case ga && sa:
		return "A"
	case !ga && !sa:
		return "B"
	}
	return ""
}

// checkStandinFlags stops a -train-standin run that would not read the
// stand-in. It runs before any command: devcheck and calibcheck silence
// stderr while they build the data, so a later fatal would exit unexplained.
func checkStandinFlags() {
	switch *trainSI {
	case "":
		return
	case "all", "A", "B", "noneA", "noneB":
	default:
		fatal(fmt.Errorf("-train-standin %q: want all, A, B, noneA or noneB", *trainSI))
	}
	if *unseenDir == "" {
		fatal(fmt.Errorf("-train-standin needs -unseen DIR"))
	}
	// Without DIR/standin, standinDrags falls back to DIR/dev: the dev
	// eased families would be trained on a second time as sharp_eased.
	if st, err := os.Stat(filepath.Join(*unseenDir, "standin")); err != nil || !st.IsDir() {
		fatal(fmt.Errorf("-train-standin: no %s (node bench/trajectory/gen.js --standin --out %s)", filepath.Join(*unseenDir, "standin"), *unseenDir))
	}
}

// standinTrain is the part of the stand-in -train-standin trains on.
func standinTrain() []drag {
	if *trainSI == "" || strings.HasPrefix(*trainSI, "none") {
		return nil // noneA / noneB: scored on B / A, trained on neither
	}
	var out []drag
	for _, d := range standinDrags() {
		if *trainSI == "all" || standinHalf(d) == *trainSI {
			d.source = "sharp_eased"
			out = append(out, d)
		}
	}
	return out
}

var extras, dropped []string

func parseExp() {
	if *extraFlag != "" {
		extras = strings.Split(*extraFlag, ",")
		for _, e := range extras {
			if _, ok := extraFuncs[e]; !ok {
				fatal(fmt.Errorf("no candidate input %q (have %v)", e, extraNamesAll()))
			}
		}
	}
	if *dropFlag != "" {
		dropped = strings.Split(*dropFlag, ",")
	}
}

func extraNamesAll() []string {
	var n []string
	for k := range extraFuncs {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// inputNames are the model's input names: the shipped ones, then -extra.
func inputNames() []string {
	return append(append([]string(nil), trajectory.InputNames[:]...), extras...)
}

// row is a drag's model inputs: the shipped vector (with -drop inputs
// made missing) and the -extra candidates.
func row(t trajectory.Trajectory) []float64 {
	f := trajectory.Extract(t)
	v := f.Vector()
	out := make([]float64, 0, len(v)+len(extras))
	out = append(out, v[:]...)
	for _, d := range dropped {
		for j, n := range trajectory.InputNames {
			if n == d {
				out[j] = math.NaN()
			}
		}
	}
	if len(extras) > 0 {
		g := newGrid(t, f)
		for _, e := range extras {
			out = append(out, extraFuncs[e](g))
		}
	}
	return out
}

// devcheck judges a change of inputs on the development split at the
// shipped calibration rule, over several training seeds: for each seed,
// five folds (people by user) give out-of-fold probabilities; the refusal
// line is the shipped one (max over people's sources, augmented or not,
// of the 99.5th percentile, clamped to [0.5, cap]); reported are people
// refused and each machine family accepted out-of-fold at that line, and,
// with -unseen, the eased drags of a --variety generation (easings and
// timing styles the standard development sets lack) scored by the model
// trained on all development data — a development stand-in for held-out
// easings that no model is trained on.
func devcheck() {
	seeds := devSeeds()
	unseen, Xu := loadUnseen()
	named := map[string]bool{"quad": true, "cubic": true, "sine": true, "circ": true, "smoother": true, "outcubic": true, "": true}
	sums := map[string]float64{}
	var order []string
	add := func(k string, v float64) {
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += v
	}
	fmt.Printf("inputs: shipped%s%s\n", map[bool]string{true: " +" + *extraFlag}[*extraFlag != ""], map[bool]string{true: " -" + *dropFlag}[*dropFlag != ""])
	for _, sd := range seeds {
		*seed = sd
		rng := rand.New(rand.NewPCG(sd, 99))
		devnull, _ := os.Open(os.DevNull)
		stderr := os.Stderr
		os.Stderr = devnull
		data, nh, names := buildData(rng)
		os.Stderr = stderr
		X, y, w := inputs(data)
		oof := outOfFold(rng, data, X, y, w)
		perSrc := map[string][]float64{}
		for i, d := range data[:nh] {
			perSrc[d.source] = append(perSrc[d.source], oof[i])
		}
		refuse := 0.0
		for _, v := range perSrc {
			refuse = math.Max(refuse, quantile(v, *refQ))
		}
		refuse = math.Min(*refCap, math.Max(0.5, refuse))
		fmt.Printf("seed %d: line %.4f", sd, refuse)
		add("line", refuse)
		for _, s := range []string{"balabit", "sapimouse", "balabit+aug", "sapimouse+aug"} {
			n := 0
			for _, p := range perSrc[s] {
				if p >= refuse {
					n++
				}
			}
			r := 100 * float64(n) / float64(max(1, len(perSrc[s])))
			add("people refused "+s, r)
		}
		acc := map[string][2]int{}
		for i, d := range data[nh:] {
			c := acc[d.source]
			c[1]++
			if oof[nh+i] < refuse {
				c[0]++
			}
			acc[d.source] = c
		}
		for _, k := range names {
			c := acc[k]
			a := 100 * float64(c[0]) / float64(max(1, c[1]))
			add("oof "+k, a)
			if k == "bezier_eased" || k == "ghostcursor_humantime" || k == "sigma_lognormal" || k == "ghostcursor_random" {
				fmt.Printf("  %s %.1f%%", k, a)
			}
		}
		if len(unseen) > 0 {
			final := fit(X, y, w, rng)
			grp := map[string][2]int{}
			for i, d := range unseen {
				p := predict(final, Xu[i])
				keys := []string{"unseen all", "unseen family " + d.source}
				if !named[d.easing] {
					keys = append(keys, "unseen easings", "unseen easing "+d.easing)
				}
				if d.intervals != "" && d.intervals != "lognormal" {
					keys = append(keys, "unseen timing", "unseen timing "+d.intervals)
				}
				for _, k := range keys {
					c := grp[k]
					c[1]++
					if p < refuse {
						c[0]++
					}
					grp[k] = c
				}
			}
			var gk []string
			for k := range grp {
				gk = append(gk, k)
			}
			sort.Strings(gk)
			for _, k := range gk {
				a := 100 * float64(grp[k][0]) / float64(grp[k][1])
				add(k, a)
				if k == "unseen easings" || k == "unseen timing" {
					fmt.Printf("  %s %.1f%%", k, a)
				}
			}
		}
		fmt.Println()
	}
	fmt.Printf("mean over %d seeds:\n", len(seeds))
	for _, k := range order {
		fmt.Printf("  %-40s %7.3f\n", k, sums[k]/float64(len(seeds)))
	}
}

// devSeeds are -seeds' training seeds.
func devSeeds() []uint64 {
	var seeds []uint64
	for _, s := range strings.Split(*seedsFlag, ",") {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fatal(err)
		}
		seeds = append(seeds, v)
	}
	return seeds
}

// loadUnseen reads -unseen's eased drags and their model inputs.
func loadUnseen() (unseen []drag, Xu [][]float64) {
	if *unseenDir == "" {
		return nil, nil
	}
	for _, d := range standinDrags() {
		switch half := strings.TrimPrefix(*trainSI, "none"); half {
		case "all":
			continue
		case "A", "B":
			if h := standinHalf(d); h == "" || h == half {
				continue
			}
		}
		unseen = append(unseen, d)
		Xu = append(Xu, row(d.t))
	}
	return unseen, Xu
}

// standinDrags are -unseen's eased drags: gen.js --standin writes
// DIR/standin (the stand-in for held-out eased drags), --variety DIR/dev.
func standinDrags() []drag {
	old := *genDir
	*genDir = *unseenDir
	split := "dev"
	if st, err := os.Stat(filepath.Join(*unseenDir, "standin")); err == nil && st.IsDir() {
		split = "standin"
	}
	u := loadFamilies(split)
	*genDir = old
	var out []drag
	for _, k := range []string{"bezier_eased", "ghostcursor_humantime", "eased_curve"} {
		out = append(out, u[k]...)
	}
	return out
}

// grid is a drag on the 16 ms grid, for the candidate inputs.
type grid struct {
	t      trajectory.Trajectory
	f      trajectory.Features
	xs, ys []float64 // positions every 16 ms (linear between events)
	dir    float64
	dist   float64
}

func newGrid(t trajectory.Trajectory, f trajectory.Features) *grid {
	g := &grid{t: t, f: f, dir: 1, dist: math.Max(1, math.Abs(f.NetX))}
	if f.NetX < 0 {
		g.dir = -1
	}
	g.xs, g.ys = trajectory.Resample(t, 16)
	return g
}

func smooth(v []float64) []float64 {
	n := len(v)
	if n == 0 {
		return nil
	}
	at := func(i int) float64 { return v[max(0, min(n-1, i))] }
	out := make([]float64, n)
	for i := range n {
		out[i] = (at(i-2) + 4*at(i-1) + 6*at(i) + 4*at(i+1) + at(i+2)) / 16
	}
	return out
}

// speeds is the smoothed speed on the grid (px per 16 ms).
func (g *grid) speeds() []float64 {
	if len(g.xs) < 6 {
		return nil
	}
	sp := make([]float64, len(g.xs)-1)
	for i := range sp {
		sp[i] = math.Hypot(g.xs[i+1]-g.xs[i], g.ys[i+1]-g.ys[i])
	}
	return smooth(sp)
}

// The candidates tried for v3 (trajectory/RESULTS.md). v3 took the
// primary sub-movement with a 15% valley (primary_reach, primary_time, in
// the trajectory package); the variants below are kept to re-run.
var extraFuncs = map[string]func(*grid) float64{
	// Two-thirds power law: slope and correlation of log speed on log
	// curvature (people ≈ −1/3; a path traversed under an easing does
	// not follow it).
	"pl_slope": func(g *grid) float64 { s, _ := powerLaw(g); return s },
	"pl_r":     func(g *grid) float64 { _, r := powerLaw(g); return r },
	// The speed profile over normalised time (64 samples), DCT energy
	// above the 6th / in the 3rd–10th coefficients, as a log share.
	"spec_hi":  func(g *grid) float64 { return specShare(g, 6, 64) },
	"spec_mid": func(g *grid) float64 { return specShare(g, 3, 11) },
	// The primary sub-movement: share of the distance and of the time
	// covered when the smoothed speed first falls to a valley under 30%
	// of its peak after the peak.
	"prim_frac":  func(g *grid) float64 { f, _ := primaryAt(g, 0.3); return f },
	"prim_t":     func(g *grid) float64 { _, t := primaryAt(g, 0.3); return t },
	"prim_frac5": func(g *grid) float64 { f, _ := primaryAt(g, 0.5); return f },
	"prim_t5":    func(g *grid) float64 { _, t := primaryAt(g, 0.5); return t },
	// The same on a speed smoothed twice more (~100 ms).
	"prim_frac_s": func(g *grid) float64 { f, _ := primaryOn(g, smooth(smooth(g.speeds())), 0.15); return f },
	"prim_t_s":    func(g *grid) float64 { _, t := primaryOn(g, smooth(smooth(g.speeds())), 0.15); return t },
	// After the primary: the largest later speed peak over the main one,
	// and the primary's deceleration time over its acceleration time.
	"corr_peak": func(g *grid) float64 {
		sp, im, j := afterPrimary(g, 0.3)
		if sp == nil {
			return math.NaN()
		}
		m := 0.0
		for _, v := range sp[j:] {
			m = math.Max(m, v)
		}
		return m / sp[im]
	},
	"sub_after": func(g *grid) float64 {
		sp, im, j := afterPrimary(g, 0.15)
		if sp == nil {
			return math.NaN()
		}
		h, n := 0.05*sp[im], 0.0
		rising, top, bottom := true, sp[j], sp[j]
		for _, v := range sp[j:] {
			if rising {
				if v > top {
					top = v
				} else if v < top-h {
					n++
					rising, bottom = false, v
				}
			} else if v < bottom {
				bottom = v
			} else if v > bottom+h {
				rising, top = true, v
			}
		}
		return n
	},
	"decel_ratio": func(g *grid) float64 {
		sp, im, j := afterPrimary(g, 0.3)
		if sp == nil {
			return math.NaN()
		}
		st := 0
		for st < im && sp[st] < 0.3*sp[im] {
			st++
		}
		return math.Log(float64(j-im+1) / float64(im-st+1))
	},
	// Where the smoothed speed peaks (the raw peak_at follows timing noise).
	"peak_sm": func(g *grid) float64 {
		sp := g.speeds()
		if sp == nil {
			return math.NaN()
		}
		im := 0
		for i, v := range sp {
			if v > sp[im] {
				im = i
			}
		}
		return (float64(im) + 0.5) / float64(len(sp))
	},
	// Moments of the speed profile as a distribution over normalised time.
	"speed_skew": func(g *grid) float64 { s, _ := moments(g); return s },
	"speed_kurt": func(g *grid) float64 { _, k := moments(g); return k },
	// Roughness of y as a function of x (2 px steps): a fixed curve
	// traversed under any timing is smooth in space.
	"y_of_x_rough": yOfXRough,
	// Speed fluctuation at ~100–500 ms (window ±15), relative.
	"midband_long": func(g *grid) float64 {
		sp := g.speeds()
		if len(sp) < 8 {
			return math.NaN()
		}
		var ss, mean float64
		for i := range sp {
			lo, hi := max(0, i-15), min(len(sp)-1, i+15)
			var w float64
			for k := lo; k <= hi; k++ {
				w += sp[k]
			}
			d := sp[i] - w/float64(hi-lo+1)
			ss += d * d
			mean += sp[i]
		}
		mean /= float64(len(sp))
		return math.Log(1e-4 + math.Sqrt(ss/float64(len(sp)))/math.Max(1e-9, mean))
	},
	// Lateral speed relative to the along-track speed, its coupling: the
	// correlation of |vy| with the speed (a fixed curve under an easing:
	// |vy| = |slope| · speed).
	"vy_corr": func(g *grid) float64 {
		if len(g.xs) < 10 {
			return math.NaN()
		}
		var a, b []float64
		for i := 1; i < len(g.xs); i++ {
			a = append(a, math.Abs(g.ys[i]-g.ys[i-1]))
			b = append(b, math.Abs(g.xs[i]-g.xs[i-1]))
		}
		return corr(smooth(a), smooth(b))
	},
}

func corr(a, b []float64) float64 {
	n := float64(len(a))
	var sa, sb, saa, sbb, sab float64
	for i := range a {
		sa, sb, saa, sbb, sab = sa+a[i], sb+b[i], saa+a[i]*a[i], sbb+b[i]*b[i], sab+a[i]*b[i]
	}
	va, vb := saa/n-(sa/n)*(sa/n), sbb/n-(sb/n)*(sb/n)
	if va <= 1e-12 || vb <= 1e-12 {
		return math.NaN()
	}
	return (sab/n - (sa/n)*(sb/n)) / math.Sqrt(va*vb)
}

func powerLaw(g *grid) (slope, r float64) {
	if len(g.xs) < 12 {
		return math.NaN(), math.NaN()
	}
	xs, ys := smooth(g.xs), smooth(g.ys)
	var lv, lk []float64
	maxV := 0.0
	for i := 1; i+1 < len(xs); i++ {
		maxV = math.Max(maxV, math.Hypot(xs[i+1]-xs[i-1], ys[i+1]-ys[i-1])/2)
	}
	for i := 1; i+1 < len(xs); i++ {
		vx, vy := (xs[i+1]-xs[i-1])/2, (ys[i+1]-ys[i-1])/2
		ax, ay := xs[i+1]-2*xs[i]+xs[i-1], ys[i+1]-2*ys[i]+ys[i-1]
		v := math.Hypot(vx, vy)
		if v < 0.2*maxV {
			continue
		}
		k := math.Abs(vx*ay-vy*ax) / (v * v * v)
		if k < 1e-5 {
			continue
		}
		lv, lk = append(lv, math.Log(v)), append(lk, math.Log(k))
	}
	if len(lv) < 8 {
		return math.NaN(), math.NaN()
	}
	c := corr(lk, lv)
	var mk, mv float64
	for i := range lk {
		mk += lk[i]
		mv += lv[i]
	}
	mk /= float64(len(lk))
	mv /= float64(len(lv))
	var skv, skk float64
	for i := range lk {
		skv += (lk[i] - mk) * (lv[i] - mv)
		skk += (lk[i] - mk) * (lk[i] - mk)
	}
	if skk == 0 {
		return math.NaN(), c
	}
	return skv / skk, c
}

// profile is the smoothed speed at n points of normalised time.
func profile(g *grid, n int) []float64 {
	sp := g.speeds()
	if len(sp) < 4 {
		return nil
	}
	out := make([]float64, n)
	for i := range n {
		x := (float64(i) + 0.5) / float64(n) * float64(len(sp)-1)
		j := min(len(sp)-2, int(x))
		fr := x - float64(j)
		out[i] = sp[j] + fr*(sp[j+1]-sp[j])
	}
	return out
}

func specShare(g *grid, lo, hi int) float64 {
	const n = 64
	p := profile(g, n)
	if p == nil {
		return math.NaN()
	}
	var tot, part float64
	for k := 1; k < n; k++ {
		var c float64
		for i, v := range p {
			c += v * math.Cos(math.Pi*float64(k)*(float64(i)+0.5)/n)
		}
		e := c * c
		tot += e
		if k >= lo && k < hi {
			part += e
		}
	}
	if tot == 0 {
		return math.NaN()
	}
	return math.Log(1e-6 + part/tot)
}

// primaryEnd finds the smoothed speed's peak and the first valley after it
// under frac of the peak (the end of the primary sub-movement; the last
// sample when there is none).
func primaryEnd(sp []float64, frac float64) (im, j int) {
	for i, v := range sp {
		if v > sp[im] {
			im = i
		}
	}
	j = len(sp) - 1
	for i := im + 1; i < len(sp)-1; i++ {
		if sp[i] < frac*sp[im] && sp[i] <= sp[i+1] {
			return im, i
		}
	}
	return im, j
}

// afterPrimary is primaryEnd on the smoothed speed (nil when too short).
func afterPrimary(g *grid, valley float64) (sp []float64, im, j int) {
	sp = g.speeds()
	if len(sp) < 4 {
		return nil, 0, 0
	}
	im, j = primaryEnd(sp, valley)
	return sp, im, j
}

func primaryAt(g *grid, valley float64) (frac, tfrac float64) {
	return primaryOn(g, g.speeds(), valley)
}

func primaryOn(g *grid, sp []float64, valley float64) (frac, tfrac float64) {
	if len(sp) < 4 {
		return math.NaN(), math.NaN()
	}
	_, j := primaryEnd(sp, valley)
	frac = g.dir * (g.xs[j+1] - g.xs[0]) / g.dist
	return frac, float64(j+1) / float64(len(sp))
}

func moments(g *grid) (skew, kurt float64) {
	p := profile(g, 64)
	if p == nil {
		return math.NaN(), math.NaN()
	}
	var s0, s1 float64
	for i, v := range p {
		u := (float64(i) + 0.5) / 64
		s0 += v
		s1 += v * u
	}
	if s0 == 0 {
		return math.NaN(), math.NaN()
	}
	mu := s1 / s0
	var m2, m3, m4 float64
	for i, v := range p {
		d := (float64(i)+0.5)/64 - mu
		m2 += v * d * d
		m3 += v * d * d * d
		m4 += v * d * d * d * d
	}
	m2, m3, m4 = m2/s0, m3/s0, m4/s0
	if m2 == 0 {
		return math.NaN(), math.NaN()
	}
	return m3 / math.Pow(m2, 1.5), m4 / (m2 * m2)
}

func yOfXRough(g *grid) float64 {
	t := g.t
	// y at even steps of progress (2 px), from the events, ignoring
	// backward steps.
	var ys []float64
	next := 0.0
	for i := 1; i < len(t); i++ {
		a, b := g.dir*(t[i-1].X-t[0].X), g.dir*(t[i].X-t[0].X)
		for b > a && next <= b {
			if next >= a {
				fr := (next - a) / (b - a)
				ys = append(ys, t[i-1].Y+fr*(t[i].Y-t[i-1].Y))
			}
			next += 2
		}
	}
	if len(ys) < 10 {
		return math.NaN()
	}
	var e1, e2 float64
	for i := 1; i < len(ys); i++ {
		d := ys[i] - ys[i-1]
		e1 += d * d
		if i >= 2 {
			d2 := d - (ys[i-1] - ys[i-2])
			e2 += d2 * d2
		}
	}
	if e1 == 0 {
		return math.NaN()
	}
	return math.Log(e2 / e1)
}

// Candidates tried for v4 on the stand-in (gen.js --standin): what a
// smooth curve traversed under an easing cannot show, however it is timed
// — corrective sub-movements and an irregular decay. v4 took the largest
// secondary bump (second_bump, in the trajectory package).
func init() {
	// Unimodality excess: the smoothed speed's total variation over twice
	// its peak, less 1 (0 for one bell; a hand's corrections add to it).
	extraFuncs["tv_excess"] = func(g *grid) float64 {
		sp := smooth(g.speeds())
		if len(sp) < 6 {
			return math.NaN()
		}
		m, tv := 0.0, 0.0
		for i, v := range sp {
			m = math.Max(m, v)
			if i > 0 {
				tv += math.Abs(v - sp[i-1])
			}
		}
		if m == 0 {
			return math.NaN()
		}
		return math.Log(1e-3 + math.Max(0, tv/(2*m)-1))
	}
	// The decay's power law: R² of log speed on log time-to-the-last-move
	// from the peak down to 3% of it (an eased curve's tail is a power or
	// exponential law; a hand's homing is not).
	extraFuncs["tail_r2"] = func(g *grid) float64 { _, r := tailFit(g); return r }
	extraFuncs["tail_slope"] = func(g *grid) float64 { s, _ := tailFit(g); return s }
}

func tailFit(g *grid) (slope, r2 float64) {
	sp := g.speeds()
	if len(sp) < 8 {
		return math.NaN(), math.NaN()
	}
	im := 0
	for i, v := range sp {
		if v > sp[im] {
			im = i
		}
	}
	last := len(sp) - 1
	for last > im && sp[last] < 0.03*sp[im] {
		last--
	}
	var a, b []float64
	for i := im; i <= last; i++ {
		if sp[i] <= 0 {
			continue
		}
		a = append(a, math.Log(float64(last+1-i)))
		b = append(b, math.Log(sp[i]/sp[im]))
	}
	if len(a) < 5 {
		return math.NaN(), math.NaN()
	}
	c := corr(a, b)
	var ma, mb float64
	for i := range a {
		ma, mb = ma+a[i], mb+b[i]
	}
	ma, mb = ma/float64(len(a)), mb/float64(len(b))
	var sab, saa float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
	}
	if saa == 0 {
		return math.NaN(), c * c
	}
	return sab / saa, c * c
}
