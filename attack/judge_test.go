package attack

import (
	"net/url"
	"testing"
)

// TestJudge checks the suite's own model of where a browser goes, on cases
// whose answer is known, so that a "held" from the redirect attack means
// the gateway held and not that the judge was blind.
func TestJudge(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8080")
	for _, c := range []struct {
		ref     string
		offsite bool
	}{
		{"/", false},
		{"/shop/item/1?x=//evil.example", false},
		{"/%5Cevil.example/", false},
		{"/%2F%2Fevil.example/", false},
		{"/.//evil.example/", false},
		{"http:evil.example", false},
		{"//evil.example/", true},
		{"///evil.example/", true},
		{"/\\evil.example/", true},
		{"\\/evil.example/", true},
		{"/\t/evil.example/", true},
		{" //evil.example/", true},
		{"https://evil.example/", true},
		{"http:/\\evil.example/", true},
		{"javascript:alert(1)", true},
		{"//user@evil.example/", true},
		{"//127.0.0.1:8080/x", false},
	} {
		host, _ := browserTarget(base, c.ref)
		if got := host != base.Host; got != c.offsite {
			t.Errorf("browserTarget(%q) = host %q: off-site %v, want %v", c.ref, host, got, c.offsite)
		}
	}
	for _, c := range []struct {
		stored string
		bad    bool
	}{
		{"/", false},
		{"/shop/item/1", false},
		{"/./\\evil.example/phish", true}, // http.Redirect cleans it to /\evil.example/phish
		{"/x/../\\evil.example/phish", true},
		{"/.advcaptcha/challenge", true},
		{"/./.advcaptcha/admin/", true},
		{"/%5Cevil.example/phish", false},
	} {
		if why := badReturn(base, c.stored); (why != "") != c.bad {
			t.Errorf("badReturn(%q) = %q, want bad %v", c.stored, why, c.bad)
		}
	}
}
