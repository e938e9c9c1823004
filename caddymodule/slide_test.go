package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

// slideNonce asks for a protected page as a JSON client and returns the
// slide nonce it is given, keeping the device cookie in h; it fetches the
// ticket's target image, as the page does, and remembers where its slot is
// (slideTargets), so that slideBody and fingerprintSlide aim their drags.
func slideNonce(t *testing.T, h http.Header) string {
	t.Helper()
	nonce, target := slideNonceUnseen(t, h)
	slideTargets.Store(nonce, slotShare(t, get(t, target, h)))
	return nonce
}

// slideNonceUnseen is slideNonce without fetching the target image; it
// returns the image's path.
func slideNonceUnseen(t *testing.T, h http.Header) (nonce, target string) {
	t.Helper()
	r := get(t, "/", with(h, "Accept", "application/json"))
	var body struct {
		Decision string
		Slide    struct{ Nonce, Post, Script, Target string }
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 403 || body.Slide.Nonce == "" || body.Slide.Post != "/.advcaptcha/slide" ||
		body.Slide.Target != "/.advcaptcha/slide/"+body.Slide.Nonce+".png" {
		t.Fatalf("JSON slide challenge: %d %q", r.status, r.body)
	}
	if h.Get("Cookie") == "" {
		h.Set("Cookie", "advc_device="+deviceCookie(t, r))
	}
	return body.Slide.Nonce, body.Slide.Target
}

var travelRe = regexp.MustCompile(`"travel":[0-9.e+]+`)

// slideTargets maps a nonce to its slot's place, as a share of the travel.
var slideTargets sync.Map

// slotShare reads the slot's centre from a target image, as a script
// would: the mean column of its centre line's pixels over the width.
func slotShare(t testing.TB, r reply) float64 {
	t.Helper()
	if r.status != 200 || r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("slide target image: %d %q %.100q", r.status, r.header.Get("Content-Type"), r.body)
	}
	img, err := png.Decode(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("slide target image: %v", err)
	}
	b := img.Bounds()
	var sum, n float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA); c.R == 0x3a && c.A == 0xff {
				sum += float64(x)
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("slide target image without its slot")
	}
	return (sum/n + 0.5) / float64(b.Dx())
}

// aimedTravel is the travel a page would report for a drag of points to
// end on nonce's slot: the drag is kept, the track is the size that makes
// it a hit (what a script that read the image would do with a replay).
func aimedTravel(nonce, points string) float64 {
	share := 0.6 // a nonce whose image was not fetched
	if v, ok := slideTargets.Load(nonce); ok {
		share = v.(float64)
	}
	var pts [][]float64
	if json.Unmarshal([]byte(points), &pts) != nil || len(pts) < 2 || len(pts[0]) < 1 || len(pts[len(pts)-1]) < 1 {
		return 400
	}
	return min(max((pts[len(pts)-1][0]-pts[0][0])/share, 150), 1200)
}

