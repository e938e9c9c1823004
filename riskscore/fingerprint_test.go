package riskscore

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func findings(fp Fingerprint, headerUA string) map[string]FingerprintFinding {
	out := map[string]FingerprintFinding{}
	for _, f := range JudgeFingerprint(&fp, headerUA) {
		out[f.Name] = f
	}
	return out
}

func TestJudgeFingerprint(t *testing.T) {
	linuxChrome := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	person := Fingerprint{UA: chromeWin, Languages: []string{"en-GB"}, Screen: []float64{1920, 1080}, Plugins: 5, Chrome: true,
		GLRenderer: "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)"}
	if f := findings(person, chromeWin); len(f) != 0 {
		t.Fatalf("a person's browser: %v", f)
	}
	for name, tc := range map[string]struct {
		fp      func(Fingerprint) Fingerprint
		ua      string
		want    string
		certain bool
	}{
		"webdriver":     {func(f Fingerprint) Fingerprint { f.Webdriver = true; return f }, chromeWin, "webdriver", true},
		"JS UA differs": {func(f Fingerprint) Fingerprint { return f }, linuxChrome, "ua_contradiction", true},
		"headless UA":   {func(f Fingerprint) Fingerprint { f.UA = headless; return f }, headless, "headless", true},
		"SwiftShader": {func(f Fingerprint) Fingerprint {
			f.GLRenderer = "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device))"
			return f
		}, chromeWin, "software_gpu", false},
		"Apple GPU on Linux": {func(f Fingerprint) Fingerprint { f.UA = linuxChrome; f.GLRenderer = "Apple M2"; return f }, linuxChrome, "gpu_contradiction", false},
		"no languages":       {func(f Fingerprint) Fingerprint { f.Languages = nil; return f }, chromeWin, "no_languages", false},
		"impossible screen":  {func(f Fingerprint) Fingerprint { f.Screen = []float64{0, 0}; return f }, chromeWin, "impossible_screen", false},
		"no plugins":         {func(f Fingerprint) Fingerprint { f.Plugins = 0; return f }, chromeWin, "no_plugins", false},
	} {
		f := findings(tc.fp(person), tc.ua)
		got, ok := f[tc.want]
		if !ok || got.Certain != tc.certain {
			t.Errorf("%s: findings %v, want %s (certain %v)", name, f, tc.want, tc.certain)
		}
	}
}

// FuzzFingerprint: any JSON the page's script could be made to send is
// judged without a panic, with finite points and a stable id.
func FuzzFingerprint(f *testing.F) {
	f.Add([]byte(`{"ua":"Mozilla/5.0","languages":["en"],"screen":[1920,1080],"plugins":5,"chrome":true}`), "Mozilla/5.0")
	f.Add([]byte(`{"webdriver":true,"screen":[-1,1e308],"window":[0],"cores":-4,"uaData":{"brands":["\"a\";v=1"],"platform":""}}`), "")
	f.Add([]byte(`{"worker":{"ua":"x","languages":null},"glRenderer":"SwiftShader","notification":"denied","notificationQuery":"granted"}`), "\xff")
	f.Add([]byte(`{"ua":"Mozilla/5.0 Chrome/131.0","uaData":{"brands":[" Not A;Brand/99","Chromium/x","/"],"platform":"Linux"},"uaHigh":{"fullVersionList":["Chromium/.","x"],"architecture":"x86"},"lies":["Function.toString","navigator.languages"],"own":["iframe:srcdoc"],"frame":{"ua":"y","lies":["canPlayType"]},"fonts":[],"media":{"anyPointer":"none","deviceSize":false},"drag":"mouse","codecs":{"mse":true,"h264":"probably"},"engine":{"evalLength":37},"webdriverIn":false,"cdp":true,"tzOffset":-60}`), "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0")
	f.Fuzz(func(t *testing.T, body []byte, headerUA string) {
		var fp Fingerprint
		if json.Unmarshal(body, &fp) != nil {
			return
		}
		for _, fd := range JudgeFingerprint(&fp, headerUA) {
			if math.IsNaN(fd.Points) || math.IsInf(fd.Points, 0) || fd.Name == "" {
				t.Fatalf("finding %+v for %s", fd, body)
			}
		}
		if id := fp.StableID(); id == "" || id != fp.StableID() {
			t.Fatalf("stable id %q", id)
		}
	})
}

