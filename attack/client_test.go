package attack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The browser the attacker claims to be: Chrome 131 on Linux, with every
// header such a browser sends to a secure context (loopback counts as one).
const (
	chromeUA       = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	chromeCHUA     = `"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`
	curlUA         = "curl/8.5.0"
	googlebotUA    = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	htmlAccept     = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
	maxBody        = 4 << 20
	requestTimeout = 20 * time.Second
)

// device is one browser profile (its own cookie jar) of an attacker IP.
type device struct {
	gw *gateway
	ip string
	c  *http.Client
	fp fingerprint
}

func newDevice(gw *gateway, ip string) *device {
	jar, _ := cookiejar.New(nil)
	return &device{gw: gw, ip: ip, fp: chromeFingerprint(nil), c: &http.Client{
		Jar: jar, Transport: transportFrom(ip), Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// reply is a response read whole.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *reply) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Kinds of requests a browser makes, for its headers.
type reqKind int

const (
	navigate  reqKind = iota // a page load (HTML)
	fetchGET                 // the page's fetch() of JSON
	fetchPOST                // the page's same-origin POST of JSON
	formPOST                 // a form submitted on the page
)

func (d *device) browserHeaders(h http.Header, kind reqKind) {
	h.Set("User-Agent", chromeUA)
	h.Set("Accept-Language", "en-US,en;q=0.9")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Sec-CH-UA", chromeCHUA)
	h.Set("Sec-CH-UA-Mobile", "?0")
	h.Set("Sec-CH-UA-Platform", `"Linux"`)
	switch kind {
	case navigate:
		h.Set("Accept", htmlAccept)
		h.Set("Sec-Fetch-Site", "none")
		h.Set("Sec-Fetch-Mode", "navigate")
		h.Set("Sec-Fetch-Dest", "document")
		h.Set("Sec-Fetch-User", "?1")
		h.Set("Upgrade-Insecure-Requests", "1")
	case fetchGET, fetchPOST:
		h.Set("Accept", "application/json")
		h.Set("Sec-Fetch-Site", "same-origin")
		h.Set("Sec-Fetch-Mode", "cors")
		h.Set("Sec-Fetch-Dest", "empty")
		if kind == fetchPOST {
			h.Set("Content-Type", "application/json")
			h.Set("Origin", d.gw.base)
		}
	case formPOST:
		h.Set("Accept", htmlAccept)
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		h.Set("Origin", d.gw.base)
		h.Set("Sec-Fetch-Site", "same-origin")
		h.Set("Sec-Fetch-Mode", "navigate")
		h.Set("Sec-Fetch-Dest", "document")
	}
}

// do sends a browser request; path is relative to the gateway.
func (d *device) do(method, path string, kind reqKind, body []byte, extra http.Header) (*reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, d.gw.base+path, rd)
	if err != nil {
		return nil, err
	}
	d.browserHeaders(req.Header, kind)
	for k, v := range extra {
		req.Header[k] = v
	}
	return send(d.c, req)
}

func send(c *http.Client, req *http.Request) (*reply, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return &reply{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Outcomes of a request, as an attacker reads them.
const (
	outAllowed = "allowed" // the upstream answered
	outSlide   = "slide"   // a slide challenge
	outCaptcha = "captcha" // a text captcha
	outBlocked = "blocked" // refused
	outLimited = "limited" // 429: over a budget
	outWait    = "wait"    // "preparing your check": come back later
	outOther   = "other"   // anything else (an error)
)

func classify(r *reply) string {
	body := string(r.Body)
	switch {
	case r.Status == http.StatusOK && strings.HasPrefix(body, upstreamBody):
		return outAllowed
	case strings.Contains(body, `id="advc-slide"`):
		return outSlide
	case strings.Contains(body, `id="advc-captcha-img"`):
		return outCaptcha
	case strings.Contains(body, `id="advc-wait"`):
		return outWait
	}
	if m := r.json(); m != nil {
		if _, ok := m["slide"].(map[string]any); ok {
			return outSlide
		}
		if _, ok := m["challenge"].(map[string]any); ok {
			return outCaptcha
		}
		if m["decision"] == "block" {
			return outBlocked
		}
		if _, ok := m["retry_after"]; ok {
			return outWait
		}
	}
	switch r.Status {
	case http.StatusTooManyRequests:
		return outLimited
	case http.StatusForbidden:
		return outBlocked
	}
	return outOther
}

// captchaView is the JSON view of a captcha.
type captchaView struct {
	ID      string `json:"id"`
	Image   string `json:"image"`
	Audio   string `json:"audio"`
	Answer  string `json:"answer"`
	Refresh string `json:"refresh"`
}

func captchaOf(r *reply) *captchaView {
	var m struct {
		Challenge *captchaView `json:"challenge"`
	}
	if json.Unmarshal(r.Body, &m) != nil || m.Challenge == nil || m.Challenge.ID == "" {
		return nil
	}
	return m.Challenge
}

func slideNonce(r *reply) string {
	var m struct {
		Slide struct {
			Nonce string `json:"nonce"`
		} `json:"slide"`
	}
	_ = json.Unmarshal(r.Body, &m)
	return m.Slide.Nonce
}

var dataNonce = regexp.MustCompile(`data-nonce="([^"]*)"`)
var dataReturn = regexp.MustCompile(`data-return="([^"]*)"`)
var hiddenReturn = regexp.MustCompile(`name="return" value="([^"]*)"`)

func attr(re *regexp.Regexp, body []byte) (string, bool) {
	m := re.FindSubmatch(body)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(string(m[1])), true
}

// returnParam extracts return= from a /.advcaptcha/challenge?return=… link.
func returnParam(link string) (string, bool) {
	u, err := url.Parse(link)
	if err != nil {
		return "", false
	}
	v, ok := u.Query()["return"]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// fingerprint is what slide.js posts about the browser.
type fingerprint map[string]any

// chromeFingerprint is a plausible, self-consistent fingerprint of the
// claimed browser; with rng, its per-machine parts (screen, canvas hash,
// cores, memory, GPU) vary as they do across real machines.
func chromeFingerprint(rng *rand.Rand) fingerprint {
	screen := []float64{1920, 1080, 1920, 1053, 24}
	win := []float64{1920, 969, 1920, 1053}
	canvas, cores, memory := "5e1f2c7a", 8.0, 8.0
	renderer := "ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL 4.6)"
	vendor := "Google Inc. (Intel)"
	if rng != nil {
		screens := [][]float64{{1920, 1080}, {2560, 1440}, {1366, 768}, {1536, 864}, {1680, 1050}, {3840, 2160}}
		s := screens[rng.IntN(len(screens))]
		screen = []float64{s[0], s[1], s[0], s[1] - 27, 24}
		win = []float64{s[0], s[1] - 111, s[0], s[1] - 27}
		canvas = fmt.Sprintf("%08x", rng.Uint32())
		cores = []float64{4, 8, 12, 16}[rng.IntN(4)]
		memory = []float64{4, 8}[rng.IntN(2)]
		gpus := [][2]string{
			{"Google Inc. (Intel)", "ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL 4.6)"},
			{"Google Inc. (AMD)", "ANGLE (AMD, AMD Radeon RX 6600 (radeonsi, navi23, LLVM 17.0.6, DRM 3.57, 6.8.0-45-generic), OpenGL 4.6)"},
			{"Google Inc. (NVIDIA Corporation)", "ANGLE (NVIDIA Corporation, NVIDIA GeForce RTX 3060/PCIe/SSE2, OpenGL 4.5.0)"},
		}
		g := gpus[rng.IntN(len(gpus))]
		vendor, renderer = g[0], g[1]
	}
	return fingerprint{
		"webdriver": false, "ua": chromeUA, "platform": "Linux x86_64",
		"languages": []string{"en-US", "en"}, "cores": cores, "memory": memory,
		"screen": screen, "window": win, "timezone": "Europe/Berlin",
		"plugins": 5, "mimeTypes": 2, "touch": 0, "chrome": true,
		"uaData":     map[string]any{"brands": []string{"Google Chrome/131", "Chromium/131", "Not_A Brand/24"}, "mobile": false, "platform": "Linux"},
		"glVendor":   vendor,
		"glRenderer": renderer,
		"worker": map[string]any{"ua": chromeUA, "platform": "Linux x86_64", "cores": cores, "memory": memory,
			"languages": []string{"en-US", "en"}},
		"canvas": canvas, "notification": "default", "notificationQuery": "prompt",
	}
}

// aim is what an attacker does with the slide's target image: fetch it
// (as the page's <img> would), read the slot's centre line (the mean column
// of its darkest pixels) and report the travel on which pts end on it —
// the drag kept as recorded, the track claimed to be the size that fits.
func (d *device) aim(nonce string, pts [][]float64) (float64, error) {
	r, err := d.do(http.MethodGet, "/.advcaptcha/slide/"+nonce+".png", fetchGET, nil, http.Header{"Accept": {"image/avif,image/webp,image/apng,image/*,*/*;q=0.8"}})
	if err != nil {
		return 0, err
	}
	if r.Status != http.StatusOK {
		return 0, fmt.Errorf("slide target image: HTTP %d %.100q", r.Status, r.Body)
	}
	img, err := png.Decode(bytes.NewReader(r.Body))
	if err != nil {
		return 0, fmt.Errorf("slide target image: %w", err)
	}
	b := img.Bounds()
	var sum, n float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA); c.A == 0xff && c.R < 0x50 {
				sum += float64(x)
				n++
			}
		}
	}
	if n == 0 || len(pts) < 2 {
		return 400, nil
	}
	share := (sum/n + 0.5) / float64(b.Dx())
	return min(max((pts[len(pts)-1][0]-pts[0][0])/share, 150), 1200), nil
}

// slideBody is what slide.js posts.
func (d *device) slideBody(nonce string, pts [][]float64, pointer string, travel float64) []byte {
	pressures := []float64{}
	if pointer == "mouse" {
		for i := 0; i < len(pts) && i < 64; i++ {
			pressures = append(pressures, 0.5)
		}
	}
	wall := 0.0
	if len(pts) > 0 {
		wall = pts[len(pts)-1][2] + 1.3 // performance.now() runs a little past the last event
	}
	b, _ := json.Marshal(map[string]any{
		"nonce": nonce, "points": pts,
		"pointer":     map[string]any{"type": pointer, "pressures": pressures},
		"wall_ms":     wall,
		"travel":      travel,
		"fingerprint": d.fp,
	})
	return b
}

// keyboardSlide is the accessible path: End on the focused handle. It
// always goes on to the captcha.
var keyboardSlide = [][]float64{{0, 0, 0}, {252, 0, 180}}

// postSlide posts a slide for nonce, aimed at its target (the keyboard
// path needs no aim), and returns the reply.
func (d *device) postSlide(nonce string, pts [][]float64, pointer string) (*reply, error) {
	travel := 400.0
	if pointer != "keyboard" {
		var err error
		if travel, err = d.aim(nonce, pts); err != nil {
			return nil, err
		}
	}
	return d.do(http.MethodPost, "/.advcaptcha/slide", fetchPOST, d.slideBody(nonce, pts, pointer, travel), nil)
}

// slideReply is the JSON answer to a slide.
type slideReply struct {
	OK     bool   `json:"ok"`
	Return string `json:"return"`
	Next   string `json:"next"`
	Error  string `json:"error"`
}

func parseSlideReply(r *reply) slideReply {
	var s slideReply
	_ = json.Unmarshal(r.Body, &s)
	return s
}

func hasCookie(r *reply, name string) bool {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name && c.Value != "" && c.MaxAge >= 0 {
			return true
		}
	}
	return false
}

// getCaptcha walks the way a challenged visitor reaches the text captcha:
// the page (JSON), the slide by keyboard, then the captcha the slide leads
// to. Asked to wait ("preparing your check"), it waits as told (at most
// 6 s) and retries, up to waits times. It returns the captcha, or nil and
// what the gateway answered instead.
func (d *device) getCaptcha(path string, waits int) (*captchaView, string, error) {
	r, err := d.do(http.MethodGet, path, fetchGET, nil, nil)
	if err != nil {
		return nil, "", err
	}
	switch classify(r) {
	case outCaptcha:
		return captchaOf(r), outCaptcha, nil
	case outSlide:
	case outWait:
		return d.waitForCaptcha(r, waits)
	default:
		return nil, classify(r), nil
	}
	r, err = d.postSlide(slideNonce(r), keyboardSlide, "keyboard")
	if err != nil {
		return nil, "", err
	}
	s := parseSlideReply(r)
	if s.OK {
		return nil, outAllowed, nil
	}
	if s.Next == "" {
		return nil, "slide:" + classify(r), nil
	}
	r, err = d.do(http.MethodGet, s.Next, fetchGET, nil, nil)
	if err != nil {
		return nil, "", err
	}
	if c := captchaOf(r); c != nil {
		return c, outCaptcha, nil
	}
	if classify(r) == outWait {
		return d.waitForCaptcha(r, waits)
	}
	return nil, "next:" + classify(r), nil
}

// waitForCaptcha follows a JSON wait answer's retry link.
func (d *device) waitForCaptcha(r *reply, waits int) (*captchaView, string, error) {
	for ; waits > 0 && classify(r) == outWait; waits-- {
		retry, _ := r.json()["retry"].(string)
		if retry == "" {
			break
		}
		secs, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		time.Sleep(time.Duration(min(max(secs, 1), 6)) * time.Second)
		var err error
		if r, err = d.do(http.MethodGet, retry, fetchGET, nil, nil); err != nil {
			return nil, "", err
		}
	}
	if c := captchaOf(r); c != nil {
		return c, outCaptcha, nil
	}
	return nil, classify(r), nil
}

// answer posts a JSON answer and returns the reply.
func (d *device) answer(id, text string) (*reply, error) {
	b, _ := json.Marshal(map[string]string{"id": id, "answer": text})
	return d.do(http.MethodPost, "/.advcaptcha/answer", fetchPOST, b, nil)
}

// parallel runs f(i) for i in [0,n) on w workers.
func parallel(n, w int, f func(i int)) {
	ch := make(chan int)
	done := make(chan struct{})
	for k := 0; k < w; k++ {
		go func() {
			for i := range ch {
				f(i)
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	for k := 0; k < w; k++ {
		<-done
	}
}

// rawGET sends a request line exactly as given, from ip, and reads the
// response: for paths that HTTP clients would normalise or refuse.
func rawGET(gw *gateway, ip, target string, hdr http.Header) (*reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	conn, err := dialFrom(ctx, ip, gw.host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, gw.host)
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return &reply{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// rawGET sends a browser page load with the request target exactly as
// given, carrying the device's cookies and keeping the ones it is given.
func (d *device) rawGET(target string, kind reqKind) (*reply, error) {
	h := http.Header{}
	d.browserHeaders(h, kind)
	u, _ := url.Parse(d.gw.base + "/")
	var cs []string
	for _, c := range d.c.Jar.Cookies(u) {
		cs = append(cs, c.Name+"="+c.Value)
	}
	if len(cs) > 0 {
		h.Set("Cookie", strings.Join(cs, "; "))
	}
	r, err := rawGET(d.gw, d.ip, target, h)
	if err != nil {
		return nil, err
	}
	d.c.Jar.SetCookies(u, (&http.Response{Header: r.Header}).Cookies())
	return r, nil
}

var regexps sync.Map

// compile caches regular expressions used on response bodies.
func compile(expr string) *regexp.Regexp {
	if re, ok := regexps.Load(expr); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(expr)
	regexps.Store(expr, re)
	return re
}
