package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

type scored struct {
	score float64
	p     float64
}

func scoreAll(ds []drag) []scored {
	out := make([]scored, len(ds))
	m := trajectory.JudgeModel()
	for i, d := range ds {
		r := trajectory.Score(d.t)
		f := r.Features.Vector()
		out[i] = scored{r.Score, m.Prob(&f, nil)}
	}
	return out
}

func accepted(s []scored) float64 {
	n := 0
	for _, x := range s {
		if x.score < trajectory.Refuse {
			n++
		}
	}
	return float64(n) / float64(max(1, len(s)))
}

func refusedAt(s []scored, thr float64) float64 {
	n := 0
	for _, x := range s {
		if x.score >= thr {
			n++
		}
	}
	return float64(n) / float64(max(1, len(s)))
}

// auc of machines' scores over people's (ties count half).
func auc(people, machines []scored) float64 {
	var a float64
	for _, m := range machines {
		for _, p := range people {
			switch {
			case m.score > p.score:
				a++
			case m.score == p.score:
				a += 0.5
			}
		}
	}
	return a / float64(len(people)*len(machines))
}

var thresholds = []float64{10, 20, 30, 40, 50, 60, 70, 80, 90}

func eval() {
	split := "heldout"
	if flag := os.Getenv("SPLIT"); flag != "" {
		split = flag
	}
	fmt.Printf("model %s; split %s\n\n", trajectory.JudgeModel().Version, split)
	// People: the held-out users for every held-out split (there are no
	// others); the fresh splits augment and re-sample them anew.
	humans := loadHumans(split != "dev")
	groups := map[string][]drag{}
	for _, h := range humans {
		groups["people: "+h.source] = append(groups["people: "+h.source], h)
	}
	// People as a slide bar and a loaded client deliver them.
	rng := rand.New(rand.NewPCG(4242, 1))
	switch split {
	case "fresh":
		rng = rand.New(rand.NewPCG(3003, 1))
	case "fresh2":
		rng = rand.New(rand.NewPCG(4004, 1))
	case "fresh3":
		rng = rand.New(rand.NewPCG(5005, 1))
	case "fresh4":
		rng = rand.New(rand.NewPCG(6006, 1))
	}
	for _, h := range humans {
		groups["people: all, augmented"] = append(groups["people: all, augmented"], augment(rng, h))
	}
	for _, h := range humans {
		if h.source == "sapimouse" {
			groups["people: sapimouse, re-sampled 60–240 Hz"] = append(groups["people: sapimouse, re-sampled 60–240 Hz"], resampleAt(rng, h))
		}
	}
	var people []drag
	for _, h := range humans {
		people = append(people, h)
	}
	fams := loadFamilies(split)
	for k, v := range loadScriptedShared() {
		fams[k] = v
	}
	srng := rand.New(rand.NewPCG(777, 7))
	switch split {
	case "dev":
		srng = rand.New(rand.NewPCG(1, 99))
	case "fresh":
		srng = rand.New(rand.NewPCG(3003, 3))
	case "fresh2":
		srng = rand.New(rand.NewPCG(4004, 3))
	case "fresh3":
		srng = rand.New(rand.NewPCG(5005, 3))
	}
	fams["scripted_own"] = scripted(srng, 400)
	ps := scoreAll(people)
	fmt.Printf("| family | n | accepted | AUC vs people |")
	for _, t := range thresholds {
		fmt.Printf(" refused@%.0f |", t)
	}
	fmt.Printf("\n|---|---|---|---|%s\n", strings.Repeat("---|", len(thresholds)))
	row := func(name string, s []scored, isPeople bool) {
		a := "–"
		if !isPeople {
			a = fmt.Sprintf("%.3f", auc(ps, s))
		}
		fmt.Printf("| %s | %d | %.1f%% | %s |", name, len(s), 100*accepted(s), a)
		for _, t := range thresholds {
			fmt.Printf(" %.1f%% |", 100*refusedAt(s, t))
		}
		fmt.Println()
	}
	row("people: all", ps, true)
	var gnames []string
	for k := range groups {
		gnames = append(gnames, k)
	}
	sort.Strings(gnames)
	for _, k := range gnames {
		row(k, scoreAll(groups[k]), true)
	}
	var names []string
	for k := range fams {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		row(k, scoreAll(fams[k]), false)
	}
	// Reasons people were refused for.
	reasons := map[string]int{}
	for _, h := range append(append([]drag(nil), people...), groups["people: all, augmented"]...) {
		r := trajectory.Score(h.t)
		if !r.Accepted() {
			for _, x := range r.Reasons {
				d := x.Detail
				if i := strings.Index(d, "("); i >= 0 {
					d = d[i:]
				}
				reasons[x.Name+" "+d]++
			}
		}
	}
	if len(reasons) > 0 {
		fmt.Println("\npeople refused (as recorded and augmented), and why:")
		for k, v := range reasons {
			fmt.Printf("  %d× %s\n", v, k)
		}
	}
}

// sample writes 50 held-out drags per generated family (not the replays,
// which are people's drags) and 200 of the scripted forms to
// trajectory/testdata/generated for the tests.
func sample() {
	out := "trajectory/testdata/generated"
	os.MkdirAll(out, 0o755)
	fams := loadFamilies("heldout")
	delete(fams, "replay")
	fams["scripted_own"] = scripted(rand.New(rand.NewPCG(777, 7)), 200)
	for k, ds := range fams {
		f, err := os.Create(filepath.Join(out, k+".jsonl"))
		if err != nil {
			fatal(err)
		}
		n := 50
		if k == "scripted_own" {
			n = 200 // the target is 1%: 50 could not show it
		}
		for _, d := range ds[:min(n, len(ds))] {
			pts := make([][3]float64, len(d.t))
			for i, p := range d.t {
				pts[i] = [3]float64{round2(p.X), round2(p.Y), round2(p.T)}
			}
			b, _ := json.Marshal(map[string]any{"generator": k, "points": pts})
			f.Write(append(b, '\n'))
		}
		f.Close()
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// dump prints each drag's score, probability and reasons, with the
// generator's settings, for a JSONL file.
func dump(fn string) {
	rows, err := readJSONL(fn)
	if err != nil {
		fatal(err)
	}
	for _, m := range rows {
		t, err := toTraj(m)
		if err != nil {
			fmt.Println("invalid", err)
			continue
		}
		r := trajectory.Score(t)
		var why []string
		for _, x := range r.Reasons {
			why = append(why, x.Name+" "+x.Detail)
		}
		fmt.Printf("%5.1f %d %.1f %s %s\n", r.Score, len(t), r.Features.MedianInterval, m["settings"], strings.Join(why, "; "))
	}
}
