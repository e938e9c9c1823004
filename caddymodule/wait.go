package caddymodule

import (
	"encoding/json"
	"html"
	"net/http"
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
// fallback wait: 503 with Retry-After, an HTML page that goes on by itself
// to retry (a grant for the captcha it is waiting for), or for JSON
// clients {"decision":"challenge","retry_after":N,"retry":URL}.
func (v *visit) serveWait(w http.ResponseWriter, retry string) error {
	secs := int(waitRetry / time.Second)
	refresh := strconv.Itoa(secs) + ";url=" + retry
	hdr := w.Header()
	hdr.Set("Retry-After", strconv.Itoa(secs))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(v.r) {
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		return json.NewEncoder(w).Encode(map[string]any{"decision": "challenge", "retry_after": secs, "retry": retry,
			"error": "a check is being prepared; try again in a few seconds"})
	}
	page := strings.NewReplacer("%REFRESH%", html.EscapeString(refresh), "%URL%", html.EscapeString(retry)).Replace(waitPage)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, err := w.Write([]byte(page))
	return err
}
