package riskscore

// The cross-checks JudgeFingerprint runs: time zone, other realms (Worker,
// iframe), patched functions and objects, client hints, pointing devices.
// The platform and GPU checks are in fingerprint_platform.go.

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

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
	// A touch drag needs a touch screen: CDP's touch events reach a page
	// that reports none unless the driver also emulates one, and the slide
	// does not judge a touch drag's sampling rate (caddymodule's
	// sparsePointer), so this is the step that route costs.
	if fp.Drag == "touch" && fp.Touch == 0 {
		add("touch_without_touchscreen", 30, false, "a touch drag from a browser that reports no touch points")
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
