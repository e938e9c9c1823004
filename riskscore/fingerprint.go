package riskscore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// judgeTimezone: the time zone Intl names and the offset Date gives come
// from the same zone database; a spoofer that patches one of them (or a
// page whose Intl says Europe/Berlin while its clock runs at UTC) gives
// them away. Zones the server cannot load are not judged.
func judgeTimezone(fp *Fingerprint, now time.Time, add addFunc) {
	if fp.TZOffset == nil || fp.Timezone == "" {
		return
	}
	loc := zone(fp.Timezone)
	if loc == nil {
		return
	}
	_, off := now.In(loc).Zone()
	// getTimezoneOffset is UTC minus local time, in minutes.
	if got := *fp.TZOffset; got != float64(-off/60) {
		// A page collected up to minutes ago may straddle a DST switch:
		// the offset an hour earlier counts as well.
		if _, before := now.Add(-time.Hour).In(loc).Zone(); got != float64(-before/60) {
			add("timezone_contradiction", 60, false, fmt.Sprintf("%s is UTC%+d min now, the page's clock says %+g", fp.Timezone, off/60, -got))
		}
	}
}

var zones sync.Map // name → *time.Location, for names that loaded

// zone loads an IANA zone name, caching the ones that exist; odd names
// are refused before they reach the file system.
func zone(name string) *time.Location {
	if v, ok := zones.Load(name); ok {
		return v.(*time.Location)
	}
	if len(name) > 40 || name == "Local" || strings.Contains(name, "..") {
		return nil
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '_' || c == '-' || c == '+') {
			return nil
		}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	zones.Store(name, loc)
	return loc
}

// judgeRealms compares the page with the other realms. A Worker and an
// iframe are the same browser process with the same settings: their
// navigator, time zone, client hints and GPU are the page's. Only a tool
// that patched one realm's objects (or overrode the page target's UA over
// CDP, which dedicated workers do not inherit) makes them differ.
func judgeRealms(fp *Fingerprint, add addFunc) {
	if w := fp.Worker; w != nil {
		var diff []string
		if w.UA != fp.UA {
			diff = append(diff, "ua")
		}
		if w.Platform != fp.Platform {
			diff = append(diff, "platform "+fp.Platform+"/"+w.Platform)
		}
		if w.Cores != fp.Cores {
			diff = append(diff, fmt.Sprintf("cores %g/%g", fp.Cores, w.Cores))
		}
		if w.Memory != fp.Memory {
			diff = append(diff, "memory")
		}
		if len(w.Languages) > 0 && !equalStrings(w.Languages, fp.Languages) {
			diff = append(diff, "languages "+strings.Join(fp.Languages, ",")+"/"+strings.Join(w.Languages, ","))
		}
		if w.Timezone != "" && fp.Timezone != "" && w.Timezone != fp.Timezone {
			diff = append(diff, "timezone")
		}
		if w.UAData != nil && fp.UAData != nil && (w.UAData.Platform != fp.UAData.Platform ||
			w.UAData.Mobile != fp.UAData.Mobile || !equalStrings(w.UAData.Brands, fp.UAData.Brands)) {
			diff = append(diff, "client hints")
		}
		if len(diff) > 0 {
			// The page's navigator was patched, the worker's was not.
			add("worker_contradiction", 100, true, "a Worker sees another browser than the page: "+strings.Join(diff, "; "))
		}
		// The worker's OffscreenCanvas WebGL runs on the same GPU and
		// driver as the page's; only a patched getParameter tells two
		// stories. Not certain: a lost GPU context can fall back to
		// software in one of them.
		if w.GLRenderer != "" && fp.GLRenderer != "" && (w.GLRenderer != fp.GLRenderer || (w.GLVendor != "" && fp.GLVendor != "" && w.GLVendor != fp.GLVendor)) {
			add("worker_gpu_contradiction", 60, false, fp.GLRenderer+" in the page, "+w.GLRenderer+" in a Worker")
		}
	}
	if f := fp.Frame; f != nil && f.UA != "" {
		if f.UA != fp.UA || f.Platform != fp.Platform || f.Cores != fp.Cores || f.Memory != fp.Memory ||
			!equalStrings(f.Languages, fp.Languages) || f.Webdriver != fp.Webdriver {
			add("frame_contradiction", 100, true, "an iframe sees another browser than the page")
		}
	}
	// Notification.permission and permissions.query describe one setting:
	// default↔prompt, denied↔denied, granted↔granted, in the page and in
	// a Worker alike. Headless Chromium used to say denied/prompt; the
	// stealth plugin's patch says default/denied.
	if fp.Notification != "" && fp.NotificationQuery != "" {
		want := map[string]string{"default": "prompt", "denied": "denied", "granted": "granted"}[fp.Notification]
		if want != fp.NotificationQuery {
			add("notification_inconsistent", 40, false, "Notification.permission "+fp.Notification+", permissions.query "+fp.NotificationQuery)
		}
	}
	if w := fp.Worker; w != nil && w.NotificationQuery != "" && fp.NotificationQuery != "" && w.NotificationQuery != fp.NotificationQuery {
		add("notification_inconsistent", 40, false, "permissions.query "+fp.NotificationQuery+" in the page, "+w.NotificationQuery+" in a Worker")
	}
}

