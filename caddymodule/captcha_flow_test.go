package caddymodule_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// The captcha stage runs on real Redis here, because the test must read
// the truth of a captcha it cannot read from the image: it looks the
// challenge record up in Redis, as only the gateway can.

// suspicious is a client that scores in the challenge range: a scripting
// library UA with otherwise browser-like headers.
func suspicious(ip string) http.Header {
	return with(browser(ip), "User-Agent", "python-requests/2.32.3")
}

type captchaFlow struct {
	t   *testing.T
	rdb *redis.Client
}

func newCaptchaFlow(t *testing.T, extra string) (*captchaFlow, *upstream) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	load(t, fmt.Sprintf("redis %s\nsecret %s\nchallenge captcha\n%s", srv.Addr, testSecret, extra), up)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return &captchaFlow{t: t, rdb: rdb}, up
}

var idPattern = regexp.MustCompile(`name="id" value="([A-Za-z0-9_-]{22})"`)

// challenge requests path as h and returns the challenge id it was given,
// keeping the device cookie for the next requests.
func (f *captchaFlow) challenge(h http.Header, path string) string {
	f.t.Helper()
	r := get(f.t, path, h)
	if r.status != http.StatusForbidden {
		f.t.Fatalf("GET %s: status %d, want the challenge (403)", path, r.status)
	}
	m := idPattern.FindStringSubmatch(r.body)
	if m == nil {
		f.t.Fatalf("no captcha form in %q", r.body)
	}
	if h.Get("Cookie") == "" {
		h.Set("Cookie", "advc_device="+deviceCookie(f.t, r))
	}
	if !strings.Contains(r.body, `id="advc-captcha-img"`) || !strings.Contains(r.body, `id="advc-answer"`) || !strings.Contains(r.body, `id="advc-submit"`) {
		f.t.Fatalf("page lacks the stable element ids: %s", r.body)
	}
	return m[1]
}

// truth reads the captcha's text from the store.
func (f *captchaFlow) truth(id string) string {
	f.t.Helper()
	b, err := f.rdb.Get(context.Background(), "advc:ch:"+id).Bytes()
	if err != nil {
		f.t.Fatalf("challenge %s not in Redis: %v", id, err)
	}
	var rec struct{ Text string }
	if err := json.Unmarshal(b, &rec); err != nil {
		f.t.Fatal(err)
	}
	return rec.Text
}

func post(t testing.TB, path string, h http.Header, body string) reply {
	t.Helper()
	req, err := http.NewRequest("POST", siteURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return do(t, req)
}

func answerForm(id, answer, ret string) string {
	return url.Values{"id": {id}, "answer": {answer}, "return": {ret}}.Encode()
}

func TestCaptchaStageClearsAPerson(t *testing.T) {
	f, up := newCaptchaFlow(t, "")
	h := suspicious("198.51.100.80")
	id := f.challenge(h, "/account?tab=2")

	img := get(t, "/.advcaptcha/captcha/"+id+".png", h)
	if img.status != 200 || img.header.Get("Content-Type") != "image/png" || !strings.HasPrefix(img.body, "\x89PNG") {
		t.Fatalf("image: %d %s", img.status, img.header.Get("Content-Type"))
	}
	// Another browser cannot fetch it.
	if r := get(t, "/.advcaptcha/captcha/"+id+".png", suspicious("198.51.100.81")); r.status != 404 {
		t.Fatalf("image from another device: %d", r.status)
	}

	truth := f.truth(id)
	r := post(t, "/.advcaptcha/answer", h, answerForm(id, " "+strings.ToUpper(truth)+" ", "/ignored"))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/account?tab=2" {
		t.Fatalf("correct answer: %d to %q", r.status, r.header.Get("Location"))
	}
	h.Set("Cookie", h.Get("Cookie")+"; advc_clearance="+responseCookie(t, r, "advc_clearance"))
	before := up.hits.Load()
	if r := get(t, "/account?tab=2", h); r.status != 200 || up.hits.Load() != before+1 {
		t.Fatalf("cleared client: %d", r.status)
	}
	// The captcha was single-use.
	if r := post(t, "/.advcaptcha/answer", h, answerForm(id, truth, "/")); r.status != 403 || !strings.Contains(r.body, "expired or was already used") {
		t.Fatalf("reused captcha: %d %q", r.status, r.body)
	}
}

