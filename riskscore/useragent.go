package riskscore

import (
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/advcaptcha/advcaptcha/internal/cache"
	"github.com/mssola/useragent"
	"github.com/ua-parser/uap-go/uaparser"
)

// UserAgent is what the two parsers and our own checks make of a
// User-Agent header. It is cached by UA string, so it must stay small and
// immutable.
type UserAgent struct {
	// Family is the browser family (uap-go's name: "Chrome", "Firefox",
	// "Edge", "Mobile Safari"…), or "" when no browser was recognised.
	Family string
	// ChromeMajor is the major version of the Chrome/ token, which every
	// Chromium-based browser carries and Sec-CH-UA's "Chromium" brand
	// must match; 0 when absent.
	ChromeMajor int
	// FirefoxMajor and SafariMajor likewise, for the Sec-Fetch cut-offs.
	FirefoxMajor, SafariMajor int
	// Platform is "Windows", "macOS", "Linux", "Android", "iOS",
	// "Chrome OS" or "" — the names Sec-CH-UA-Platform uses.
	Platform string
	// Mobile is true when the UA carries the "Mobile" token.
	Mobile bool
	// Automation is the automation or HTTP-library token found, if any.
	Automation string
	// Crawler names the search engine a crawler UA claims to be, if any.
	Crawler string
	// Malformed and Incomplete explain themselves when non-empty.
	Malformed, Incomplete string
}

// Browser reports whether the UA claims to be a mainstream browser.
func (u *UserAgent) Browser() bool { return u.Family != "" && u.Automation == "" && u.Crawler == "" }

// Chromium reports whether the UA claims a Chromium-based browser.
func (u *UserAgent) Chromium() bool { return u.ChromeMajor > 0 }

// maxUALength is longer than any real browser UA (those are under 400
// bytes); longer values are malformed and never reach the parsers.
const maxUALength = 1024

// automationTokens are matched case-insensitively as substrings.
var automationTokens = []string{
	"headlesschrome", "phantomjs", "selenium", "webdriver", "playwright", "puppeteer",
	"curl/", "wget/", "python-requests", "python-urllib", "python-httpx", "aiohttp", "httpx/",
	"go-http-client", "java/", "okhttp", "apache-httpclient", "libwww-perl", "lwp::",
	"scrapy", "node-fetch", "axios/", "undici", "got (", "httpie", "postmanruntime",
	"guzzlehttp", "ruby", "mechanize", "zgrab", "masscan", "nmap", "nikto", "sqlmap",
	"httpclient", "colly", "headless",
}

// crawlerTokens map UA tokens to the crawler names in crawlerDomains.
var crawlerTokens = []struct{ token, name string }{
	{"googlebot", "google"}, {"google-inspectiontool", "google"}, {"storebot-google", "google"},
	{"adsbot-google", "google"}, {"mediapartners-google", "google"},
	{"bingbot", "bing"}, {"adidxbot", "bing"}, {"bingpreview", "bing"},
	{"applebot", "apple"},
	{"duckduckbot", "duckduckgo"},
	{"yandexbot", "yandex"}, {"yandeximages", "yandex"}, {"yandex.com/bots", "yandex"},
	{"baiduspider", "baidu"},
}

// userAgents parses User-Agents. The uap-go parser compiles hundreds of
// regular expressions, so it is built once per process, on first use.
type userAgents struct {
	once  sync.Once
	uap   *uaparser.Parser
	cache *cache.Bounded[string, *UserAgent]
}

var sharedUserAgents = &userAgents{cache: cache.New[string, *UserAgent](20_000, 0)}

// ParseUserAgent analyses a User-Agent header, from the cache when it can.
func ParseUserAgent(ua string) *UserAgent {
	return sharedUserAgents.parse(ua)
}

func (p *userAgents) parse(ua string) *UserAgent {
	if u, ok := p.cache.Get(ua); ok {
		return u
	}
	u := p.analyse(ua)
	if len(ua) <= maxUALength {
		p.cache.Put(ua, u)
	}
	return u
}

