package attack

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// (g) A curl client naming alice's account is refused 150 times; then
// alice's own browser comes. A challenge is acceptable, a block is not.
func TestAttackAccountLockout(t *testing.T) {
	gw := plainGateway(t)
	const attacker, owner = "127.0.1.7", "127.0.1.8"
	var refused atomic.Int32
	c := &http.Client{Transport: transportFrom(attacker), Timeout: requestTimeout}
	parallel(150, 16, func(i int) {
		req, _ := http.NewRequest(http.MethodGet, gw.base+"/account/orders", nil)
		req.Header.Set("User-Agent", curlUA)
		req.Header.Set("Accept", "*/*")
		req.Header.Set("X-Account", "alice")
		if r, err := send(c, req); err == nil && (classify(r) == outBlocked || classify(r) == outLimited) {
			refused.Add(1)
		}
	})
	d := newDevice(gw, owner)
	blocked := 0
	var outcomes []string
	for i := 0; i < 3; i++ {
		r, err := d.do(http.MethodGet, "/account/orders", navigate, nil, http.Header{"X-Account": {"alice"}})
		if err != nil {
			t.Fatal(err)
		}
		o := classify(r)
		outcomes = append(outcomes, o)
		if o == outBlocked || o == outLimited {
			blocked++
		}
	}
	fig := fmt.Sprintf("%d/3", blocked)
	figures.set("lockout", fig)
	t.Logf("attack account lockout: alice's browser refused %s after %d refused curl requests naming her (outcomes %v)", fig, refused.Load(), outcomes)
	if blocked > 0 {
		t.Errorf("alice's own browser was refused %d/3 after a refused client named her account 150 times: refused requests must not count against an account, and an account label alone must challenge, not block", blocked)
	}
}
