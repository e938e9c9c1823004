package attack

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// (a) One recorded human drag replayed by 10 fresh devices of one IP, each
// posted milliseconds after its slide nonce was issued, with a plausible
// fingerprint. A slide alone must not clear any of them.
func TestAttackReplay(t *testing.T) {
	base := loadDrags(t)[0]
	const n, ip = 10, "127.0.1.1"
	cleared, through, slides := 0, 0, 0
	for i := 0; i < n; i++ {
		d := newDevice(mainGW, ip)
		r, err := d.do(http.MethodGet, "/", fetchGET, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if classify(r) != outSlide {
			t.Logf("device %d: no slide but %s (HTTP %d)", i, classify(r), r.Status)
			continue
		}
		slides++
		r, err = d.postSlide(slideNonce(r), base.Points, "mouse")
		if err != nil {
			t.Fatal(err)
		}
		if s := parseSlideReply(r); s.OK && hasCookie(r, "advc_clearance") {
			cleared++
			if r, err := d.do(http.MethodGet, "/", navigate, nil, nil); err == nil && classify(r) == outAllowed {
				through++
			}
		}
	}
	fig := fmt.Sprintf("%d/%d", cleared, n)
	figures.set("replay", fig)
	t.Logf("attack replay: %s cleared (%d slides offered, %d clearances then reached the upstream; drag of %.0f ms posted at once)",
		fig, slides, through, base.duration())
	if cleared > 0 {
		t.Errorf("replayed human drag cleared %d/%d fresh devices of one IP with no captcha: the slide must be a filter, not a pass, for a drag posted %0.f ms early and seen before", cleared, n, base.duration())
	}
}

// (a') The same recording, altered a little each time (resampled, scaled
// and rotated, re-timed ±5%, jittered), from fresh devices of one IP with
// differing fingerprints, each posted only after its claimed duration plus
// a human pause: the timing is consistent, only the drag is a copy.
func TestAttackAlteredReplay(t *testing.T) {
	base := loadDrags(t)[0]
	const n, ip = 20, "127.0.1.11"
	var cleared, slides atomic.Int32
	var mu sync.Mutex
	var passedKinds []string
	parallel(n, 5, func(i int) {
		rng := rand.New(rand.NewPCG(22, uint64(i)))
		ops := []int{alterShift, alterScale, alterRetime, alterShift | alterScale | alterRetime | alterJitter}[i%4]
		pts := alter(base.Points, ops, rng)
		d := newDevice(mainGW, ip)
		d.fp = chromeFingerprint(rng)
		r, err := d.do(http.MethodGet, "/", fetchGET, nil, nil)
		if err != nil || classify(r) != outSlide {
			return
		}
		slides.Add(1)
		wait := time.Duration(pts[len(pts)-1][2]+400+500*rng.Float64()) * time.Millisecond
		time.Sleep(wait)
		r, err = d.postSlide(slideNonce(r), pts, "mouse")
		if err != nil {
			t.Error(err)
			return
		}
		if s := parseSlideReply(r); s.OK && hasCookie(r, "advc_clearance") {
			cleared.Add(1)
			mu.Lock()
			passedKinds = append(passedKinds, alterName(ops))
			mu.Unlock()
		}
	})
	fig := fmt.Sprintf("%d/%d", cleared.Load(), n)
	figures.set("altered", fig)
	t.Logf("attack altered replay: %s cleared (%d slides offered; cleared: %v)", fig, slides.Load(), passedKinds)
	// The first showing of a genuine human drag is indistinguishable from
	// its owner; every copy after it must be caught (near-duplicates
	// included), and so must the IP's and fingerprints' run of passes.
	if cleared.Load() > 1 {
		t.Errorf("%d/%d altered copies of one recorded drag cleared fresh devices of one IP: near-duplicate drags and an IP passing slide after slide must go on to the captcha", cleared.Load(), n)
	}
}
