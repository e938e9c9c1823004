package attack

import (
	"testing"
)

// The attacks run in the order of their files, attack_1_… to attack_8_…,
// and within each in the file's order (the captchas read after the flood
// come after it). Each attacker IP is a loopback address of its own, so
// attacks sharing a gateway do not see each other's counts.

// plainGateway: adversarial captchas off, so that a captcha is always there
// to be answered (the attacks on it are about counting, not about the pool),
// and accounts counted from X-Account.
func plainGateway(t *testing.T) *gateway {
	return sharedGateway(t, "plain", gatewayOptions{Extra: []string{
		"adversarial off",
		"account {http.request.header.X-Account}",
	}})
}

func regexpFind(expr string, body []byte) string {
	v, _ := attr(compile(expr), body)
	return v
}
