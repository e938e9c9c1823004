package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
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
	tc := caddytest.NewTester(b)
	tc.InitServer(fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	skip_install_trust
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	log {
		output discard
	}
}
:9080 {
	advcaptcha {
		redis %s
		secret %s
	}
	respond "ok"
}
`, srv.Addr, testSecret), "caddyfile")
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