// certainLies are patches that betray automation rather than a privacy
// extension: the navigator facts bots fake, the permission and WebGL
// answers, the media and iframe hooks of puppeteer-extra-plugin-stealth.
var certainLies = map[string]bool{
	"navigator.webdriver": true, "navigator.hardwareConcurrency": true, "navigator.languages": true,
	"navigator.plugins": true, "navigator.mimeTypes": true, "navigator.vendor": true, "navigator.platform": true,
	"navigator.userAgent": true, "navigator.deviceMemory": true, "permissions.query": true,
	"Notification.permission": true, "WebGL.getParameter": true, "WebGL2.getParameter": true,
	"canPlayType": true, "document.createElement": true, "chrome.csi": true, "chrome.loadTimes": true,
	"chrome.runtime.sendMessage": true, "chrome.runtime.connect": true,
}

// judgePatches reads the traces that patching JavaScript objects leaves.
// A browser's own functions are native and never Proxies, and its
// properties live on prototypes (Navigator.prototype, Document.prototype,
// HTMLIFrameElement.prototype, PermissionStatus.prototype), never on the
// instances a page gets. Privacy extensions patch a few APIs too, so a
// single trace costs a captcha; the stealth plugin's signature — a
// patched Function.prototype.toString hiding other patches, or several
// traces of automation-relevant patches — is certain.
func judgePatches(fp *Fingerprint, ua *UserAgent, add addFunc) {
	lies := append(append([]string(nil), fp.Lies...), realmLies(fp.Frame)...)
	lies = dedupe(lies)
	hidesToString, relevant := false, 0
	for _, l := range lies {
		if l == "Function.toString" {
			hidesToString = true
		}
		if certainLies[l] {
			relevant++
		}
	}
	own := dedupe(fp.Own)
	ownCertain := 0
	for _, o := range own {
		// The stealth plugin's createElement hook and the iframe srcdoc
		// and PermissionStatus objects it builds.
		if o == "document.createElement" || strings.HasPrefix(o, "iframe:") || strings.HasPrefix(o, "PermissionStatus:") {
			ownCertain++
		}
	}
	if len(lies) > 0 {
		certain := relevant > 0 && (hidesToString || relevant >= 2 || ownCertain > 0)
		add("native_lie", 60, certain, truncate(strings.Join(lies, ","), 200))
	}
	if len(own) > 0 {
		add("patched_instance", 60, ownCertain >= 2 || (ownCertain > 0 && relevant > 0), truncate(strings.Join(own, ","), 200))
	}
	// Every Chromium since 89 defines Navigator.prototype.webdriver (false
	// for a person); deleting it is an old evasion.
	if fp.WebdriverIn != nil && !*fp.WebdriverIn && ua.ChromeMajor >= 89 {
		add("webdriver_deleted", 60, false, "no webdriver in navigator")
	}
	// V8 prints eval as 33 characters and stacks as "    at f (…)";
	// SpiderMonkey and JavaScriptCore print 37 characters and "f@…".
	if e := fp.Engine; e != nil && e.EvalLength > 0 {
		v8 := e.EvalLength == 33 && e.StackV8
		switch {
		case ua.Chromium() && !v8:
			add("engine_contradiction", 60, false, "a Chromium UA without V8")
		case !ua.Chromium() && (ua.FirefoxMajor > 0 || ua.SafariMajor > 0) && v8:
			add("engine_contradiction", 60, false, "a Firefox or Safari UA running V8")
		}
	}
	// puppeteer and playwright enable the Runtime domain on every page,
	// and the console then serialises logged errors; a person's browser
	// does so only with DevTools open (recent V8 no longer reads the
	// stack there, so absence proves nothing).
	if fp.CDP {
		add("runtime_enable", 40, false, "console serialised to a DevTools protocol client")
	}
	// MediaSource.isTypeSupported and canPlayType answer from the same
	// codec list; canPlayType alone saying "probably" is a patched
	// canPlayType (the stealth plugin's media.codecs).
	if c := fp.Codecs; c != nil && c.MSE {
		if (c.H264 == "probably" && !c.H264MSE) || (c.AAC == "probably" && !c.AACMSE) {
			add("codec_contradiction", 60, false, "canPlayType and MediaSource disagree")
		}
	}
}

