package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
)

var (
	rulesFlag = flag.String("rules", "q0.995,q0.99,q0.985,q0.98,cp0.02,cp0.015", "calibcheck: calibration rules to compare (see refuseLine)")
	ruleFlag  = flag.String("rule", "q0.995", "train: the calibration rule of the refusal line (see refuseLine; shipped q0.995)")
)

// peopleSources are the people's sources the line is set on: each
// source's original drags and its augmented variants.
var peopleSources = []string{"balabit", "sapimouse", "balabit+aug", "sapimouse+aug"}

// refuseLine is the refusal line a calibration rule sets from the
// out-of-fold probabilities of the development people, per source:
//
//	qX   the highest, over sources, of the X quantile (shipped: q0.995)
//	cpR  the highest, over sources, of the lowest line at which the 95%
//	     Clopper-Pearson upper bound of the source's refused share is at
//	     most R: the point estimate sits under R by a margin that grows as
//	     the source gets smaller
//
// clamped to [0.5, cap]. The source of a drag is not known when it is
// scored, so a rule can only pick one line for all of them: a line per
// source comes down to the highest of them.
func refuseLine(rule string, perSrc map[string][]float64, cap float64) float64 {
	line := 0.0
	switch {
	case strings.HasPrefix(rule, "q"):
		q, err := strconv.ParseFloat(rule[1:], 64)
		if err != nil {
			fatal(fmt.Errorf("rule %q: %v", rule, err))
		}
		for _, v := range perSrc {
			line = math.Max(line, quantile(v, q))
		}
	case strings.HasPrefix(rule, "cp"):
		r, err := strconv.ParseFloat(rule[2:], 64)
		if err != nil {
			fatal(fmt.Errorf("rule %q: %v", rule, err))
		}
		for _, v := range perSrc {
			line = math.Max(line, cpLine(v, r))
		}
	default:
		fatal(fmt.Errorf("unknown calibration rule %q (qX, cpR)", rule))
	}
	return math.Min(cap, math.Max(0.5, line))
}

// cpLine is the lowest line (p ≥ line refused) at which the 95% upper
// Clopper-Pearson bound of the refused share of v is at most r.
func cpLine(v []float64, r float64) float64 {
	s := append([]float64(nil), v...)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	n := len(s)
	k := 0 // refused drags allowed
	for k < n && cpUpper(k+1, n) <= r {
		k++
	}
	if k >= n {
		return 0
	}
	// Refuse the k highest: the line just above the (k+1)-th.
	return math.Nextafter(s[k], 2)
}