func TestCaptchaWrongAnswerBurnsIt(t *testing.T) {
	f, _ := newCaptchaFlow(t, "")
	h := suspicious("198.51.100.82")
	id := f.challenge(h, "/")
	truth := f.truth(id)
	r := post(t, "/.advcaptcha/answer", h, answerForm(id, truth+"x", "/"))
	if r.status != 403 || !strings.Contains(r.body, "not right") {
		t.Fatalf("wrong answer: %d %q", r.status, r.body)
	}
	next := idPattern.FindStringSubmatch(r.body)
	if next == nil || next[1] == id {
		t.Fatal("no new captcha after a wrong answer")
	}
	if r := post(t, "/.advcaptcha/answer", h, answerForm(id, truth, "/")); r.status == http.StatusSeeOther {
		t.Fatal("a burnt captcha was accepted")
	}
}

func TestCaptchaRacingAnswersOneJudged(t *testing.T) {
	f, _ := newCaptchaFlow(t, "")
	h := suspicious("198.51.100.83")
	id := f.challenge(h, "/")
	truth := f.truth(id)
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := post(t, "/.advcaptcha/answer", h, answerForm(id, truth, "/")); r.status == http.StatusSeeOther {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != 1 {
		t.Fatalf("%d of 8 racing correct answers passed, want exactly 1", passed)
	}
}

func TestCaptchaRejectsBadAnswers(t *testing.T) {
	f, _ := newCaptchaFlow(t, "")
	h := suspicious("198.51.100.84")
	id := f.challenge(h, "/")
	for name, body := range map[string]string{
		"empty":         answerForm(id, "   ", "/"),
		"overlong":      answerForm(id, strings.Repeat("a", 33), "/"),
		"non-ascii":     answerForm(id, "abcé", "/"),
		"control chars": answerForm(id, "ab\x00\x07", "/"),
		"bad id":        answerForm("not-an-id", "abcd", "/"),
		"huge body":     "id=" + id + "&answer=" + strings.Repeat("a", 10_000),
		"bad form":      "%%%",
	} {
		if r := post(t, "/.advcaptcha/answer", h, body); r.status != 400 {
			t.Errorf("%s: status %d, want 400 (%q)", name, r.status, r.body)
		}
	}
	jh := with(h, "Content-Type", "application/json", "Accept", "application/json")
	for name, body := range map[string]string{
		"malformed json": `{"id": `,
		"unknown field":  `{"id":"` + id + `","answer":"abcd","x":1}`,
		"trailing":       `{"id":"` + id + `","answer":"abcd"} {}`,
		"NaN-ish":        `{"id":"` + id + `","answer":NaN}`,
	} {
		if r := post(t, "/.advcaptcha/answer", jh, body); r.status != 400 || !strings.Contains(r.body, `"error"`) {
			t.Errorf("%s: status %d %q", name, r.status, r.body)
		}
	}
	// None of that consumed the captcha.
	if r := post(t, "/.advcaptcha/answer", h, answerForm(id, f.truth(id), "/")); r.status != http.StatusSeeOther {
		t.Fatalf("the captcha after rejected answers: %d", r.status)
	}
}

func TestCaptchaJSONAPI(t *testing.T) {
	f, _ := newCaptchaFlow(t, "")
	h := with(suspicious("198.51.100.85"), "Accept", "application/json")
	r := get(t, "/api/items", h)
	var body struct {
		Decision  string
		Challenge struct{ ID, Image, Answer, Refresh string }
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 403 || body.Decision != "challenge" || body.Challenge.ID == "" {
		t.Fatalf("JSON challenge: %d %q", r.status, r.body)
	}
	h.Set("Cookie", "advc_device="+deviceCookie(t, r))
	if img := get(t, body.Challenge.Image, h); img.status != 200 {
		t.Fatalf("image: %d", img.status)
	}
	ans, _ := json.Marshal(map[string]string{"id": body.Challenge.ID, "answer": f.truth(body.Challenge.ID)})
	res := post(t, body.Challenge.Answer, with(h, "Content-Type", "application/json"), string(ans))
	if res.status != 200 || !strings.Contains(res.body, `"ok":true`) {
		t.Fatalf("JSON answer: %d %q", res.status, res.body)
	}
	if !strings.Contains(res.header.Get("Set-Cookie"), "advc_clearance=") {
		t.Fatal("no clearance cookie")
	}
}

func TestCaptchaReturnIsSameOrigin(t *testing.T) {
	f, _ := newCaptchaFlow(t, "")
	for _, evil := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/.advcaptcha/answer", "/./\\evil.example/phish", "/%2e%2e//evil.example"} {
		// The way back is the challenged page's own path, whatever the
		// answer form says.
		h := suspicious("198.51.100.86")
		id := f.challenge(h, "/")
		res := post(t, "/.advcaptcha/answer", h, answerForm(id, f.truth(id), evil))
		if loc := res.header.Get("Location"); res.status != http.StatusSeeOther || loc != "/" {
			t.Errorf("return %q: %d to %q, want /", evil, res.status, loc)
		}
	}
	// A challenged path that a browser would resolve off-site is not kept.
	for _, path := range []string{"/.%2e/%5Cevil.example/phish", "/a/%2e%2e//evil.example"} {
		h := suspicious("198.51.100.87")
		r := get(t, path, h)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, `name="return" value="/"`) {
			t.Errorf("challenged at %s: %d, the page's return is not /: %.200q", path, r.status, r.body)
		}
	}
}