// judgeClientHints compares the User-Agent with navigator.userAgentData
// and its high-entropy values. Chromium derives all three from one
// version and one brand list: the "Chromium" brand's version is the
// Chrome/ token's major in every Chromium browser (Chrome, Edge, Opera,
// Brave, Samsung Internet), fullVersionList names the same brands, and
// since Chrome 104 the GREASE brand is "Not" + two characters + "Brand",
// never the old " Not A;Brand" with a leading space that puppeteer's
// stealth plugin still sends.
func judgeClientHints(fp *Fingerprint, ua *UserAgent, add addFunc) {
	d := fp.UAData
	if d == nil {
		return
	}
	if !ua.Chromium() && (ua.FirefoxMajor > 0 || ua.SafariMajor > 0) && len(d.Brands) > 0 {
		// Firefox and Safari have no userAgentData.
		add("uach_contradiction", 60, false, "userAgentData under a Firefox or Safari UA")
		return
	}
	names := map[string]bool{}
	for _, b := range d.Brands {
		name, ver := splitBrand(b)
		names[name] = true
		if name == "Chromium" && ua.ChromeMajor > 0 && ver != strconv.Itoa(ua.ChromeMajor) {
			add("uach_contradiction", 100, true, "Chromium brand "+ver+" under Chrome/"+strconv.Itoa(ua.ChromeMajor))
		}
		if ua.ChromeMajor >= 110 && strings.HasPrefix(name, " ") && strings.Contains(name, "Brand") {
			add("stale_grease_brand", 100, true, "GREASE brand "+strconv.Quote(name)+" under Chrome/"+strconv.Itoa(ua.ChromeMajor))
		}
	}
	if h := fp.UAHigh; h != nil && ua.Chromium() && len(d.Brands) > 0 {
		full := map[string]bool{}
		for _, b := range h.FullVersionList {
			name, ver := splitBrand(b)
			full[name] = true
			if name == "Chromium" && ua.ChromeMajor > 0 && strings.SplitN(ver, ".", 2)[0] != strconv.Itoa(ua.ChromeMajor) {
				add("uach_contradiction", 100, true, "Chromium full version "+ver+" under Chrome/"+strconv.Itoa(ua.ChromeMajor))
			}
		}
		// fullVersionList exists since Chrome 98; Chromium empties it (and
		// the other high-entropy hints) when --user-agent replaces the UA.
		if ua.ChromeMajor >= 100 && !equalSets(names, full) {
			add("uach_contradiction", 80, true, "brands and fullVersionList name different browsers")
		}
		// Desktop Chromium reports its bitness with its architecture.
		if !d.Mobile && h.Architecture != "" && h.Bitness == "" && ua.ChromeMajor >= 110 {
			add("uach_incomplete", 30, false, "architecture without bitness")
		}
	}
	if d.Platform != "" && fp.Platform != "" {
		if p := navigatorPlatform(fp.Platform); p != "" && !samePlatform(p, d.Platform) {
			add("platform_contradiction", 60, false, "navigator.platform "+fp.Platform+" vs userAgentData "+d.Platform)
		}
	}
	// A build without H.264 is Chromium, whatever its brands say: every
	// Google Chrome plays H.264.
	if names["Google Chrome"] && fp.Codecs != nil && fp.Codecs.MSE && !fp.Codecs.H264MSE {
		add("chromium_as_chrome", 40, false, "Google Chrome brand on a build without H.264")
	}
}

