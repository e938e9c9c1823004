package solver

import (
	"fmt"
	"math"
	"strings"
)

// encode maps a text to class indices (charset position + 1; 0 is the blank).
func encode(a Architecture, text string) ([]int, error) {
	if text == "" {
		return nil, fmt.Errorf("empty text")
	}
	out := make([]int, 0, len(text))
	for _, r := range text {
		i := strings.IndexRune(a.Charset, r)
		if i < 0 {
			return nil, fmt.Errorf("text %q: %q is not in the charset %q", text, r, a.Charset)
		}
		out = append(out, len([]rune(a.Charset[:i]))+1)
	}
	return out, nil
}

// ctcMinSteps is how many steps CTC needs for a label sequence: one per label
// and one blank between each pair of equal neighbours.
func ctcMinSteps(classes []int) int {
	n := len(classes)
	for i := 1; i < len(classes); i++ {
		if classes[i] == classes[i-1] {
			n++
		}
	}
	return n
}

// Prediction is what the solver reads in one image.
type Prediction struct {
	Text string
	// Confidence is the probability of the best path (the per-step argmax
	// sequence), a lower bound of the text's probability.
	Confidence float64
}

// greedyDecode reads a (T,B,K) log-probability tensor: per step the most
// likely class, repeats merged, blanks dropped.
func greedyDecode(a Architecture, logProbs []float32, steps, batch int) []Prediction {
	k := a.Classes()
	charset := []rune(a.Charset)
	out := make([]Prediction, batch)
	for b := 0; b < batch; b++ {
		var text []rune
		var logp float64
		prev := 0
		for t := 0; t < steps; t++ {
			row := logProbs[(t*batch+b)*k : (t*batch+b+1)*k]
			best := 0
			for c := 1; c < k; c++ {
				if row[c] > row[best] {
					best = c
				}
			}
			logp += float64(row[best])
			if best != 0 && best != prev {
				text = append(text, charset[best-1])
			}
			prev = best
		}
		out[b] = Prediction{Text: string(text), Confidence: math.Exp(logp)}
	}
	return out
}

// ctcLoss is the negative log-likelihood of labels for batch entry b of a
// (T,B,K) log-probability tensor: the CTC forward recursion in log space.
func ctcLoss(lp []float32, steps, batch, classes, b int, labels []int) float64 {
	at := func(t, c int) float64 { return float64(lp[(t*batch+b)*classes+c]) }
	s := 2*len(labels) + 1 // blank, l1, blank, l2, …, blank
	label := func(i int) int {
		if i%2 == 0 {
			return 0
		}
		return labels[i/2]
	}
	negInf := math.Inf(-1)
	alpha := make([]float64, s)
	next := make([]float64, s)
	for i := range alpha {
		alpha[i] = negInf
	}
	alpha[0] = at(0, 0)
	if s > 1 {
		alpha[1] = at(0, label(1))
	}
	for t := 1; t < steps; t++ {
		for i := 0; i < s; i++ {
			a := alpha[i]
			if i > 0 {
				a = logAdd(a, alpha[i-1])
			}
			if i > 1 && label(i) != 0 && label(i) != label(i-2) {
				a = logAdd(a, alpha[i-2])
			}
			next[i] = a + at(t, label(i))
		}
		alpha, next = next, alpha
	}
	ll := alpha[s-1]
	if s > 1 {
		ll = logAdd(ll, alpha[s-2])
	}
	return -ll
}

func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}
