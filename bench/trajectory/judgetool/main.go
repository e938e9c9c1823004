// Command judgetool trains trajectory's judge and measures it.
//
//	node bench/trajectory/gen.js                     # the generated sets, bench/trajectory/out
//	bench/lab trajectory/judgetool train             # writes trajectory/judge_model.json
//	bench/lab trajectory/judgetool eval              # per-family acceptance and the ROC
//	bench/lab trajectory/judgetool sample            # trajectory/testdata/generated/*.jsonl
//	bench/lab trajectory/judgetool lofo              # dev: left-out easing families / timing styles
//	bench/lab trajectory/judgetool stats INPUT       # dev: an input's quantiles per source and family
//	bench/lab trajectory/judgetool -unseen DIR devcheck  # dev: an input change at the shipped line, over seeds
//	SPLIT=fresh bench/lab trajectory/judgetool eval  # the fresh split (node gen.js --fresh), once per judge
//	bench/lab trajectory/judgetool -unseen DIR calibcheck  # dev: calibration rules compared, over seeds
//	bench/lab trajectory/judgetool -rule q0.99 train  # another calibration rule (shipped: q0.995)
//	SPLIT=fresh2 bench/lab trajectory/judgetool eval # the fourth split (node gen.js --fresh2), once per decision
//	SPLIT=fresh3 bench/lab trajectory/judgetool eval # the fifth split (node gen.js --fresh3), once per decision
//	SPLIT=fresh4 bench/lab trajectory/judgetool eval # the sixth split (node gen.js --fresh4), once per decision
//	bench/lab trajectory/judgetool -unseen /tmp/standin -q 0.99 devcheck  # dev stand-in (node gen.js --standin --out /tmp/standin)
//	bench/lab trajectory/judgetool -unseen /tmp/standin -train-standin A devcheck  # dev: train on half the stand-in, score the other half
//
// (from the repository root: the default paths are relative to it)
//
// Training uses only the development split: people from dev users
// (split.js's rule) with augmentations (slide-bar straightness, a loaded
// client's dropped and batched events, other speeds), the simple scripted
// drags of ../shared/data and scripted forms made here, and the dev
// generated families. Thresholds are set on out-of-fold probabilities of
// dev people (5 folds by user), never on held-out data.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

var (
	genDir   = flag.String("gen", "bench/trajectory/out", "generated sets (dev/, heldout/)")
	shared   = flag.String("shared", "../shared/data", "the shared development data")
	modelOut = flag.String("model", "trajectory/judge_model.json", "model file to write")
	tag      = flag.String("tag", "", "train: a letter after the version's number (v6b), for a second candidate of one version")
	rounds   = flag.Int("rounds", 250, "boosting rounds")
	depth    = flag.Int("depth", 3, "tree depth")
	seed     = flag.Uint64("seed", 1, "training seed")
)

type drag struct {
	t      trajectory.Trajectory
	source string // family, or human source
	user   string
	label  float64 // 1 machine
	w      float64
	group  int // fold group
	// easing and intervals: the generator's easing family and timing
	// style, where it records them (development eased families), for
	// judgetool lofo.
	easing, intervals string
}

