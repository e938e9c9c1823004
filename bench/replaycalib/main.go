// Command replaycalib measures the replay signature (trajectory.Sign) on
// recorded human drags: how many pairs of distinct drags it would take for
// replays, and how many altered copies of a drag it catches.
//
//	bench/lab replaycalib -data ../shared/data/human_drags_dev.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

func main() {
	data := flag.String("data", "../shared/data/human_drags_dev.jsonl", "JSON lines of {\"points\": [[x, y, t], …]}")
	seed := flag.Uint64("seed", 1, "seed of the alterations")
	flag.Parse()
	drags, err := load(*data)
	if err != nil {
		log.Fatal(err)
	}
	sigs := make([]trajectory.Signature, len(drags))
	for i, d := range drags {
		if sigs[i], err = trajectory.Sign(d); err != nil {
			log.Fatalf("drag %d: %v", i, err)
		}
	}
	pairs, replays := 0, 0
	for i := range sigs {
		for j := i + 1; j < len(sigs); j++ {
			pairs++
			if sigs[i].Replays(&sigs[j]) {
				replays++
			}
		}
	}
	fmt.Printf("drags %d: distinct pairs taken for replays %d of %d (%.1e)\n", len(sigs), replays, pairs, float64(replays)/float64(pairs))
	r := rand.New(rand.NewPCG(*seed, 7))
	for _, a := range alterations {
		caught, filed := 0, 0
		for i, d := range drags {
			s, err := trajectory.Sign(a.apply(d, r))
			if err != nil {
				continue
			}
			if s.Replays(&sigs[i]) {
				caught++
			}
			b1, b2 := s.Bands(), sigs[i].Bands()
			for k := range b1 {
				if b1[k] == b2[k] {
					filed++
					break
				}
			}
		}
		fmt.Printf("%-58s caught %5.1f%%  shares a bucket %5.1f%%\n", a.name, 100*float64(caught)/float64(len(drags)), 100*float64(filed)/float64(len(drags)))
	}
}

type alteration struct {
	name                 string
	noisePX, timeNoiseMS float64
	warp                 float64
}

var alterations = []alteration{
	{name: "shifted, scaled ±10%, re-timed ±5%"},
	{name: "… and 1 px noise on every point", noisePX: 1},
	{name: "… and ±3 ms timing noise", noisePX: 1, timeNoiseMS: 3},
	{name: "… and a smooth 3% time warp", noisePX: 1, timeNoiseMS: 3, warp: 0.03},
}

func (a alteration) apply(t trajectory.Trajectory, r *rand.Rand) trajectory.Trajectory {
	out := make(trajectory.Trajectory, len(t))
	scale, retime := 1+(r.Float64()-0.5)*0.2, 1+(r.Float64()-0.5)*0.1
	dx, dy := r.Float64()*50, r.Float64()*20
	dur := t[len(t)-1].T
	for i, p := range t {
		u := p.T / dur
		q := trajectory.Point{X: p.X*scale + dx + r.NormFloat64()*a.noisePX, Y: p.Y*scale + dy + r.NormFloat64()*a.noisePX,
			T: (u + a.warp*math.Sin(math.Pi*u)) * dur * retime}
		if i > 0 && i < len(t)-1 {
			q.T += (r.Float64() - 0.5) * 2 * a.timeNoiseMS
		}
		if i > 0 && q.T < out[i-1].T {
			q.T = out[i-1].T
		}
		out[i] = q
	}
	return out
}

func load(path string) ([]trajectory.Trajectory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []trajectory.Trajectory
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var d struct{ Points [][]float64 }
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, err
		}
		t, err := trajectory.FromArrays(d.Points)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, sc.Err()
}
