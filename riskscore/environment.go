package riskscore

import (
	"net/http"
	"strconv"
	"strings"
)

// Environment adds the signals of a request's headers to a, and returns the
// parsed User-Agent for the caller's further checks (crawler claims).
// secure says whether the browser would treat the origin as a secure
// context (HTTPS or loopback): only there do browsers send Sec-Fetch-*
// and client hints, so only there is their absence suspicious.
func Environment(a *Assessment, w *Weights, h http.Header, secure bool) *UserAgent {
	uas := h.Values("User-Agent")
	if len(uas) == 0 || uas[0] == "" {
		a.Add(w, UAMissing, 1, "")
		addAcceptSignals(a, w, h)
		return &UserAgent{}
	}
	u := ParseUserAgent(uas[0])
	switch {
	case len(uas) > 1:
		a.Add(w, UAMalformed, 1, "repeated header")
	case u.Malformed != "":
		a.Add(w, UAMalformed, 1, u.Malformed)
	}
	switch {
	case u.Automation != "":
		a.Add(w, UAAutomation, 1, u.Automation)
	case u.Incomplete != "":
		a.Add(w, UAIncomplete, 1, u.Incomplete)
	case u.Family == "" && u.Crawler == "" && u.Malformed == "":
		a.Add(w, UAUnknown, 1, "")
	}
	addAcceptSignals(a, w, h)
	if !u.Browser() {
		return u
	}
	if secure && sendsFetchMetadata(u) && h.Get("Sec-Fetch-Site") == "" && h.Get("Sec-Fetch-Mode") == "" {
		a.Add(w, SecFetchMissing, 1, "")
	}
	addClientHintSignals(a, w, h, u, secure)
	return u
}

func addAcceptSignals(a *Assessment, w *Weights, h http.Header) {
	if h.Get("Accept") == "" {
		a.Add(w, AcceptMissing, 1, "")
	}
	if h.Get("Accept-Language") == "" {
		a.Add(w, AcceptLanguageMissing, 1, "")
	}
	// Every browser of the last decade accepts gzip.
	if ae := h.Get("Accept-Encoding"); ae == "" {
		a.Add(w, AcceptEncodingMissing, 1, "")
	} else if !strings.Contains(strings.ToLower(ae), "gzip") {
		a.Add(w, AcceptEncodingMissing, 1, "no gzip")
	}
}

// sendsFetchMetadata reports whether the browser version sends Sec-Fetch-*
// headers (Chrome 76, Firefox 90, Safari 16.4 — 17 here, to be safe).
func sendsFetchMetadata(u *UserAgent) bool {
	return u.ChromeMajor >= 76 || u.FirefoxMajor >= 90 || u.SafariMajor >= 17
}

func addClientHintSignals(a *Assessment, w *Weights, h http.Header, u *UserAgent, secure bool) {
	chua := h.Get("Sec-CH-UA")
	if !u.Chromium() {
		if chua != "" {
			a.Add(w, ClientHintsMismatch, 1, "client hints from a non-Chromium UA")
		}
		return
	}
	if chua == "" {
		// Chromium 89+ sends the low-entropy hints on every secure request.
		if secure && u.ChromeMajor >= 90 {
			a.Add(w, ClientHintsMissing, 1, "")
		}
		return
	}
	brands, ok := parseBrands(chua)
	if !ok {
		a.Add(w, ClientHintsMismatch, 1, "unparsable Sec-CH-UA")
		return
	}
	chromium, found := 0, false
	for _, b := range brands {
		if strings.Contains(b.name, "Headless") {
			a.Add(w, UAAutomation, 1, "headless brand in Sec-CH-UA")
		}
		if b.name == "Chromium" {
			chromium, found = b.major, true
		}
	}
	switch {
	case !found:
		a.Add(w, ClientHintsMismatch, 1, "no Chromium brand")
	case chromium != u.ChromeMajor:
		a.Add(w, ClientHintsMismatch, 1, "Chromium "+strconv.Itoa(chromium)+" vs Chrome/"+strconv.Itoa(u.ChromeMajor))
	}
	if p := strings.Trim(h.Get("Sec-CH-UA-Platform"), `"`); p != "" && u.Platform != "" && p != u.Platform {
		a.Add(w, PlatformMismatch, 1, p+" vs UA "+u.Platform)
	} else if m := h.Get("Sec-CH-UA-Mobile"); (m == "?1") != u.Mobile && m != "" {
		a.Add(w, PlatformMismatch, 1, "Sec-CH-UA-Mobile "+m)
	}
}

type brand struct {
	name  string
	major int
}

// parseBrands reads a Sec-CH-UA list: `"Chromium";v="120", "Not?A_Brand";v="24"`.
// It accepts at most 16 entries; anything else is not what a browser sends.
func parseBrands(s string) ([]brand, bool) {
	var out []brand
	for len(s) > 0 {
		if len(out) == 16 {
			return nil, false
		}
		s = strings.TrimLeft(s, " ")
		if len(s) == 0 || s[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return nil, false
		}
		b := brand{name: s[1 : 1+end]}
		s = s[2+end:]
		if strings.HasPrefix(s, `;v="`) {
			s = s[4:]
			vend := strings.IndexByte(s, '"')
			if vend < 0 {
				return nil, false
			}
			v := s[:vend]
			if dot := strings.IndexByte(v, '.'); dot >= 0 {
				v = v[:dot]
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, false
			}
			b.major = n
			s = s[vend+1:]
		}
		out = append(out, b)
		s = strings.TrimLeft(s, " ")
		if len(s) > 0 {
			if s[0] != ',' {
				return nil, false
			}
			s = s[1:]
		}
	}
	return out, len(out) > 0
}