func slideBody(nonce string, points string) string {
	return `{"nonce":"` + nonce + `","points":` + points + `,"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":800,` +
		`"travel":` + strconv.FormatFloat(aimedTravel(nonce, points), 'f', 1, 64) + `,` +
		`"fingerprint":{"ua":"` + chromeUA + `","languages":["en-US","en"],"screen":[1920,1080],"plugins":5,"chrome":true}}`
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
		"no travel":       strings.Replace(slideBody(nonce, good), `"travel":`, `"travel_":`, 1),
		"absurd travel":   travelRe.ReplaceAllString(slideBody(nonce, good), `"travel":1e9`),
		"tiny travel":     travelRe.ReplaceAllString(slideBody(nonce, good), `"travel":20`),
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
	// A score from captcha_at up reads the captcha at once.
	zhCaptcha := get(t, "/", with(suspicious("198.51.100.123"), "Accept-Language", "zh"))
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

// humanDrag is the i-th of the recorded human drags in the attack suite's
// sample (trajectory/testdata, from the SapiMouse data set), as JSON points:
// real hand movement, which the trajectory judge accepts. Each test uses
// its own drags: the replay check remembers every drag it has seen.
func humanDrag(t *testing.T, i int) string {
	t.Helper()
	b, err := os.ReadFile("../trajectory/testdata/human_drags_sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var d struct{ Points json.RawMessage }
	if i >= len(lines) || json.Unmarshal([]byte(lines[i]), &d) != nil {
		t.Fatalf("no human drag %d", i)
	}
	return string(d.Points)
}

// slideAfterServing posts a slide no sooner than a person could: the
// sample's drags take at most 1.1 s after the page arrived.
func slideAfterServing(t *testing.T, h http.Header, body string) reply {
	t.Helper()
	time.Sleep(1300 * time.Millisecond)
	return post(t, "/.advcaptcha/slide", with(h, "Content-Type", "application/json", "Accept", "application/json"), body)
}

// fingerprintSlide is a slide's body; wall_ms is the drag's own duration,
// as the page measures it.
func fingerprintSlide(nonce, points, fp string) string {
	var pts [][]float64
	_ = json.Unmarshal([]byte(points), &pts)
	wall := 0.0
	if len(pts) > 0 && len(pts[0]) == 3 {
		wall = pts[len(pts)-1][2] - pts[0][2]
	}
	return `{"nonce":"` + nonce + `","points":` + points + `,"pointer":{"type":"mouse","pressures":[0.5]},"wall_ms":` +
		strconv.FormatFloat(wall, 'f', 1, 64) + `,"travel":` + strconv.FormatFloat(aimedTravel(nonce, points), 'f', 1, 64) + `,"fingerprint":` + fp + `}`
}

// TestFingerprintLabelOutlivesTheCookie: a fingerprint refused for a
// certain finding on two devices is labelled; the same browser back with a
// fresh cookie is sent to the captcha, not cleared. One refused device is
// not enough, and a fingerprint that contradicts the request it came with
// (anyone's, posted by a script) is never labelled.
func TestFingerprintLabelOutlivesTheCookie(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5", newUpstream(t))
	fp := `{"ua":"` + chromeUA + `","languages":["en-US","en"],"screen":[1111,777],"plugins":5,"chrome":true,"canvas":"abc"}`
	webdriver := strings.Replace(fp, `"ua"`, `"webdriver":true,"ua"`, 1)
	refuse := func(ip string, drag int, fp string) {
		t.Helper()
		bot := browser(ip)
		if r := slideAfterServing(t, bot, fingerprintSlide(slideNonce(t, bot), humanDrag(t, drag), fp)); r.status != 403 || !strings.Contains(r.body, "refused") {
			t.Fatalf("webdriver slide: %d %q", r.status, r.body)
		}
	}
	// A script posting this fingerprint under another User-Agent labels
	// nothing, however often.
	for i := range 3 {
		refuse(fmt.Sprintf("198.51.100.%d", 133+i), 1+i, strings.Replace(webdriver, "Chrome/", "Chrome/1", 1))
	}
	refuse("198.51.100.130", 4, webdriver)
	person := browser("198.51.100.136")
	if r := slideAfterServing(t, person, fingerprintSlide(slideNonce(t, person), humanDrag(t, 5), fp)); r.status != 200 {
		score, reasons := lastJudgement(t)
		t.Fatalf("one refused device labelled the fingerprint: %d %q (%v %v)", r.status, r.body, score, reasons)
	}
	refuse("198.51.100.137", 6, webdriver)
	again := browser("198.51.100.131") // new IP, no cookie: a fresh device id
	r := slideAfterServing(t, again, fingerprintSlide(slideNonce(t, again), humanDrag(t, 7), fp))
	if r.status != 403 || !strings.Contains(r.body, `"next"`) {
		t.Fatalf("same fingerprint, new cookie: %d %q (want the captcha)", r.status, r.body)
	}
	// Another machine with a slide of its own is cleared.
	other := browser("198.51.100.132")
	if r := slideAfterServing(t, other, fingerprintSlide(slideNonce(t, other), humanDrag(t, 8), strings.Replace(fp, "1111", "1440", 1))); r.status != 200 {
		t.Fatalf("another machine: %d %q", r.status, r.body)
	}
}

// TestSlideIsAFilterNotAPass: a slide clears a client only when all agrees:
// honest timing against the server's clock, a drag never seen before, and
// few passes from its network; a failed slide leads to a grant for the
// captcha, never to a clearance, and the clearance a slide earns is the
// short one.
func TestSlideIsAFilterNotAPass(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5\nslide_passes 3 4 10", newUpstream(t))
	fp := func(i int) string {
		return `{"ua":"` + chromeUA + `","languages":["en-US","en"],"screen":[1920,1080],"plugins":5,"chrome":true,"canvas":"c` + fmt.Sprint(i) + `"}`
	}
	jh := func(h http.Header) http.Header {
		return with(h, "Content-Type", "application/json", "Accept", "application/json")
	}
	wantCaptcha := func(what string, r reply) {
		t.Helper()
		var body struct{ Next string }
		if json.Unmarshal([]byte(r.body), &body) != nil || r.status != 403 || !strings.HasPrefix(body.Next, "/.advcaptcha/challenge?grant=") {
			t.Fatalf("%s: %d %q, want the captcha's grant", what, r.status, r.body)
		}
	}

	// At once after the page was served, claiming an 800 ms drag.
	h := browser("198.51.100.160")
	nonce := slideNonce(t, h)
	wantCaptcha("faster than served", post(t, "/.advcaptcha/slide", jh(h), fingerprintSlide(nonce, humanDrag(t, 9), fp(1))))

	// A person's drag passes once, with the short clearance…
	drag := humanDrag(t, 10)
	h = browser("198.51.100.161")
	r := slideAfterServing(t, h, fingerprintSlide(slideNonce(t, h), drag, fp(2)))
	if r.status != 200 {
		t.Fatalf("a person's slide: %d %q", r.status, r.body)
	}
	if c := r.header.Get("Set-Cookie"); !strings.Contains(c, "advc_clearance=") || !strings.Contains(c, "Max-Age=900") {
		t.Fatalf("slide clearance cookie %q, want a quarter of the hour", c)
	}
	// …and never again: replayed exactly, or shifted, scaled and re-timed.
	var pts [][]float64
	if err := json.Unmarshal([]byte(drag), &pts); err != nil {
		t.Fatal(err)
	}
	for i := range pts {
		pts[i] = []float64{pts[i][0]*1.04 + 13, pts[i][1]*1.04 - 2, pts[i][2] * 0.97}
	}
	altered, _ := json.Marshal(pts)
	for i, d := range []string{drag, string(altered)} {
		h := browser(fmt.Sprintf("198.51.100.%d", 162+i))
		wantCaptcha(fmt.Sprintf("replay %d", i), slideAfterServing(t, h, fingerprintSlide(slideNonce(t, h), d, fp(3+i))))
	}

	// One network passes at most 4 slides an hour, however many devices.
	passed := 0
	for i := range 6 {
		h := browser("198.51.100.170")
		if r := slideAfterServing(t, h, fingerprintSlide(slideNonce(t, h), humanDrag(t, 11+i), fp(10+i))); r.status == 200 {
			passed++
		} else {
			wantCaptcha("past the network's slides", r)
		}
	}
	if passed != 4 {
		t.Fatalf("one network passed %d slides, want 4", passed)
	}

	// The grant a failed slide gave leads to a captcha for that device.
	h = browser("198.51.100.180")
	nonce = slideNonce(t, h)
	r = post(t, "/.advcaptcha/slide", jh(h), fingerprintSlide(nonce, humanDrag(t, 17), fp(40)))
	var next struct{ Next string }
	json.Unmarshal([]byte(r.body), &next)
	if c := get(t, next.Next, h); c.status != 403 || !strings.Contains(c.body, `id="advc-captcha-img"`) {
		t.Fatalf("grant of a failed slide: %d %.200q", c.status, c.body)
	}
}

// TestSparseChromiumMouseReadsTheCaptcha: one person's drag with every
// other sample dropped (34 ms apart, as a driver on a loaded machine sends
// them) is sent to the captcha when a Chromium mouse or pen made it, since
// Chromium gives the page every sample such a device sends; as a touch drag
// it is not judged by its rate; another person's drag with all its samples
// (17 ms) clears. (Other drags each time: the replay check remembers.)
func TestSparseChromiumMouseReadsTheCaptcha(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5", newUpstream(t))
	fp := `{"ua":"` + chromeUA + `","languages":["en-US","en"],"screen":[1920,1080],"plugins":5,"chrome":true,"canvas":"sparse"}`
	thinned := func(i int) string {
		var pts [][]float64
		if err := json.Unmarshal([]byte(humanDrag(t, i)), &pts); err != nil {
			t.Fatal(err)
		}
		var sparse [][]float64
		for k, p := range pts {
			if k%2 == 0 || k == len(pts)-1 {
				sparse = append(sparse, p)
			}
		}
		b, _ := json.Marshal(sparse)
		return string(b)
	}
	for i, pointer := range []string{"mouse", "pen"} {
		h := browser("198.51.100." + fmt.Sprint(194+i))
		body := strings.Replace(fingerprintSlide(slideNonce(t, h), thinned([]int{19, 2}[i]), fp), `"type":"mouse"`, `"type":"`+pointer+`"`, 1)
		r := slideAfterServing(t, h, body)
		score, reasons := lastJudgement(t)
		var next struct{ Next string }
		if json.Unmarshal([]byte(r.body), &next) != nil || r.status != 403 || !strings.HasPrefix(next.Next, "/.advcaptcha/challenge?grant=") {
			t.Fatalf("a sparse Chromium %s drag: %d %q (%v %v), want the captcha's grant", pointer, r.status, r.body, score, reasons)
		}
		wantReason(t, reasons, "sparse_pointer")
		// The trajectory judge alone finds the thinned drag human, so it is
		// the sampling that sends it on. (Judged here rather than read off
		// the gateway's score, which the replay check may also raise when
		// it finds the drag close to one another test posted.)
		var pts [][]float64
		_ = json.Unmarshal([]byte(thinned([]int{19, 2}[i])), &pts)
		traj, err := trajectory.FromArrays(pts)
		if err != nil {
			t.Fatal(err)
		}
		if res := trajectory.Score(traj); res.Score >= 20 || res.Features.MedianInterval <= 20 { // slideConfident, sparseInterval
			t.Fatalf("the thinned %s drag: judge score %v, median interval %v ms: not a human drag that only its sampling gives away, so this tests nothing", pointer, res.Score, res.Features.MedianInterval)
		}
	}
	h := browser("198.51.100.196")
	body := strings.Replace(fingerprintSlide(slideNonce(t, h), thinned(3), fp), `"type":"mouse"`, `"type":"touch"`, 1)
	slideAfterServing(t, h, body)
	if _, reasons := lastJudgement(t); slices.Contains(reasons, "sparse_pointer") {
		t.Fatalf("a sparse touch drag drew sparse_pointer: %v", reasons)
	}
	h = browser("198.51.100.197")
	if r := slideAfterServing(t, h, fingerprintSlide(slideNonce(t, h), humanDrag(t, 23), fp)); r.status != 200 {
		score, reasons := lastJudgement(t)
		t.Fatalf("another person's drag with every sample: %d %q (%v %v)", r.status, r.body, score, reasons)
	}
}

// TestSlideMustBeAimed: the slot is only in the ticket's image, so a drag
// must be aimed: posted without the image fetched, or ending off the slot,
// it leads to the captcha (target_unseen, missed_target), never to a
// clearance. The image is served only to the device the ticket was issued
// to, a few times, and without caching.
func TestSlideMustBeAimed(t *testing.T) {
	load(t, "challenge slide\nchallenge_at 5", newUpstream(t))
	fp := func(i int) string {
		return `{"ua":"` + chromeUA + `","languages":["en-US","en"],"screen":[1920,1080],"plugins":5,"chrome":true,"canvas":"aim` + fmt.Sprint(i) + `"}`
	}
	wantCaptcha := func(what, reason string, r reply) {
		t.Helper()
		var body struct{ Next string }
		if json.Unmarshal([]byte(r.body), &body) != nil || r.status != 403 || !strings.HasPrefix(body.Next, "/.advcaptcha/challenge?grant=") {
			t.Fatalf("%s: %d %q, want the captcha's grant", what, r.status, r.body)
		}
		_, reasons := lastJudgement(t)
		wantReason(t, reasons, reason)
	}

	// Never fetched: the drag was not aimed at anything the page showed.
	h := browser("198.51.100.190")
	nonce, target := slideNonceUnseen(t, h)
	wantCaptcha("drag without the image", "target_unseen", slideAfterServing(t, h, fingerprintSlide(nonce, humanDrag(t, 20), fp(1))))

	// Fetched, but the drag ends a fifth of the travel off the slot.
	h = browser("198.51.100.191")
	nonce, target = slideNonceUnseen(t, h)
	share := slotShare(t, get(t, target, h))
	if share < 0.38 || share > 0.87 {
		t.Fatalf("slot at %.3f of the travel, want within [0.4, 0.85]", share)
	}
	drag := humanDrag(t, 21)
	off := share + 0.2
	if share > 0.6 {
		off = share - 0.2
	}
	slideTargets.Store(nonce, off)
	wantCaptcha("drag off the slot", "missed_target", slideAfterServing(t, h, fingerprintSlide(nonce, drag, fp(2))))

	// The same kind of drag aimed at the slot clears.
	h = browser("198.51.100.192")
	if r := slideAfterServing(t, h, fingerprintSlide(slideNonce(t, h), humanDrag(t, 22), fp(3))); r.status != 200 {
		score, reasons := lastJudgement(t)
		t.Fatalf("an aimed human drag: %d %q (%v %v)", r.status, r.body, score, reasons)
	}

	// The image: another device's ticket is unknown, a fourth fetch is
	// refused, and nothing may cache it.
	h = browser("198.51.100.193")
	_, target = slideNonceUnseen(t, h)
	if r := get(t, target, browser("198.51.100.193")); r.status != 404 {
		t.Fatalf("another device's target image: %d %.100q", r.status, r.body)
	}
	for i := range 3 {
		r := get(t, target, h)
		if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("fetch %d of the target image: %d, Cache-Control %q", i+1, r.status, r.header.Get("Cache-Control"))
		}
	}
	if r := get(t, target, h); r.status != 429 {
		t.Fatalf("fourth fetch of the target image: %d %.100q", r.status, r.body)
	}
	if r := get(t, "/.advcaptcha/slide/not-a-nonce.png", h); r.status != 404 {
		t.Fatalf("target image of a malformed nonce: %d", r.status)
	}
}
