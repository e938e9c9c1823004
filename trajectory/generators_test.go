package trajectory

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Generators of drags for testing the scoring: the scripted forms the
// issue names, a ghost-cursor-like Bézier path, and a human-like drag
// (minimum-jerk speed, tremor, irregular sampling, slight overshoot). They
// are deliberately not the development files' generators.

type generator func(rng *rand.Rand) Trajectory

// sample builds a trajectory from a position function of u ∈ [0,1] at the
// given times.
func sample(times []float64, pos func(u float64) (x, y float64)) Trajectory {
	d := times[len(times)-1]
	t := make(Trajectory, len(times))
	for i, at := range times {
		x, y := pos(at / d)
		t[i] = Point{x, y, at}
	}
	return t
}

func evenTimes(dur, step float64) []float64 {
	var ts []float64
	for at := 0.0; at < dur; at += step {
		ts = append(ts, at)
	}
	return append(ts, dur)
}

// irregularTimes mimics a browser's coalesced pointer events: intervals of
// 4–12 ms with occasional dropped frames.
func irregularTimes(rng *rand.Rand, dur float64) []float64 {
	ts := []float64{0}
	for at := 0.0; ; {
		at += 4 + 8*rng.Float64()
		if rng.Float64() < 0.05 {
			at += 16 + 20*rng.Float64()
		}
		if at >= dur {
			break
		}
		ts = append(ts, math.Round(at*1000)/1000)
	}
	return append(ts, dur)
}

func minJerk(u float64) float64 { return 10*u*u*u - 15*u*u*u*u + 6*u*u*u*u*u }

var generators = map[string]struct {
	gen        generator
	wantRefuse bool
	// atLeast, when set, replaces the 99% a refused form must reach.
	atLeast float64
}{
	"constant speed, 16 ms": {func(rng *rand.Rand) Trajectory {
		dist := 150 + 250*rng.Float64()
		return sample(evenTimes(300+900*rng.Float64(), 16), func(u float64) (float64, float64) { return dist * u, 0 })
	}, true, 0},
	"constant speed, irregular sampling, y noise": {func(rng *rand.Rand) Trajectory {
		dist, dur := 150+250*rng.Float64(), 400+800*rng.Float64()
		t := sample(irregularTimes(rng, dur), func(u float64) (float64, float64) { return dist * u, 0 })
		for i := range t {
			t[i].Y += rng.NormFloat64() * 1.5
		}
		return t
	}, true, 0},
	"eased, even 16.67 ms frames, y = 0": {func(rng *rand.Rand) Trajectory {
		dist := 150 + 250*rng.Float64()
		return sample(evenTimes(300+1200*rng.Float64(), 1000.0/60), func(u float64) (float64, float64) {
			return dist * (3*u*u - 2*u*u*u), 0
		})
	}, true, 0},
	"under 0.1 s": {func(rng *rand.Rand) Trajectory {
		dist := 150 + 250*rng.Float64()
		return sample(irregularTimes(rng, 30+60*rng.Float64()), func(u float64) (float64, float64) { return dist * minJerk(u), 2 * u })
	}, true, 0},
	// Until issue 23 this stood in for people and had to be accepted; it is
	// the "minimum jerk with noise" way of faking a hand that attackers use
	// (bench/trajectory's minjerk_noise family), and the judge, trained on
	// real people, now refuses most of it. People are tested on their own
	// drags (TestPeople). (The name stays: replay_test.go uses the generator.)
	"human-like: minimum jerk, tremor, irregular, overshoot": {func(rng *rand.Rand) Trajectory {
		dist, dur := 150+250*rng.Float64(), 450+900*rng.Float64()
		over := 0.02 + 0.05*rng.Float64()
		drift := (rng.Float64() - 0.5) * 20
		ph1, ph2 := rng.Float64()*6, rng.Float64()*6
		// Besides tremor, a hand's progress along the track wavers from
		// sample to sample (people's speed roughness in the development
		// data is ≥ 0.66); 0.6 px of noise along x models that.
		return sample(irregularTimes(rng, dur), func(u float64) (float64, float64) {
			x := dist * (1 + over) * minJerk(math.Min(1, u/0.85))
			if u > 0.85 { // correct the overshoot
				x -= dist * over * minJerk((u-0.85)/0.15)
			}
			tremor := 0.8*math.Sin(u*dur/1000*2*math.Pi*9+ph1) + 0.5*math.Sin(u*dur/1000*2*math.Pi*4+ph2)
			return x + 0.6*tremor + 0.6*rng.NormFloat64(), drift*minJerk(u) + tremor
		})
	}, true, 0.5},
}

