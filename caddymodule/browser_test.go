package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// Real-browser tests: Debian's headless Chromium, driven over CDP with
// chromedp, through the real Caddy module with the slide bar enabled.

const chromiumPath = "/usr/bin/chromium"

var sessions atomic.Int32

// normalUA is a normal desktop Chrome UA of the installed major version
// (no "Headless"), for sessions that pretend to be a person's browser.
func normalUA(t *testing.T) string {
	out, err := exec.Command(chromiumPath, "--version").Output()
	if err != nil {
		t.Fatalf("chromium not runnable (make test installs Debian's chromium): %v", err)
	}
	major := ""
	for _, f := range strings.Fields(string(out)) { // "Chromium 156.0.8078.73 built on Debian …"
		if f[0] >= '0' && f[0] <= '9' {
			major = strings.SplitN(f, ".", 2)[0]
			break
		}
	}
	if major == "" {
		t.Fatalf("no version in %q", out)
	}
	return "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + major + ".0.0.0 Safari/537.36"
}

// browserSession starts a fresh Chromium. automation=false removes the
// automation switches and sets a normal UA, as a careful bot — or a
// person's browser — would look.
func browserSession(t *testing.T, automation bool) context.Context {
	t.Helper()
	redistest.SkipShort(t, "starts Chromium")
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s missing (make test installs Debian's chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		// Each session its own screen, so that sessions are different
		// machines to the fingerprint (a labelled fingerprint would
		// otherwise follow one test into the next).
		chromedp.WindowSize(1280+int(sessions.Add(1))*8, 800),
	}
	if automation {
		opts = append(opts, chromedp.Flag("enable-automation", true))
	} else {
		opts = append(opts, chromedp.Flag("disable-blink-features", "AutomationControlled"), chromedp.UserAgent(normalUA(t)))
	}
	// Chromium occasionally fails to come up on a loaded machine; a
	// session gets three tries before the test fails.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel2 := chromedp.NewContext(actx)
		if err = chromedp.Do(ctx); err == nil {
			t.Cleanup(cancel)
			t.Cleanup(cancel2)
			ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
			t.Cleanup(cancel3)
			return ctx
		}
		cancel2()
		cancel()
		time.Sleep(time.Second)
	}
	t.Fatalf("chromium did not start in 3 tries: %v", err)
	return nil
}

type rect struct{ X, Y, Width, Height float64 }

func elementRect(t *testing.T, ctx context.Context, id string) rect {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(document.getElementById("`+id+`").getBoundingClientRect())`))
	if err != nil {
		t.Fatal(err)
	}
	var r rect
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// drag presses on the handle and moves it along path(u) (px from the
// press point) at the given times (ms), then releases.
func drag(t *testing.T, ctx context.Context, times []float64, path func(u float64) (float64, float64)) {
	t.Helper()
	h := elementRect(t, ctx, "advc-slider-handle")
	x0, y0 := h.X+h.Width/2, h.Y+h.Height/2
	held := func(p *input.DispatchMouseEventParams) {
		p.Button = input.MouseButtonLeft
		p.Buttons = 1
		p.Force = 0.5
	}
	// Each move waits until its time since the press, not for a gap after
	// the previous one: on a loaded machine (CI, -race) every CDP round trip
	// is slow, and gaps would add them up into a slower, sparser drag than
	// the recording.
	var start time.Time
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.MouseEvent(chromedp.MousePressed, x0, y0, held, chromedp.ClickCount(1)),
		func(context.Context, *chromedp.Target) (chromedp.Void, error) {
			start = time.Now()
			return chromedp.Void{}, nil
		},
	}
	end := times[len(times)-1]
	for _, at := range times[1:] {
		steps = append(steps, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			return chromedp.Sleep(time.Until(start.Add(time.Duration(at*float64(time.Millisecond)))))(ctx, tg)
		})
		dx, dy := path(at / end)
		steps = append(steps, chromedp.MouseEvent(chromedp.MouseMoved, x0+dx, y0+dy, held))
	}
	dx, dy := path(1)
	steps = append(steps, chromedp.MouseEvent(chromedp.MouseReleased, x0+dx, y0+dy, held, chromedp.ClickCount(1)))
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// slideDistance is how far the handle must move to end on the slot: the
// slot's place read from the target image as a script would (its centre
// line's mean column), times the handle's travel.
func slideDistance(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	waitFor(t, ctx, `document.getElementById("advc-slider-target").complete && document.getElementById("advc-slider-target").naturalWidth > 0`, "the slide's target image")
	share, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(() => {
		const img = document.getElementById("advc-slider-target");
		const c = document.createElement("canvas");
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const g = c.getContext("2d");
		g.drawImage(img, 0, 0);
		const d = g.getImageData(0, 0, c.width, c.height).data;
		let sum = 0, n = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] === 0x3a && d[i+3] === 255) { sum += (i / 4) % c.width; n++; }
		return n ? (sum / n + 0.5) / c.width : -1;
	})()`))
	if err != nil || share < 0.3 || share > 0.9 {
		t.Fatalf("the slot's place in the target image: %v %v", share, err)
	}
	tr, h := elementRect(t, ctx, "advc-slider-track"), elementRect(t, ctx, "advc-slider-handle")
	return share * (tr.Width - h.Width)
}

