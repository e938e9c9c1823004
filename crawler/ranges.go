package crawler

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// SnapshotFormat names the layout of a ranges snapshot file, so that a file
// of some other shape is refused rather than read as "no ranges".
const SnapshotFormat = "advcaptcha-crawler-ranges/1"

// Snapshot is the file form of the engines' published crawler IP ranges:
// the embedded ranges.json, and what `caddy advcaptcha crawlers refresh`
// writes. Each list keeps where it came from and how old it is, because a
// stale list refuses crawlers from ranges added since.
type Snapshot struct {
	Format string `json:"format"`
	Note   string `json:"note,omitempty"`
	Lists  []List `json:"lists"`
}

// List is one published list of an engine's crawler addresses.
type List struct {
	// Engine is a crawler name of Domains ("google", "bing", …).
	Engine string `json:"engine"`
	// URL is where the engine publishes the list.
	URL string `json:"url"`
	// CreationTime is the publisher's own timestamp, verbatim.
	CreationTime string `json:"creationTime,omitempty"`
	// Retrieved is when the list was fetched (RFC 3339 or a date).
	Retrieved string `json:"retrieved,omitempty"`
	// Via says how the list was obtained when not fetched from URL.
	Via      string   `json:"via,omitempty"`
	Prefixes []string `json:"prefixes"`
}

// Limits on a snapshot. A prefix broader than these is no crawler range —
// the widest any engine publishes is Bing's /22 — and accepting one would let
// a mangled or tampered file "verify" a large part of the Internet.
const (
	minIPv4Bits  = 16
	minIPv6Bits  = 32
	maxPrefixes  = 100_000
	maxFileBytes = 8 << 20
)

// Ranges are parsed crawler IP ranges, by engine. An engine absent from
// Ranges has no snapshot and is verified by DNS alone. A Ranges is
// read-only once made and safe for concurrent use.
type Ranges struct {
	lists    []List
	byEngine map[string][]netip.Prefix
}

// ParseRanges parses and validates a snapshot file's contents. Every list
// must name a known engine and hold at least one prefix; every prefix must
// parse, be a public unicast range and be no broader than /16 (IPv4) or /32
// (IPv6). Host bits are cleared.
func ParseRanges(b []byte) (*Ranges, error) {
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("crawler ranges: %d bytes, more than the %d allowed", len(b), maxFileBytes)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("crawler ranges: %w", err)
	}
	return s.Ranges()
}

// Ranges validates the snapshot (see ParseRanges) and indexes it.
func (s *Snapshot) Ranges() (*Ranges, error) {
	if s.Format != SnapshotFormat {
		return nil, fmt.Errorf("crawler ranges: format %q, want %q", s.Format, SnapshotFormat)
	}
	r := &Ranges{byEngine: map[string][]netip.Prefix{}}
	total := 0
	for i, l := range s.Lists {
		if _, known := Domains[l.Engine]; !known {
			return nil, fmt.Errorf("crawler ranges: list %d: unknown engine %q", i, l.Engine)
		}
		if len(l.Prefixes) == 0 {
			return nil, fmt.Errorf("crawler ranges: list %d (%s): no prefixes", i, l.Engine)
		}
		if total += len(l.Prefixes); total > maxPrefixes {
			return nil, fmt.Errorf("crawler ranges: more than %d prefixes", maxPrefixes)
		}
		clean := make([]string, len(l.Prefixes))
		for j, p := range l.Prefixes {
			pfx, err := parseCrawlerPrefix(p)
			if err != nil {
				return nil, fmt.Errorf("crawler ranges: list %d (%s): %w", i, l.Engine, err)
			}
			r.byEngine[l.Engine] = append(r.byEngine[l.Engine], pfx)
			clean[j] = pfx.String()
		}
		l.Prefixes = clean
		r.lists = append(r.lists, l)
	}
	return r, nil
}

func parseCrawlerPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	a := p.Addr()
	if a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: not a plain IPv4 or IPv6 prefix", s)
	}
	if a.Is4() && p.Bits() < minIPv4Bits || a.Is6() && p.Bits() < minIPv6Bits {
		return netip.Prefix{}, fmt.Errorf("%q: broader than any crawler range", s)
	}
	p = p.Masked()
	if a = p.Addr(); !a.IsGlobalUnicast() || a.IsPrivate() {
		return netip.Prefix{}, fmt.Errorf("%q: not a public unicast range", s)
	}
	return p, nil
}