// judgePlatform compares the platforms the UA, navigator.platform, the
// client hints and the fonts name. Browsers report navigator.platform as
// "Win32" on every Windows, "MacIntel" on every Mac (Apple silicon
// included), "Linux" plus the architecture on Linux and Chrome OS, and
// "iPhone"/"iPad" on iOS; bare "Linux" is the stealth plugin's.
func judgePlatform(fp *Fingerprint, ua *UserAgent, add addFunc) {
	if ua.Platform != "" && fp.UAData != nil && fp.UAData.Platform != "" && fp.UAData.Platform != ua.Platform {
		add("platform_contradiction", 60, false, fp.UAData.Platform+" vs UA "+ua.Platform)
	}
	if fp.Platform != "" && ua.Platform != "" {
		p := navigatorPlatform(fp.Platform)
		switch {
		case p != "" && !samePlatform(p, ua.Platform) && !(p == "macOS" && ua.Platform == "iOS"):
			// iPadOS Safari asks for desktop sites as a Mac: MacIntel
			// under an iPad UA does not happen, but an iPad UA under
			// MacIntel is the request-mobile-site switch.
			add("platform_contradiction", 60, false, "navigator.platform "+fp.Platform+" under a "+ua.Platform+" UA")
		case fp.Platform == "Linux" && (ua.Platform == "Linux" || ua.Platform == "Chrome OS"):
			add("platform_contradiction", 60, false, "navigator.platform is bare Linux")
		}
	}
	// Fonts every installation of the platform has: Segoe UI and Tahoma
	// on Windows (Vista on), Helvetica Neue and Menlo on macOS (10.6 on).
	if fp.Fonts != nil {
		has := map[string]bool{}
		for _, f := range fp.Fonts {
			has[f] = true
		}
		switch {
		case ua.Platform == "Windows" && !has["Segoe UI"] && !has["Tahoma"]:
			add("platform_fonts", 60, false, "a Windows UA without Windows fonts")
		case ua.Platform == "macOS" && !has["Helvetica Neue"] && !has["Menlo"]:
			add("platform_fonts", 60, false, "a macOS UA without macOS fonts")
		}
	}
}

// gpuPlatforms: renderer words that only one family of platforms shows.
// Direct3D exists on Windows only; Apple's "… OpenGL Engine", Metal and
// Apple GPUs on macOS and iOS only; Mesa drivers on Linux, Chrome OS and
// (emulators) Android only.
var gpuPlatforms = []struct {
	word      string
	platforms []string
}{
	{"direct3d", []string{"Windows"}},
	{"d3d11", []string{"Windows"}},
	{"d3d9", []string{"Windows"}},
	{"opengl engine", []string{"macOS", "iOS"}},
	{"metal renderer", []string{"macOS", "iOS"}},
	{"apple m", []string{"macOS", "iOS"}},
	{"apple gpu", []string{"macOS", "iOS"}},
	{"mesa", []string{"Linux", "Chrome OS", "Android"}},
}