func (p *userAgents) analyse(ua string) *UserAgent {
	u := &UserAgent{}
	if len(ua) > maxUALength {
		u.Malformed = "longer than " + strconv.Itoa(maxUALength) + " bytes"
		return u
	}
	if !utf8.ValidString(ua) {
		u.Malformed = "not UTF-8"
		return u
	}
	for i := 0; i < len(ua); i++ {
		if c := ua[i]; c < 0x20 || c == 0x7f {
			u.Malformed = "control character"
			return u
		}
	}
	if strings.Count(ua, "(") != strings.Count(ua, ")") {
		u.Malformed = "unbalanced parentheses"
	}
	lower := strings.ToLower(ua)
	for _, t := range automationTokens {
		if strings.Contains(lower, t) {
			u.Automation = strings.TrimRight(t, "/ (")
			break
		}
	}
	for _, c := range crawlerTokens {
		if strings.Contains(lower, c.token) {
			u.Crawler = c.name
			break
		}
	}
	u.ChromeMajor = tokenMajor(ua, "Chrome/")
	u.FirefoxMajor = tokenMajor(ua, "Firefox/")
	if strings.Contains(ua, "Safari/") && u.ChromeMajor == 0 {
		u.SafariMajor = tokenMajor(ua, "Version/")
	}
	u.Platform = platformOf(ua)

	ms := useragent.New(ua)
	// Chromium puts "Mobile" in the UA exactly when Sec-CH-UA-Mobile is ?1.
	u.Mobile = strings.Contains(ua, "Mobile")

	p.once.Do(func() {
		// The regexes are compiled into uap-go, so an error is a build
		// defect; without uap-go we fall back to mssola's names alone.
		p.uap, _ = uaparser.New()
	})
	msName, msVersion := ms.Browser()
	family, major := msName, msVersion
	if p.uap != nil {
		fam := p.uap.ParseUserAgent(ua)
		family, major = fam.Family, fam.Major
	}
	// A browser only when both parsers recognise one.
	if family != "Other" && family != "" && major != "" && !ms.Bot() && msName != "" && msVersion != "" {
		u.Family = family
	}
	if ms.Bot() && u.Automation == "" && u.Crawler == "" {
		u.Automation = "declared bot"
	}
	if u.Automation == "" && u.Crawler == "" {
		mozilla := strings.HasPrefix(ua, "Mozilla/")
		switch {
		case u.Family != "" && !mozilla:
			u.Incomplete = "no Mozilla/5.0 prefix"
		case mozilla && !strings.Contains(ua, "("):
			u.Incomplete = "no platform"
		case mozilla && u.Family == "":
			u.Incomplete = "no recognisable browser and version"
		case u.Family != "" && !strings.Contains(ua, "AppleWebKit/") && !strings.Contains(ua, "Gecko/") && !strings.Contains(ua, "Trident/"):
			u.Incomplete = "no engine token"
		case u.Family != "" && u.Platform == "":
			u.Incomplete = "unknown platform"
		}
	}
	return u
}

// tokenMajor returns the major version after tok ("Chrome/120.0…" → 120).
func tokenMajor(ua, tok string) int {
	i := strings.Index(ua, tok)
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range []byte(ua[i+len(tok):]) {
		if c < '0' || c > '9' || n > 10_000 {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// platformOf names the platform the way Sec-CH-UA-Platform does.
func platformOf(ua string) string {
	switch {
	case strings.Contains(ua, "Android"):
		return "Android"
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iPod"):
		return "iOS"
	case strings.Contains(ua, "Windows"):
		return "Windows"
	case strings.Contains(ua, "CrOS"):
		return "Chrome OS"
	case strings.Contains(ua, "Macintosh"), strings.Contains(ua, "Mac OS X"):
		return "macOS"
	case strings.Contains(ua, "Linux"), strings.Contains(ua, "X11"):
		return "Linux"
	}
	return ""
}

// Warm builds the uap-go parser now rather than on the first request,
// which would otherwise wait for it (about 150ms).
func Warm() { sharedUserAgents.parse("Mozilla/5.0 (warm-up)") }
