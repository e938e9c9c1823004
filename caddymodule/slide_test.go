package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
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

func TestSlidePageLanguageAndBranding(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5\nbranding {\n title Example Shop\n logo /logo.png\n color \"#aa3300\"\n}", newUpstream(t))
	zh := get(t, "/", with(browser("198.51.100.121"), "Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5"))
	if zh.status != 403 || !strings.Contains(zh.body, `lang="zh"`) || !strings.Contains(zh.body, "正在确认您不是机器人") {
		t.Fatalf("Chinese page: %d %.300q", zh.status, zh.body)
	}
	en := get(t, "/", with(browser("198.51.100.122"), "Accept-Language", "fr-FR,fr;q=0.9"))
	if !strings.Contains(en.body, `lang="en"`) || !strings.Contains(en.body, "Checking that you are not a robot") {
		t.Fatalf("fallback page: %.300q", en.body)
	}
	for _, want := range []string{"Example Shop", `src="/logo.png"`, "#aa3300", `id="advc-slider-track"`, `id="advc-slider-handle"`, "<noscript>"} {
		if !strings.Contains(en.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	zhCaptcha := get(t, "/.advcaptcha/challenge?return=/", with(browser("198.51.100.123"), "Accept-Language", "zh"))
	if !strings.Contains(zhCaptcha.body, "图片中的字符") || !strings.Contains(zhCaptcha.body, "秒后过期") {
		t.Fatalf("Chinese captcha page: %.400q", zhCaptcha.body)
	}
	caddytestLoadError(t, "challenge slide\nbranding {\n color red\n}", "branding.color")
	caddytestLoadError(t, "challenge slide\nbranding {\n logo javascript:alert(1)\n}", "branding.logo")
}

func caddytestLoadError(t *testing.T, opts, want string) {
	t.Helper()
	caddytest.AssertLoadError(t, fmt.Sprintf("{\n\tadmin localhost:2999\n\thttp_port 9080\n}\n:9080 {\n\tadvcaptcha {\n\t\t%s\n\t}\n\trespond ok\n}", opts), "caddyfile", want)
}

// TestFingerprintLabelOutlivesTheCookie: a device labelled for a certain
// finding that comes back with a fresh cookie but the same browser is sent
// to the captcha, not cleared.
func TestFingerprintLabelOutlivesTheCookie(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5", newUpstream(t))
	good := `[[0,0,0],[30,1,100],[90,3,250],[180,4,450],[240,5,650],[250,5,800]]`
	jh := func(h http.Header) http.Header {
		return with(h, "Content-Type", "application/json", "Accept", "application/json")
	}
	fp := `{"ua":"` + chromeUA + `","languages":["en"],"screen":[1111,777],"plugins":5,"chrome":true,"canvas":"abc"}`
	bot := browser("198.51.100.130")
	n := slideNonce(t, bot)
	body := `{"nonce":"` + n + `","points":` + good + `,"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":800,"fingerprint":` +
		strings.Replace(fp, `"ua"`, `"webdriver":true,"ua"`, 1) + `}`
	if r := post(t, "/.advcaptcha/slide", jh(bot), body); r.status != 403 || !strings.Contains(r.body, "refused") {
		t.Fatalf("webdriver slide: %d %q", r.status, r.body)
	}
	again := browser("198.51.100.131") // new IP, no cookie: a fresh device id
	n = slideNonce(t, again)
	body = `{"nonce":"` + n + `","points":` + good + `,"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":800,"fingerprint":` + fp + `}`
	r := post(t, "/.advcaptcha/slide", jh(again), body)
	if r.status != 403 || !strings.Contains(r.body, `"next"`) {
		t.Fatalf("same fingerprint, new cookie: %d %q (want the captcha)", r.status, r.body)
	}
	// Another machine with the same slide is cleared.
	other := browser("198.51.100.132")
	n = slideNonce(t, other)
	body = `{"nonce":"` + n + `","points":` + good + `,"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":800,"fingerprint":` +
		strings.Replace(fp, "1111", "1440", 1) + `}`
	if r := post(t, "/.advcaptcha/slide", jh(other), body); r.status != 200 {
		t.Fatalf("another machine: %d %q", r.status, r.body)
	}
}
