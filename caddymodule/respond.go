package caddymodule

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"go.uber.org/zap/zapcore"

	"github.com/advcaptcha/advcaptcha/riskscore"
)

// wantsJSON reports whether the client prefers JSON to HTML (SPAs, apps):
// it asks for JSON, or it sends JSON.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return (strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")) || isJSONBody(r)
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
	blockedHTML = page("Access denied",
		`<p>This request was refused because it matched the site's rules for automated or abusive traffic.</p>
<p>If you are a person and think this is a mistake, contact the site's owner.</p>`)
	blockedJSON = `{"decision":"block","error":"this request was refused as automated or abusive traffic"}` + "\n"

	unavailableHTML = page("Temporarily unavailable",
		`<p>The site's protection service is unreachable and the site is configured to refuse unverified visitors meanwhile. Please try again in a minute.</p>`)
	unavailableJSON = `{"decision":"block","error":"bot protection is temporarily unavailable; try again later"}` + "\n"
)

// captchaPage is the challenge for browsers. The image is shown at three
// times its size with nearest-neighbour scaling (image-rendering:
// pixelated): what a person sees is then exactly the pixels that were
// generated — and, with adversarial captchas, attacked — only larger; a
// smoother upscaling or a larger rendering would be a different image.
var captchaPage = template.Must(template.New("captcha").Funcs(template.FuncMap{"printf": fmt.Sprintf}).Parse(`<!doctype html><html lang="{{.Text.Lang}}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">
<title>{{.Text.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:8vh auto;padding:0 1em;color:#222}h1{font-size:1.4em}
#advc-captcha-img{width:300px;max-width:100%;height:auto;image-rendering:pixelated;border:1px solid #ccc;display:block;margin:1em 0}
#advc-answer{font-size:1.2em;padding:.3em;width:10em;letter-spacing:.1em}#advc-submit{font-size:1.1em;padding:.35em 1em}
.advc-error{color:#a00}</style></head><body><main>
<h1>{{.Text.Title}}</h1>
<p>{{.Text.CaptchaIntro}}</p>
{{if .Error}}<p class="advc-error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Answer}}">
<img id="advc-captcha-img" src="{{.Image}}" width="300" height="90" alt="{{.Text.CaptchaAlt}}">
<input type="hidden" name="id" value="{{.ID}}"><input type="hidden" name="return" value="{{.Return}}">
<label for="advc-answer">{{.Text.AnswerLabel}}</label><br>
<input id="advc-answer" name="answer" autocomplete="off" autocapitalize="none" autocorrect="off" spellcheck="false" maxlength="32" required autofocus>
<button id="advc-submit" type="submit">{{.Text.Submit}}</button>
</form>
<p><label for="advc-audio">{{.Text.AudioLabel}}</label><br>
<audio id="advc-audio" controls preload="none" src="{{.Audio}}"></audio></p>
<p>{{if .Refresh}}<a href="{{.Refresh}}">{{.Text.AnotherImage}}</a> · {{end}}{{printf .Text.Expires .ExpiresIn}}</p>
</main></body></html>
`))

// writeCaptchaPage serves a challenge: the HTML page, or for JSON clients
// {"decision":"challenge","challenge":{id,image,answer,refresh,expires_in}}.
func writeCaptchaPage(w http.ResponseWriter, r *http.Request, status int, ch *challengeView) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		body := map[string]any{"decision": "challenge", "challenge": ch}
		if ch.Error != "" {
			body["error"] = ch.Error
		}
		return json.NewEncoder(w).Encode(body)
	}
	ch.Text = textFor(r)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", ch.Text.Lang)
	hdr.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	return captchaPage.Execute(w, ch)
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