// LoadRanges reads and parses a snapshot file, such as one written by
// `caddy advcaptcha crawlers refresh --out FILE`.
func LoadRanges(path string) (*Ranges, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	r, err := ParseRanges(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

//go:embed ranges.json
var embeddedSnapshot []byte

var embedded = sync.OnceValues(func() (*Ranges, error) { return ParseRanges(embeddedSnapshot) })

// EmbeddedRanges returns the snapshot built into the binary (ranges.json:
// each list records its source and date). It is what a Verifier uses when
// Options.Ranges is nil.
func EmbeddedRanges() *Ranges {
	r, err := embedded()
	if err != nil {
		// A test parses the file, so only a broken build gets here.
		panic(err)
	}
	return r
}

// Contains reports whether ip is in one of engine's published ranges.
func (r *Ranges) Contains(engine string, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range r.byEngine[engine] {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Has reports whether r holds ranges for engine.
func (r *Ranges) Has(engine string) bool { return len(r.byEngine[engine]) > 0 }

// Lists returns the snapshot's lists with their prefixes normalised. The
// caller must not modify them.
func (r *Ranges) Lists() []List { return r.lists }

// Source is where an engine publishes a crawler IP list.
type Source struct {
	Engine string
	URL    string
}

// Sources are the lists `crawlers refresh` downloads. Google moved its
// files in March 2026 (googlebot.json became common-crawlers.json, and the
// old URLs now answer 200 with a note instead of ranges, which
// ParsePublished refuses). special-crawlers.json holds the ranges of
// AdsBot and Mediapartners, which riskscore also reports as "google".
// Yandex and Baidu publish no list.
var Sources = []Source{
	{"google", "https://developers.google.com/static/crawling/ipranges/common-crawlers.json"},
	{"google", "https://developers.google.com/static/crawling/ipranges/special-crawlers.json"},
	{"bing", "https://www.bing.com/toolbox/bingbot.json"},
	{"apple", "https://search.developer.apple.com/applebot.json"},
	{"duckduckgo", "https://duckduckgo.com/duckduckbot.json"},
}

// ParsePublished parses an engine's published list, in the layout Google
// introduced and Bing, Apple and DuckDuckGo copy:
// {"creationTime": …, "prefixes": [{"ipv4Prefix": …} | {"ipv6Prefix": …}]}.
// A document with no prefixes is an error: publishers have answered 200
// with an HTML page or a relocation note, and that must not become an empty
// list.
func ParsePublished(src Source, body []byte, retrieved time.Time) (List, error) {
	var doc struct {
		CreationTime string `json:"creationTime"`
		Prefixes     []struct {
			IPv4 string `json:"ipv4Prefix"`
			IPv6 string `json:"ipv6Prefix"`
		} `json:"prefixes"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return List{}, fmt.Errorf("%s: %w", src.URL, err)
	}
	l := List{Engine: src.Engine, URL: src.URL, CreationTime: doc.CreationTime, Retrieved: retrieved.UTC().Format(time.RFC3339)}
	for _, p := range doc.Prefixes {
		for _, s := range []string{p.IPv4, p.IPv6} {
			if s == "" {
				continue
			}
			pfx, err := parseCrawlerPrefix(s)
			if err != nil {
				return List{}, fmt.Errorf("%s: %w", src.URL, err)
			}
			l.Prefixes = append(l.Prefixes, pfx.String())
		}
	}
	if len(l.Prefixes) == 0 {
		return List{}, fmt.Errorf("%s: no prefixes in the document", src.URL)
	}
	return l, nil
}

// Fetch downloads every source and returns them as one snapshot. It fails
// if any source fails, so that a refresh never silently drops an engine
// (which would put it back on DNS alone).
func Fetch(ctx context.Context, client *http.Client, sources []Source) (*Snapshot, error) {
	if client == nil {
		client = http.DefaultClient
	}
	s := &Snapshot{Format: SnapshotFormat, Note: "Search engines' published crawler IP ranges, for advcaptcha's crawler verification; written by `caddy advcaptcha crawlers refresh`."}
	var errs []error
	for _, src := range sources {
		l, err := fetchOne(ctx, client, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Lists = append(s.Lists, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := s.Ranges(); err != nil {
		return nil, err
	}
	return s, nil
}

func fetchOne(ctx context.Context, client *http.Client, src Source) (List, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return List{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return List{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return List{}, fmt.Errorf("%s: %s", src.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFileBytes+1))
	if err != nil {
		return List{}, fmt.Errorf("%s: %w", src.URL, err)
	}
	if len(body) > maxFileBytes {
		return List{}, fmt.Errorf("%s: more than %d bytes", src.URL, maxFileBytes)
	}
	return ParsePublished(src, body, time.Now())
}

// Marshal encodes the snapshot as the file ParseRanges reads.
func (s *Snapshot) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Engines returns the engines r holds ranges for, sorted.
func (r *Ranges) Engines() []string {
	out := make([]string, 0, len(r.byEngine))
	for e := range r.byEngine {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}
