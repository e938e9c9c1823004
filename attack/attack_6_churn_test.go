package attack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// (h) Store churn: an operator's 24 h label and a device's wrong-answer
// count must survive 3,000 requests with distinct accounts. The memory
// store here tracks max_entities 1000, so that 3,000 requests are churn;
// at the default 100,000 the same attack needs a few hundred thousand.
func TestAttackStoreChurn(t *testing.T) {
	gw := sharedGateway(t, "churn", gatewayOptions{Extra: []string{
		"adversarial off",
		"account {http.request.header.X-Account}",
		"max_entities 1000",
	}})
	admin := func(method, path string, body any) map[string]any {
		var rd *strings.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = strings.NewReader(string(b))
		} else {
			rd = strings.NewReader("")
		}
		req, _ := http.NewRequest(method, gw.base+"/.advcaptcha/admin/"+path, rd)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		r, err := send(&http.Client{Transport: transportFrom("127.0.0.1"), Timeout: requestTimeout}, req)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			t.Fatalf("admin %s %s: HTTP %d %s", method, path, r.Status, r.Body)
		}
		return r.json()
	}
	labelled := func(entity string) bool {
		m := admin(http.MethodGet, "label?entity="+url.QueryEscape(entity), nil)
		l, _ := m["label"].(map[string]any)
		return l != nil
	}
	admin(http.MethodPost, "labels", map[string]string{"entity": "acct:mallory", "action": "confirm", "reason": "attack suite: operator label", "ttl": "24h"})
	if !labelled("acct:mallory") {
		t.Fatal("the operator label did not take")
	}

	// Devices one wrong answer short of their limit (max_failures device
	// 10), each on an IP of its own so that no IP reaches its limit. Five,
	// so that the count surviving churn is not luck.
	const maxFailuresDevice, counting = 10, 5
	type counter struct {
		dev *device
		c   *captchaView
		n   int // wrong answers judged
	}
	// nextCaptcha is the captcha a wrong answer's reply offers, or else a
	// new one from the captcha route.
	nextCaptcha := func(dev *device, r *reply) *captchaView {
		if c := captchaOf(r); c != nil {
			return c
		}
		r, err := dev.do(http.MethodGet, "/.advcaptcha/challenge", fetchGET, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return captchaOf(r)
	}
	counters := make([]*counter, counting)
	for i := range counters {
		dev := newDevice(gw, fmt.Sprintf("127.0.1.%d", 21+i))
		c, got, err := dev.getCaptcha("/", 0)
		if err != nil || c == nil {
			t.Fatalf("no captcha for counting device %d: %v %s", i, err, got)
		}
		ct := &counter{dev: dev, c: c}
		counters[i] = ct
		for ct.n < maxFailuresDevice-1 {
			r, err := dev.answer(ct.c.ID, "zzzzzz")
			if err != nil {
				t.Fatal(err)
			}
			ct.n++
			if ct.c = nextCaptcha(dev, r); ct.c == nil {
				// Refused (or starved of captchas) before its limit: there
				// is no count left for churn to evict.
				t.Logf("counting device %d got no captcha after %d wrong answers (%s)", i, ct.n, classify(r))
				break
			}
		}
	}

	// The churn: 3,000 fresh clients, each a new account, from 30 IPs.
	var statuses sync.Map
	parallel(3000, 16, func(i int) {
		d := newDevice(gw, fmt.Sprintf("127.0.2.%d", 1+i%30))
		r, err := d.do(http.MethodGet, "/", fetchGET, nil, http.Header{"X-Account": {fmt.Sprintf("churn-%d", i)}})
		if err == nil {
			v, _ := statuses.LoadOrStore(classify(r), new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
		}
	})
	counts := map[string]int32{}
	statuses.Range(func(k, v any) bool { counts[k.(string)] = v.(*atomic.Int32).Load(); return true })

	labelKept := labelled("acct:mallory")
	// The tenth wrong answer: each device must now be refused. (Its last
	// captcha may itself have been churned out; then it answers the next.)
	refusedAtLimit, applicable := 0, 0
	for i, ct := range counters {
		if ct.c == nil {
			continue // refused or starved before its limit: nothing to evict
		}
		applicable++
		refused := false
		for k := 0; k < 3 && ct.c != nil; k++ {
			r, err := ct.dev.answer(ct.c.ID, "zzzzzz")
			if err != nil {
				t.Fatal(err)
			}
			if classify(r) == outBlocked {
				refused = true
				break
			}
			errMsg, _ := r.json()["error"].(string)
			ct.c = nextCaptcha(ct.dev, r)
			if !strings.Contains(strings.ToLower(errMsg), "expired") {
				break // judged wrong, and not refused
			}
		}
		if !refused {
			// The reply may not say it; the device's next request does.
			if r, err := ct.dev.do(http.MethodGet, "/.advcaptcha/challenge", fetchGET, nil, nil); err == nil && classify(r) == outBlocked {
				refused = true
			}
		}
		if refused {
			refusedAtLimit++
		} else {
			t.Logf("counting device %d was not refused at its %dth wrong answer", i, maxFailuresDevice)
		}
	}
	counterKept := refusedAtLimit == applicable
	state := "kept"
	if applicable == 0 {
		state = "kept(counters-untested)"
	}
	if !labelKept || !counterKept {
		var lost []string
		if !labelKept {
			lost = append(lost, "label")
		}
		if !counterKept {
			lost = append(lost, "fail-counter")
		}
		state = "lost(" + strings.Join(lost, "+") + ")"
	}
	figures.set("churn", state)
	t.Logf("attack store churn: %s (operator label kept: %v; devices at %d/%d wrong answers refused on the next: %d/%d; churn outcomes %v)",
		state, labelKept, maxFailuresDevice-1, maxFailuresDevice, refusedAtLimit, applicable, counts)
	if !labelKept {
		t.Errorf("an operator's 24h label on acct:mallory was evicted by 3,000 requests with distinct accounts (max_entities 1000): labels must never be evicted by request churn")
	}
	if !counterKept {
		t.Errorf("%d/%d devices at %d wrong answers were not refused at their %dth after the churn: their failure counters were evicted (an evicted counter must count as the limit reached)", applicable-refusedAtLimit, applicable, maxFailuresDevice-1, maxFailuresDevice)
	}
}
