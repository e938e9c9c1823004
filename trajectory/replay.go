package trajectory

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
)

// A replayed drag is a recorded human one sent again, perhaps shifted,
// scaled or re-timed a little so that it is not byte-identical. No person
// repeats their own hand movement that closely, so the gateway keeps a
// Signature of every slide it accepts and refuses one that is too near a
// signature it has already seen.
//
// The signature has two halves, each invariant to what is cheap to change:
//   - the path: y as a function of progress along x (where the hand
//     drifted up or down), independent of any re-timing;
//   - the timing: progress along x as a function of normalised time,
//     minus the minimum-jerk curve every reaching movement roughly
//     follows, so that what remains is the drag's own sub-movements.
//
// Both are expressed in units of the drag's own distance and duration, so
// translation, uniform scaling and uniform re-timing change nothing.
// A drag is a replay of another when both halves are close together (the
// path of a straight drag says little on its own: many people drag
// straight).

// SigPoints is how many samples each half of a signature has.
const SigPoints = 32

// Signature is a drag's normalised shape.
type Signature struct {
	Path   [SigPoints]float32 // y / |distance| at evenly spaced progress along x
	Timing [SigPoints]float32 // progress at evenly spaced time, minus minimum jerk
}

// Replay thresholds, in RMS units of the drag's distance: a drag replays
// another when (path/ReplayPath)² + (timing/ReplayTiming)² < 1. On the
// 1,419 development drags of 27 people (`bench/lab replaycalib`):
// 1 in 100,000 pairs of distinct drags fall within them (mostly one
// person's coarse remote-desktop drags), while 98.9% of copies shifted,
// scaled by ±10%, re-timed by ±5% and with 1 px of noise on every point
// do, and 96.9% with ±3 ms of timing noise as well. A smooth time warp of
// 3% escapes (0.3%): such a drag is no longer a replay but a synthetic
// one, which Score judges.
const (
	ReplayPath   = 0.020
	ReplayTiming = 0.015
)

// ErrNoSignature is returned for a drag too short to have a shape.
var ErrNoSignature = errors.New("drag too short for a signature")

// Sign computes the signature of a validated trajectory.
func Sign(t Trajectory) (Signature, error) {
	var s Signature
	if len(t) < 3 {
		return s, ErrNoSignature
	}
	first, last := t[0], t[len(t)-1]
	dist := last.X - first.X
	dur := last.T - first.T
	if math.Abs(dist) < 10 || dur <= 0 {
		return s, ErrNoSignature
	}
	// Path: walk the points by their progress u = (x-x0)/dist, which a
	// hand does not always increase; interpolate y at the first crossing
	// of each level, so back-and-forth moves still give one y per level.
	k, prevU, prevY := 0, 0.0, 0.0
	for _, p := range t {
		u, y := (p.X-first.X)/dist, (p.Y-first.Y)/math.Abs(dist)
		for k < SigPoints {
			level := (float64(k) + 0.5) / SigPoints
			if u < level {
				break
			}
			f := 0.0
			if u != prevU {
				f = (level - prevU) / (u - prevU)
			}
			s.Path[k] = float32(prevY + f*(y-prevY))
			k++
		}
		if u > prevU {
			prevU, prevY = u, y
		}
	}
	for ; k < SigPoints; k++ { // levels the drag never reached: its end
		s.Path[k] = float32((last.Y - first.Y) / math.Abs(dist))
	}
	// Timing: progress at evenly spaced instants, by linear interpolation.
	j := 0
	for k := range SigPoints {
		tau := (float64(k) + 0.5) / SigPoints
		at := first.T + tau*dur
		for j < len(t)-2 && t[j+1].T < at {
			j++
		}
		a, b := t[j], t[j+1]
		f := 0.0
		if b.T > a.T {
			f = (at - a.T) / (b.T - a.T)
		}
		x := a.X + f*(b.X-a.X)
		s.Timing[k] = float32((x-first.X)/dist - minimumJerk(tau))
	}
	return s, nil
}

func minimumJerk(u float64) float64 { return u * u * u * (10 - 15*u + 6*u*u) }

// Distance returns the RMS differences of the two halves.
func (s *Signature) Distance(o *Signature) (path, timing float64) {
	var dp, dt float64
	for i := range SigPoints {
		a := float64(s.Path[i] - o.Path[i])
		b := float64(s.Timing[i] - o.Timing[i])
		dp += a * a
		dt += b * b
	}
	return math.Sqrt(dp / SigPoints), math.Sqrt(dt / SigPoints)
}

// Replays reports whether s is too close to o to be a new movement.
func (s *Signature) Replays(o *Signature) bool {
	p, t := s.Distance(o)
	p, t = p/ReplayPath, t/ReplayTiming
	return p*p+t*t < 1
}

// Locality-sensitive hashing finds the few stored signatures worth
// comparing: the timing half is projected on random directions, and the
// signs of each group of bandBits projections name a bucket. A near copy
// lands in the same bucket as its original in at least one band with high
// probability, unrelated drags rarely.
const (
	// SigBands is how many buckets a signature is filed under.
	SigBands = 6
	bandBits = 10
)

var hyperplanes = func() (h [SigBands * bandBits][SigPoints]float32) {
	// A fixed seed: every gateway instance must file a signature under
	// the same buckets.
	r := rand.New(rand.NewPCG(0x61647663, 0x72706c79))
	for i := range h {
		for j := range h[i] {
			h[i][j] = float32(r.NormFloat64())
		}
	}
	return h
}()

// Bands returns the buckets s is filed and looked up under.
func (s *Signature) Bands() [SigBands]uint16 {
	var out [SigBands]uint16
	for b := range SigBands {
		var key uint16
		for i := range bandBits {
			var dot float32
			hp := &hyperplanes[b*bandBits+i]
			for j, v := range s.Timing {
				dot += hp[j] * v
			}
			key <<= 1
			if dot >= 0 {
				key |= 1
			}
		}
		out[b] = key
	}
	return out
}

// sigBytes is the encoded size of a signature: each value a float32.
const sigBytes = 2 * SigPoints * 4

// MarshalBinary encodes s compactly for the store.
func (s *Signature) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, sigBytes)
	for _, v := range s.Path {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	for _, v := range s.Timing {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (s *Signature) UnmarshalBinary(b []byte) error {
	if len(b) != sigBytes {
		return errors.New("signature: wrong length")
	}
	for i := range SigPoints {
		s.Path[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		s.Timing[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(SigPoints+i):]))
	}
	return nil
}