// judgeGPU checks the WebGL vendor and renderer against the platform and
// the browser. Chromium draws WebGL through ANGLE on Windows and macOS,
// so since Chrome 100 its unmasked vendor there reads "Google Inc. (…)"
// and its renderer "ANGLE (…)"; the raw "Intel Inc." / "Intel Iris
// OpenGL Engine" pair is Safari's (and the stealth plugin's default).
func judgeGPU(fp *Fingerprint, ua *UserAgent, add addFunc) {
	r := strings.ToLower(fp.GLRenderer)
	for _, soft := range []string{"swiftshader", "llvmpipe", "softpipe", "software rasterizer"} {
		if strings.Contains(r, soft) {
			add("software_gpu", 40, false, fp.GLRenderer)
			break
		}
	}
	if ua.Platform != "" {
		for _, g := range gpuPlatforms {
			if strings.Contains(r, g.word) && !contains(g.platforms, ua.Platform) {
				add("gpu_contradiction", 60, false, fp.GLRenderer+" under a "+ua.Platform+" UA")
				break
			}
		}
	}
	if ua.ChromeMajor >= 100 && fp.GLVendor == "Intel Inc." && fp.GLRenderer == "Intel Iris OpenGL Engine" {
		add("stealth_webgl", 100, true, "the stealth plugin's WebGL vendor and renderer under Chrome/"+strconv.Itoa(ua.ChromeMajor))
	} else if ua.ChromeMajor >= 100 && !ua.Mobile && (ua.Platform == "Windows" || ua.Platform == "macOS") &&
		fp.GLVendor != "" && !strings.HasPrefix(fp.GLVendor, "Google Inc.") && fp.GLVendor != "WebKit" {
		add("gpu_vendor_contradiction", 40, false, fp.GLVendor+" is not ANGLE's vendor")
	}
}

// judgeDevices: the slide was dragged with a pointer, and the browser
// says which pointing devices it has. Headless Chromium has none
// ("(any-pointer: none)"); a person's browser that delivered a mouse or
// touch drag has one.
func judgeDevices(fp *Fingerprint, ua *UserAgent, add addFunc) {
	m := fp.Media
	if m == nil {
		return
	}
	if m.AnyPointer == "none" && (fp.Drag == "mouse" || fp.Drag == "touch" || fp.Drag == "pen") {
		add("no_pointer_device", 60, false, "a "+fp.Drag+" drag from a browser without pointing devices")
	}
	// Screen size and pixel ratio as media queries and as properties come
	// from the same screen information; only a patched getter differs.
	if (m.DeviceSize != nil && !*m.DeviceSize) || (m.Resolution != nil && !*m.Resolution) {
		add("screen_media_contradiction", 30, false, "screen properties and media queries disagree")
	}
}

// splitBrand splits slide.js's "name/version" at the last slash: GREASE
// brand names may contain slashes ("Not/A)Brand"), versions never do.
func splitBrand(b string) (name, version string) {
	i := strings.LastIndexByte(b, '/')
	if i < 0 {
		return b, ""
	}
	return b[:i], b[i+1:]
}

func realmLies(f *RealmFacts) []string {
	if f == nil {
		return nil
	}
	return f.Lies
}

// navigatorPlatform names the platform of a navigator.platform value in
// Sec-CH-UA-Platform's words, or "" when it is not one of the known forms.
func navigatorPlatform(p string) string {
	switch {
	case p == "Win32" || p == "Win64" || p == "Windows":
		return "Windows"
	case p == "MacIntel" || p == "MacPPC" || p == "Macintosh":
		return "macOS"
	case p == "iPhone" || p == "iPad" || p == "iPod" || strings.HasPrefix(p, "iPhone") || strings.HasPrefix(p, "iPad"):
		return "iOS"
	case strings.HasPrefix(p, "Linux") || strings.HasPrefix(p, "X11"):
		return "Linux"
	}
	return ""
}

// samePlatform: Android and Chrome OS report Linux in navigator.platform.
func samePlatform(a, b string) bool {
	norm := func(p string) string {
		switch p {
		case "Android", "Chrome OS", "Chromium OS":
			return "Linux"
		}
		return p
	}
	return a == b || norm(a) == norm(b)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
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
