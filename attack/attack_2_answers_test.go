package attack

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// (c) Wrong answers from many devices of one IP: the IP must end up
// refused, whatever device it comes back with.
func TestAttackAnswerFlood(t *testing.T) {
	gw := plainGateway(t)
	const devices, perDevice, ip = 30, 3, "127.0.1.3"
	var judged, refusedReplies, noCaptcha atomic.Int32
	parallel(devices, 6, func(i int) {
		d := newDevice(gw, ip)
		c, _, err := d.getCaptcha("/", 0)
		if err != nil || c == nil {
			noCaptcha.Add(1)
			return
		}
		for k := 0; k < perDevice && c != nil; k++ {
			r, err := d.answer(c.ID, "zzzzzz")
			if err != nil {
				return
			}
			switch classify(r) {
			case outCaptcha:
				judged.Add(1)
				c = captchaOf(r)
			case outBlocked, outLimited: // judged, and no new captcha
				judged.Add(1)
				refusedReplies.Add(1)
				c = nil
			default:
				c = nil
			}
		}
	})
	// A fresh device from the same IP, as a browser and as a script that
	// wants a captcha to guess at.
	d := newDevice(gw, ip)
	page, err := d.do(http.MethodGet, "/", navigate, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, got, err := newDevice(gw, ip).getCaptcha("/", 0)
	if err != nil {
		t.Fatal(err)
	}
	const maxFailuresIP = 50
	var state string
	switch {
	case (classify(page) == outBlocked || classify(page) == outLimited) && c == nil:
		state = "blocked"
	case c == nil && judged.Load() < maxFailuresIP:
		// No more captchas for this IP before it could guess its limit's
		// worth: the budget stopped the flood first.
		state = "throttled"
	default:
		state = "open"
		t.Errorf("after %d wrong answers from %d devices of one IP, a fresh device of that IP still gets %s (page) and %s (captcha): the IP must be refused", judged.Load(), devices, classify(page), got)
	}
	figures.set("answer_flood", state)
	t.Logf("attack answer flood: %s (%d wrong answers judged, %d replies refused, %d devices got no captcha)", state, judged.Load(), refusedReplies.Load(), noCaptcha.Load())
}

// (d) Twelve fresh devices of one IP each play an audio captcha (audio is
// easier for machines than the image). An IP prefix gets no more plays than
// one device may (max_audio, 5 an hour by default).
func TestAttackAudioFlood(t *testing.T) {
	gw := plainGateway(t)
	const n, ip, maxAudio = 12, "127.0.1.4", 5
	var served, captchas atomic.Int32
	parallel(n, 4, func(i int) {
		d := newDevice(gw, ip)
		c, _, err := d.getCaptcha("/", 0)
		if err != nil || c == nil {
			return
		}
		captchas.Add(1)
		r, err := d.do(http.MethodGet, c.Audio, fetchGET, nil, http.Header{"Accept": {"*/*"}, "Sec-Fetch-Dest": {"audio"}, "Sec-Fetch-Mode": {"no-cors"}, "Range": {"bytes=0-"}})
		if err != nil {
			return
		}
		if (r.Status == http.StatusOK || r.Status == http.StatusPartialContent) && strings.HasPrefix(r.Header.Get("Content-Type"), "audio/") {
			served.Add(1)
		}
	})
	fig := fmt.Sprintf("%d/%d", served.Load(), n)
	figures.set("audio", fig)
	t.Logf("attack audio flood: %s plays served (%d devices got a captcha)", fig, captchas.Load())
	if served.Load() > maxAudio {
		t.Errorf("one IP played %d audio captchas with %d fresh devices: audio must be limited per IP prefix too (at most %d)", served.Load(), n, maxAudio)
	}
}