func bptr(b bool) *bool { return &b }

// realBrowser assembles a fingerprint as slide.js reports it from a
// person's browser: every realm agreeing, no patches, native codecs.
func realBrowser(ua, platform string, uaData *UAData, vendor, renderer string, fonts []string, mobile bool) Fingerprint {
	fp := Fingerprint{UA: ua, Platform: platform, Languages: []string{"en-GB", "en"}, Cores: 8, Memory: 8,
		Screen: []float64{1920, 1080, 1920, 1040, 24}, Window: []float64{1903, 969, 1920, 1040}, Timezone: "Europe/London",
		Plugins: 5, MimeTypes: 2, GLVendor: vendor, GLRenderer: renderer, Canvas: "1a2b3c4d",
		Notification: "default", NotificationQuery: "prompt", UAData: uaData, WebdriverIn: bptr(true),
		Lies: []string{}, Own: []string{}, Fonts: fonts, Drag: "mouse"}
	london, _ := time.LoadLocation("Europe/London")
	_, off := time.Now().In(london).Zone()
	tz := float64(-off / 60)
	fp.TZOffset = &tz
	fp.Media = &struct {
		DPR        float64 `json:"dpr"`
		Resolution *bool   `json:"resolution"`
		DeviceSize *bool   `json:"deviceSize"`
		Pointer    string  `json:"pointer"`
		AnyPointer string  `json:"anyPointer"`
		Hover      bool    `json:"hover"`
	}{DPR: 1.25, Resolution: bptr(true), DeviceSize: bptr(true), Pointer: "fine", AnyPointer: "fine", Hover: true}
	fp.Codecs = &struct {
		H264    string `json:"h264"`
		AAC     string `json:"aac"`
		MSE     bool   `json:"mse"`
		H264MSE bool   `json:"h264MSE"`
		AACMSE  bool   `json:"aacMSE"`
	}{H264: "probably", AAC: "probably", MSE: true, H264MSE: true, AACMSE: true}
	v8 := strings.Contains(ua, "Chrome/")
	evalLen := 37
	if v8 {
		evalLen = 33
		fp.Chrome = true
		fp.ChromeKeys = []string{"app", "csi", "loadTimes"}
	}
	fp.Engine = &struct {
		EvalLength int  `json:"evalLength"`
		StackV8    bool `json:"stackV8"`
	}{EvalLength: evalLen, StackV8: v8}
	if mobile {
		fp.Plugins, fp.MimeTypes, fp.Touch, fp.Drag = 0, 0, 5, "touch"
		fp.Screen, fp.Window = []float64{412, 915, 412, 915, 24}, []float64{412, 785, 412, 785}
		fp.Media.DPR, fp.Media.Pointer, fp.Media.AnyPointer, fp.Media.Hover = 2.625, "coarse", "coarse", false
	}
	if uaData != nil {
		fp.UAHigh = &struct {
			Architecture    string   `json:"architecture"`
			Bitness         string   `json:"bitness"`
			Model           string   `json:"model"`
			PlatformVersion string   `json:"platformVersion"`
			FullVersionList []string `json:"fullVersionList"`
		}{Architecture: "x86", Bitness: "64", PlatformVersion: "15.0.0"}
		if mobile {
			fp.UAHigh.Architecture, fp.UAHigh.Bitness, fp.UAHigh.Model = "", "", "Pixel 7"
		}
		for _, b := range uaData.Brands {
			name, ver := splitBrand(b)
			full := ver + ".0.0.0"
			if strings.HasPrefix(ver, "131") {
				full = "131.0.6778.86"
			}
			fp.UAHigh.FullVersionList = append(fp.UAHigh.FullVersionList, name+"/"+full)
		}
	}
	fp.Worker = &RealmFacts{UA: ua, Platform: platform, Cores: 8, Memory: 8, Languages: fp.Languages, Timezone: fp.Timezone,
		UAData: uaData, GLVendor: vendor, GLRenderer: renderer, NotificationQuery: "prompt"}
	fp.Frame = &RealmFacts{UA: ua, Platform: platform, Cores: 8, Memory: 8, Languages: fp.Languages, Lies: []string{}}
	if !v8 {
		fp.Memory, fp.Worker.Memory, fp.Frame.Memory = 0, 0, 0 // no deviceMemory outside Chromium
	}
	return fp
}

