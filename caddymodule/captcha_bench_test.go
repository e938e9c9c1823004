package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// BenchmarkCaptchaIssueAndVerify measures the captcha stage through real
// Caddy against real Redis: issuing (a challenged GET: scoring, rendering,
// storing) and verifying (a correct answer: taking the challenge, checking
// it, minting the clearance). Each iteration is a new client. It reports
// p50 and p99 of each.
func BenchmarkCaptchaIssueAndVerify(b *testing.B) {
	srv := redistest.Start(b)
	loadSite(b, fmt.Sprintf("redis %s\nsecret %s\nchallenge captcha", srv.Addr, testSecret), `respond "ok"`, "discard")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	var issue, verify []time.Duration
	i := 0
	for b.Loop() {
		i++
		h := with(browser(fmt.Sprintf("10.9.%d.%d", i/256%256, i%256)), "User-Agent", "python-requests/2.32.3")
		t0 := time.Now()
		r := get(b, "/", h)
		issue = append(issue, time.Since(t0))
		m := idPattern.FindStringSubmatch(r.body)
		if r.status != 403 || m == nil {
			b.Fatalf("no challenge: %d", r.status)
		}
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			if c.Name == "advc_device" {
				h.Set("Cookie", "advc_device="+c.Value)
			}
		}
		raw, err := rdb.Get(context.Background(), "advc:ch:"+m[1]).Bytes()
		if err != nil {
			b.Fatal(err)
		}
		var rec struct{ Text string }
		_ = json.Unmarshal(raw, &rec)
		t1 := time.Now()
		res := post(b, "/.advcaptcha/answer", h, answerForm(m[1], rec.Text, "/"))
		verify = append(verify, time.Since(t1))
		if res.status != http.StatusSeeOther {
			b.Fatalf("correct answer: %d", res.status)
		}
	}
	for name, d := range map[string][]time.Duration{"issue": issue, "verify": verify} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, name+"-p99-ms")
	}
}

// BenchmarkSlidePost measures the slide POST through real Caddy against
// real Redis: a new client each iteration fetches a nonce (not timed) and
// posts a 60-point drag with its fingerprint (timed): decode, validate,
// take the nonce, score trajectory and fingerprint, file the replay
// signature (six bucket round trips), push the duration history, and
// answer — with the grant for the captcha, since the same drag posted
// again and again is a replay (and arrives sooner than it could): the
// whole judgement runs either way.
func BenchmarkSlidePost(b *testing.B) {
	srv := redistest.Start(b)
	loadSite(b, fmt.Sprintf("redis %s\nsecret %s\nchallenge slide\nchallenge_at 5", srv.Addr, testSecret), `respond "ok"`, "discard")
	var pts strings.Builder
	pts.WriteString("[[0,0,0]")
	for i := 1; i <= 60; i++ {
		u := float64(i) / 60
		x := 250 * (10*u*u*u - 15*u*u*u*u + 6*u*u*u*u*u)
		fmt.Fprintf(&pts, ",[%.2f,%.2f,%.1f]", x, 3*math.Sin(u*5)+0.3*math.Sin(float64(i)), float64(i)*13+float64(i%3))
	}
	pts.WriteString("]")
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		h := browser(fmt.Sprintf("10.8.%d.%d", i/256%256, i%256))
		b.StopTimer()
		r := get(b, "/", with(h, "Accept", "application/json"))
		var body struct {
			Slide struct{ Nonce, Target string }
		}
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Slide.Nonce == "" {
			b.Fatalf("no slide nonce: %d %q", r.status, r.body)
		}
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			if c.Name == "advc_device" {
				h.Set("Cookie", "advc_device="+c.Value)
			}
		}
		// The page fetches the target and reports the travel that puts the
		// drag's end on it.
		travel := 250 / slotShare(b, get(b, body.Slide.Target, h))
		payload := `{"nonce":"` + body.Slide.Nonce + `","points":` + pts.String() + `,"pointer":{"type":"mouse","pressures":[0.5,0.5]},"wall_ms":790,` +
			`"travel":` + strconv.FormatFloat(travel, 'f', 1, 64) + `,` +
			`"fingerprint":{"ua":"` + chromeUA + `","languages":["en-US","en"],"screen":[1920,1080],"plugins":5,"chrome":true}}`
		b.StartTimer()
		t0 := time.Now()
		res := post(b, "/.advcaptcha/slide", with(h, "Content-Type", "application/json", "Accept", "application/json"), payload)
		lat = append(lat, time.Since(t0))
		if res.status != 200 && !strings.Contains(res.body, `"next":"/.advcaptcha/challenge?grant=`) {
			b.Fatalf("slide: %d %q", res.status, res.body)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
