package solver

import "sort"

// Evaluation is a solver's accuracy on labelled samples.
type Evaluation struct {
	Solved, Total int
	CharAcc       float64
	ByLength      []LengthResult
	// Misreads are the samples read wrong, in the samples' order: what a
	// solver gets wrong (a look-alike, a dropped or invented character)
	// says more about a captcha than how often.
	Misreads []Misread
}

// Misread is one sample read wrong: its index in the samples, its text and
// what the solver read.
type Misread struct {
	Index      int
	Text, Read string
}

// LengthResult is the accuracy on texts of one length.
type LengthResult struct{ Length, Solved, Total int }

// Evaluate reads every sample and compares with its text.
func Evaluate(s *Solver, samples []Sample) (*Evaluation, error) {
	imgs := make([]Image, len(samples))
	for i, smp := range samples {
		imgs[i] = smp.Image()
	}
	preds, err := s.Predict(imgs)
	if err != nil {
		return nil, err
	}
	r := &Evaluation{Total: len(samples)}
	byLen := map[int]*LengthResult{}
	var chars, errs int
	for i, smp := range samples {
		truth := []rune(smp.Text)
		l := byLen[len(truth)]
		if l == nil {
			l = &LengthResult{Length: len(truth)}
			byLen[len(truth)] = l
		}
		l.Total++
		if preds[i].Text == smp.Text {
			r.Solved++
			l.Solved++
		} else {
			r.Misreads = append(r.Misreads, Misread{Index: i, Text: smp.Text, Read: preds[i].Text})
		}
		chars += len(truth)
		errs += editDistance([]rune(preds[i].Text), truth)
	}
	if chars > 0 {
		r.CharAcc = max(0, 1-float64(errs)/float64(chars))
	}
	for _, l := range byLen {
		r.ByLength = append(r.ByLength, *l)
	}
	sort.Slice(r.ByLength, func(i, j int) bool { return r.ByLength[i].Length < r.ByLength[j].Length })
	return r, nil
}
