package riskscore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fingerprint is what the challenge page's script reports of the browser.
// Every field is optional: a script that sends less is judged on less,
// and fields the page could not collect stay at their zero value (or nil
// for the pointer, slice and struct fields, which then draw no finding).
type Fingerprint struct {
	Webdriver         bool      `json:"webdriver"`
	UA                string    `json:"ua"`
	Platform          string    `json:"platform"`
	Languages         []string  `json:"languages"`
	Cores             float64   `json:"cores"`
	Memory            float64   `json:"memory"`
	Screen            []float64 `json:"screen"`
	Window            []float64 `json:"window"`
	Timezone          string    `json:"timezone"`
	Plugins           int       `json:"plugins"`
	MimeTypes         int       `json:"mimeTypes"`
	Touch             int       `json:"touch"`
	Chrome            bool      `json:"chrome"`
	GLVendor          string    `json:"glVendor"`
	GLRenderer        string    `json:"glRenderer"`
	Canvas            string    `json:"canvas"`
	Notification      string    `json:"notification"`
	NotificationQuery string    `json:"notificationQuery"`
	// Worker is what a dedicated Worker reports of the same browser:
	// tools that patch the page's objects rarely reach it.
	Worker *RealmFacts `json:"worker"`
	// Frame is what a fresh same-origin iframe's realm reports.
	Frame  *RealmFacts `json:"frame"`
	UAData *UAData     `json:"uaData"`
	// UAHigh is userAgentData.getHighEntropyValues in the page.
	UAHigh *struct {
		Architecture    string   `json:"architecture"`
		Bitness         string   `json:"bitness"`
		Model           string   `json:"model"`
		PlatformVersion string   `json:"platformVersion"`
		FullVersionList []string `json:"fullVersionList"`
	} `json:"uaHigh"`
	// WebdriverIn is `"webdriver" in navigator` (nil: not reported).
	WebdriverIn *bool `json:"webdriverIn"`
	// Lies names the browser functions and getters that are not plain
	// native functions in the page (their source is not [native code], or
	// they are Proxies); Own the properties found on instances that
	// browsers keep on prototypes. See slide.js.
	Lies []string `json:"lies"`
	Own  []string `json:"own"`
	// Fonts lists which of a few platform fonts render (nil: not reported).
	Fonts []string `json:"fonts"`
	Media *struct {
		DPR        float64 `json:"dpr"`
		Resolution *bool   `json:"resolution"`
		DeviceSize *bool   `json:"deviceSize"`
		Pointer    string  `json:"pointer"`
		AnyPointer string  `json:"anyPointer"`
		Hover      bool    `json:"hover"`
	} `json:"media"`
	Codecs *struct {
		H264    string `json:"h264"`
		AAC     string `json:"aac"`
		MSE     bool   `json:"mse"`
		H264MSE bool   `json:"h264MSE"`
		AACMSE  bool   `json:"aacMSE"`
	} `json:"codecs"`
	Engine *struct {
		EvalLength int  `json:"evalLength"`
		StackV8    bool `json:"stackV8"`
	} `json:"engine"`
	// CDP is true when logging an Error read its stack: the console is
	// being serialised to a DevTools protocol client (Runtime.enable).
	CDP bool `json:"cdp"`
	// Drag is the pointer type the slide was made with.
	Drag       string   `json:"drag"`
	ChromeKeys []string `json:"chromeKeys"`
	TZOffset   *float64 `json:"tzOffset"`
}

// RealmFacts is what another JavaScript realm (a Worker, an iframe)
// reports of the browser.
type RealmFacts struct {
	UA                string   `json:"ua"`
	Platform          string   `json:"platform"`
	Cores             float64  `json:"cores"`
	Memory            float64  `json:"memory"`
	Languages         []string `json:"languages"`
	Timezone          string   `json:"timezone"`
	UAData            *UAData  `json:"uaData"`
	GLVendor          string   `json:"glVendor"`
	GLRenderer        string   `json:"glRenderer"`
	NotificationQuery string   `json:"notificationQuery"`
	Webdriver         bool     `json:"webdriver"`
	Lies              []string `json:"lies"`
}

// UAData is navigator.userAgentData's low-entropy part; brands are
// "name/version".
type UAData struct {
	Brands   []string `json:"brands"`
	Mobile   bool     `json:"mobile"`
	Platform string   `json:"platform"`
}

// FingerprintFinding is one contradiction or automation trait.
type FingerprintFinding struct {
	Name   string
	Points float64
	// Certain findings (webdriver, a UA that lies) label the device.
	Certain bool
	Detail  string
}