func loadSlideSite(t *testing.T) *upstream {
	up := newUpstream(t)
	// challenge_at 5: a first visit (no device cookie yet) is challenged,
	// so every session meets the slide bar.
	// captcha_at 89: even a headless browser's score meets the slide, which
	// is what these tests judge.
	load(t, "challenge_at 5\ncaptcha_at 89", up) // the slide bar is the default first step
	return up
}

// waitUntil polls the page until cond holds (a JS boolean expression), for
// up to 10 s, and reports whether it did.
func waitUntil(ctx context.Context, cond string) (bool, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false, nil
}

// waitFor polls the page until cond holds (a JS boolean expression).
func waitFor(t *testing.T, ctx context.Context, cond, what string) {
	t.Helper()
	if ok, _ := waitUntil(ctx, cond); ok {
		return
	}
	html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	t.Fatalf("timed out waiting for %s; page: %.800s", what, html)
}

func openSlide(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:9080"+path)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `!!document.getElementById("advc-slider-handle")`, "the slide bar")
}

func minJerk(u float64) float64 { return 10*u*u*u - 15*u*u*u*u + 6*u*u*u*u*u }

func TestBrowserHumanLikeSlideDrawsNoFinding(t *testing.T) {
	loadSlideSite(t)
	ctx := browserSession(t, false)
	openSlide(t, ctx, "/welcome?x=1")
	shot(t, ctx, "../docs/slide-desktop.png")
	// A recorded person's drag (the SapiMouse sample), stretched to end on the slot of this
	// track, delivered over CDP.
	var pts [][]float64
	if err := json.Unmarshal([]byte(humanDrag(t, 18)), &pts); err != nil {
		t.Fatal(err)
	}
	scale := slideDistance(t, ctx) / (pts[len(pts)-1][0] - pts[0][0])
	times := make([]float64, len(pts))
	for i, p := range pts {
		times[i] = p[2] - pts[0][2]
	}
	at := func(u float64) (float64, float64) {
		ms := u * times[len(times)-1]
		i := 1
		for i < len(times)-1 && times[i] < ms {
			i++
		}
		f := 0.0
		if times[i] > times[i-1] {
			f = (ms - times[i-1]) / (times[i] - times[i-1])
		}
		x := pts[i-1][0] + f*(pts[i][0]-pts[i-1][0]) - pts[0][0]
		y := pts[i-1][1] + f*(pts[i][1]-pts[i-1][1]) - pts[0][1]
		return x * scale, y
	}
	drag(t, ctx, times, at)
	// A person's drag in headless Chromium: the trajectory draws nothing.
	// The browser itself is refused — the fingerprint judge sees headless
	// Chromium for what it is, as it must see a bot's — so the path on to
	// the page or the captcha is tested through the API (slide_test.go).
	waitFor(t, ctx, `document.getElementById("advc-status").textContent.includes("refused")`, "the verdict on headless Chromium")
	score, reasons := lastJudgement(t)
	if slideReasons(reasons) != nil {
		t.Fatalf("human-like slide scored %v (%v): the drag drew findings", score, reasons)
	}
	if len(reasons) == 0 {
		t.Fatalf("headless Chromium passed the fingerprint checks (score %v)", score)
	}
}

// slideReasons are the findings of the drag and its timing, as opposed to
// the browser's fingerprint.
func slideReasons(reasons []string) []string {
	var out []string
	for _, r := range reasons {
		switch r {
		case "machine_like", "too_fast", "too_few_points", "perfectly_linear", "same_durations",
			"clock_mismatch", "faster_than_served", "replayed_drag", "zero_pressure", "target_unseen", "missed_target":
			out = append(out, r)
		}
	}
	return out
}

// TestBrowserPhoneViewport: the page fits a phone and the handle can be
// reached; the screenshot goes to the docs like the desktop one.
func TestBrowserPhoneViewport(t *testing.T) {
	loadSlideSite(t)
	ctx := browserSession(t, false)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	openSlide(t, ctx, "/")
	track := elementRect(t, ctx, "advc-slider-track")
	if track.X < 0 || track.X+track.Width > 390 || track.Width < 200 {
		t.Fatalf("slider track %+v does not fit a 390 px wide phone", track)
	}
	shot(t, ctx, "../docs/slide-phone.png")
}

