package extraction

import (
	"fmt"
	"time"
)

// Trigger says when the next extraction is due. Any condition that is set
// and met makes it due.
type Trigger struct {
	// Every runs one at least this often; 0 never on a schedule.
	Every time.Duration
	// NewPairs runs one as soon as this many attacker answers arrived since
	// the last; 0 never for that.
	NewPairs int
	// SuccessAbove runs one when attackers answered more than this share
	// of the adversarial captchas served to them since the last run — the
	// sign that they have updated their solver — over at least MinAnswers
	// answers (default 50); 0 never for that.
	SuccessAbove float64
	MinAnswers   int
}

// Mark is where the last extraction stopped: when it ran (by the clock of
// the machine running it) and the time of the newest answer it used (by
// the gateways' clocks), so that clock differences never count an answer
// twice.
type Mark struct {
	Ran  time.Time `json:"ran"`
	Seen time.Time `json:"seen"`
}

// MarkAfter is the mark of an extraction run at now on pairs.
func MarkAfter(now time.Time, pairs []Pair) Mark {
	m := Mark{Ran: now}
	for _, p := range pairs {
		if p.At.After(m.Seen) {
			m.Seen = p.At
		}
	}
	return m
}

// Due reports whether an extraction should run now, given the last one's
// mark (zero: never) and the pairs collected, and why.
func (t Trigger) Due(now time.Time, last Mark, pairs []Pair) (bool, string) {
	var fresh, adv, solved int
	for _, p := range pairs {
		if !p.At.After(last.Seen) {
			continue
		}
		fresh++
		if p.Method != "none" {
			adv++
			if p.Correct {
				solved++
			}
		}
	}
	minAnswers := t.MinAnswers
	if minAnswers <= 0 {
		minAnswers = 50
	}
	switch {
	case fresh == 0:
		return false, "no new attacker answers"
	case t.NewPairs > 0 && fresh >= t.NewPairs:
		return true, fmt.Sprintf("%d new attacker answers", fresh)
	case t.SuccessAbove > 0 && adv >= minAnswers && float64(solved)/float64(adv) > t.SuccessAbove:
		return true, fmt.Sprintf("attackers solved %.1f%% of %d adversarial captchas", 100*float64(solved)/float64(adv), adv)
	case t.Every > 0 && now.Sub(last.Ran) >= t.Every:
		return true, fmt.Sprintf("scheduled (every %v), %d new attacker answers", t.Every, fresh)
	}
	return false, fmt.Sprintf("%d new attacker answers, not due", fresh)
}