// realBrowsers: people's browsers on every platform, with the values they
// really report (UA strings, navigator.platform, client-hint brands and
// GREASE of the version, ANGLE/Mesa/Apple WebGL strings as browserleaks
// and the Chromium source show them). None may draw a finding.
func realBrowsers() map[string]struct {
	fp Fingerprint
	ua string
} {
	const (
		chromeMac   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
		chromeLinux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
		chromium156 = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
		chromeAnd   = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
		samsungAnd  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36"
		edgeWin     = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
		operaWin    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0"
		chromeOS    = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
		firefoxWin  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
		firefoxMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
		firefoxLin  = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
		firefoxAnd  = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
		safariMac   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
		safariIOS   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
		chromeIOS   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
	)
	ch := func(platform string, mobile bool, brands ...string) *UAData {
		return &UAData{Brands: brands, Mobile: mobile, Platform: platform}
	}
	winFonts := []string{"Segoe UI", "Tahoma"}
	macFonts := []string{"Helvetica Neue", "Menlo"}
	linFonts := []string{"DejaVu Sans", "Liberation Sans", "Noto Sans"}
	andFonts := []string{"Roboto", "Noto Sans"}
	nv := "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002504) Direct3D11 vs_5_0 ps_5_0, D3D11)"
	out := map[string]struct {
		fp Fingerprint
		ua string
	}{}
	put := func(name string, fp Fingerprint) {
		out[name] = struct {
			fp Fingerprint
			ua string
		}{fp, fp.UA}
	}
	put("chrome windows", realBrowser(chromeWin, "Win32", ch("Windows", false, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"),
		"Google Inc. (NVIDIA)", nv, winFonts, false))
	put("edge windows", realBrowser(edgeWin, "Win32", ch("Windows", false, "Microsoft Edge/131", "Chromium/131", "Not_A Brand/24"),
		"Google Inc. (Intel)", "ANGLE (Intel, Intel(R) UHD Graphics 620 (0x00005917) Direct3D11 vs_5_0 ps_5_0, D3D11)", winFonts, false))
	put("opera windows", realBrowser(operaWin, "Win32", ch("Windows", false, "Chromium/130", "Opera/115", "Not?A_Brand/99"),
		"Google Inc. (AMD)", "ANGLE (AMD, AMD Radeon RX 6600 (0x000073FF) Direct3D11 vs_5_0 ps_5_0, D3D11)", winFonts, false))
	put("chrome macos", realBrowser(chromeMac, "MacIntel", ch("macOS", false, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"),
		"Google Inc. (Apple)", "ANGLE (Apple, ANGLE Metal Renderer: Apple M1, Unspecified Version)", macFonts, false))
	put("chrome macos intel", realBrowser(chromeMac, "MacIntel", ch("macOS", false, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"),
		"Google Inc. (Intel Inc.)", "ANGLE (Intel Inc., Intel(R) Iris(TM) Plus Graphics OpenGL Engine, OpenGL 4.1)", macFonts, false))
	put("chrome linux", realBrowser(chromeLinux, "Linux x86_64", ch("Linux", false, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"),
		"Google Inc. (Intel)", "ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL 4.6)", linFonts, false))
	// Debian's Chromium as a person runs it: the brands and fonts the
	// headless drive measured, a real GPU.
	put("debian chromium", realBrowser(chromium156, "Linux x86_64", ch("Linux", false, "Not:A-Brand/8", "Chromium/156"),
		"Google Inc. (AMD)", "ANGLE (AMD, AMD Radeon Graphics (radeonsi, renoir, LLVM 15.0.6, DRM 3.49, 6.1.0-18-amd64), OpenGL 4.6)", []string{"DejaVu Sans", "Liberation Sans"}, false))
	put("chrome os", realBrowser(chromeOS, "Linux x86_64", ch("Chrome OS", false, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"),
		"Google Inc. (Intel)", "ANGLE (Intel, Mesa Intel(R) UHD Graphics (JSL), OpenGL ES 3.2)", []string{"Roboto", "Noto Sans"}, false))
	put("chrome android", realBrowser(chromeAnd, "Linux armv81", ch("Android", true, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"),
		"Qualcomm", "Adreno (TM) 730", andFonts, true))
	put("samsung internet", realBrowser(samsungAnd, "Linux armv81", ch("Android", true, "Samsung Internet/27", "Chromium/125", "Not.A/Brand/24"),
		"ARM", "Mali-G78 MC14", andFonts, true))
	put("firefox windows", realBrowser(firefoxWin, "Win32", nil, "Google Inc. (NVIDIA)", "ANGLE (NVIDIA, NVIDIA GeForce GTX 980 Direct3D11 vs_5_0 ps_5_0), or similar", winFonts, false))
	put("firefox macos", realBrowser(firefoxMac, "MacIntel", nil, "Apple", "Apple M1, or similar", macFonts, false))
	put("firefox linux", realBrowser(firefoxLin, "Linux x86_64", nil, "Intel", "Mesa Intel(R) UHD Graphics 620 (KBL GT2)", linFonts, false))
	put("firefox android", realBrowser(firefoxAnd, "Linux aarch64", nil, "Qualcomm", "Adreno (TM) 640, or similar", andFonts, true))
	put("safari macos", realBrowser(safariMac, "MacIntel", nil, "Apple Inc.", "Apple GPU", macFonts, false))
	ios := realBrowser(safariIOS, "iPhone", nil, "Apple Inc.", "Apple GPU", []string{"Helvetica Neue", "Menlo"}, true)
	ios.Notification, ios.NotificationQuery, ios.Worker.NotificationQuery = "", "", "" // no Notification on iOS web pages
	ios.Codecs.MSE, ios.Codecs.H264MSE, ios.Codecs.AACMSE = false, false, false        // no MediaSource on iPhone
	put("safari ios", ios)
	crios := realBrowser(chromeIOS, "iPhone", nil, "Apple Inc.", "Apple GPU", []string{"Helvetica Neue", "Menlo"}, true)
	crios.Notification, crios.NotificationQuery, crios.Worker.NotificationQuery = "", "", ""
	put("chrome ios", crios)
	// The profile the older tests use, with fields a script may omit.
	put("minimal chrome", Fingerprint{UA: chromeWin, Languages: []string{"en-GB"}, Screen: []float64{1920, 1080}, Plugins: 5, Chrome: true,
		GLRenderer: "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)"})
	// A person who blocked notifications, and one who allowed them.
	denied := realBrowser(chromeWin, "Win32", ch("Windows", false, "Google Chrome/131", "Chromium/131", "Not_A Brand/24"), "Google Inc. (NVIDIA)", nv, winFonts, false)
	denied.Notification, denied.NotificationQuery, denied.Worker.NotificationQuery = "denied", "denied", "denied"
	put("notifications denied", denied)
	return out
}

func TestRealBrowsersClean(t *testing.T) {
	for name, b := range realBrowsers() {
		if f := findings(b.fp, b.ua); len(f) != 0 {
			t.Errorf("%s: %v", name, f)
		}
		// Through JSON, as the page posts it.
		raw, err := json.Marshal(b.fp)
		if err != nil {
			t.Fatal(err)
		}
		var back Fingerprint
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if f := findings(back, b.ua); len(f) != 0 {
			t.Errorf("%s after JSON: %v", name, f)
		}
	}
}

// TestFingerprintTells: each consistency check fires on its tell, applied
// to a real Chrome on Windows (or the named browser).
func TestFingerprintTells(t *testing.T) {
	real := realBrowsers()
	linuxUA := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	for name, tc := range map[string]struct {
		base    string
		tell    func(*Fingerprint)
		ua      string // header UA when it differs from the base's
		want    string
		certain bool
	}{
		"worker platform":             {"chrome windows", func(f *Fingerprint) { f.Worker.Platform = "Linux x86_64" }, "", "worker_contradiction", true},
		"worker languages":            {"chrome windows", func(f *Fingerprint) { f.Worker.Languages = []string{"en-US"} }, "", "worker_contradiction", true},
		"worker timezone":             {"chrome windows", func(f *Fingerprint) { f.Worker.Timezone = "UTC" }, "", "worker_contradiction", true},
		"worker brands":               {"chrome windows", func(f *Fingerprint) { f.Worker.UAData = &UAData{Brands: []string{"Chromium/131"}, Platform: "Windows"} }, "", "worker_contradiction", true},
		"worker cores":                {"chrome windows", func(f *Fingerprint) { f.Cores = 4 }, "", "worker_contradiction", true},
		"worker GPU":                  {"chrome windows", func(f *Fingerprint) { f.Worker.GLRenderer = "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device))" }, "", "worker_gpu_contradiction", false},
		"iframe cores":                {"chrome windows", func(f *Fingerprint) { f.Frame.Cores = 2 }, "", "frame_contradiction", true},
		"notification default/denied": {"chrome windows", func(f *Fingerprint) { f.NotificationQuery = "denied" }, "", "notification_inconsistent", false},
		"notification denied/prompt":  {"chrome windows", func(f *Fingerprint) { f.Notification = "denied" }, "", "notification_inconsistent", false},
		"notification worker":         {"chrome windows", func(f *Fingerprint) { f.Worker.NotificationQuery = "denied" }, "", "notification_inconsistent", false},
		"one lie":                     {"chrome windows", func(f *Fingerprint) { f.Lies = []string{"canvas.toDataURL"} }, "", "native_lie", false},
		"one automation lie":          {"chrome windows", func(f *Fingerprint) { f.Lies = []string{"navigator.hardwareConcurrency"} }, "", "native_lie", false},
		"hidden lie":                  {"chrome windows", func(f *Fingerprint) { f.Lies = []string{"Function.toString", "navigator.languages"} }, "", "native_lie", true},
		"iframe realm lie":            {"chrome windows", func(f *Fingerprint) { f.Frame.Lies = []string{"WebGL.getParameter", "permissions.query"} }, "", "native_lie", true},
		"outerWidth assigned":         {"chrome windows", func(f *Fingerprint) { f.Own = []string{"window.outerWidth"} }, "", "patched_instance", false},
		"stealth instances":           {"chrome windows", func(f *Fingerprint) { f.Own = []string{"document.createElement", "iframe:srcdoc"} }, "", "patched_instance", true},
		"webdriver deleted":           {"chrome windows", func(f *Fingerprint) { f.WebdriverIn = bptr(false) }, "", "webdriver_deleted", false},
		"not V8 under Chrome":         {"chrome windows", func(f *Fingerprint) { f.Engine.EvalLength, f.Engine.StackV8 = 37, false }, "", "engine_contradiction", false},
		"V8 under Firefox":            {"firefox windows", func(f *Fingerprint) { f.Engine.EvalLength, f.Engine.StackV8 = 33, true }, "", "engine_contradiction", false},
		"Runtime.enable":              {"chrome windows", func(f *Fingerprint) { f.CDP = true }, "", "runtime_enable", false},
		"canPlayType patched":         {"debian chromium", func(f *Fingerprint) { f.Codecs.H264MSE, f.Codecs.AACMSE = false, false }, "", "codec_contradiction", false},
		"Chrome without H.264":        {"chrome linux", func(f *Fingerprint) { f.Codecs.H264, f.Codecs.H264MSE = "", false }, "", "chromium_as_chrome", false},
		"Chromium brand version":      {"chrome windows", func(f *Fingerprint) { f.UAData.Brands[1] = "Chromium/120"; f.Worker.UAData = f.UAData }, "", "uach_contradiction", true},
		"stale GREASE":                {"chrome windows", func(f *Fingerprint) { f.UAData.Brands[2] = " Not A;Brand/99"; f.Worker.UAData = f.UAData }, "", "stale_grease_brand", true},
		"empty fullVersionList":       {"chrome windows", func(f *Fingerprint) { f.UAHigh.FullVersionList = nil }, "", "uach_contradiction", true},
		"fullVersionList other brands": {"debian chromium", func(f *Fingerprint) {
			f.UAData.Brands = []string{" Not A;Brand/99", "Chromium/156", "Google Chrome/156"}
			f.Worker.UAData = f.UAData
		}, "", "uach_contradiction", true},
		"no bitness":           {"chrome windows", func(f *Fingerprint) { f.UAHigh.Bitness = "" }, "", "uach_incomplete", false},
		"uaData under Firefox": {"firefox windows", func(f *Fingerprint) { f.UAData = &UAData{Brands: []string{"Chromium/131"}, Platform: "Windows"} }, "", "uach_contradiction", false},
		"Linux platform, Windows UA": {"chrome windows", func(f *Fingerprint) {
			f.Platform, f.Worker.Platform, f.Frame.Platform = "Linux x86_64", "Linux x86_64", "Linux x86_64"
		}, "", "platform_contradiction", false},
		"bare Linux":            {"chrome linux", func(f *Fingerprint) { f.Platform, f.Worker.Platform, f.Frame.Platform = "Linux", "Linux", "Linux" }, "", "platform_contradiction", false},
		"UA-CH platform":        {"chrome windows", func(f *Fingerprint) { f.UAData.Platform = "Linux"; f.Worker.UAData = f.UAData }, "", "platform_contradiction", false},
		"Windows without fonts": {"chrome windows", func(f *Fingerprint) { f.Fonts = []string{"DejaVu Sans", "Liberation Sans"} }, "", "platform_fonts", false},
		"macOS without fonts":   {"safari macos", func(f *Fingerprint) { f.Fonts = []string{} }, "", "platform_fonts", false},
		"stealth WebGL on Linux": {"chrome linux", func(f *Fingerprint) {
			f.GLVendor, f.GLRenderer = "Intel Inc.", "Intel Iris OpenGL Engine"
			f.Worker.GLVendor, f.Worker.GLRenderer = f.GLVendor, f.GLRenderer
		}, "", "stealth_webgl", true},
		"mac GPU on Linux": {"chrome linux", func(f *Fingerprint) {
			f.GLRenderer = "ANGLE (Apple, ANGLE Metal Renderer: Apple M2, Unspecified Version)"
			f.Worker.GLRenderer = f.GLRenderer
		}, "", "gpu_contradiction", false},
		"Direct3D on macOS": {"chrome macos", func(f *Fingerprint) { f.GLRenderer, f.Worker.GLRenderer = nvD3D, nvD3D }, "", "gpu_contradiction", false},
		"Mesa on Windows": {"firefox windows", func(f *Fingerprint) {
			f.GLRenderer = "Mesa Intel(R) UHD Graphics 620 (KBL GT2)"
			f.Worker.GLRenderer = f.GLRenderer
		}, "", "gpu_contradiction", false},
		"raw vendor under Chrome windows": {"chrome windows", func(f *Fingerprint) { f.GLVendor, f.Worker.GLVendor = "NVIDIA Corporation", "NVIDIA Corporation" }, "", "gpu_vendor_contradiction", false},
		"no pointer, mouse drag":          {"chrome windows", func(f *Fingerprint) { f.Media.AnyPointer, f.Media.Pointer = "none", "none" }, "", "no_pointer_device", false},
		"touch drag, no touch points":     {"chrome windows", func(f *Fingerprint) { f.Drag, f.Touch = "touch", 0 }, "", "touch_without_touchscreen", false},
		"screen getter patched":           {"chrome windows", func(f *Fingerprint) { f.Media.DeviceSize = bptr(false) }, "", "screen_media_contradiction", false},
		"Intl and Date disagree": {"chrome windows", func(f *Fingerprint) {
			f.Timezone, f.Worker.Timezone = "Asia/Tokyo", "Asia/Tokyo" // UTC+9 all year, the clock says London
		}, "", "timezone_contradiction", false},
		"Linux UA, Windows navigator": {"chrome windows", func(f *Fingerprint) {
			f.UA, f.Worker.UA, f.Frame.UA = linuxUA, linuxUA, linuxUA
		}, linuxUA, "platform_contradiction", false},
	} {
		b := real[tc.base]
		fp := cloneFingerprint(t, b.fp)
		tc.tell(&fp)
		ua := b.ua
		if tc.ua != "" {
			ua = tc.ua
		}
		f := findings(fp, ua)
		got, ok := f[tc.want]
		if !ok || got.Certain != tc.certain {
			t.Errorf("%s: findings %v, want %s (certain %v)", name, f, tc.want, tc.certain)
		}
	}
}

const nvD3D = "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002504) Direct3D11 vs_5_0 ps_5_0, D3D11)"

// cloneFingerprint deep-copies through JSON so tells do not leak between
// cases.
func cloneFingerprint(t *testing.T, fp Fingerprint) Fingerprint {
	raw, err := json.Marshal(fp)
	if err != nil {
		t.Fatal(err)
	}
	var out Fingerprint
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// requestHeaders are the headers the browser sends with the fingerprint:
// Accept-Language from the same list as navigator.languages, Sec-CH-UA
// from the same brands.
func requestHeaders(fp Fingerprint, ua string) http.Header {
	h := http.Header{}
	h.Set("User-Agent", ua)
	h.Set("Accept-Language", fp.Languages[0]+",en;q=0.9")
	if d := fp.UAData; d != nil {
		var parts []string
		for _, b := range d.Brands {
			name, ver := splitBrand(b)
			parts = append(parts, strconv.Quote(name)+";v="+strconv.Quote(ver))
		}
		h.Set("Sec-CH-UA", strings.Join(parts, ", "))
		h.Set("Sec-CH-UA-Platform", strconv.Quote(d.Platform))
		h.Set("Sec-CH-UA-Mobile", map[bool]string{true: "?1", false: "?0"}[d.Mobile])
	}
	return h
}

func TestJudgeFingerprintRequest(t *testing.T) {
	real := realBrowsers()
	for name, b := range real {
		if len(b.fp.Languages) == 0 {
			continue
		}
		if f := JudgeFingerprintRequest(&b.fp, requestHeaders(b.fp, b.ua)); len(f) != 0 {
			t.Errorf("%s with its headers: %v", name, f)
		}
	}
	chrome := real["chrome windows"].fp
	for name, tc := range map[string]struct {
		hdr  func(http.Header)
		want string
	}{
		"Accept-Language":    {func(h http.Header) { h.Set("Accept-Language", "de-DE,de;q=0.9") }, "language_contradiction"},
		"Sec-CH-UA brands":   {func(h http.Header) { h.Set("Sec-CH-UA", `"Chromium";v="131", "Not_A Brand";v="24"`) }, "uach_contradiction"},
		"Sec-CH-UA-Platform": {func(h http.Header) { h.Set("Sec-CH-UA-Platform", `"Linux"`) }, "uach_contradiction"},
		"Sec-CH-UA-Mobile":   {func(h http.Header) { h.Set("Sec-CH-UA-Mobile", "?1") }, "uach_contradiction"},
		"User-Agent":         {func(h http.Header) { h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0") }, "ua_contradiction"},
	} {
		h := requestHeaders(chrome, chrome.UA)
		tc.hdr(h)
		found := false
		for _, f := range JudgeFingerprintRequest(&chrome, h) {
			found = found || f.Name == tc.want
		}
		if !found {
			t.Errorf("%s: no %s", name, tc.want)
		}
	}
}

// TestMeasuredStealthFingerprints: fingerprints that slide.js posted from
// Debian's headless Chromium driven by puppeteer-core, plain and with
// puppeteer-extra-plugin-stealth (attack/stealth/drive.js, see its
// RESULTS.md). Each must be refused on the fingerprint alone, and for
// certain.
func TestMeasuredStealthFingerprints(t *testing.T) {
	raw, err := os.ReadFile("testdata/fingerprint_stealth.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec struct {
			Config      string      `json:"config"`
			UA          string      `json:"ua"`
			Fingerprint Fingerprint `json:"fingerprint"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		n++
		var pts float64
		certain := false
		for _, f := range JudgeFingerprint(&rec.Fingerprint, rec.UA) {
			pts += f.Points
			certain = certain || f.Certain
		}
		if pts < 50 || !certain {
			t.Errorf("%s: %g points, certain %v: %v", rec.Config, pts, certain, findings(rec.Fingerprint, rec.UA))
		}
		// An untouched Chromium (no plugin) is a real Blink and V8: it
		// must show only what headless and the --user-agent switch
		// change, no patch traces and no realm contradictions.
		if strings.HasSuffix(rec.Config, " plain") {
			allowed := map[string]bool{"webdriver": true, "headless": true, "software_gpu": true, "no_pointer_device": true,
				"uach_contradiction": strings.HasPrefix(rec.Config, "careful")} // --user-agent empties the high-entropy hints
			for name := range findings(rec.Fingerprint, rec.UA) {
				if !allowed[name] {
					t.Errorf("%s: untouched Chromium drew %s", rec.Config, name)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d measured fingerprints", n)
	}
}
