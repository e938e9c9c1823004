package attack

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// drag is one recorded human drag: [x, y, t_ms] from press to release,
// relative to the press point.
type drag struct {
	Source string      `json:"source"`
	User   string      `json:"user"`
	Points [][]float64 `json:"points"`
}

func (d drag) duration() float64 { return d.Points[len(d.Points)-1][2] }

// loadDrags reads the recorded human drags the gateway's own tests use
// (../trajectory/testdata/human_drags_sample.jsonl, see the README there).
func loadDrags(t *testing.T) []drag {
	t.Helper()
	f, err := os.Open("../trajectory/testdata/human_drags_sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []drag
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var d drag
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil || len(out) == 0 {
		t.Fatalf("no drags in testdata: %v", err)
	}
	return out
}

// Alterations a replaying attacker makes so that no two copies are equal.
const (
	alterShift  = 1 << iota // resampled at shifted instants, y offset drifting a pixel or two
	alterScale              // x and y scaled by ±5% / ±10%, rotated up to 1.5°
	alterRetime             // time stretched by ±5%, each interval jittered
	alterJitter             // ±0.6 px noise on every point
)

func alterName(ops int) string {
	s := ""
	for _, o := range []struct {
		bit  int
		name string
	}{{alterShift, "shift"}, {alterScale, "scale"}, {alterRetime, "retime"}, {alterJitter, "jitter"}} {
		if ops&o.bit != 0 {
			if s != "" {
				s += "+"
			}
			s += o.name
		}
	}
	return s
}

// alter returns a slightly altered copy of pts: still the same human
// movement, never the same numbers.
func alter(pts [][]float64, ops int, rng *rand.Rand) [][]float64 {
	out := make([][]float64, len(pts))
	for i, p := range pts {
		out[i] = []float64{p[0], p[1], p[2]}
	}
	last := len(out) - 1
	if ops&alterShift != 0 {
		// Sample the same path at instants shifted by up to half an interval.
		shifted := make([][]float64, len(out))
		shifted[0] = out[0]
		shifted[last] = out[last]
		frac := 0.15 + 0.35*rng.Float64()
		for i := 1; i < last; i++ {
			a, b := out[i], out[i+1]
			shifted[i] = []float64{a[0] + frac*(b[0]-a[0]), a[1] + frac*(b[1]-a[1]), a[2] + frac*(b[2]-a[2])}
		}
		drift := (rng.Float64()*2 - 1) * 2
		for i := range shifted {
			p := shifted[i]
			out[i] = []float64{p[0], p[1] + drift*float64(i)/float64(last), p[2]}
		}
	}
	if ops&alterScale != 0 {
		sx, sy := 0.95+0.1*rng.Float64(), 0.9+0.2*rng.Float64()
		th := (rng.Float64()*2 - 1) * 1.5 * math.Pi / 180
		for _, p := range out {
			x, y := p[0]*sx, p[1]*sy
			p[0], p[1] = x*math.Cos(th)-y*math.Sin(th), x*math.Sin(th)+y*math.Cos(th)
		}
	}
	if ops&alterRetime != 0 {
		st := 0.95 + 0.1*rng.Float64()
		prev, prevNew := 0.0, 0.0
		for _, p := range out {
			dt := (p[2] - prev) * st * (0.97 + 0.06*rng.Float64())
			prev = p[2]
			p[2] = prevNew + dt
			prevNew = p[2]
		}
	}
	if ops&alterJitter != 0 {
		for i, p := range out {
			if i == 0 {
				continue
			}
			p[0] += (rng.Float64()*2 - 1) * 0.6
			p[1] += (rng.Float64()*2 - 1) * 0.6
		}
	}
	// As a browser reports them: press at the origin, 0.1 px and 0.1 ms
	// resolution, time never going back.
	out[0] = []float64{0, 0, 0}
	for i, p := range out {
		p[0], p[1], p[2] = math.Round(p[0]*10)/10, math.Round(p[1]*10)/10, math.Round(p[2]*10)/10
		if i > 0 && p[2] < out[i-1][2] {
			p[2] = out[i-1][2]
		}
	}
	return out
}
