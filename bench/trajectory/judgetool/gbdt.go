package main

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

// Gradient-boosted trees with the logistic loss (Newton steps, L2 on the
// leaves), on inputs binned at their quantiles. NaN is bin 0 and goes
// left, as trajectory.Model.Prob sends it.

const (
	nBins     = 64
	lambda    = 2.0
	learnRate = 0.08
	minHess   = 1e-4 // of the total hessian
	subsample = 0.8
)

// Rows are []float64 so that judgetool can try inputs the trajectory
// package does not compute yet (-extra); the shipped model's rows are
// trajectory.Inputs followed by nothing.
type binned struct {
	nIn   int
	edges [][]float64
	bins  [][]uint8
}

func binInputs(X [][]float64) *binned {
	nIn := len(X[0])
	b := &binned{nIn: nIn, edges: make([][]float64, nIn), bins: make([][]uint8, len(X))}
	for i := range X {
		b.bins[i] = make([]uint8, nIn)
	}
	for j := range nIn {
		var v []float64
		for i := range X {
			if !math.IsNaN(X[i][j]) {
				v = append(v, X[i][j])
			}
		}
		sort.Float64s(v)
		var e []float64
		for k := 1; k < nBins-1 && len(v) > 0; k++ {
			q := v[min(len(v)-1, k*len(v)/(nBins-1))]
			if len(e) == 0 || q > e[len(e)-1] {
				e = append(e, q)
			}
		}
		b.edges[j] = e
		for i := range X {
			x := X[i][j]
			if math.IsNaN(x) {
				continue
			}
			b.bins[i][j] = uint8(1 + sort.Search(len(e), func(k int) bool { return e[k] > x }))
		}
	}
	return b
}

// threshold for "bin >= s goes right".
func (b *binned) threshold(j, s int) float64 {
	if s <= 1 {
		return -math.MaxFloat64
	}
	return b.edges[j][s-2]
}

func fit(X [][]float64, y, w []float64, rng *rand.Rand) *trajectory.Model {
	b := binInputs(X)
	n := len(X)
	var sw, swy float64
	for i := range n {
		sw += w[i]
		swy += w[i] * y[i]
	}
	base := math.Log(swy / (sw - swy))
	z := make([]float64, n)
	for i := range z {
		z[i] = base
	}
	m := &trajectory.Model{Base: base, Features: inputNames()}
	g, h := make([]float64, n), make([]float64, n)
	scale := float64(n) / sw
	for range *rounds {
		var rows []int
		for i := range n {
			p := 1 / (1 + math.Exp(-z[i]))
			g[i] = scale * w[i] * (p - y[i])
			h[i] = scale * w[i] * math.Max(1e-6, p*(1-p))
			if rng.Float64() < subsample {
				rows = append(rows, i)
			}
		}
		var totalH float64
		for _, i := range rows {
			totalH += h[i]
		}
		t := &trajectory.Tree{}
		grow(t, b, rows, g, h, 0, totalH*minHess)
		m.Trees = append(m.Trees, *t)
		for i := range n {
			z[i] += leaf(t, X[i])
		}
	}
	return m
}

// predict is trajectory.Model.Prob for a row of any width.
func predict(m *trajectory.Model, x []float64) float64 {
	z := m.Base
	for ti := range m.Trees {
		z += leaf(&m.Trees[ti], x)
	}
	return 1 / (1 + math.Exp(-z))
}

func leaf(t *trajectory.Tree, x []float64) float64 {
	k := 0
	for t.Feature[k] >= 0 {
		if v := x[t.Feature[k]]; v >= t.Threshold[k] { // NaN goes left
			k = t.Right[k]
		} else {
			k = t.Left[k]
		}
	}
	return t.Value[k]
}

func grow(t *trajectory.Tree, b *binned, rows []int, g, h []float64, d int, minH float64) int {
	node := len(t.Feature)
	var G, H float64
	for _, i := range rows {
		G += g[i]
		H += h[i]
	}
	val := -G / (H + lambda) * learnRate
	t.Feature = append(t.Feature, -1)
	t.Threshold = append(t.Threshold, 0)
	t.Left = append(t.Left, -1)
	t.Right = append(t.Right, -1)
	t.Value = append(t.Value, val)
	if d >= *depth || len(rows) < 10 {
		return node
	}
	bestGain, bestF, bestS := 0.0, -1, 0
	parent := G * G / (H + lambda)
	var hg, hh [nBins + 2]float64
	for j := range b.nIn {
		hg, hh = [nBins + 2]float64{}, [nBins + 2]float64{}
		for _, i := range rows {
			k := b.bins[i][j]
			hg[k] += g[i]
			hh[k] += h[i]
		}
		var lg, lh float64
		for s := 1; s <= len(b.edges[j])+1; s++ {
			lg += hg[s-1]
			lh += hh[s-1]
			rg, rh := G-lg, H-lh
			if lh < minH || rh < minH {
				continue
			}
			gain := lg*lg/(lh+lambda) + rg*rg/(rh+lambda) - parent
			if gain > bestGain {
				bestGain, bestF, bestS = gain, j, s
			}
		}
	}
	if bestF < 0 {
		return node
	}
	var left, right []int
	for _, i := range rows {
		if int(b.bins[i][bestF]) >= bestS {
			right = append(right, i)
		} else {
			left = append(left, i)
		}
	}
	t.Feature[node] = bestF
	t.Threshold[node] = b.threshold(bestF, bestS)
	l := grow(t, b, left, g, h, d+1, minH)
	r := grow(t, b, right, g, h, d+1, minH)
	t.Left[node], t.Right[node] = l, r
	return node
}
