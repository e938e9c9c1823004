package riskscore

import (
	"strings"
)

// Fingerprint is what the challenge page's script reports of the browser.
type Fingerprint struct {
	Webdriver  bool      `json:"webdriver"`
	UA         string    `json:"ua"`
	Platform   string    `json:"platform"`
	Languages  []string  `json:"languages"`
	Cores      float64   `json:"cores"`
	Memory     float64   `json:"memory"`
	Screen     []float64 `json:"screen"`
	Window     []float64 `json:"window"`
	Timezone   string    `json:"timezone"`
	Plugins    int       `json:"plugins"`
	MimeTypes  int       `json:"mimeTypes"`
	Touch      int       `json:"touch"`
	Chrome     bool      `json:"chrome"`
	GLVendor   string    `json:"glVendor"`
	GLRenderer string    `json:"glRenderer"`
	UAData     *struct {
		Brands   []string `json:"brands"`
		Mobile   bool     `json:"mobile"`
		Platform string   `json:"platform"`
	} `json:"uaData"`
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
func JudgeFingerprint(fp *Fingerprint, headerUA string) []FingerprintFinding {
	var out []FingerprintFinding
	add := func(name string, pts float64, certain bool, detail string) {
		out = append(out, FingerprintFinding{name, pts, certain, detail})
	}
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
	r := strings.ToLower(fp.GLRenderer)
	for _, soft := range []string{"swiftshader", "llvmpipe", "softpipe", "software rasterizer"} {
		if strings.Contains(r, soft) {
			add("software_gpu", 40, false, fp.GLRenderer)
			break
		}
	}
	ua := ParseUserAgent(headerUA)
	if ua.Platform != "" && fp.UAData != nil && fp.UAData.Platform != "" && fp.UAData.Platform != ua.Platform {
		add("platform_contradiction", 60, false, fp.UAData.Platform+" vs UA "+ua.Platform)
	}
	if (strings.Contains(r, "apple m") || strings.Contains(r, "apple gpu")) && ua.Platform != "" && ua.Platform != "macOS" && ua.Platform != "iOS" {
		add("gpu_contradiction", 60, false, fp.GLRenderer+" under a "+ua.Platform+" UA")
	}
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
