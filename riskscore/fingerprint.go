package riskscore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Fingerprint is what the challenge page's script reports of the browser.
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
	Worker            *struct {
		UA        string   `json:"ua"`
		Platform  string   `json:"platform"`
		Cores     float64  `json:"cores"`
		Memory    float64  `json:"memory"`
		Languages []string `json:"languages"`
	} `json:"worker"`
	UAData *struct {
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
	if w := fp.Worker; w != nil && (w.UA != fp.UA || w.Platform != fp.Platform || w.Cores != fp.Cores || w.Memory != fp.Memory) {
		// The page's navigator was patched, the worker's was not.
		add("worker_contradiction", 100, true, "a Worker sees another browser than the page")
	}
	if fp.Notification == "denied" && fp.NotificationQuery == "prompt" {
		add("notification_inconsistent", 30, false, "Notification.permission denied, permissions.query prompt")
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