func TestGenerators(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for name, g := range generators {
		const n = 500
		refused := 0
		for range n {
			tr := g.gen(rng)
			if err := tr.Validate(); err != nil {
				t.Fatalf("%s: generated an invalid trajectory: %v", name, err)
			}
			if r := Score(tr); !r.Accepted() {
				refused++
			}
		}
		rate := float64(refused) / n
		t.Logf("%-55s refused %3d/%d = %5.1f%%", name, refused, n, 100*rate)
		want := 0.99
		if g.atLeast > 0 {
			want = g.atLeast
		}
		if g.wantRefuse && rate < want {
			t.Errorf("%s: refused %.1f%%, want ≥ %.0f%%", name, 100*rate, 100*want)
		}
		if !g.wantRefuse && rate > 0.02 {
			t.Errorf("%s: refused %.1f%%, want ≤ 2%%", name, 100*rate)
		}
	}
}

// TestGhostCursorLike: a Bézier path with eased timing at frame-locked
// 60 Hz, as ghost-cursor driven over CDP produces, is refused: its speed
// is smoother than any person's (too_smooth) and its sampling even.
func TestGhostCursorLike(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const n = 500
	refused := 0
	for range n {
		dist, dur := 150+250*rng.Float64(), 400+900*rng.Float64()
		c1y, c2y := (rng.Float64()-0.5)*60, (rng.Float64()-0.5)*60
		c1x, c2x := dist*rng.Float64(), dist*rng.Float64()
		tr := sample(evenTimes(dur, 1000.0/60), func(u float64) (float64, float64) {
			s := 3*u*u - 2*u*u*u
			m := 1 - s
			return 3*m*m*s*c1x + 3*m*s*s*c2x + s*s*s*dist, 3*m*m*s*c1y + 3*m*s*s*c2y
		})
		if r := Score(tr); !r.Accepted() {
			refused++
		}
	}
	t.Logf("ghost-cursor-like Bézier, 60 Hz frames: refused %d/%d = %.1f%%", refused, n, 100*float64(refused)/n)
	if float64(refused)/n < 0.99 {
		t.Errorf("refused %.1f%%, want ≥ 99%%", 100*float64(refused)/n)
	}
}

func TestValidation(t *testing.T) {
	for name, pts := range map[string][][]float64{
		"one point":     {{0, 0, 0}},
		"NaN":           {{0, 0, 0}, {math.NaN(), 0, 10}},
		"Inf":           {{0, 0, 0}, {1, math.Inf(1), 10}},
		"back in time":  {{0, 0, 0}, {1, 0, 10}, {2, 0, 5}},
		"negative time": {{0, 0, -1}, {1, 0, 10}},
		"absurd x":      {{0, 0, 0}, {1e9, 0, 10}},
		"short point":   {{0, 0, 0}, {1, 0}},
		"too long":      {{0, 0, 0}, {1, 0, 1e7}},
	} {
		if _, err := FromArrays(pts); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := FromArrays([][]float64{{0, 0, 0}, {5, 0, 10}, {9, 1, 10}}); err != nil {
		t.Errorf("equal times refused: %v", err)
	}
	big := make([][]float64, MaxPoints+1)
	for i := range big {
		big[i] = []float64{float64(i), 0, float64(i)}
	}
	if _, err := FromArrays(big); err == nil {
		t.Error("too many points accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"points":[[0,0,0],[10,1,16],[20,1,33]]}`))
	f.Add([]byte(`{"points":[[0,0,0],[1e308,1,16]]}`))
	f.Add([]byte(`{"points":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Decode(bytesReader(b))
		if err != nil {
			return
		}
		r := Score(tr)
		if math.IsNaN(r.Score) || r.Score < 0 || r.Score > 100 {
			t.Fatalf("score %v", r.Score)
		}
	})
}

func BenchmarkScore300(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	ts := irregularTimes(rng, 3000)[:300] // ~8 ms apart: 300 points in ~2.4 s
	tr := sample(ts, func(u float64) (float64, float64) { return 300 * minJerk(u), 5 * math.Sin(7*u) })
	b.ReportAllocs()
	for b.Loop() {
		Score(tr)
	}
}
