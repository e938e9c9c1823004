package trajectory

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteBump is secondBump by its definition, each peak's bases found by
// walking out to a higher value.
func bruteBump(sp []float64, im int) float64 {
	best := 0.0
	for i := 1; i+1 < len(sp); i++ {
		if sp[i] >= sp[im] || sp[i] < sp[i-1] || sp[i] < sp[i+1] {
			continue
		}
		lo1 := sp[i]
		for j := i - 1; j >= 0 && sp[j] <= sp[i]; j-- {
			lo1 = math.Min(lo1, sp[j])
		}
		lo2 := sp[i]
		for j := i + 1; j < len(sp) && sp[j] <= sp[i]; j++ {
			lo2 = math.Min(lo2, sp[j])
		}
		best = math.Max(best, sp[i]-math.Max(lo1, lo2))
	}
	return best
}

// TestSecondBump checks the linear secondBump against the definition on
// short random sequences with many ties and plateaus, and one known case.
func TestSecondBump(t *testing.T) {
	// Peaks 9 (top), 6 (bases 2 and 1: prominence 4) and 5 (bases 1, 0).
	if got := secondBump([]float64{0, 9, 2, 6, 1, 5, 0}, 1); got != 4 {
		t.Errorf("secondBump = %v, want 4", got)
	}
	// A plateau at the top is the top, not a second bump.
	if got := secondBump([]float64{0, 9, 9, 3, 0}, 1); got != 0 {
		t.Errorf("plateau: secondBump = %v, want 0", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < 20000; it++ {
		n := 2 + r.IntN(12)
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(r.IntN(6))
		}
		im := 0
		for i, x := range v {
			if x > v[im] {
				im = i
			}
		}
		if a, b := bruteBump(v, im), secondBump(v, im); a != b {
			t.Fatalf("%v im %d brute %v stack %v", v, im, a, b)
		}
	}
}