// TestChallengeRouteNeedsAGrant: the challenge route hands out captchas
// only against a grant from a challenge decision, bound to its device, and
// each grant (a page's "another image" link) only once; refreshes run out.
func TestChallengeRouteNeedsAGrant(t *testing.T) {
	f, _ := newCaptchaFlow(t, "")
	for _, path := range []string{"/.advcaptcha/challenge", "/.advcaptcha/challenge?return=/", "/.advcaptcha/challenge?grant=AAAAAAAAAAAAAAAAAAAAAA"} {
		if r := get(t, path, suspicious("198.51.100.140")); r.status != http.StatusForbidden || idPattern.MatchString(r.body) {
			t.Fatalf("GET %s without a grant: %d %.200q", path, r.status, r.body)
		}
	}
	h := suspicious("198.51.100.141")
	f.challenge(h, "/")
	r := get(t, "/", with(h, "Accept", "application/json"))
	var body struct{ Challenge struct{ Refresh string } }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || !strings.Contains(body.Challenge.Refresh, "grant=") {
		t.Fatalf("challenge JSON without a refresh grant: %q", r.body)
	}
	refresh := body.Challenge.Refresh
	if r := get(t, refresh, suspicious("198.51.100.141")); r.status != http.StatusForbidden || idPattern.MatchString(r.body) {
		t.Fatalf("another device redeemed the grant: %d", r.status)
	}
	for i := 0; i < maxRefreshesForTest; i++ {
		r := get(t, refresh, with(h, "Accept", "application/json"))
		body.Challenge.Refresh = ""
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != http.StatusForbidden || !strings.Contains(r.body, `"id"`) {
			t.Fatalf("refresh %d: %d %q", i+1, r.status, r.body)
		}
		if again := get(t, refresh, h); again.status != http.StatusForbidden || idPattern.MatchString(again.body) {
			t.Fatalf("refresh grant %d redeemed twice", i+1)
		}
		refresh = body.Challenge.Refresh
	}
	if refresh != "" {
		t.Fatalf("after %d refreshes the page still offers another: %q", maxRefreshesForTest, refresh)
	}
}

// maxRefreshesForTest is caddymodule's maxRefreshes.
const maxRefreshesForTest = 3

// TestCaptchaBudgetBoundsAFlood: whatever a network asks for, it is handed
// at most its budget of captchas in the window; then it is told to wait.
func TestCaptchaBudgetBoundsAFlood(t *testing.T) {
	newCaptchaFlow(t, "captcha_budget 3 5 10m")
	captchas, waits := 0, 0
	for i := 0; i < 40; i++ {
		r := get(t, "/", suspicious("198.51.100.150")) // a fresh device each time
		switch {
		case idPattern.MatchString(r.body):
			captchas++
		case r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "600":
			waits++
		}
	}
	if captchas != 5 || waits != 35 {
		t.Fatalf("40 fresh devices on one address: %d captchas, %d told to wait; want 5 and 35", captchas, waits)
	}
}

func TestCaptchaFailureLimitLabelsDevice(t *testing.T) {
	f, _ := newCaptchaFlow(t, "max_failures device 3")
	h := suspicious("198.51.100.87")
	id := f.challenge(h, "/")
	for i := 0; i < 3; i++ {
		r := post(t, "/.advcaptcha/answer", h, answerForm(id, "wrong", "/"))
		if m := idPattern.FindStringSubmatch(r.body); m != nil {
			id = m[1]
		}
	}
	if r := get(t, "/", h); r.status != 403 || !strings.Contains(r.body, "Access denied") {
		t.Fatalf("after 3 wrong answers: %d %q", r.status, r.body)
	}
	if r := get(t, "/.advcaptcha/challenge", h); r.status != 403 || strings.Contains(r.body, "advc-captcha-img") {
		t.Fatalf("a labelled device got a new captcha: %d", r.status)
	}
}