// cpUpper is the one-sided 95% upper Clopper-Pearson bound of a share
// with k of n: the p at which P(X ≤ k) = 0.05.
func cpUpper(k, n int) float64 {
	if k >= n {
		return 1
	}
	lo, hi := float64(k)/float64(n), 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if binomCDF(k, n, mid) > 0.05 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

func binomCDF(k, n int, p float64) float64 {
	lp, lq := math.Log(p), math.Log1p(-p)
	var s float64
	for i := 0; i <= k; i++ {
		lg1, _ := math.Lgamma(float64(n + 1))
		lg2, _ := math.Lgamma(float64(i + 1))
		lg3, _ := math.Lgamma(float64(n - i + 1))
		s += math.Exp(lg1 - lg2 - lg3 + float64(i)*lp + float64(n-i)*lq)
	}
	return s
}

// calibcheck compares calibration rules on the development split, over
// several training seeds, from one set of out-of-fold probabilities per
// seed (the inputs are the shipped ones unless -extra/-drop): for each
// rule, the line, the people refused out-of-fold per source and for the
// worst development user, the machine families accepted out-of-fold, and
// with -unseen the --variety eased drags accepted by the model trained on
// all development data. Development data only: it chooses the rule.
func calibcheck() {
	seeds := devSeeds()
	rules := strings.Split(*rulesFlag, ",")
	unseen, Xu := loadUnseen()
	named := map[string]bool{"quad": true, "cubic": true, "sine": true, "circ": true, "smoother": true, "outcubic": true, "": true}
	type acc struct{ sum, min, max float64 }
	stats := map[string]map[string]*acc{}
	var keys []string
	add := func(rule, k string, v float64) {
		if stats[rule] == nil {
			stats[rule] = map[string]*acc{}
		}
		a, ok := stats[rule][k]
		if !ok {
			if rule == rules[0] {
				keys = append(keys, k)
			}
			a = &acc{min: math.Inf(1), max: math.Inf(-1)}
			stats[rule][k] = a
		}
		a.sum += v
		a.min, a.max = math.Min(a.min, v), math.Max(a.max, v)
	}
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
		perUser := map[string][]float64{}
		for i, d := range data[:nh] {
			perSrc[d.source] = append(perSrc[d.source], oof[i])
			if !strings.HasSuffix(d.source, "+aug") {
				perUser[d.source+"/"+d.user] = append(perUser[d.source+"/"+d.user], oof[i])
			}
		}
		var pu []float64
		if len(unseen) > 0 {
			final := fit(X, y, w, rng)
			for _, x := range Xu {
				pu = append(pu, predict(final, x))
			}
		}
		fmt.Printf("seed %d:", sd)
		for _, rule := range rules {
			line := refuseLine(rule, perSrc, *refCap)
			fmt.Printf("  %s %.4f", rule, line)
			add(rule, "line", line)
			share := func(v []float64) float64 {
				n := 0
				for _, p := range v {
					if p >= line {
						n++
					}
				}
				return 100 * float64(n) / float64(max(1, len(v)))
			}
			for _, s := range peopleSources {
				add(rule, "people refused "+s, share(perSrc[s]))
			}
			worst, worstBal := 0.0, 0.0
			for u, v := range perUser {
				if len(v) >= 20 {
					worst = math.Max(worst, share(v))
				}
				if strings.HasPrefix(u, "balabit/") {
					worstBal = math.Max(worstBal, share(v))
				}
			}
			add(rule, "people refused, worst user (≥ 20 drags)", worst)
			add(rule, "people refused, worst Balabit user", worstBal)
			fam := map[string][2]int{}
			for i, d := range data[nh:] {
				c := fam[d.source]
				c[1]++
				if oof[nh+i] < line {
					c[0]++
				}
				fam[d.source] = c
			}
			for _, k := range names {
				c := fam[k]
				add(rule, "oof accepted "+k, 100*float64(c[0])/float64(max(1, c[1])))
			}
			if len(unseen) > 0 {
				grp := map[string][2]int{}
				for i, d := range unseen {
					ks := []string{"unseen all"}
					if !named[d.easing] {
						ks = append(ks, "unseen easings")
					}
					if d.intervals != "" && d.intervals != "lognormal" {
						ks = append(ks, "unseen timing")
					}
					for _, k := range ks {
						c := grp[k]
						c[1]++
						if pu[i] < line {
							c[0]++
						}
						grp[k] = c
					}
				}
				for _, k := range []string{"unseen all", "unseen easings", "unseen timing"} {
					add(rule, k, 100*float64(grp[k][0])/float64(max(1, grp[k][1])))
				}
			}
		}
		fmt.Println()
	}
	n := float64(len(seeds))
	fmt.Printf("\nmean over seeds %s [min–max]\n| |", *seedsFlag)
	for _, r := range rules {
		fmt.Printf(" %s |", r)
	}
	fmt.Printf("\n|---|%s\n", strings.Repeat("---|", len(rules)))
	for _, k := range keys {
		fmt.Printf("| %s |", k)
		for _, r := range rules {
			a := stats[r][k]
			if k == "line" {
				fmt.Printf(" %.3f [%.3f–%.3f] |", a.sum/n, a.min, a.max)
			} else {
				fmt.Printf(" %.2f [%.1f–%.1f] |", a.sum/n, a.min, a.max)
			}
		}
		fmt.Println()
	}
}
