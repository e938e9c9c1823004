package riskscore

// The platform and GPU checks of JudgeFingerprint, with the tables of
// what each platform reports.

import (
	"strconv"
	"strings"
)

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