// TestCaptchaRecords: every served captcha and every answer is in the
// captcha log, with what the learning loop needs; the served record's
// recipe reproduces the exact image the client downloaded.
func TestCaptchaRecords(t *testing.T) {
	f, _ := newCaptchaFlow(t, "adversarial off") // the recipe of a clean captcha
	h := suspicious("198.51.100.88")
	id := f.challenge(h, "/")
	img := get(t, "/.advcaptcha/captcha/"+id+".png", h)
	truth := f.truth(id)
	post(t, "/.advcaptcha/answer", h, answerForm(id, "zzzz", "/"))

	msgs, err := f.rdb.XRange(context.Background(), "advc:log:captchas", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	ttl, _ := f.rdb.PTTL(context.Background(), "advc:log:captchas").Result()
	if ttl <= 0 {
		t.Fatalf("captcha log has no TTL: %v", ttl)
	}
	var served, answered map[string]any
	for _, m := range msgs {
		var ev map[string]any
		if err := json.Unmarshal([]byte(m.Values["v"].(string)), &ev); err != nil {
			t.Fatal(err)
		}
		if ev["id"] != id {
			continue
		}
		switch ev["kind"] {
		case "served":
			served = ev
		case "answer":
			answered = ev
		}
	}
	if served == nil || answered == nil {
		t.Fatalf("records for %s: served %v, answer %v", id, served, answered)
	}
	if served["truth"] != truth || served["method"] != "none" || served["renderer"] != captcha.RendererVersion {
		t.Fatalf("served record: %v", served)
	}
	if answered["answer"] != "zzzz" || answered["correct"] != false || answered["latency_ms"] == nil {
		t.Fatalf("answer record: %v", answered)
	}
	// The recipe reproduces the downloaded bytes.
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		t.Fatal(err)
	}
	var seed struct{ Seed uint64 }
	raw, _ := json.Marshal(served)
	_ = json.Unmarshal(raw, &seed)
	c, err := style.Generate(seed.Seed)
	if err != nil {
		t.Fatal(err)
	}
	png, _ := captcha.EncodePNG(c.Image)
	sum := sha256.Sum256([]byte(img.body))
	if c.Text != truth || string(png) != img.body || hex.EncodeToString(sum[:]) != served["png_sha256"] {
		t.Fatal("the recipe does not reproduce the served image")
	}
}

func TestAudioAlternative(t *testing.T) {
	f, _ := newCaptchaFlow(t, "max_audio 3")
	h := suspicious("198.51.100.89")
	id := f.challenge(h, "/")
	for i := 1; i <= 4; i++ {
		r := get(t, "/.advcaptcha/audio/"+id+".wav", h)
		switch {
		case i <= 3 && (r.status != 200 || r.header.Get("Content-Type") != "audio/wav" || !strings.HasPrefix(r.body, "RIFF")):
			t.Fatalf("audio %d: %d %s", i, r.status, r.header.Get("Content-Type"))
		case i == 4 && r.status != http.StatusTooManyRequests:
			t.Fatalf("audio over the limit: %d", r.status)
		}
	}
	if r := get(t, "/.advcaptcha/audio/"+id+".wav", suspicious("198.51.100.90")); r.status != 404 {
		t.Fatalf("audio from another device: %d", r.status)
	}
	r := post(t, "/.advcaptcha/answer", h, answerForm(id, f.truth(id), "/"))
	if r.status != http.StatusSeeOther {
		t.Fatalf("answer after audio: %d", r.status)
	}
	var maxAge int
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "advc_clearance" {
			maxAge = c.MaxAge
		}
	}
	if maxAge != 900 { // a quarter of the default hour
		t.Fatalf("clearance after audio lasts %ds, want 900", maxAge)
	}
	// The plays count in the device's score: three plays, the full 15.
	up := newUpstream(t)
	loadProxy(t, fmt.Sprintf("redis %s\nsecret %s\nchallenge captcha\nupstream_headers", f.rdb.Options().Addr, testSecret), up, "")
	bh := with(browser("198.51.100.91"), "Cookie", h.Get("Cookie"))
	if r := get(t, "/", bh); r.status != 200 {
		t.Fatalf("browser with the audio device: %d", r.status)
	}
	if got := up.lastHeader("X-Advcaptcha-Reasons"); !strings.Contains(got, "audio_captcha=15") {
		t.Fatalf("reasons %q, want audio_captcha=15", got)
	}
}

