package crawler

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// zone is an in-process DNS zone: there is no DNS server on a test machine
// without network, and the rules under test are the verifier's, not DNS's.
type zone struct {
	ptr     map[string][]string
	a       map[string][]netip.Addr
	lookups atomic.Int32
}

func (z *zone) LookupAddr(_ context.Context, addr string) ([]string, error) {
	z.lookups.Add(1)
	if n, ok := z.ptr[addr]; ok {
		return n, nil
	}
	return nil, errors.New("NXDOMAIN")
}

func (z *zone) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := z.a[host]; ok {
		return a, nil
	}
	return nil, errors.New("NXDOMAIN")
}

func TestVerify(t *testing.T) {
	z := &zone{
		ptr: map[string][]string{
			"66.249.66.1":  {"crawl-66-249-66-1.googlebot.com."},
			"203.0.113.5":  {"crawl.googlebot.com.evil.example."}, // suffix trick
			"203.0.113.6":  {"fake.googlebot.com."},               // PTR they control, A does not match
			"157.55.39.1":  {"msnbot-157-55-39-1.search.msn.com."},
			"198.51.100.1": {"notgooglebot.com."},
		},
		a: map[string][]netip.Addr{
			"crawl-66-249-66-1.googlebot.com":   {netip.MustParseAddr("66.249.66.1")},
			"fake.googlebot.com":                {netip.MustParseAddr("198.51.100.77")},
			"msnbot-157-55-39-1.search.msn.com": {netip.MustParseAddr("157.55.39.1")},
		},
	}
	v := New(Options{Resolver: z})
	ctx := context.Background()
	for _, tc := range []struct {
		name, ip string
		want     bool
	}{
		{"google", "66.249.66.1", true},
		{"bing", "66.249.66.1", false}, // right IP, wrong engine
		{"google", "203.0.113.5", false},
		{"google", "203.0.113.6", false},
		{"bing", "157.55.39.1", true},
		{"google", "198.51.100.1", false},
		{"google", "192.0.2.1", false}, // no PTR
		{"unknownbot", "66.249.66.1", false},
	} {
		if got := v.Verify(ctx, tc.name, netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("%s from %s: %v, want %v", tc.name, tc.ip, got, tc.want)
		}
	}
	before := z.lookups.Load()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); v.Verify(ctx, "google", netip.MustParseAddr("66.249.66.1")) }()
	}
	wg.Wait()
	if z.lookups.Load() != before {
		t.Fatalf("cached verdict caused %d more lookups", z.lookups.Load()-before)
	}
}
