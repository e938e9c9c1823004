package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// metricValue reads one sample of the metrics text ("" labels: none); 0
// when absent.
func metricValue(t *testing.T, text, name, labels string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+labels) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// floodFigures are what a flood of challenged requests was answered with.
type floodFigures struct {
	sent, captchas, waits, other int
	statuses                     map[int]int
	problems                     []string
}

// floodChallenges sends n requests that are challenged (a script's user
// agent, no cookies, each from its own address so that no rate limit
// stops them) from 8 workers: every third asks for JSON.
func floodChallenges(t *testing.T, n int, net string) floodFigures {
	t.Helper()
	f := floodFigures{statuses: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				h := suspicious(fmt.Sprintf("%s.%d.%d", net, i/250, i%250+1))
				asJSON := i%3 == 2
				if asJSON {
					h.Set("Accept", "application/json")
				}
				r := get(t, fmt.Sprintf("/orders?i=%d", i), h)
				problem := ""
				kind := "other"
				switch {
				case idPattern.MatchString(r.body) || strings.Contains(r.body, `"challenge":{`):
					kind = "captcha"
				case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "5":
					kind = "wait"
					if asJSON {
						var body struct {
							Decision   string `json:"decision"`
							RetryAfter int    `json:"retry_after"`
						}
						if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Decision != "challenge" || body.RetryAfter != 5 {
							problem = fmt.Sprintf("JSON wait: %q", r.body)
						}
					} else if !strings.Contains(r.body, `<meta http-equiv="refresh" content="5;url=/.advcaptcha/challenge?grant=`) || !strings.Contains(r.body, "Preparing your check") {
						problem = fmt.Sprintf("HTML wait page without its refresh: %.300q", r.body)
					}
				}
				mu.Lock()
				f.sent++
				f.statuses[r.status]++
				switch kind {
				case "captcha":
					f.captchas++
				case "wait":
					f.waits++
				default:
					f.other++
				}
				if problem != "" && len(f.problems) < 5 {
					f.problems = append(f.problems, problem)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return f
}

// TestEmptyPoolFloodServesNoCleanCaptcha: under the default fallback
// (wait), a flood of challenged requests against a pool nobody fills (the
// workers are external and there are none) gets no captcha at all — in
// particular no clean one — and each response says to retry in 5 s; the
// metrics and the dashboard count the waits and report a clean share of 0.
func TestEmptyPoolFloodServesNoCleanCaptcha(t *testing.T) {
	opts, _ := withModel(t, "secret "+testSecret+"\nadmin_token "+adminToken+"\nchallenge captcha\nadversarial {\n\t\texternal_workers\n\t\tpool_size 2\n\t}")
	load(t, opts, newUpstream(t))
	f := floodChallenges(t, 600, "198.18")
	m := metricsText(t)
	clean := metricValue(t, m, "advcaptcha_captchas_served_total", `{source="clean"}`)
	waits := metricValue(t, m, "advcaptcha_captchas_served_total", `{source="wait"}`)
	share := metricValue(t, m, "advcaptcha_captchas_clean_share", "")
	waitShare := metricValue(t, m, "advcaptcha_captcha_requests_waiting_share", "")
	t.Logf("flood of %d challenged requests, pool empty, fallback wait (default): %d captchas, %d told to wait, %d other; statuses %v; metrics: clean %v, wait %v, clean share %v, waiting share %v",
		f.sent, f.captchas, f.waits, f.other, f.statuses, clean, waits, share, waitShare)
	for _, p := range f.problems {
		t.Error(p)
	}
	if f.captchas > 0 || clean > 0 {
		t.Fatalf("%d captchas served (%v clean by the metrics) from an empty pool under the default fallback", f.captchas, clean)
	}
	if f.waits == 0 || float64(f.waits) != waits || waitShare != 1 || share != 0 {
		t.Fatalf("%d wait pages, %v counted, waiting share %v, clean share %v: want every request asked to wait, and counted", f.waits, waits, waitShare, share)
	}
	// The dashboard's summary says the same.
	r := get(t, "/.advcaptcha/admin/summary", adminHeader(adminToken))
	var sum struct {
		Instance struct {
			CleanShare float64 `json:"clean_share"`
			WaitShare  float64 `json:"wait_share"`
		} `json:"instance"`
	}
	if err := json.Unmarshal([]byte(r.body), &sum); err != nil || r.status != 200 || sum.Instance.CleanShare != 0 || sum.Instance.WaitShare != 1 {
		t.Fatalf("dashboard summary: %d %+v %v, want clean share 0 and waiting share 1", r.status, sum.Instance, err)
	}
}

// TestWaitPageAfterAPost: a wrong answer posted while the pool is empty
// gets the waiting page, which goes on to a grant for the next captcha (a
// refresh cannot repeat the POST).
func TestWaitPageAfterAPost(t *testing.T) {
	opts, _ := withModel(t, "secret "+testSecret+"\nchallenge captcha\nadversarial {\n\t\texternal_workers\n\t\tpool_size 2\n\t}")
	load(t, opts, newUpstream(t))
	h := suspicious("198.18.200.1")
	r := post(t, "/.advcaptcha/answer", h, answerForm("AAAAAAAAAAAAAAAAAAAAAA", "abcde", "/basket?x=1"))
	want := `content="5;url=/.advcaptcha/challenge?grant=`
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, want) || r.header.Get("Retry-After") != "5" {
		t.Fatalf("answer with an empty pool: %d %q, want 503 with %s", r.status, r.body, want)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("waiting page CSP %q", csp)
	}
}

// TestCleanQuota: with fallback wait and clean_quota 1, a device gets one
// clean captcha an hour from an empty pool and then waits; another device
// on the same address waits too (its IP prefix has had its one). fallback
// clean serves clean captchas without limit, and the clean share says so.
func TestCleanQuota(t *testing.T) {
	opts, _ := withModel(t, "secret "+testSecret+"\nchallenge captcha\nadversarial {\n\t\texternal_workers\n\t\tpool_size 2\n\t\tclean_quota 1\n\t}")
	load(t, opts, newUpstream(t))
	h := suspicious("198.18.201.1")
	r := get(t, "/", h)
	if !idPattern.MatchString(r.body) {
		t.Fatalf("first captcha within the quota: %d %.200q", r.status, r.body)
	}
	h.Set("Cookie", "advc_device="+deviceCookie(t, r))
	if r := get(t, "/", h); r.status != http.StatusServiceUnavailable {
		t.Fatalf("second captcha beyond the device's quota: %d %.200q", r.status, r.body)
	}
	if r := get(t, "/", suspicious("198.18.201.1")); r.status != http.StatusServiceUnavailable {
		t.Fatalf("another device on the address beyond its quota: %d %.200q", r.status, r.body)
	}
	if share := metricValue(t, metricsText(t), "advcaptcha_captchas_clean_share", ""); share != 1 {
		t.Fatalf("clean share %v after one clean captcha, want 1", share)
	}

	opts, _ = withModel(t, "secret "+testSecret+"\nchallenge captcha\nadversarial {\n\t\texternal_workers\n\t\tfallback clean\n\t}")
	load(t, opts, newUpstream(t))
	f := floodChallenges(t, 60, "198.19")
	m := metricsText(t)
	t.Logf("fallback clean: %d of %d challenged requests got a captcha; clean served %v, clean share %v", f.captchas, f.sent,
		metricValue(t, m, "advcaptcha_captchas_served_total", `{source="clean"}`), metricValue(t, m, "advcaptcha_captchas_clean_share", ""))
	if f.captchas != f.sent || metricValue(t, m, "advcaptcha_captchas_clean_share", "") != 1 {
		t.Fatalf("fallback clean: %d captchas for %d requests", f.captchas, f.sent)
	}
	assertConfigError(t, "adversarial {\n\t\tfallback clean\n\t\tclean_quota 2\n\t}", "adversarial: clean_quota 2: only with fallback wait")
}

// TestWaitingSpendsNoBudget: a person whose waiting page retries while the
// pool is empty has been handed no captcha, and keeps the budget for one.
func TestWaitingSpendsNoBudget(t *testing.T) {
	opts, _ := withModel(t, "secret "+testSecret+"\nchallenge captcha\ncaptcha_budget 2 2 10m\nadversarial {\n\t\texternal_workers\n\t\tpool_size 2\n\t}")
	load(t, opts, newUpstream(t))
	h := suspicious("198.18.201.1")
	for i := range 6 {
		r := get(t, "/", h)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" {
			t.Fatalf("wait %d with an empty pool: %d %.200q, want the waiting page, not the budget's 429", i+1, r.status, r.body)
		}
		if h.Get("Cookie") == "" {
			h.Set("Cookie", "advc_device="+deviceCookie(t, r))
		}
	}
}
