package caddymodule

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// waitRetry is how long a client is asked to wait when the adversarial pool
// is empty (fallback wait): long enough for a worker to make a captcha
// (about a second of CPU each) and short enough for a person.
const waitRetry = 5 * time.Second

// waitPage is the "preparing your check" page. It reloads itself with a
// meta refresh, which the pages' Content-Security-Policy (no script) does
// not govern, and offers a link for browsers that do not refresh.
const waitPage = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">
<meta http-equiv="refresh" content="%REFRESH%">
<title>Preparing your check</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:10vh auto;padding:0 1em;color:#222}h1{font-size:1.4em}</style></head><body>
<main id="advc-wait"><h1>Preparing your check…</h1>
<p>This site checks that visitors are people. Your check is being prepared; this page will continue by itself in a few seconds.</p>
<p><a id="advc-retry" href="%URL%">Continue</a></p>
</main></body></html>
`

// serveWait answers a request for a captcha while the pool is empty under
// fallback wait: 503 with Retry-After, an HTML page that comes back by
// itself, or for JSON clients {"decision":"challenge","retry_after":N,
// "retry":URL}. A GET comes back to the same URL; anything else (an answer
// or a slide posted) to the challenge route, which issues a new captcha for
// returnTo.
func (v *visit) serveWait(w http.ResponseWriter, returnTo string) error {
	secs := int(waitRetry / time.Second)
	retry := routePrefix + "challenge?return=" + url.QueryEscape(returnTo)
	refresh := strconv.Itoa(secs)
	if v.r.Method == http.MethodGet || v.r.Method == http.MethodHead {
		// A refresh without a URL reloads the page's own URL: nothing
		// taken from the request goes into the page.
		retry = ""
	} else {
		refresh += ";url=" + retry
	}
	hdr := w.Header()
	hdr.Set("Retry-After", strconv.Itoa(secs))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(v.r) {
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		body := map[string]any{"decision": "challenge", "retry_after": secs,
			"error": "a check is being prepared; try again in a few seconds"}
		if retry != "" {
			body["retry"] = retry
		}
		return json.NewEncoder(w).Encode(body)
	}
	// An empty href is the page itself.
	page := strings.NewReplacer("%REFRESH%", html.EscapeString(refresh), "%URL%", html.EscapeString(retry)).Replace(waitPage)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, err := w.Write([]byte(page))
	return err
}
