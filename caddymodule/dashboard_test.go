package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// dashboardSummary is the part of GET <admin>/summary the tests read.
type dashboardSummary struct {
	OK       bool
	Instance struct {
		Store     string
		Decisions []struct {
			Labels map[string]string
			Value  float64
		}
		Answers []struct {
			Labels map[string]string
			Value  float64
		}
		Score []struct {
			LE    float64 `json:"le"`
			Count float64
		}
	}
	Series []struct {
		T     int64
		Allow float64
	}
	Models struct {
		Serving string
		History []struct{ Version string }
	}
	Offenders []struct {
		Entity, Kind, Source string
		Reasons              []string
		Labels               int
		Active, Cleared      bool
	}
	Errors []string
}

func decodeSummary(t *testing.T, r reply) dashboardSummary {
	t.Helper()
	var s dashboardSummary
	if r.status != 200 {
		t.Fatalf("summary: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatalf("summary %q: %v", r.body, err)
	}
	return s
}

// dashboardTraffic loads a gateway on real Redis with the operators' area
// and sends it what a dashboard shows: allowed browsers, a challenged
// script, a burst the strict limit labels, and two clients an operator
// labels after they were challenged, which then answer their captchas
// (one right, one wrong). It returns the entities labelled.
func dashboardTraffic(t *testing.T) (operatorLabelled, ruleLabelled string) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	load(t, fmt.Sprintf("redis %s\nsecret %s\nadmin_token %s\nchallenge captcha\nstrict_limit ip 20", srv.Addr, testSecret, adminToken), up)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	f := &captchaFlow{t: t, rdb: rdb}
	for i := range 5 {
		h := browser(fmt.Sprintf("198.51.100.%d", 120+i))
		h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
		if r := get(t, "/", h); r.status != 200 {
			t.Fatalf("browser %d: %d", i, r.status)
		}
	}
	bot := browser("198.51.100.130")
	bot.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", bot)))
	burst(t, bot, 60)

	for i, correct := range []bool{true, false} {
		ip := fmt.Sprintf("198.51.100.%d", 140+i)
		h := suspicious(ip)
		id := f.challenge(h, "/")
		body := fmt.Sprintf(`{"entity":"ip:%s","action":"confirm","reason":"solver farm %d","ttl":"2h"}`, ip, i)
		if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), body); r.status != 200 {
			t.Fatalf("confirm %s: %d %s", ip, r.status, r.body)
		}
		answer := f.truth(id)
		if !correct {
			answer = "wrong"
		}
		post(t, "/.advcaptcha/answer", h, answerForm(id, answer, "/"))
	}
	return "ip:198.51.100.140", "ip:198.51.100.130"
}