// JudgeFingerprint checks the fingerprint for automation and for
// contradictions with itself and with the request's User-Agent header.
//
// The checks form a system rather than a list: every fact that two
// sources report (the page, a Worker, an iframe, the header, the client
// hints, the GPU, the fonts) must agree where a real browser makes them
// agree, and a spoofing tool that patches one source leaves the others
// telling the truth — or leaves its patches visible (functions that are
// Proxies, properties on instances). Each check's comment says why a real
// browser never shows it; TestRealBrowsersClean holds a table of real
// browsers' fingerprints that must draw no finding.
func JudgeFingerprint(fp *Fingerprint, headerUA string) []FingerprintFinding {
	var out []FingerprintFinding
	add := func(name string, pts float64, certain bool, detail string) {
		out = append(out, FingerprintFinding{name, pts, certain, detail})
	}
	ua := ParseUserAgent(headerUA)
	if fp.Webdriver {
		add("webdriver", 100, true, "navigator.webdriver is true")
	}
	if fp.UA != headerUA {
		add("ua_contradiction", 100, true, "navigator.userAgent differs from the User-Agent header")
	}
	if strings.Contains(fp.UA, "Headless") {
		add("headless", 100, true, "HeadlessChrome in navigator.userAgent")
	}
	if fp.UAData != nil {
		for _, b := range fp.UAData.Brands {
			if strings.Contains(b, "Headless") {
				add("headless", 100, true, "headless brand in userAgentData")
			}
		}
	}
	judgeRealms(fp, add)
	judgePatches(fp, ua, add)
	judgeClientHints(fp, ua, add)
	judgePlatform(fp, ua, add)
	judgeGPU(fp, ua, add)
	judgeDevices(fp, ua, add)
	judgeTimezone(fp, time.Now(), add)
	if len(fp.Screen) >= 2 && (fp.Screen[0] < 200 || fp.Screen[1] < 200 || fp.Screen[0] > 16384 || fp.Screen[1] > 16384) {
		add("impossible_screen", 40, false, "")
	}
	if len(fp.Languages) == 0 {
		add("no_languages", 30, false, "")
	}
	if !ua.Mobile && ua.Chromium() && fp.Plugins == 0 {
		add("no_plugins", 20, false, "a desktop Chromium reports no plugins")
	}
	if ua.Chromium() && !fp.Chrome {
		add("no_window_chrome", 20, false, "")
	}
	return out
}

type addFunc func(name string, pts float64, certain bool, detail string)

// JudgeFingerprintRequest is JudgeFingerprint with the whole request's
// headers: besides the User-Agent, the Accept-Language header and the
// Sec-CH-UA client hints come from the same settings as
// navigator.languages and navigator.userAgentData, so a tool that spoofs
// one side only (a CDP override of the page, a header rewritten by a
// proxy) contradicts itself. Callers that have the request should prefer
// it to JudgeFingerprint.
func JudgeFingerprintRequest(fp *Fingerprint, h http.Header) []FingerprintFinding {
	out := JudgeFingerprint(fp, h.Get("User-Agent"))
	add := func(name string, pts float64, certain bool, detail string) {
		out = append(out, FingerprintFinding{name, pts, certain, detail})
	}
	// Browsers build Accept-Language from the same list as
	// navigator.languages, first language first (Chrome's and Brave's
	// reduced header keeps only that one).
	if al := h.Get("Accept-Language"); al != "" && len(fp.Languages) > 0 {
		first, _, _ := strings.Cut(al, ",")
		first, _, _ = strings.Cut(first, ";")
		if first = strings.TrimSpace(first); first != "" && first != "*" && !strings.EqualFold(first, fp.Languages[0]) {
			add("language_contradiction", 60, false, "Accept-Language "+first+" vs navigator.languages "+fp.Languages[0])
		}
	}
	if d := fp.UAData; d != nil {
		if hb, ok := parseBrands(h.Get("Sec-CH-UA")); ok && len(d.Brands) > 0 {
			header := map[string]bool{}
			for _, b := range hb {
				header[b.name+"/"+strconv.Itoa(b.major)] = true
			}
			page := map[string]bool{}
			for _, b := range d.Brands {
				name, ver := splitBrand(b)
				major, _, _ := strings.Cut(ver, ".")
				page[name+"/"+major] = true
			}
			if !equalSets(header, page) {
				add("uach_contradiction", 100, true, "Sec-CH-UA and userAgentData.brands differ")
			}
		}
		if p := strings.Trim(h.Get("Sec-CH-UA-Platform"), `"`); p != "" && d.Platform != "" && p != d.Platform {
			add("uach_contradiction", 100, true, "Sec-CH-UA-Platform "+p+" vs userAgentData "+d.Platform)
		}
		if m := h.Get("Sec-CH-UA-Mobile"); m != "" && (m == "?1") != d.Mobile {
			add("uach_contradiction", 100, true, "Sec-CH-UA-Mobile "+m+" vs userAgentData")
		}
	}
	return out
}

// StableID derives a device id from fingerprint components that survive
// clearing cookies (browser, platform, screen, time zone, languages, GPU,
// canvas rendering, cores, memory), so a labelled machine that drops its
// device cookie is still recognised.
func (fp *Fingerprint) StableID() string {
	h := sha256.New()
	parts := []string{fp.UA, fp.Platform, fmt.Sprint(fp.Screen), fp.Timezone, strings.Join(fp.Languages, ","),
		fp.GLVendor, fp.GLRenderer, fp.Canvas, fmt.Sprint(fp.Cores), fmt.Sprint(fp.Memory)}
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
