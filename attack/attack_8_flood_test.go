package attack

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// (b) 1,500 requests for a captcha from one IP, each with fresh cookies,
// straight to the captcha route (no page, no slide). Captchas must be
// handed out against a budget — at most a hundred here — and the flood
// must cost the gateway bounded memory. Against the default gateway (an
// empty adversarial pool answers "wait" to everyone, which says nothing of
// a budget) and against the plain one, whose captchas never run out.
func TestAttackChallengeFlood(t *testing.T) {
	const n, maxCaptchas, maxRSSMB = 1500, 100, 100
	worstMB := 0.0
	for _, run := range []struct {
		gw  *gateway
		ip  string
		key string
	}{{mainGW, "127.0.1.2", "flood_captchas"}, {plainGateway(t), "127.0.1.12", "flood_plain"}} {
		captchas, growMB := challengeFlood(t, run.gw, run.ip, n)
		figures.set(run.key, fmt.Sprintf("%d/%d", captchas, n))
		worstMB = max(worstMB, growMB)
		if captchas > maxCaptchas {
			t.Errorf("[%s gateway] one IP was handed %d captchas for %d bare requests with fresh cookies: the captcha route must be counted and budgeted per IP prefix (at most %d here)", run.gw.name, captchas, n, maxCaptchas)
		}
		if growMB > maxRSSMB {
			t.Errorf("[%s gateway] the flood grew the gateway's RSS by %.0f MB (at most %d)", run.gw.name, growMB, maxRSSMB)
		}
	}
	figures.set("rss_mb", fmt.Sprintf("%+.0f", worstMB))
}

func challengeFlood(t *testing.T, gw *gateway, ip string, n int) (captchas int, growMB float64) {
	before, err := gw.rssKB()
	if err != nil {
		t.Fatal(err)
	}
	var got, errs atomic.Int32
	var outcomes sync.Map
	start := time.Now()
	parallel(n, 8, func(i int) {
		d := newDevice(gw, ip)
		r, err := d.do(http.MethodGet, "/.advcaptcha/challenge", fetchGET, nil, nil)
		if err != nil {
			errs.Add(1)
			return
		}
		if captchaOf(r) != nil {
			got.Add(1)
		}
		v, _ := outcomes.LoadOrStore(fmt.Sprintf("%s/%d", classify(r), r.Status), new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
	})
	elapsed := time.Since(start)
	after, err := gw.rssKB()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int32{}
	outcomes.Range(func(k, v any) bool { counts[k.(string)] = v.(*atomic.Int32).Load(); return true })
	growMB = float64(after-before) / 1024
	t.Logf("attack challenge flood on the %s gateway: %d/%d captchas handed out in %v; RSS %.0f → %.0f MB (%+.0f); outcomes %v; %d errors",
		gw.name, got.Load(), n, elapsed.Round(time.Millisecond), float64(before)/1024, float64(after)/1024, growMB, counts, errs.Load())
	return int(got.Load()), growMB
}

// (j) After the flood, fresh clients of other IPs read the captchas they
// are served with the solver model shipped in the gateway itself. With the
// adversarial pool drained, a "clean" fallback hands them easy captchas;
// the adversarial ones it must serve instead keep it near 0% (≤ 10%).
func TestAttackCleanCaptchas(t *testing.T) {
	if _, err := loadSolver(); err != nil {
		t.Fatalf("the shipped solver model: %v", err)
	}
	// Each client on an IP of its own: a per-IP captcha budget is not what
	// is measured here, the supply of clean captchas is.
	const n, maxSolved = 20, 2
	var solved, served atomic.Int32
	var mu sync.Mutex
	got := map[string]int{}
	// All at once: a client asked to wait waits (twice at most) and retries.
	parallel(n, n, func(i int) {
		d := newDevice(mainGW, fmt.Sprintf("127.0.3.%d", 1+i))
		c, outcome, err := d.getCaptcha(fmt.Sprintf("/shop/item/%d", i), 2)
		if err != nil || c == nil {
			mu.Lock()
			got[outcome]++
			mu.Unlock()
			return
		}
		served.Add(1)
		text, err := d.solve(c)
		if err != nil {
			t.Errorf("solving: %v", err)
			return
		}
		r, err := d.answer(c.ID, text)
		if err != nil {
			return
		}
		if m := r.json(); m["ok"] == true {
			solved.Add(1)
		}
	})
	fig := fmt.Sprintf("%d/%d", solved.Load(), n)
	figures.set("solved", fig)
	t.Logf("attack clean captchas: %s solved by the shipped model (%d captchas served; no captcha: %v)", fig, served.Load(), got)
	if solved.Load() > maxSolved {
		t.Errorf("the shipped solver model read %d of %d captchas served after a flood: the fallback must not hand out a stream of clean captchas", solved.Load(), n)
	}
}
