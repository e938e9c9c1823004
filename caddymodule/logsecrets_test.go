package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// TestNoSecretsInLogs walks through everything that handles a secret — the
// cookie-signing secret, the Redis password, the admin token, a clearance
// cookie, a captcha's text — with Caddy logging at debug level and the site
// writing access logs, and then reads every line for them.
func TestNoSecretsInLogs(t *testing.T) {
	const redisPassword = "redis-password-7f3a9c1e5b"
	srv := redistest.StartWithPassword(t, redisPassword)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: redisPassword})
	t.Cleanup(func() { rdb.Close() })
	up := newUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	loadSite(t, fmt.Sprintf(`redis %s {
			password %s
		}
		secret %s
		admin_token %s
		challenge captcha`, srv.Addr, redisPassword, testSecret, adminToken),
		fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}\n\treverse_proxy %s", logPath, strings.TrimPrefix(up.URL, "http://")),
		"file "+logPath+"\n\t\tlevel DEBUG")

	f := &captchaFlow{t: t, rdb: rdb}
	h := suspicious("198.51.100.170")
	id := f.challenge(h, "/private")
	truth := f.truth(id)
	if r := get(t, "/.advcaptcha/captcha/"+id+".png", h); r.status != 200 {
		t.Fatalf("image: %d", r.status)
	}
	// A wrong answer first (its text is the client's, but a typo of a
	// password-like answer is still nobody's business in a log).
	wrongID := f.challenge(h, "/private")
	if r := post(t, "/.advcaptcha/answer", h, answerForm(wrongID, "wrong-answer-x", "/private")); r.status == http.StatusSeeOther {
		t.Fatal("a wrong answer passed")
	}
	id = f.challenge(h, "/private")
	truth = f.truth(id)
	r := post(t, "/.advcaptcha/answer", h, answerForm(id, truth, "/private"))
	if r.status != http.StatusSeeOther {
		t.Fatalf("correct answer: %d %s", r.status, r.body)
	}
	clearance := responseCookie(t, r, "advc_clearance")
	h.Set("Cookie", h.Get("Cookie")+"; advc_clearance="+clearance)
	if r := get(t, "/private", h); r.status != 200 {
		t.Fatalf("cleared client: %d", r.status)
	}
	// The operator's side: a good token, a wrong one, a label.
	if r := get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken)); r.status != 200 {
		t.Fatalf("summary: %d %s", r.status, r.body)
	}
	if r := get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken+"-guess")); r.status != 401 {
		t.Fatalf("summary with a wrong token: %d", r.status)
	}
	if r := post(t, "/.advcaptcha/admin/labels", adminHeader(adminToken), `{"entity":"ip:198.51.100.171","action":"confirm","reason":"log test"}`); r.status != 200 {
		t.Fatalf("label: %d %s", r.status, r.body)
	}
	// Everything reached the store (so the Redis password was used).
	if n, err := rdb.DBSize(context.Background()).Result(); err != nil || n == 0 {
		t.Fatalf("store: %d keys, %v", n, err)
	}

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	// The log is the one these requests wrote: decisions, the answer, the
	// access lines with their (redacted) headers.
	for _, want := range []string{`"msg":"decision"`, `"msg":"captcha answered"`, `"msg":"handled request"`, `"uri":"/private"`, `"Cookie":["REDACTED"]`} {
		if !strings.Contains(log, want) {
			t.Fatalf("the log lacks %s; is it the right log?\n%s", want, log)
		}
	}
	for name, secret := range map[string]string{
		"the cookie secret":  testSecret,
		"the Redis password": redisPassword,
		"the admin token":    adminToken,
		"a guessed token":    adminToken + "-guess",
		"the clearance":      clearance,
		"a captcha's text":   `"` + truth + `"`,
		"a wrong answer":     "wrong-answer-x",
	} {
		if strings.Contains(log, secret) {
			t.Errorf("%s is in the log", name)
		}
	}
}
