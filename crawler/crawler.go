// Package crawler verifies that a client claiming to be a search-engine
// crawler really is one, the way the search engines ask: the IP's reverse
// DNS name must be in the engine's domain, and that name must resolve
// forward to the same IP. Verdicts are cached, and concurrent checks of the
// same IP share one lookup.
package crawler

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/cache"
)

// Domains are the reverse-DNS domains of each crawler name that
// riskscore reports, from the engines' own documentation.
var Domains = map[string][]string{
	"google":     {"googlebot.com", "google.com", "googleusercontent.com"},
	"bing":       {"search.msn.com"},
	"apple":      {"applebot.apple.com"},
	"duckduckgo": {"duckduckgo.com"},
	"yandex":     {"yandex.ru", "yandex.net", "yandex.com"},
	"baidu":      {"baidu.com", "baidu.jp"},
}

// Resolver is the part of *net.Resolver the verifier uses.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Verifier checks crawler claims.
type Verifier struct {
	resolver Resolver
	timeout  time.Duration
	verdicts *cache.Bounded[string, bool]

	mu       sync.Mutex
	inflight map[string]*lookup
}

type lookup struct {
	done chan struct{}
	ok   bool
}

// Options configure a Verifier.
type Options struct {
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds one verification (both lookups). Default 2s.
	Timeout time.Duration
	// CacheSize bounds the verdict cache. Default 10,000.
	CacheSize int
}

// New returns a Verifier.
func New(o Options) *Verifier {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10_000
	}
	return &Verifier{resolver: o.Resolver, timeout: o.Timeout, verdicts: cache.New[string, bool](o.CacheSize, 0), inflight: map[string]*lookup{}}
}

// Positive verdicts are kept a day; negative ones an hour, so a crawler
// whose DNS was briefly broken is not refused for long.
const (
	positiveTTL = 24 * time.Hour
	negativeTTL = time.Hour
)

// Verify reports whether ip belongs to the named crawler.
func (v *Verifier) Verify(ctx context.Context, name string, ip netip.Addr) bool {
	domains, known := Domains[name]
	if !known || !ip.IsValid() {
		return false
	}
	key := name + "|" + ip.String()
	if ok, hit := v.verdicts.Get(key); hit {
		return ok
	}
	v.mu.Lock()
	if l := v.inflight[key]; l != nil {
		v.mu.Unlock()
		select {
		case <-l.done:
			return l.ok
		case <-ctx.Done():
			return false
		}
	}
	l := &lookup{done: make(chan struct{})}
	v.inflight[key] = l
	v.mu.Unlock()

	// The lookup outlives a cancelled request so that its verdict is cached
	// for the crawler's next request.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.timeout)
	l.ok = v.check(lctx, domains, ip)
	cancel()
	ttl := negativeTTL
	if l.ok {
		ttl = positiveTTL
	}
	v.verdicts.PutTTL(key, l.ok, ttl)
	v.mu.Lock()
	delete(v.inflight, key)
	v.mu.Unlock()
	close(l.done)
	return l.ok
}

func (v *Verifier) check(ctx context.Context, domains []string, ip netip.Addr) bool {
	names, err := v.resolver.LookupAddr(ctx, ip.String())
	if err != nil {
		return false
	}
	for _, n := range names {
		host := strings.ToLower(strings.TrimSuffix(n, "."))
		if !inDomains(host, domains) {
			continue
		}
		addrs, err := v.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip.Unmap() {
				return true
			}
		}
	}
	return false
}

func inDomains(host string, domains []string) bool {
	for _, d := range domains {
		if strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}