func readJSONL(path string) ([]map[string]json.RawMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func toTraj(m map[string]json.RawMessage) (trajectory.Trajectory, error) {
	var pts [][]float64
	if err := json.Unmarshal(m["points"], &pts); err != nil {
		return nil, err
	}
	return trajectory.FromArrays(pts)
}

func str(m map[string]json.RawMessage, k string) string {
	var s string
	json.Unmarshal(m[k], &s)
	return s
}

var digits = regexp.MustCompile(`\d+`)

// heldOutUser is split.js's rule.
func heldOutUser(source, user string) bool {
	if source == "balabit" {
		return user == "user21" || user == "user29"
	}
	n, _ := strconv.Atoi(digits.FindString(user))
	return n%3 == 0
}

func loadHumans(heldout bool) []drag {
	rows, err := readJSONL(filepath.Join(*shared, "human_drags_dev.jsonl"))
	if err != nil {
		fatal(err)
	}
	var out []drag
	for _, m := range rows {
		src, user := str(m, "source"), str(m, "user")
		if heldOutUser(src, user) != heldout {
			continue
		}
		t, err := toTraj(m)
		if err != nil {
			continue
		}
		out = append(out, drag{t: t, source: src, user: user})
	}
	return out
}

func loadFamilies(split string) map[string][]drag {
	files, _ := filepath.Glob(filepath.Join(*genDir, split, "*.jsonl"))
	out := map[string][]drag{}
	for _, fn := range files {
		fam := strings.TrimSuffix(filepath.Base(fn), ".jsonl")
		rows, err := readJSONL(fn)
		if err != nil {
			fatal(err)
		}
		for _, m := range rows {
			if t, err := toTraj(m); err == nil {
				var st struct{ Easing, Group, Intervals string }
				json.Unmarshal(m["settings"], &st)
				if st.Group == "" {
					st.Group = st.Easing
				}
				out[fam] = append(out[fam], drag{t: t, source: fam, label: 1, easing: st.Group, intervals: st.Intervals})
			}
		}
	}
	return out
}

func loadScriptedShared() map[string][]drag {
	out := map[string][]drag{}
	for _, name := range []string{"linear_fast_50ms", "linear_slow_800ms", "linear_jitter", "smoothstep_16ms"} {
		rows, err := readJSONL(filepath.Join(*shared, name+"_dev.jsonl"))
		if err != nil {
			fatal(err)
		}
		for _, m := range rows {
			if t, err := toTraj(m); err == nil {
				out["scripted_"+name] = append(out["scripted_"+name], drag{t: t, source: "scripted_" + name, label: 1})
			}
		}
	}
	return out
}

// scripted makes the simple scripted forms with settings of its own:
// constant speed or eased, even or jittered sampling, y fixed or noisy.
func scripted(rng *rand.Rand, n int) []drag {
	var out []drag
	for range n {
		dist, dur := 150+250*rng.Float64(), 200+1300*rng.Float64()
		step := []float64{1000.0 / 60, 8.33, 10, 16, 20, 33}[rng.IntN(6)]
		jit := []float64{0, 0, 1, 3, 6}[rng.IntN(5)]
		yn := []float64{0, 0, 0.5, 1.5, 3}[rng.IntN(5)]
		form := rng.IntN(4)
		var t trajectory.Trajectory
		for at := 0.0; ; {
			u := math.Min(1, at/dur)
			var x float64
			switch form {
			case 0:
				x = u
			case 1:
				x = 3*u*u - 2*u*u*u
			case 2:
				x = math.Sin(u * math.Pi / 2)
			default:
				x = 1 - (1-u)*(1-u)
			}
			y := 0.0
			if at > 0 {
				y = yn * rng.NormFloat64()
			}
			t = append(t, trajectory.Point{X: dist * x, Y: y, T: at})
			if at >= dur {
				break
			}
			at = math.Min(dur, at+math.Max(1, step+jit*rng.NormFloat64()))
		}
		out = append(out, drag{t: t, source: "scripted_own", label: 1})
	}
	return out
}

// damage delivers a drag as a loaded client (or a script imitating one)
// would: events dropped, batched onto one timestamp, delayed. Machines get
// it too, so that batched timestamps, Balabit's remote-desktop trait, are
// no sign of a person.
func damage(rng *rand.Rand, d drag) drag {
	in := d.t
	drop, batch, jit := 0.3*rng.Float64(), 0.3*rng.Float64(), 3*rng.Float64()
	out := trajectory.Trajectory{in[0]}
	for i := 1; i < len(in); i++ {
		p := in[i]
		if i < len(in)-1 && len(in) >= 12 && rng.Float64() < drop {
			continue
		}
		tt := p.T + jit*rng.Float64()
		if rng.Float64() < batch {
			tt = out[len(out)-1].T
		}
		p.T = math.Max(out[len(out)-1].T, math.Round(tt*10)/10)
		out = append(out, p)
	}
	d.t = out
	return d
}

// augment makes variants of a person's drag that people on other devices
// produce: a slide bar's straighter path, a loaded client's dropped,
// batched and late events, another speed.
func augment(rng *rand.Rand, d drag) drag {
	in := d.t
	integer := true
	for _, p := range in {
		if p.X != math.Round(p.X) || p.Y != math.Round(p.Y) {
			integer = false
			break
		}
	}
	ys := 1.0
	if rng.Float64() < 0.6 {
		ys = 0.4 * rng.Float64()
	}
	ts := 1.0
	if rng.Float64() < 0.5 {
		ts = 0.7 + 0.7*rng.Float64()
	}
	drop, batch, jit := 0.0, 0.0, 0.0
	if rng.Float64() < 0.5 && len(in) >= 12 {
		drop, batch, jit = 0.25*rng.Float64(), 0.2*rng.Float64(), 2*rng.Float64()
	}
	out := trajectory.Trajectory{in[0]}
	for i := 1; i < len(in); i++ {
		p := in[i]
		if i < len(in)-1 && rng.Float64() < drop {
			continue
		}
		y := p.Y * ys
		if integer {
			y = math.Round(y)
		}
		tt := p.T*ts + jit*rng.Float64()
		if batch > 0 && rng.Float64() < batch {
			tt = out[len(out)-1].T
		}
		tt = math.Max(out[len(out)-1].T, math.Round(tt*10)/10)
		out = append(out, trajectory.Point{X: p.X, Y: y, T: tt})
	}
	d.t = out
	d.source += "+aug"
	return d
}

// resampleAt re-samples a 60 Hz person's drag at another device's rate
// (60–240 Hz, jittered, Catmull-Rom between the recorded points, the
// press and release kept): what a faster mouse, a trackpad or coalesced
// events would have reported of the same hand movement.
func resampleAt(rng *rand.Rand, d drag) drag {
	in := d.t
	hz := []float64{60, 90, 120, 125, 144, 240}[rng.IntN(6)]
	step, jit := 1000/hz, []float64{0.02, 0.1, 0.3, 1}[rng.IntN(4)]
	grid := []float64{0, 1, 0.5}[rng.IntN(3)]
	q := func(v float64) float64 {
		if grid == 0 {
			return math.Round(v*1000) / 1000
		}
		return math.Round(v/grid) * grid
	}
	at := func(tt float64) (float64, float64) {
		j := sort.Search(len(in), func(k int) bool { return in[k].T > tt }) - 1
		j = max(0, min(len(in)-2, j))
		p0, p1, p2, p3 := in[max(0, j-1)], in[j], in[j+1], in[min(len(in)-1, j+2)]
		u := 0.0
		if p2.T > p1.T {
			u = (tt - p1.T) / (p2.T - p1.T)
		}
		cr := func(a, b, c, e float64) float64 {
			return 0.5 * (2*b + (-a+c)*u + (2*a-5*b+4*c-e)*u*u + (-a+3*b-3*c+e)*u*u*u)
		}
		return cr(p0.X, p1.X, p2.X, p3.X), cr(p0.Y, p1.Y, p2.Y, p3.Y)
	}
	T := in[len(in)-1].T
	out := trajectory.Trajectory{in[0]}
	for tt := in[1].T; tt < T; tt += step + jit*rng.NormFloat64() {
		x, y := at(tt)
		out = append(out, trajectory.Point{X: q(x), Y: q(y), T: math.Max(out[len(out)-1].T, math.Round(tt*10)/10)})
	}
	out = append(out, in[len(in)-1])
	d.t = out
	d.source += "+aug"
	return d
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	flag.Parse()
	parseExp()
	checkStandinFlags()
	if flag.NArg() < 1 {
		fatal(fmt.Errorf("usage: judgetool [flags] train|eval|sample|dump FILE|lofo|stats INPUT|devcheck|calibcheck"))
	}
	switch flag.Arg(0) {
	case "train":
		train()
	case "eval":
		eval()
	case "sample":
		sample()
	case "dump":
		dump(flag.Arg(1))
	case "lofo":
		lofo()
	case "stats":
		stats(flag.Arg(1))
	case "devcheck":
		devcheck()
	case "calibcheck":
		calibcheck()
	default:
		fatal(fmt.Errorf("unknown command %q", flag.Arg(0)))
	}
}

func train() {
	rng := rand.New(rand.NewPCG(*seed, 99))
	data, nh, names := buildData(rng)
	X, y, w := inputs(data)
	trainRest(rng, data, nh, names, X, y, w)
}

// inputs extracts the model inputs, labels and weights of drags.
func inputs(data []drag) (X [][]float64, y, w []float64) {
	X = make([][]float64, len(data))
	y, w = make([]float64, len(data)), make([]float64, len(data))
	for i, d := range data {
		X[i] = row(d.t)
		y[i], w[i] = d.label, d.w
	}
	return X, y, w
}

// buildData assembles the development training set: dev people with their
// augmentations, then the machine families (dev generated, shared
// scripted, own scripted forms), weighted and given fold groups.
func buildData(rng *rand.Rand) (data []drag, nh int, names []string) {
	humans := loadHumans(false)
	users := map[string]int{}
	for _, h := range humans {
		k := h.source + "/" + h.user
		if _, ok := users[k]; !ok {
			users[k] = len(users)
		}
	}
	// Folds by user; Balabit's few users each spread over folds by drag
	// would leak, so each Balabit user is one group and the SapiMouse
	// users are spread round-robin.
	bySource := map[string]float64{}
	for _, h := range humans {
		h.group = users[h.source+"/"+h.user] % 5
		data = append(data, h)
		bySource[h.source]++
		for k := range 3 {
			if k == 0 && h.source == "sapimouse" {
				data = append(data, resampleAt(rng, h))
				continue
			}
			data = append(data, augment(rng, h))
		}
	}
	// People: each source half the human weight (originals and
	// augmentations alike).
	for i := range data {
		data[i].w = 0.5 / (4 * bySource[strings.TrimSuffix(data[i].source, "+aug")])
	}
	nh = len(data)
	fams := loadFamilies("dev")
	for k, v := range loadScriptedShared() {
		fams[k] = v
	}
	fams["scripted_own"] = scripted(rng, 600)
	if si := standinTrain(); len(si) > 0 {
		fams["sharp_eased"] = si
	}
	famW := map[string]float64{"replay": 0.5}
	var totalFam float64
	for k := range fams {
		w, ok := famW[k]
		if !ok {
			w = 1
		}
		famW[k] = w
		totalFam += w
	}
	names = make([]string, 0, len(fams))
	for k := range fams {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		var ds []drag
		for _, d := range fams[k] {
			ds = append(ds, d)
			if rng.Float64() < 0.35 {
				ds = append(ds, damage(rng, d))
			}
		}
		for i, d := range ds {
			d.w = famW[k] / totalFam / float64(len(ds))
			d.group = i % 5
			data = append(data, d)
		}
		fmt.Fprintf(os.Stderr, "%-32s %d\n", k, len(fams[k]))
	}
	fmt.Fprintf(os.Stderr, "people (with augmentations) %d, machines %d\n", nh, len(data)-nh)
	return data, nh, names
}

func trainRest(rng *rand.Rand, data []drag, nh int, names []string, X [][]float64, y, w []float64) {
	if len(extras) > 0 {
		fatal(fmt.Errorf("train: -extra inputs are for devcheck; add them to the trajectory package first"))
	}

	// Out-of-fold probabilities for calibration.
	oof := outOfFold(rng, data, X, y, w)
	// Refuse: the 99.5th percentile of the worse human source's original
	// (unaugmented) out-of-fold drags, and no lower than the 99.5th of
	// augmented ones; Clean: the 85th percentile of all people.
	var ps []float64
	perSrc := map[string][]float64{}
	for i, d := range data[:nh] {
		perSrc[d.source] = append(perSrc[d.source], oof[i])
		if !strings.HasSuffix(d.source, "+aug") {
			ps = append(ps, oof[i])
		}
	}
	for s, v := range perSrc {
		fmt.Fprintf(os.Stderr, "oof people %-16s p50 %.4f p95 %.4f p99 %.4f p99.5 %.4f\n", s, quantile(v, 0.5), quantile(v, 0.95), quantile(v, 0.99), quantile(v, 0.995))
	}
	refuse := refuseLine(*ruleFlag, perSrc, 0.98)
	clean := math.Min(refuse/2, math.Max(0.02, quantile(ps, 0.85)))
	final := fit(X, y, w, rng)
	final.Refuse, final.Clean = refuse, clean
	final.Version = "v4-gbdt-" + time()
	final.Calibration = fmt.Sprintf("out-of-fold (5 folds by user) on dev people: refuse = max over sources (and augmentations) of the 99.5th percentile = %.4f; clean = 85th percentile of people = %.4f", refuse, clean)
	gen, flags := "node bench/trajectory/gen.js", fmt.Sprintf("-rounds %d -depth %d -seed %d", *rounds, *depth, *seed)
	if *trainSI != "" {
		// The stand-in's eased drags as a training family (sharp_eased).
		final.Version += "-sharp"
		gen += " && node bench/trajectory/gen.js --standin --out " + *unseenDir
		flags += fmt.Sprintf(" -unseen %s -train-standin %s", *unseenDir, *trainSI)
	}
	if *ruleFlag != "q0.995" {
		final.Version += "-" + *ruleFlag
		final.Calibration = fmt.Sprintf("out-of-fold (5 folds by user) on dev people: refuse = rule %s over sources (and augmentations) = %.4f; clean = min(refuse/2, 85th percentile of people) = %.4f", *ruleFlag, refuse, clean)
		flags += " -rule " + *ruleFlag
	}
	for _, k := range names {
		if strings.HasPrefix(k, "browser_") {
			// Machine drags as Chromium delivers them (bench/trajectory/browser.sh
			// dev): v5's change over v4.
			final.Version = "v5" + strings.TrimPrefix(final.Version, "v4") + "-browser"
			gen += " && bench/trajectory/browser.sh dev"
			break
		}
	}
	// v6's change over v5: a library v5 never saw (ghost-cursor-playwright),
	// and machine drags through a browser on a loaded machine (LOAD=2,
	// families browser_<kind>load).
	var loaded []string
	for _, k := range names {
		base, isLoaded := strings.CutSuffix(k, "load")
		kind, isBrowser := browserKinds[strings.TrimPrefix(base, "browser_")]
		if isLoaded && isBrowser && strings.HasPrefix(k, "browser_") {
			loaded = append(loaded, kind)
		}
	}
	if len(loaded) > 0 {
		final.Version = "v6" + *tag + strings.TrimPrefix(final.Version, "v5") + "-load"
		if slices.Contains(names, "browser_ghostcursorplaywright") {
			gen += " && KINDS=ghost-cursor-playwright bench/trajectory/browser.sh dev"
		}
		gen += fmt.Sprintf(" && LOAD=2 KINDS=%q bench/trajectory/browser.sh dev", strings.Join(loaded, " "))
		if *tag != "" {
			flags += " -tag " + *tag
		}
	}
	final.Training = gen + " && bench/lab trajectory/judgetool " + flags + " train"
	for _, s := range []string{"sapimouse", "balabit", "sapimouse+aug", "balabit+aug"} {
		n := 0
		for _, p := range perSrc[s] {
			if p >= refuse {
				n++
			}
		}
		fmt.Fprintf(os.Stderr, "oof people refused %-16s %5.2f%%\n", s, 100*float64(n)/float64(max(1, len(perSrc[s]))))
	}
	famOOF := map[string][2]int{}
	for i, d := range data[nh:] {
		c := famOOF[d.source]
		c[1]++
		if oof[nh+i] < refuse {
			c[0]++
		}
		famOOF[d.source] = c
	}
	// The same at thresholds less noisy than the 99.5th percentile: the
	// 99th and 98th of the original people's out-of-fold probabilities.
	t99, t98 := quantile(ps, 0.99), quantile(ps, 0.98)
	for _, k := range names {
		c := famOOF[k]
		var a99, a98, n int
		for i, d := range data[nh:] {
			if d.source == k {
				n++
				if oof[nh+i] < t99 {
					a99++
				}
				if oof[nh+i] < t98 {
					a98++
				}
			}
		}
		fmt.Fprintf(os.Stderr, "oof accepted %-30s %5.1f%%  (at people's p99 %5.1f%%, p98 %5.1f%%)\n", k, 100*float64(c[0])/float64(c[1]),
			100*float64(a99)/float64(n), 100*float64(a98)/float64(n))
	}
	fmt.Fprintf(os.Stderr, "refuse %.4f, people's p99 %.4f, p98 %.4f\n", refuse, t99, t98)
	b, err := json.Marshal(final)
	if err != nil {
		fatal(err)
	}
	if err := os.WriteFile(*modelOut, append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d trees, %d bytes\n", *modelOut, len(final.Trees), len(b))
}

// outOfFold gives each drag the probability of the model trained on the
// other four fold groups.
func outOfFold(rng *rand.Rand, data []drag, X [][]float64, y, w []float64) []float64 {
	oof := make([]float64, len(data))
	for k := range 5 {
		var tx [][]float64
		var ty, tw []float64
		for i, d := range data {
			if d.group != k {
				tx, ty, tw = append(tx, X[i]), append(ty, y[i]), append(tw, w[i])
			}
		}
		m := fit(tx, ty, tw, rng)
		for i, d := range data {
			if d.group == k {
				oof[i] = predict(m, X[i])
			}
		}
	}
	return oof
}

func time() string {
	return strconv.Itoa(*rounds) + "x" + strconv.Itoa(*depth) + "-s" + strconv.FormatUint(*seed, 10)
}

func quantile(v []float64, q float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// browserKinds maps a browser family's name (bench/trajectory/browser.sh
// writes browser_<kind without dashes>[load].jsonl) back to collect.js's kind.
var browserKinds = map[string]string{
	"ghostcursor":           "ghost-cursor",
	"ghostcursorrandom":     "ghost-cursor-random",
	"ghostcursorplaywright": "ghost-cursor-playwright",
	"windmouse":             "windmouse",
	"bezier":                "bezier",
	"minjerk":               "minjerk",
}