func TestDashboardSummary(t *testing.T) {
	byOperator, byRule := dashboardTraffic(t)

	if r := get(t, "/.advcaptcha/admin/summary", adminHeader("")); r.status != 401 {
		t.Fatalf("summary without the token: %d", r.status)
	}
	s := decodeSummary(t, get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken)))
	if !s.OK || s.Instance.Store != "redis" || len(s.Errors) != 0 {
		t.Fatalf("summary: %+v", s)
	}
	allow, block := 0.0, 0.0
	for _, d := range s.Instance.Decisions {
		switch d.Labels["decision"] {
		case "allow":
			allow += d.Value
		case "block":
			block += d.Value
		}
	}
	if allow < 5 || block < 1 {
		t.Errorf("decisions: %v allowed, %v blocked; want at least 5 and 1", allow, block)
	}
	var correct, wrong float64
	for _, a := range s.Instance.Answers {
		if a.Labels["client"] == "attacker" && a.Labels["captcha"] == "clean" {
			if a.Labels["outcome"] == "correct" {
				correct += a.Value
			} else {
				wrong += a.Value
			}
		}
	}
	if correct != 1 || wrong != 1 {
		t.Errorf("attackers' answers: %v right, %v wrong; want 1 and 1", correct, wrong)
	}
	scored := 0.0
	for _, b := range s.Instance.Score {
		scored += b.Count
	}
	if scored < 5 {
		t.Errorf("score histogram holds %v requests", scored)
	}
	found := map[string]bool{}
	for _, o := range s.Offenders {
		switch o.Entity {
		case byOperator:
			found[o.Entity] = o.Active && o.Source == "operator" && o.Kind == "ip" && len(o.Reasons) == 1 && o.Reasons[0] == "solver farm 0"
		case byRule:
			found[o.Entity] = o.Active && o.Source == "rule" && len(o.Reasons) > 0 && strings.HasPrefix(o.Reasons[0], "strict rate limit")
		}
	}
	if !found[byOperator] || !found[byRule] {
		t.Errorf("offenders %+v: want %s (operator) and %s (rule), both active", s.Offenders, byOperator, byRule)
	}
	if len(s.Models.History) != 0 {
		t.Errorf("model history %+v: nothing was published", s.Models.History)
	}

	// The series gets a point every 10 s from this configuration's counts.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = decodeSummary(t, get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken)))
		total := 0.0
		for _, p := range s.Series {
			total += p.Allow
		}
		if total >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the series holds %v allowed requests: %+v", total, s.Series)
		}
		time.Sleep(time.Second)
	}

	// Clearing from the review list ends the label.
	r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"`+byOperator+`","action":"clear","reason":"reviewed"}`)
	if r.status != 200 {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	s = decodeSummary(t, get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken)))
	for _, o := range s.Offenders {
		if o.Entity == byOperator && (o.Active || !o.Cleared) {
			t.Errorf("after clearing: %+v", o)
		}
	}
}

func TestDashboardPageAndGuard(t *testing.T) {
	up := newUpstream(t)
	load(t, "admin_token "+adminToken, up)

	// The page and its assets hold no data: served to anyone, with a
	// strict content security policy, and never challenged.
	page := get(t, "/.advcaptcha/admin/", http.Header{"User-Agent": {"curl/8.5.0"}})
	if page.status != 200 || !strings.Contains(page.body, `id="login"`) ||
		!strings.Contains(page.header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("dashboard page: %d %v %.200s", page.status, page.header, page.body)
	}
	for _, a := range []string{"dashboard.js", "dashboard.css"} {
		if r := get(t, "/.advcaptcha/admin/"+a, nil); r.status != 200 || len(r.body) < 500 {
			t.Errorf("%s: %d, %d bytes", a, r.status, len(r.body))
		}
	}
	// Cross-site writes are refused even with the token.
	for name, h := range map[string]http.Header{
		"cross-site fetch": with(adminHeader(adminToken), "Sec-Fetch-Site", "cross-site"),
		"foreign origin":   with(adminHeader(adminToken), "Origin", "https://evil.example"),
	} {
		r := post(t, "/.advcaptcha/admin/labels", h, `{"entity":"ip:192.0.2.1","action":"confirm","reason":"r"}`)
		if r.status != 403 || !strings.Contains(r.body, "cross-site") {
			t.Errorf("%s: %d %s, want 403", name, r.status, r.body)
		}
	}
	r := post(t, "/.advcaptcha/admin/labels", with(adminHeader(adminToken), "Origin", siteURL), `{"entity":"ip:192.0.2.1","action":"confirm","reason":"r"}`)
	if r.status != 200 {
		t.Errorf("same-origin write: %d %s", r.status, r.body)
	}

	// Another path: the area moves there entirely.
	load(t, "admin_token "+adminToken+"\nadmin {\n\t\tpath /ops/bots/\n\t}", up)
	if r := get(t, "/ops/bots/summary", adminHeader(adminToken)); r.status != 200 {
		t.Errorf("summary at the configured path: %d %s", r.status, r.body)
	}
	if r := get(t, "/.advcaptcha/admin/summary", with(browser("192.0.2.202"), "Authorization", "Bearer "+adminToken)); r.status != 404 {
		t.Errorf("summary at the default path after moving it: %d", r.status)
	}

	// caddy_auth without an authentication handler in front fails closed.
	load(t, "admin {\n\t\tguard caddy_auth\n\t}", up)
	if r := get(t, "/.advcaptcha/admin/summary", nil); r.status != 401 || !strings.Contains(r.body, "basic_auth") {
		t.Errorf("caddy_auth with nothing authenticating: %d %s", r.status, r.body)
	}
	if r := get(t, "/.advcaptcha/admin/", nil); r.status != 401 {
		t.Errorf("caddy_auth: the page without authentication: %d", r.status)
	}
}

// TestDashboardBehindBasicAuth: guard caddy_auth with Caddy's basic_auth
// ordered before advcaptcha on the admin path.
func TestDashboardBehindBasicAuth(t *testing.T) {
	up := newUpstream(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-operator"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tc := newTester(t)
	tc.InitServer(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	grace_period 1ns
	skip_install_trust
	order basic_auth before advcaptcha
	servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
	log {
		output file %s
	}
}
:9080 {
	basic_auth /.advcaptcha/admin/* {
		operator %s
	}
	advcaptcha {
		admin {
			guard caddy_auth
		}
		adversarial off
	}
	reverse_proxy %s
}
`, logFile, hash, strings.TrimPrefix(up.URL, "http://")), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	if r := get(t, "/.advcaptcha/admin/summary", nil); r.status != 401 {
		t.Errorf("no credentials: %d", r.status)
	}
	req, _ := http.NewRequest("GET", siteURL+"/.advcaptcha/admin/summary", nil)
	req.SetBasicAuth("operator", "s3cret-operator")
	if s := decodeSummary(t, do(t, req)); !s.OK {
		t.Errorf("with basic auth: %+v", s)
	}
	if r := get(t, "/.advcaptcha/admin/", http.Header{"Authorization": {"Basic b3BlcmF0b3I6d3Jvbmc="}}); r.status != 401 {
		t.Errorf("wrong password: %d", r.status)
	}
}

