package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/redis/go-redis/v9"

	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/store"
)

const adminToken = "operator-token-0123456789abcdefghijklmnop"

func adminHeader(token string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {"192.0.2.200"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

type labelPage struct {
	OK     bool
	Events []struct {
		ID, Kind, Entity, Reason, Source string
	}
	Next  string
	Label *struct{ Reason, Source string }
	Error string
}

func decodePage(t *testing.T, r reply) labelPage {
	t.Helper()
	var p labelPage
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return p
}

// An operator confirms a label (the client is blocked), clears it (the
// client is let through again), and both are in the label log together
// with what the rules label on their own.
func TestOperatorLabels(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	load(t, "redis "+srv.Addr+"\nsecret "+testSecret+"\nadmin_token "+adminToken+"\nstrict_limit ip 20\nadversarial off", up)

	h := browser("198.51.100.90")
	h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
	if r := get(t, "/", h); r.status != 200 {
		t.Fatalf("before any label: %d", r.status)
	}
	admin := adminHeader(adminToken)
	r := post(t, "/.advcaptcha/admin/labels", admin, `{"entity":"ip:198.51.100.90","action":"confirm","reason":"scraping the catalogue","ttl":"2h"}`)
	if r.status != 200 {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}
	if r := get(t, "/", h); r.status != 403 || !strings.Contains(r.body, "Access denied") {
		t.Fatalf("after the operator's label: %d, want blocked", r.status)
	}
	p := decodePage(t, get(t, "/.advcaptcha/admin/label?entity=ip:198.51.100.90", admin))
	if p.Label == nil || p.Label.Source != "operator" || p.Label.Reason != "scraping the catalogue" {
		t.Fatalf("label lookup: %+v", p)
	}
	if r := post(t, "/.advcaptcha/admin/labels", admin, `{"entity":"ip:198.51.100.90","action":"clear","reason":"a partner's crawler"}`); r.status != 200 {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	if r := get(t, "/", h); r.status != 200 {
		t.Fatalf("after the operator cleared the label: %d, want allowed", r.status)
	}

	// A rule's label goes to the same log.
	bot := browser("198.51.100.91")
	bot.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", bot)))
	burst(t, bot, 60)

	p = decodePage(t, get(t, "/.advcaptcha/admin/labels?limit=2", admin))
	if len(p.Events) != 2 || p.Next == "" {
		t.Fatalf("first page of 2: %+v", p)
	}
	if e := p.Events[0]; e.Kind != "label" || e.Source != "operator" || e.Entity != "ip:198.51.100.90" {
		t.Errorf("first event %+v", e)
	}
	if e := p.Events[1]; e.Kind != "clear" || e.Source != "operator" || e.Reason != "a partner's crawler" {
		t.Errorf("second event %+v", e)
	}
	p = decodePage(t, get(t, "/.advcaptcha/admin/labels?after="+p.Next, admin))
	var rule bool
	for _, e := range p.Events {
		if e.Kind == "label" && e.Source == "rule" && e.Entity == "ip:198.51.100.91" && strings.HasPrefix(e.Reason, "strict rate limit") {
			rule = true
		}
	}
	if !rule {
		t.Errorf("the strict limit's label is not in the log: %+v", p.Events)
	}
}

func TestOperatorAPIRefusesBadRequests(t *testing.T) {
	up := newUpstream(t)
	load(t, "admin_token "+adminToken+"\nadversarial off", up)
	good := `{"entity":"ip:198.51.100.92","action":"confirm","reason":"r"}`
	cases := []struct {
		name   string
		token  string
		ctype  string
		body   string
		status int
		msg    string
	}{
		{"no token", "", "", good, 401, "admin token"},
		{"wrong token", strings.Repeat("x", len(adminToken)), "", good, 401, "admin token"},
		{"a prefix of the token", adminToken[:20], "", good, 401, "admin token"},
		{"form body", adminToken, "application/x-www-form-urlencoded", "entity=ip:1.2.3.4", 415, "application/json"},
		{"malformed", adminToken, "", `{"entity":`, 400, "malformed label"},
		{"unknown field", adminToken, "", `{"entity":"ip:1.2.3.4","action":"confirm","reason":"r","extra":1}`, 400, "malformed label"},
		{"oversized", adminToken, "", `{"entity":"ip:1.2.3.4","action":"confirm","reason":"` + strings.Repeat("a", 5000) + `"}`, 400, "malformed label"},
		{"unknown action", adminToken, "", `{"entity":"ip:1.2.3.4","action":"ban","reason":"r"}`, 400, "action"},
		{"unknown kind", adminToken, "", `{"entity":"user:1","action":"confirm","reason":"r"}`, 400, "unknown kind"},
		{"not an ip", adminToken, "", `{"entity":"ip:example.com","action":"confirm","reason":"r"}`, 400, "not an IP"},
		{"prefix of another size", adminToken, "", `{"entity":"ip:2001:db8::/48","action":"confirm","reason":"r"}`, 400, "not an IP"},
		{"no reason", adminToken, "", `{"entity":"dev:abc","action":"confirm","reason":" "}`, 400, "reason"},
		{"ttl too long", adminToken, "", `{"entity":"dev:abc","action":"confirm","reason":"r","ttl":"9000h"}`, 400, "ttl"},
		{"ttl not a duration", adminToken, "", `{"entity":"dev:abc","action":"confirm","reason":"r","ttl":"soon"}`, 400, "ttl"},
	}
	for _, c := range cases {
		h := adminHeader(c.token)
		if c.ctype != "" {
			h.Set("Content-Type", c.ctype)
		}
		r := post(t, "/.advcaptcha/admin/labels", h, c.body)
		if r.status != c.status || !strings.Contains(r.body, c.msg) {
			t.Errorf("%s: %d %q, want %d mentioning %q", c.name, r.status, r.body, c.status, c.msg)
		}
	}
	for _, q := range []string{"limit=0", "limit=5000", "limit=x", "after=" + strings.Repeat("9", 100)} {
		if r := get(t, "/.advcaptcha/admin/labels?"+q, adminHeader(adminToken)); r.status != 400 {
			t.Errorf("labels?%s: %d, want 400", q, r.status)
		}
	}
	if r := get(t, "/.advcaptcha/admin/label?entity=nope", adminHeader(adminToken)); r.status != 400 {
		t.Errorf("label?entity=nope: %d, want 400", r.status)
	}
	// An IPv6 address is grouped by the configured /64.
	r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"ip:2001:db8::7","action":"confirm","reason":"r"}`)
	if r.status != 200 || !strings.Contains(r.body, `"ip:2001:db8::/64"`) {
		t.Errorf("IPv6 address: %d %s", r.status, r.body)
	}

	// Without admin_token there is no operator API at all.
	load(t, "adversarial off", up)
	// (A browser asks: a bare API client is blocked on its score first.)
	if r := get(t, "/.advcaptcha/admin/labels", with(browser("192.0.2.201"), "Authorization", "Bearer "+adminToken)); r.status != 404 {
		t.Errorf("without admin_token: %d, want 404", r.status)
	}
}

func TestAdminTokenTooShort(t *testing.T) {
	assertConfigError(t, "admin_token short", "admin_token", "at least 32")
	t.Setenv("ADVC_TEST_ADMIN_TOKEN", "")
	assertConfigError(t, "admin_token {env.ADVC_TEST_ADMIN_TOKEN}", "admin_token", "environment variable")
}

// TestLearningRecordsSurviveRestarts: a captcha answered, then its client
// labelled by an operator; Redis crashes (SIGKILL) and comes back from its
// append-only file, and the gateway is reprovisioned with a new store
// connection. The label is still in force, and the extraction still finds
// the labelled pair and the label's history.
func TestLearningRecordsSurviveRestarts(t *testing.T) {
	srv := redistest.StartPersistent(t)
	up := newUpstream(t)
	base := "secret " + testSecret + "\nadmin_token " + adminToken + "\nchallenge captcha\nadversarial off"
	load(t, "redis "+srv.Addr+"\n"+base, up)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	f := &captchaFlow{t: t, rdb: rdb}
	h := suspicious("198.51.100.95")
	id := f.challenge(h, "/")
	post(t, "/.advcaptcha/answer", h, answerForm(id, "wxyz", "/"))
	if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"ip:198.51.100.95","action":"confirm","reason":"bot farm"}`); r.status != 200 {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}

	srv.Kill()
	srv.Restart()
	load(t, "redis "+srv.Addr+" {\n\t\ttimeout 300ms\n\t}\n"+base, up) // a new handler and connection

	if r := get(t, "/", h); r.status != 403 || !strings.Contains(r.body, "Access denied") {
		t.Fatalf("after the restarts the labelled client got %d", r.status)
	}
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "advc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pairs, stats, err := extraction.Collect(context.Background(), st, extraction.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 1 || pairs[0].ID != id || pairs[0].Answer != "wxyz" || stats.Labels != 1 ||
		!strings.Contains(pairs[0].Reason, "operator: bot farm") || len(pairs[0].PNG) == 0 {
		t.Fatalf("after the restarts: pairs %+v, stats %+v", pairs, stats)
	}
}

// TestLabelEvents: labels set and cleared are Caddy events, which the
// events app hands to its subscribers and logs at debug level.
func TestLabelEvents(t *testing.T) {
	up := newUpstream(t)
	cf := fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	grace_period 1ns
	skip_install_trust
	debug
	servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
	log {
		output file %s
		format json
	}
}
:9080 {
	advcaptcha {
		admin_token %s
		adversarial off
	}
	reverse_proxy %s
}
`, logFile, adminToken, strings.TrimPrefix(up.URL, "http://"))
	// The Caddyfile has no global option for an events app without a
	// subscriber; add an empty one to the JSON.
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["events"] = map[string]any{}
	js, _ = json.Marshal(cfg)
	newTester(t).InitServer(string(js), "json")
	if t.Failed() {
		t.FailNow()
	}
	mark := len(readLog(t))
	for _, action := range []string{"confirm", "clear"} {
		if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"ip:198.51.100.99","action":"`+action+`","reason":"events test"}`); r.status != 200 {
			t.Fatalf("%s: %d %s", action, r.status, r.body)
		}
	}
	waitLog(t, mark, `"name":"advcaptcha_labelled"`)
	waitLog(t, mark, `"name":"advcaptcha_label_cleared"`)
	if !strings.Contains(readLog(t)[mark:], `"entity":"ip:198.51.100.99"`) {
		t.Error("the events lack the entity")
	}
}
