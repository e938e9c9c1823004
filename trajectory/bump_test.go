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
		againstDefinition(t, r, 2+r.IntN(12), 6)
	}
}

// againstDefinition compares secondBump with bruteBump on n random values
// from 0 to levels-1 (few levels: many ties and plateaus).
func againstDefinition(t *testing.T, r *rand.Rand, n, levels int) {
	t.Helper()
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(r.IntN(levels))
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

// TestSecondBumpLong checks the heap-buffer path (more than 256 samples)
// against the definition, and that the stack path does not allocate.
func TestSecondBumpLong(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for it := 0; it < 200; it++ {
		againstDefinition(t, r, 257+r.IntN(300), 40)
	}
	v := make([]float64, 256)
	for i := range v {
		v[i] = math.Abs(math.Sin(float64(i) / 9))
	}
	if a := testing.AllocsPerRun(20, func() { secondBump(v, 14) }); a != 0 {
		t.Errorf("secondBump of 256 samples: %v allocations, want 0", a)
	}
}

// TestSecondBumpFeature: the input as Extract computes it — one
// minimum-jerk bell is 0; a main movement and a corrective one a third its
// speed, after a pause, about 0.3, at any sampling rate from 60 to 240 Hz;
// too short a drag and one that never moves are NaN.
func TestSecondBumpFeature(t *testing.T) {
	for _, hz := range []float64{60, 90, 120, 144, 240} {
		step := 1000 / hz
		one := sample(evenTimes(900, step), func(u float64) (float64, float64) { return 300 * minJerk(u), 0 })
		two := sample(evenTimes(1200, step), func(u float64) (float64, float64) {
			x := 260 * minJerk(min(1, u/0.6)) // peak speed 260·1.875/720 px/ms
			if u > 0.7 {
				x += 40 * minJerk((u-0.7)/0.3) // 40·1.875/360: 0.31 of it
			}
			return x, 0
		})
		if b := Extract(one).SecondBump; !(b < 1e-3) {
			t.Errorf("%v Hz, one bell: SecondBump %v, want < 0.001", hz, b)
		}
		if b := Extract(two).SecondBump; !(b > 0.25 && b < 0.32) {
			t.Errorf("%v Hz, two sub-movements: SecondBump %v, want 0.25–0.32", hz, b)
		}
	}
	short := sample(evenTimes(70, 8), func(u float64) (float64, float64) { return 100 * u, 0 })
	still := sample(evenTimes(500, 16), func(u float64) (float64, float64) { return 0, 0 })
	for name, tr := range map[string]Trajectory{"70 ms": short, "no movement": still} {
		if b := Extract(tr).SecondBump; !math.IsNaN(b) {
			t.Errorf("%s: SecondBump %v, want NaN", name, b)
		}
	}
}