// TestCrossSitePostsRefused: a page on another site cannot make a
// visitor's browser answer (and so burn) their captcha; the captcha is
// still there for the visitor afterwards.
func TestCrossSitePostsRefused(t *testing.T) {
	f, _ := newCaptchaFlow(t, "adversarial off")
	h := suspicious("198.51.100.88")
	id := f.challenge(h, "/")
	truth := f.truth(id)
	for name, hh := range map[string]http.Header{
		"foreign Origin":          with(h, "Origin", "https://evil.example"),
		"Sec-Fetch-Site: cross":   with(h, "Sec-Fetch-Site", "cross-site"),
		"Sec-Fetch-Site: sibling": with(h, "Sec-Fetch-Site", "same-site"),
	} {
		for _, path := range []string{"/.advcaptcha/answer", "/.advcaptcha/slide", "/.advcaptcha/challenge"} {
			if r := post(t, path, hh, answerForm(id, truth, "/")); r.status != http.StatusForbidden || !strings.Contains(r.body, "cross-site") {
				t.Errorf("%s POST %s: %d %.100s, want 403", name, path, r.status, r.body)
			}
		}
	}
	r := post(t, "/.advcaptcha/answer", with(h, "Origin", siteURL, "Sec-Fetch-Site", "same-origin"), answerForm(id, truth, "/"))
	if r.status != http.StatusSeeOther {
		t.Fatalf("the visitor's own answer afterwards: %d %s", r.status, r.body)
	}
}

// TestFailurePenaltiesEscalate: a device labelled for wrong answers a
// second time within the week is labelled twice as long; an account is
// labelled for wrong answers given from different devices and IPs.
func TestFailurePenaltiesEscalate(t *testing.T) {
	f, _ := newCaptchaFlow(t, "max_failures device 2\nmax_failures account 3\nlabel_ttl 1m\nadmin_token "+adminToken+
		"\naccount {http.request.header.X-Account}\nadversarial off")
	type event struct {
		Kind, Entity, Reason string
		At, Expires          time.Time
	}
	failureLabels := func() []event {
		r := get(t, "/.advcaptcha/admin/labels", adminHeader(adminToken))
		var page struct{ Events []event }
		if err := json.Unmarshal([]byte(r.body), &page); err != nil {
			t.Fatalf("label log %d %q: %v", r.status, r.body, err)
		}
		var out []event
		for _, e := range page.Events {
			if e.Kind == "label" && strings.HasPrefix(e.Reason, "too many wrong captcha answers") {
				out = append(out, e)
			}
		}
		return out
	}
	answerWrong := func(h http.Header, id string) string {
		r := post(t, "/.advcaptcha/answer", h, answerForm(id, "wrong", "/"))
		if m := idPattern.FindStringSubmatch(r.body); m != nil {
			return m[1]
		}
		return ""
	}

	h := suspicious("198.51.100.190")
	id := f.challenge(h, "/")
	id = answerWrong(h, id)
	answerWrong(h, id)
	first := failureLabels()
	if len(first) != 1 || !strings.HasPrefix(first[0].Entity, "dev:") || first[0].Expires.Sub(first[0].At).Round(time.Second) != time.Minute {
		t.Fatalf("after 2 wrong answers: %+v, want the device labelled for 1m", first)
	}
	if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"`+first[0].Entity+`","action":"clear","reason":"second chance"}`); r.status != 200 {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	answerWrong(h, f.challenge(h, "/"))
	again := failureLabels()
	if len(again) != 2 || again[1].Entity != first[0].Entity || again[1].Expires.Sub(again[1].At).Round(time.Second) != 2*time.Minute ||
		!strings.Contains(again[1].Reason, "again: 2 times") {
		t.Fatalf("the second label: %+v, want the same device for 2m", again)
	}

	// Three wrong answers for one account, each from its own IP and device.
	for i := range 3 {
		c := with(suspicious(fmt.Sprintf("198.51.100.%d", 191+i)), "X-Account", "alice")
		answerWrong(c, f.challenge(c, "/"))
	}
	// An account label challenges its requests; it never blocks them on
	// its own (anyone can name an account).
	if r := get(t, "/", with(browser("198.51.100.199"), "X-Account", "alice")); r.status != 403 || strings.Contains(r.body, "Access denied") || !strings.Contains(r.body, "advc-") {
		t.Fatalf("account after 3 wrong answers from 3 clients: %d, want challenged, not blocked", r.status)
	}
	if r := get(t, "/", with(browser("198.51.100.198"), "X-Account", "bob")); r.status != 200 {
		t.Fatalf("another account: %d", r.status)
	}
}
