package attack

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/advcaptcha/advcaptcha/solver"
)

// Where a browser goes. These follow the WHATWG URL standard for the parts
// attackers use: leading and trailing C0 controls and spaces are dropped,
// tabs and newlines anywhere are removed, a backslash is a slash in http
// URLs, any number of slashes after "//" starts the authority, and "%2e"
// is a dot segment.

var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*:`)

// browserTarget resolves ref against base as a browser would and returns
// the host and the path the browser requests (as the server decodes it).
func browserTarget(base *url.URL, ref string) (host, path string) {
	s := strings.TrimFunc(ref, func(r rune) bool { return r <= 0x20 })
	s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = strings.ReplaceAll(s[:i], `\`, "/") + s[i:]
	} else {
		s = strings.ReplaceAll(s, `\`, "/")
	}
	if m := schemeRE.FindString(s); m != "" {
		scheme := strings.ToLower(strings.TrimSuffix(m, ":"))
		rest := s[len(m):]
		if scheme != base.Scheme {
			// Another scheme: another origin (or script).
			h, _ := authority(strings.TrimLeft(rest, "/"))
			if h == "" {
				h = scheme + ":"
			}
			return h, ""
		}
		// Same scheme: "http://x" is an authority, "http:foo" a relative path.
		s = rest
	}
	if strings.HasPrefix(s, "//") {
		h, p := authority(strings.TrimLeft(s, "/"))
		return h, p
	}
	r, err := url.Parse(s)
	if err != nil {
		return base.Host, "/"
	}
	u := base.ResolveReference(r)
	return u.Host, decodedPath(u.EscapedPath())
}

// authority splits "host/path…" as the authority state does.
func authority(s string) (host, path string) {
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	host = s[:end]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if h, err := url.PathUnescape(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	path = "/"
	if end < len(s) && s[end] == '/' {
		path = s[end:]
		if i := strings.IndexAny(path, "?#"); i >= 0 {
			path = path[:i]
		}
		path = decodedPath(path)
	}
	return host, path
}

// decodedPath is the path as the server routes it: dot segments ("%2e"
// included) removed by the browser, then percent-decoded by the server.
func decodedPath(p string) string {
	segs := strings.Split(p, "/")
	var out []string
	for i, s := range segs {
		switch strings.ToLower(s) {
		case ".", "%2e":
			if i == len(segs)-1 {
				out = append(out, "")
			}
			continue
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
			continue
		}
		out = append(out, s)
	}
	j := strings.Join(out, "/")
	if d, err := url.PathUnescape(j); err == nil {
		j = d
	}
	if !strings.HasPrefix(j, "/") {
		j = "/" + j
	}
	return j
}

// goRedirect is the Location the gateway's http.Redirect makes of a return
// path (it cleans the path, which can turn "/./\evil" into "/\evil").
func goRedirect(base *url.URL, v string) string {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, base.String()+"/.advcaptcha/answer", nil)
	http.Redirect(rec, req, v, http.StatusSeeOther)
	return rec.Header().Get("Location")
}

// badDestination says what is wrong with sending a browser to ref, or "".
func badDestination(base *url.URL, ref string) string {
	host, path := browserTarget(base, ref)
	switch {
	case host != base.Host:
		return fmt.Sprintf("off-site to %q", host)
	case strings.HasPrefix(path, "/.advcaptcha/"):
		return "into the gateway's own routes (" + path + ")"
	}
	return ""
}

// badReturn judges a return path the gateway keeps for later: it will be
// used both as a JSON "return" (slide.js: location.replace) and through
// http.Redirect after a captcha.
func badReturn(base *url.URL, v string) string {
	if why := badDestination(base, v); why != "" {
		return "as a JSON return: " + why
	}
	if loc := goRedirect(base, v); loc != v {
		if why := badDestination(base, loc); why != "" {
			return fmt.Sprintf("as a redirect (Location: %q): %s", loc, why)
		}
	}
	return ""
}

// The shipped solver model: what an attacker downloads with the gateway.
var (
	solverOnce sync.Once
	theSolver  *solver.Solver
	solverErr  error
)

func loadSolver() (*solver.Solver, error) {
	solverOnce.Do(func() {
		m, err := solver.Default()
		if err != nil {
			solverErr = err
			return
		}
		theSolver, solverErr = solver.New(m, solver.Options{Workers: 1})
	})
	return theSolver, solverErr
}

// solve fetches a captcha's image with the device's cookies and reads it
// with the shipped model.
func (d *device) solve(c *captchaView) (string, error) {
	s, err := loadSolver()
	if err != nil {
		return "", err
	}
	r, err := d.do(http.MethodGet, c.Image, fetchGET, nil, http.Header{"Accept": {"image/avif,image/webp,image/apng,image/*,*/*;q=0.8"}, "Sec-Fetch-Dest": {"image"}, "Sec-Fetch-Mode": {"no-cors"}})
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		return "", fmt.Errorf("image: HTTP %d", r.Status)
	}
	img, err := png.Decode(bytes.NewReader(r.Body))
	if err != nil {
		return "", err
	}
	x, err := s.FromImage(img)
	if err != nil {
		return "", err
	}
	p, err := s.Predict([]solver.Image{x})
	if err != nil {
		return "", err
	}
	return p[0].Text, nil
}
