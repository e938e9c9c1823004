package caddymodule

import (
	"net/http"
	"strings"

	"go.uber.org/zap/zapcore"

	"github.com/advcaptcha/advcaptcha/riskscore"
)

// wantsJSON reports whether the client prefers JSON to HTML (SPAs, apps).
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func writePage(w http.ResponseWriter, r *http.Request, status int, jsonBody, htmlBody string) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, err := w.Write([]byte(jsonBody))
		return err
	}
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_, err := w.Write([]byte(htmlBody))
	return err
}

const pageHead = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">
<title>%s</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:10vh auto;padding:0 1em;color:#222}h1{font-size:1.4em}</style></head><body>`

func page(title, body string) string {
	return strings.Replace(pageHead, "%s", title, 1) + "<main><h1>" + title + "</h1>" + body + "</main></body></html>\n"
}

var (
	challengeHTML = page("Checking that you are not a robot",
		`<p>This site is protected against automated traffic, and something about this request looked automated.</p>
<p>The interactive check (a slide bar, then a short text) is not available in this version of advcaptcha yet, so this page cannot clear you by itself. If you are a person, try again from a regular, up-to-date browser with cookies enabled, or contact the site's owner.</p>`)
	challengeJSON = `{"decision":"challenge","error":"this request looks automated and must pass a challenge","challenge":{"available":false,"reason":"the interactive challenge is not implemented in this version"}}` + "\n"

	blockedHTML = page("Access denied",
		`<p>This request was refused because it matched the site's rules for automated or abusive traffic.</p>
<p>If you are a person and think this is a mistake, contact the site's owner.</p>`)
	blockedJSON = `{"decision":"block","error":"this request was refused as automated or abusive traffic"}` + "\n"

	unavailableHTML = page("Temporarily unavailable",
		`<p>The site's protection service is unreachable and the site is configured to refuse unverified visitors meanwhile. Please try again in a minute.</p>`)
	unavailableJSON = `{"decision":"block","error":"bot protection is temporarily unavailable; try again later"}` + "\n"
)

func writeChallenge(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, http.StatusForbidden, challengeJSON, challengeHTML)
}

func writeBlocked(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, http.StatusForbidden, blockedJSON, blockedHTML)
}

func writeUnavailable(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Retry-After", "30")
	return writePage(w, r, http.StatusServiceUnavailable, unavailableJSON, unavailableHTML)
}

// logFields puts the decision in Caddy's access log as one object.
type logFields struct {
	score    float64
	decision riskscore.Decision
	reasons  string
}

func (f logFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddFloat64("score", f.score)
	enc.AddString("decision", f.decision.String())
	enc.AddString("reasons", f.reasons)
	return nil
}

// reasonDetails lists reasons with what was seen, for the log line.
func reasonDetails(a *riskscore.Assessment) string {
	var b strings.Builder
	for i, r := range a.Reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}