func TestAdminConfigErrors(t *testing.T) {
	assertConfigError(t, "admin_token "+adminToken+"\nadmin {\n\t\tpath /ops\n\t}", "admin", "ending in /")
	assertConfigError(t, "admin_token "+adminToken+"\nadmin {\n\t\tpath /.advcaptcha/x/\n\t}", "admin", "only /.advcaptcha/admin/")
	assertConfigError(t, "admin_token "+adminToken+"\nadmin {\n\t\tguard magic\n\t}", "admin", "guard")
	assertConfigError(t, "admin {\n\t\tpath /ops/\n\t}", "admin", "needs admin_token")
}

// TestBrowserDashboard: an operator opens the dashboard in Debian's
// headless Chromium, gives the token, sees the charts and the review list,
// and clears a label with its button. The screenshot goes to the docs.
func TestBrowserDashboard(t *testing.T) {
	byOperator, _ := dashboardTraffic(t)
	// Wait for the first point of the series, so the charts have data.
	deadline := time.Now().Add(30 * time.Second)
	for len(decodeSummary(t, get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken))).Series) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no series point after 30 s")
		}
		time.Sleep(time.Second)
	}
	ctx := browserSession(t, false)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1500)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:9080/.advcaptcha/admin/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `!document.getElementById("login").classList.contains("hidden")`, "the token form")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), adminToken), chromedp.Click(chromedp.CSS("#login button"))); err != nil {
		t.Fatal(err)
	}
	row := `document.querySelector('#offenders tr[data-entity="` + byOperator + `"]')`
	waitFor(t, ctx, `!document.getElementById("board").classList.contains("hidden")`, "the dashboard after the token")
	waitFor(t, ctx, row+` !== null`, "the labelled client in the review list")
	waitFor(t, ctx, `document.querySelectorAll("#decisions-chart path").length === 3`, "three decision lines")
	waitFor(t, ctx, `[...document.querySelectorAll("#score-chart rect")].some(r => +r.dataset.value > 0)`, "score bars")
	waitFor(t, ctx, `document.querySelectorAll("#success-chart circle").length > 0`, "attackers' success points")
	waitFor(t, ctx, `document.getElementById("tiles").innerText.includes("50.0%")`, "attackers' success on clean captchas (1 of 2)")
	shot(t, ctx, "../docs/dashboard.png")

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#offenders tr[data-entity="`+byOperator+`"] button.clear`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, row+`.querySelector(".pill.cleared") !== null`, "the row marked cleared")
	p := decodePage(t, get(t, "/.advcaptcha/admin/label?entity="+byOperator, adminHeader(adminToken)))
	if p.Label != nil {
		t.Fatalf("the label is still in force after clearing it on the dashboard: %+v", p.Label)
	}
	// A wrong token brings the form back.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.setItem("advcaptcha-admin-token", "wrong"), true`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `!document.getElementById("login").classList.contains("hidden")`, "the token form after the token stopped working")
}
