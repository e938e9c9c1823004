package riskscore

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Frequency holds the request-rate limits of one kind of entity (IP,
// device or account), one per counting window.
type Frequency struct {
	// Windows are the counting windows, shortest first; the store counts
	// every entity over the same windows.
	Windows []time.Duration
	// Soft[i] is the soft limit over Windows[i] (0: none). Past it the
	// signal grows linearly, reaching its full weight at twice the limit.
	Soft []float64
	// Strict is the limit over Windows[0] past which the entity is labelled
	// a confirmed attacker (0: none). The paper's example is 100 a second.
	Strict float64
	// StrictChallenges makes crossing Strict add the entity's own signal
	// at full weight (a challenge) instead of FrequencyStrict (a block):
	// for entities a client names rather than is, such as an account,
	// whose owner must not be locked out by someone else's requests.
	StrictChallenges bool
}

// Assess adds sig for counts (one per window) and reports whether the
// strict limit was crossed.
func (f *Frequency) Assess(a *Assessment, w *Weights, sig Signal, counts []float64) (strict bool) {
	if len(counts) == 0 {
		return false
	}
	if f.Strict > 0 && counts[0] > f.Strict {
		strict := FrequencyStrict
		if f.StrictChallenges {
			strict = sig
		}
		a.Add(w, strict, 1, sig.String()+" "+formatRate(counts[0], f.Windows[0])+" > "+strconv.FormatFloat(f.Strict, 'f', -1, 64))
		return true
	}
	best, at := 0.0, -1
	for i, c := range counts {
		if i >= len(f.Soft) || f.Soft[i] <= 0 || c <= f.Soft[i] {
			continue
		}
		if s := c/f.Soft[i] - 1; s > best {
			best, at = s, i
		}
	}
	if at >= 0 {
		a.Add(w, sig, best, formatRate(counts[at], f.Windows[at])+" > "+strconv.FormatFloat(f.Soft[at], 'f', -1, 64))
	}
	return false
}

func formatRate(count float64, w time.Duration) string {
	return strconv.FormatFloat(count, 'f', 0, 64) + "/" + shortDuration(w)
}

// shortDuration prints 1s, 1m, 1h instead of Go's 1m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strings.TrimSuffix(d.String(), "0s")
}

// Validate checks that the limits fit the windows.
func (f *Frequency) Validate() error {
	if len(f.Soft) > len(f.Windows) {
		return fmt.Errorf("%d soft limits for %d windows", len(f.Soft), len(f.Windows))
	}
	for i, s := range f.Soft {
		if !(s >= 0) {
			return fmt.Errorf("soft limit %v for window %v must be ≥ 0", s, f.Windows[i])
		}
	}
	if !(f.Strict >= 0) {
		return fmt.Errorf("strict limit %v must be ≥ 0", f.Strict)
	}
	return nil
}
