package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// slideNonce asks for a protected page as a JSON client and returns the
// slide nonce it is given, keeping the device cookie in h.
func slideNonce(t *testing.T, h http.Header) string {
	t.Helper()
	r := get(t, "/", with(h, "Accept", "application/json"))
	var body struct {
		Decision string
		Slide    struct{ Nonce, Post, Script string }
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 403 || body.Slide.Nonce == "" || body.Slide.Post != "/.advcaptcha/slide" {
		t.Fatalf("JSON slide challenge: %d %q", r.status, r.body)
	}
	if h.Get("Cookie") == "" {
		h.Set("Cookie", "advc_device="+deviceCookie(t, r))
	}
	return body.Slide.Nonce
}

func slideBody(nonce string, points string) string {
	return `{"nonce":"` + nonce + `","points":` + points + `,"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":800,` +
		`"fingerprint":{"ua":"` + chromeUA + `","languages":["en"],"screen":[1920,1080],"plugins":5,"chrome":true}}`
}

func TestSlideAPIRejectsBadInputAndReplays(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5", newUpstream(t))
	h := browser("198.51.100.120")
	nonce := slideNonce(t, h)
	jh := with(h, "Content-Type", "application/json", "Accept", "application/json")
	good := `[[0,0,0],[30,1,100],[90,3,250],[180,4,450],[240,5,650],[250,5,800]]`
	for name, body := range map[string]string{
		"malformed json":  `{"nonce":`,
		"no nonce":        slideBody("", good),
		"bad nonce":       slideBody("not-a-nonce", good),
		"no points":       slideBody(nonce, `[]`),
		"shuffled times":  slideBody(nonce, `[[0,0,0],[30,1,300],[90,3,250],[250,5,800]]`),
		"negative time":   slideBody(nonce, `[[0,0,-5],[250,5,800]]`),
		"absurd x":        slideBody(nonce, `[[0,0,0],[1e12,5,800]]`),
		"short point":     slideBody(nonce, `[[0,0,0],[250,5]]`),
		"no fingerprint":  `{"nonce":"` + nonce + `","points":` + good + `,"wall_ms":800}`,
		"oversized":       slideBody(nonce, "["+strings.Repeat("[1,1,1],", 40000)+"[1,1,1]]"),
		"too many points": slideBody(nonce, "["+strings.Repeat("[1,1,1],", 5000)+"[1,1,1]]"),
	} {
		if r := post(t, "/.advcaptcha/slide", jh, body); r.status != 400 || !strings.Contains(r.body, `"error"`) {
			t.Errorf("%s: %d %q", name, r.status, r.body)
		}
	}
	// None of that used the nonce up: a good slide with it is judged once…
	r := post(t, "/.advcaptcha/slide", jh, slideBody(nonce, good))
	if r.status == 400 {
		t.Fatalf("good slide after rejected ones: %d %q", r.status, r.body)
	}
	// …and only once.
	if r := post(t, "/.advcaptcha/slide", jh, slideBody(nonce, good)); r.status != 400 || !strings.Contains(r.body, "already used") {
		t.Fatalf("replayed nonce: %d %q", r.status, r.body)
	}
	// A nonce is bound to the device it was issued to.
	other := browser("198.51.100.120")
	n2 := slideNonce(t, other)
	if r := post(t, "/.advcaptcha/slide", jh, slideBody(n2, good)); r.status != 400 || !strings.Contains(r.body, "another browser") {
		t.Fatalf("nonce of another device: %d %q", r.status, r.body)
	}
}
