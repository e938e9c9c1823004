package trajectory

import (
	"math"
	"math/rand/v2"
	"testing"
)

// alterCopy is what a replaying script does to a recorded drag so that it
// is not byte-identical: shift, scale, re-time, jitter.
func alterCopy(t Trajectory, rng *rand.Rand, noise float64) Trajectory {
	out := make(Trajectory, len(t))
	scale, retime := 0.9+0.2*rng.Float64(), 0.95+0.1*rng.Float64()
	dx, dy := 40*rng.Float64(), 15*rng.Float64()
	for i, p := range t {
		out[i] = Point{p.X*scale + dx + noise*rng.NormFloat64(), p.Y*scale + dy + noise*rng.NormFloat64(), p.T * retime}
	}
	return out
}

// subMovements draws a drag as people make them: a main movement and
// corrective sub-movements of random size and onset, a curved drift in y,
// and tremor. (The smooth generator of generators_test.go makes drags
// that are all alike once normalised: a replay detector takes them for
// copies of each other, as it should.)
func subMovements(rng *rand.Rand) Trajectory {
	dist, dur := 150+250*rng.Float64(), 500+1000*rng.Float64()
	type sub struct{ start, end, amp float64 }
	main := 0.75 + 0.3*rng.Float64()
	subs := []sub{{0, 0.45 + 0.3*rng.Float64(), main}}
	left := 1 - main
	for k := 0; k < 1+rng.IntN(3); k++ {
		start := 0.2 + 0.6*rng.Float64()
		amp := left * (0.3 + 0.7*rng.Float64())
		if k == 0 {
			amp = left
		}
		subs = append(subs, sub{start, min(1, start+0.1+0.3*rng.Float64()), amp})
		left -= amp
	}
	bow, tilt := (rng.Float64()-0.5)*30, (rng.Float64()-0.5)*20
	ph := rng.Float64() * 6
	return sample(irregularTimes(rng, dur), func(u float64) (float64, float64) {
		x := 0.0
		for _, s := range subs {
			switch {
			case u >= s.end:
				x += s.amp
			case u > s.start:
				x += s.amp * minJerk((u-s.start)/(s.end-s.start))
			}
		}
		y := bow*4*x*(1-x) + tilt*x + 0.7*math.Sin(u*dur/1000*2*math.Pi*8+ph)
		return dist*x + 0.5*rng.NormFloat64(), y
	})
}

func TestReplaysAreRecognisedAndPeopleAreNot(t *testing.T) {
	human := subMovements
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 300
	drags := make([]Trajectory, n)
	sigs := make([]Signature, n)
	for i := range drags {
		drags[i] = human(rng)
		s, err := Sign(drags[i])
		if err != nil {
			t.Fatal(err)
		}
		sigs[i] = s
	}
	distinct := 0
	for i := range sigs {
		for j := i + 1; j < n; j++ {
			if sigs[i].Replays(&sigs[j]) {
				distinct++
			}
		}
	}
	// These drags are far less varied than people's (bench/replaycalib
	// measures 1e-5 of pairs on real ones); a rule that took more than a
	// few in a thousand of them for replays would refuse people.
	if pairs := n * (n - 1) / 2; distinct*1000 > 5*pairs {
		t.Errorf("%d of %d pairs of independent drags taken for replays", distinct, pairs)
	}
	for _, noise := range []float64{0, 1} {
		caught, bucket := 0, 0
		for i := range drags {
			c, err := Sign(alterCopy(drags[i], rng, noise))
			if err != nil {
				t.Fatal(err)
			}
			if c.Replays(&sigs[i]) {
				caught++
			}
			b1, b2 := c.Bands(), sigs[i].Bands()
			for k := range b1 {
				if b1[k] == b2[k] {
					bucket++
					break
				}
			}
		}
		if min := n * 95 / 100; caught < min || bucket < min {
			t.Errorf("copies with %g px noise: %d/%d recognised, %d/%d share a bucket; want ≥ 95%%", noise, caught, n, bucket, n)
		}
	}
}

func TestSignatureRoundTripAndShortDrags(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	s, err := Sign(generators["human-like: minimum jerk, tremor, irregular, overshoot"].gen(rng))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.MarshalBinary()
	var back Signature
	if err := back.UnmarshalBinary(b); err != nil || back != s {
		t.Fatalf("round trip: %v", err)
	}
	if err := back.UnmarshalBinary(b[:10]); err == nil {
		t.Fatal("short encoding accepted")
	}
	for _, tr := range []Trajectory{{{0, 0, 0}, {5, 0, 100}}, {{0, 0, 0}, {3, 0, 50}, {5, 0, 100}}, {{0, 0, 0}, {100, 0, 0}, {200, 0, 0}}} {
		if _, err := Sign(tr); err == nil {
			t.Errorf("%v: signed", tr)
		}
	}
}

// A left-to-right drag and its mirror (right to left) are the same hand
// movement and must sign alike; a drag with a back-and-forth wobble must
// still sign.
func TestSignatureMirrorAndBacktrack(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	d := generators["human-like: minimum jerk, tremor, irregular, overshoot"].gen(rng)
	m := make(Trajectory, len(d))
	for i, p := range d {
		m[i] = Point{-p.X, p.Y, p.T}
	}
	a, _ := Sign(d)
	b, err := Sign(m)
	if err != nil || !a.Replays(&b) {
		t.Fatalf("mirror: %v, replays %v", err, a.Replays(&b))
	}
}

func BenchmarkSign300(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := sample(irregularTimes(rng, 2400), func(u float64) (float64, float64) { return 300 * minJerk(u), 3 * u })
	b.ReportAllocs()
	for b.Loop() {
		s, _ := Sign(d)
		_ = s.Bands()
	}
}
