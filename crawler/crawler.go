// Package crawler verifies that a client claiming to be a search-engine
// crawler really is one, with the two proofs the search engines offer: the
// IP is in the engine's published crawler ranges, and its reverse DNS name
// is one of the engine's crawler hostnames and resolves forward to the same
// IP. Verdicts are cached, and concurrent checks of the same IP share one
// lookup.
//
// The rule, per engine:
//
//   - An engine with published ranges (Google, Bing, Apple) needs the IP in
//     its ranges and, when DNS answers, a forward-confirmed crawler
//     hostname. Either proof alone is weaker: a stale range can be handed
//     to someone else, and DNS can be spoofed on the resolver's path. When
//     DNS fails (timeout, no resolver — not "no such name", which is an
//     answer) the ranges alone verify, so a gateway without working DNS
//     still lets real crawlers through.
//   - An engine that publishes addresses but no hostname (DuckDuckGo: its
//     crawlers run on cloud addresses without a DuckDuckGo PTR) is verified
//     by its ranges alone.
//   - An engine without ranges (Yandex, Baidu, or any engine missing from
//     Options.Ranges) is verified by forward-confirmed reverse DNS alone, as
//     before.
//
// An IP outside an engine's ranges is refused without a DNS query, so an
// impostor costs no lookups.
package crawler

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/cache"
)

// Domains are the crawler hostnames of each crawler name riskscore reports,
// from the engines' own documentation. An entry "d" accepts any name under
// d ("msnbot-1-2-3-4.search.msn.com" for "search.msn.com") and never d
// itself or a name that merely ends in the same letters
// ("evilsearch.msn.com"). An entry "p*.d" accepts only a single label
// starting with p directly under d: Google documents its crawler names as
// crawl-*.googlebot.com, geo-crawl-*.geo.googlebot.com and (special-case
// crawlers such as AdsBot) rate-limited-proxy-*.google.com, while the rest
// of google.com and all of googleusercontent.com — every Google Cloud VM
// has a *.bc.googleusercontent.com name — are not crawlers.
//
// DuckDuckGo documents no hostname, only addresses; without ranges for it
// nothing verifies.
var Domains = map[string][]string{
	"google":     {"crawl-*.googlebot.com", "geo-crawl-*.geo.googlebot.com", "rate-limited-proxy-*.google.com"},
	"bing":       {"search.msn.com"},
	"apple":      {"applebot.apple.com"},
	"duckduckgo": nil,
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
	ranges   *Ranges
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
	// Ranges are the engines' published crawler ranges: nil means the
	// snapshot embedded in the binary (EmbeddedRanges); LoadRanges reads a
	// fresher one written by `caddy advcaptcha crawlers refresh`. A Ranges
	// without an engine leaves that engine on DNS alone.
	Ranges *Ranges
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
	if o.Ranges == nil {
		o.Ranges = EmbeddedRanges()
	}
	return &Verifier{resolver: o.Resolver, timeout: o.Timeout, ranges: o.Ranges, verdicts: cache.New[string, bool](o.CacheSize, 0), inflight: map[string]*lookup{}}
}

// Positive verdicts are kept a day; negative ones an hour. A verdict made
// while DNS was failing is kept only minutes either way: a range-only
// "yes" should meet the DNS check soon, and a crawler refused for want of
// DNS should not stay refused for long.
const (
	positiveTTL = 24 * time.Hour
	negativeTTL = time.Hour
	degradedTTL = 10 * time.Minute
)

// Verify reports whether ip belongs to the named crawler.
func (v *Verifier) Verify(ctx context.Context, name string, ip netip.Addr) bool {
	if _, known := Domains[name]; !known || !ip.IsValid() {
		return false
	}
	// One verdict per address however it arrived (an IPv4 client on a
	// dual-stack listener shows as ::ffff:a.b.c.d), and PTR queries for the
	// address the engines publish.
	ip = ip.Unmap()
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
	ok, degraded := v.check(lctx, name, ip)
	cancel()
	l.ok = ok
	ttl := negativeTTL
	switch {
	case degraded:
		ttl = degradedTTL
	case ok:
		ttl = positiveTTL
	}
	v.verdicts.PutTTL(key, ok, ttl)
	v.mu.Lock()
	delete(v.inflight, key)
	v.mu.Unlock()
	close(l.done)
	return l.ok
}

// check applies the package rule; degraded reports that DNS failed and the
// verdict rests on the ranges alone (or on nothing).
func (v *Verifier) check(ctx context.Context, name string, ip netip.Addr) (ok, degraded bool) {
	hosts := Domains[name]
	if v.ranges.Has(name) {
		if !v.ranges.Contains(name, ip) {
			return false, false
		}
		if len(hosts) == 0 {
			return true, false
		}
		ok, answered := v.confirm(ctx, hosts, ip)
		if !answered {
			return true, true
		}
		return ok, false
	}
	ok, answered := v.confirm(ctx, hosts, ip)
	return ok, !answered
}

// confirm is forward-confirmed reverse DNS: some PTR name of ip matches
// hosts and resolves back to ip. answered is false when DNS failed rather
// than said no, so that the caller can fall back on the ranges.
func (v *Verifier) confirm(ctx context.Context, hosts []string, ip netip.Addr) (ok, answered bool) {
	if len(hosts) == 0 {
		return false, true
	}
	names, err := v.resolver.LookupAddr(ctx, ip.String())
	if err != nil {
		return false, notFound(err)
	}
	answered = true
	for _, n := range names {
		host := canonicalHost(n)
		if !matchHost(host, hosts) {
			continue
		}
		addrs, err := v.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			// A name that matched but whose forward lookup failed proves
			// nothing either way.
			if !notFound(err) {
				answered = false
			}
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip.Unmap() {
				return true, true
			}
		}
	}
	return false, answered
}

// notFound reports whether err is DNS saying "no such name" — an answer —
// rather than DNS not answering.
func notFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// canonicalHost lower-cases a DNS name and drops the root's trailing dot.
func canonicalHost(n string) string {
	return strings.ToLower(strings.TrimSuffix(n, "."))
}

// matchHost reports whether host matches one of the Domains patterns.
func matchHost(host string, patterns []string) bool {
	for _, pat := range patterns {
		if matchPattern(host, pat) {
			return true
		}
	}
	return false
}

func matchPattern(host, pat string) bool {
	label, parent, wildcard := strings.Cut(pat, "*.")
	if !wildcard {
		// Any name strictly under pat; the "." keeps the match on a label
		// boundary.
		return len(host) > len(pat)+1 && strings.HasSuffix(host, "."+pat) && !strings.HasPrefix(host, ".")
	}
	first, rest, ok := strings.Cut(host, ".")
	return ok && rest == parent && len(first) > len(label) && strings.HasPrefix(first, label)
}
