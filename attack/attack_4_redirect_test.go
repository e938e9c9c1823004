package attack

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

var redirectPayloads = []string{
	`/./\evil.example/phish`,
	`/../\evil.example/phish`,
	`/x/../\evil.example/phish`,
	`/.//\evil.example/phish`,
	`/\\evil.example/phish`,
	`/\evil.example/phish`,
	`\/evil.example/phish`,
	`/%5Cevil.example/phish`,
	`/%5C%5Cevil.example/phish`,
	`/%2F%2Fevil.example/phish`,
	`/%2F/evil.example/phish`,
	"/\t/evil.example/phish",
	"/\n/evil.example/phish",
	"/\r\n/evil.example/phish",
	"/.\t/\\evil.example/phish",
	"\t//evil.example/phish",
	"/%09/evil.example/phish",
	`//evil.example/phish`,
	`///evil.example/phish`,
	`/.//evil.example/phish`,
	`https://evil.example/phish`,
	`http:/\evil.example/phish`,
	`/.advcaptcha/challenge`,
	`/.advcaptcha/admin/`,
	`/./.advcaptcha/challenge`,
	`/x/../.advcaptcha/admin/`,
}

// rawSendable reports whether p can stand in a request line as it is.
func rawSendable(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f || p[i] == '#' {
			return false
		}
	}
	return true
}

// (f) Redirect payloads through the challenge: as ?return= of the captcha
// route, as the path of a challenged page (the slide page's data-return,
// the slide's "next"), as the answer form's return — and, when the shipped
// model reads the captcha, through a solved one to the real Location.
//
// It runs against the default gateway (where an empty adversarial pool asks
// clients to wait) and against the plain one, whose captchas are always
// there and which the shipped model reads, so that the real Location after
// a solved captcha is seen for every payload.
func TestAttackRedirect(t *testing.T) {
	bad1, obs1, loc1 := redirectAttack(t, plainGateway(t), "127.0.1.6")
	bad2, obs2, loc2 := redirectAttack(t, mainGW, "127.0.1.16")
	fig := fmt.Sprintf("%d/%d", bad1+bad2, obs1+obs2)
	figures.set("redirect", fig)
	t.Logf("attack redirect: %s returns a browser resolves off-site or into /.advcaptcha/ (%d payloads; %d solved captchas gave a real Location)", fig, len(redirectPayloads), loc1+loc2)
	if obs1+obs2 == 0 {
		t.Errorf("no return path was observable: the attack saw no captcha, slide page or Location")
	}
}

// redirectAttack sends every payload through gw's challenge from ip and
// reports each bad return (as a test error); it returns the number of bad
// and of observed returns, and of real Locations seen.
func redirectAttack(t *testing.T, gw *gateway, ip string) (nbad, nobserved, nlocations int) {
	base, _ := url.Parse(gw.base)
	type finding struct{ payload, channel, value, why string }
	var mu sync.Mutex
	var bad []finding
	var observed, locations, solved atomic.Int32
	judge := func(payload, channel, value string, final bool) {
		observed.Add(1)
		why := ""
		if final {
			locations.Add(1)
			why = badDestination(base, value)
		} else {
			why = badReturn(base, value)
		}
		if why != "" {
			mu.Lock()
			bad = append(bad, finding{payload, channel, value, why})
			mu.Unlock()
		}
	}
	// answerForm posts the answer form (as the page does) with the payload
	// as its return, and judges what comes back.
	answerForm := func(d *device, c *captchaView, payload, channel string) {
		text := "zzzzzz"
		if s, err := d.solve(c); err == nil && s != "" {
			text = s
		}
		form := url.Values{"id": {c.ID}, "answer": {text}, "return": {payload}}
		r, err := d.do(http.MethodPost, "/.advcaptcha/answer", formPOST, []byte(form.Encode()), nil)
		if err != nil {
			return
		}
		if r.Status == http.StatusSeeOther {
			solved.Add(1)
			judge(payload, channel+" → solved captcha → Location", r.Header.Get("Location"), true)
			return
		}
		if v, ok := attr(hiddenReturn, r.Body); ok {
			judge(payload, channel+" → wrong answer → form return", v, false)
		}
	}
	parallel(len(redirectPayloads), 4, func(i int) {
		p := redirectPayloads[i]
		// 1. The captcha route's ?return=.
		d := newDevice(gw, ip)
		r, err := d.do(http.MethodGet, "/.advcaptcha/challenge?return="+url.QueryEscape(p), fetchGET, nil, nil)
		if err == nil {
			if c := captchaOf(r); c != nil {
				if v, ok := returnParam(c.Refresh); ok {
					judge(p, "challenge?return → refresh", v, false)
				}
				answerForm(d, c, p, "challenge?return")
			}
			if retry, _ := r.json()["retry"].(string); retry != "" {
				if v, ok := returnParam(retry); ok {
					judge(p, "challenge?return → wait → retry", v, false)
				}
			}
		}
		// 2. A challenged page at the payload path.
		if !rawSendable(p) {
			return
		}
		d = newDevice(gw, ip)
		r, err = d.rawGET(p, navigate)
		if err != nil || classify(r) != outSlide {
			return
		}
		if v, ok := attr(dataReturn, r.Body); ok {
			judge(p, "page → slide data-return", v, false)
		}
		nonce, _ := attr(dataNonce, r.Body)
		r, err = d.postSlide(nonce, keyboardSlide, "keyboard")
		if err != nil {
			return
		}
		s := parseSlideReply(r)
		if s.OK {
			judge(p, "page → slide → JSON return", s.Return, true)
			return
		}
		if v, ok := returnParam(s.Next); ok {
			judge(p, "page → slide → next", v, false)
		}
		if s.Next == "" {
			return
		}
		r, err = d.do(http.MethodGet, s.Next, navigate, nil, nil)
		if err != nil {
			return
		}
		if classify(r) == outWait {
			if retry := regexpFind(`id="advc-retry" href="([^"]*)"`, r.Body); retry != "" {
				if v, ok := returnParam(retry); ok {
					judge(p, "page → slide → wait → retry", v, false)
				}
			}
			return
		}
		if classify(r) != outCaptcha {
			return
		}
		if v, ok := attr(hiddenReturn, r.Body); ok {
			judge(p, "page → slide → captcha form return", v, false)
		}
		// The captcha page in JSON, to get its id.
		id := regexpFind(`name="id" value="([^"]*)"`, r.Body)
		img := regexpFind(`id="advc-captcha-img" src="([^"]*)"`, r.Body)
		if id != "" && img != "" {
			answerForm(d, &captchaView{ID: id, Image: img}, p, "page")
		}
	})
	seen := map[string]bool{}
	for _, b := range bad {
		key := b.payload + "|" + b.why
		if seen[key] {
			continue
		}
		seen[key] = true
		t.Errorf("[%s gateway] return %q via %s: %q — %s", gw.name, b.payload, b.channel, b.value, b.why)
	}
	t.Logf("%s gateway: %d/%d returns bad, %d captchas solved", gw.name, len(bad), observed.Load(), solved.Load())
	return len(bad), int(observed.Load()), int(locations.Load())
}