func TestBrowserConstantSpeedSlideIsJudgedAMachine(t *testing.T) {
	loadSlideSite(t)
	ctx := browserSession(t, false)
	openSlide(t, ctx, "/")
	dist := slideDistance(t, ctx)
	drag(t, ctx, evenSteps(600, 16), func(u float64) (float64, float64) { return dist * u, 0 })
	waitFor(t, ctx, `document.getElementById("advc-status").textContent.includes("refused") || !!document.getElementById("advc-captcha-img")`, "the verdict on a constant-speed slide")
	_, reasons := lastJudgement(t)
	wantReason(t, reasons, "machine_like")
}

func TestBrowserFiftyMillisecondSlideIsRefused(t *testing.T) {
	loadSlideSite(t)
	ctx := browserSession(t, false)
	openSlide(t, ctx, "/")
	dist := slideDistance(t, ctx)
	// Press, one move to the end, release, with no pauses: CDP delivers
	// each event on a frame, so this is about three frames, ~50 ms.
	drag(t, ctx, []float64{0, 0.001}, func(u float64) (float64, float64) { return dist * u, 0 })
	waitFor(t, ctx, `document.getElementById("advc-status").textContent.includes("refused")`, "a refusal")
	_, reasons := lastJudgement(t)
	wantReason(t, reasons, "too_fast")
	// The device is labelled: the next visit is blocked outright.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:9080/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `document.body.innerText.includes("Access denied")`, "the block page")
}

func TestBrowserWebdriverSessionIsRefused(t *testing.T) {
	loadSlideSite(t)
	ctx := browserSession(t, true)
	openSlide(t, ctx, "/")
	dist := slideDistance(t, ctx)
	rng := rand.New(rand.NewPCG(12, 12))
	times := []float64{0}
	for at := 0.0; at < 800; {
		at += 6 + 8*rng.Float64()
		times = append(times, at)
	}
	drag(t, ctx, times, func(u float64) (float64, float64) { return dist * minJerk(u), 2 * math.Sin(u*9) })
	waitFor(t, ctx, `document.getElementById("advc-status").textContent.includes("refused")`, "a refusal of the webdriver session")
	_, reasons := lastJudgement(t)
	wantReason(t, reasons, "webdriver")
}

// TestBrowserKeyboardPathIsJudged: the keyboard path (focus, End, Enter) posts a
// slide with no motion to judge; headless Chromium is then refused on its
// fingerprint alone (a person's browser goes on to the captcha: the API
// path is tested in slide_test.go).
func TestBrowserKeyboardPathIsJudged(t *testing.T) {
	loadSlideSite(t)
	ctx := browserSession(t, false)
	openSlide(t, ctx, "/")
	if err := chromedp.Do(ctx, chromedp.Focus("#advc-slider-handle"), chromedp.KeyEvent(kb.End), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `document.getElementById("advc-status").textContent.includes("refused") || !!document.getElementById("advc-captcha-img")`, "the verdict after the keyboard path")
	if score, reasons := lastJudgement(t); slideReasons(reasons) != nil {
		t.Fatalf("keyboard slide judged on motion: %v %v", score, reasons)
	}
}

// lastJudgement returns Caddy's last "slide judged" log entry, so tests
// can check why a slide was judged as it was.
func lastJudgement(t *testing.T) (score float64, reasons []string) {
	t.Helper()
	var last struct {
		Score   float64
		Reasons []string
	}
	found := false
	for _, line := range strings.Split(readLog(t), "\n") {
		if strings.Contains(line, `"msg":"slide judged"`) {
			if err := json.Unmarshal([]byte(line), &last); err == nil {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no slide judgement in Caddy's log")
	}
	return last.Score, last.Reasons
}

func wantReason(t *testing.T, reasons []string, want string) {
	t.Helper()
	for _, r := range reasons {
		if r == want {
			return
		}
	}
	t.Fatalf("reasons %v lack %q", reasons, want)
}

func evenSteps(dur, step float64) []float64 {
	var ts []float64
	for at := 0.0; at < dur; at += step {
		ts = append(ts, at)
	}
	return append(ts, dur)
}

// shot writes a screenshot for the README (the test run refreshes them).
// updateScreenshots rewrites the tracked screenshots in docs/ (make
// screenshots); otherwise they are taken, checked to be PNGs and dropped,
// so a test run leaves the work tree as it was.
var updateScreenshots = flag.Bool("update", false, "rewrite the screenshots in docs/")

func shot(t *testing.T, ctx context.Context, path string) {
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.DecodeConfig(bytes.NewReader(b)); err != nil {
		t.Fatalf("screenshot for %s: %v", path, err)
	}
	if !*updateScreenshots {
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
