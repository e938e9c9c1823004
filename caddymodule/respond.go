package caddymodule

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Everything the handler writes to a client is written here: the pages,
// JSON replies, files, redirects and their headers. The flows decide what
// to answer; these functions decide how.

//go:embed assets/templates/*.html
var templateFiles embed.FS

// pages are the HTML templates: captcha.html, slide.html, wait.html and
// message.html (blocked, unavailable and error pages).
var pages = template.Must(template.New("").Funcs(template.FuncMap{"printf": fmt.Sprintf}).
	ParseFS(templateFiles, "assets/templates/*.html"))

// Content-Security-Policies of the pages: each allows only what its page
// uses.
const (
	cspMessage = "default-src 'none'; style-src 'unsafe-inline'"
	cspCaptcha = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
	cspSlide   = "default-src 'none'; script-src 'self'; worker-src blob:; connect-src 'self'; img-src 'self' https: data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
	cspWait    = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
	cspAdmin   = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

// wantsJSON reports whether the client prefers JSON to HTML (SPAs, apps):
// it asks for JSON, or it sends JSON.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return (strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")) || isJSONBody(r)
}

// writeJSON answers with body as JSON, never cached.
func writeJSON(w http.ResponseWriter, status int, body any) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(body)
}

// writeHTML answers with the page template name executed with data, never
// cached, under the page's Content-Security-Policy.
func writeHTML(w http.ResponseWriter, status int, lang, csp, name string, data any) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", csp)
	if lang != "" {
		hdr.Set("Content-Language", lang)
	}
	w.WriteHeader(status)
	return pages.ExecuteTemplate(w, name, data)
}

// writeFile answers with a file held in memory (an image, audio, a script,
// a dashboard asset).
func writeFile(w http.ResponseWriter, contentType, cacheControl string, b []byte) error {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Cache-Control", cacheControl)
	hdr.Set("X-Content-Type-Options", "nosniff")
	_, err := w.Write(b)
	return err
}

// message is the data of message.html.
type message struct {
	Title      string
	Paragraphs []string
}

// renderMessage renders message.html once, for the pages that never change.
func renderMessage(m message) []byte {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "message.html", m); err != nil {
		panic(err) // embedded at build time: cannot fail at run time
	}
	return b.Bytes()
}

// writePage answers with a fixed JSON body or HTML page, as the client
// prefers.
func writePage(w http.ResponseWriter, r *http.Request, status int, jsonBody string, htmlBody []byte) error {
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
	hdr.Set("Content-Security-Policy", cspMessage)
	w.WriteHeader(status)
	_, err := w.Write(htmlBody)
	return err
}

var (
	blockedHTML = renderMessage(message{Title: "Access denied", Paragraphs: []string{
		"This request was refused because it matched the site's rules for automated or abusive traffic.",
		"If you are a person and think this is a mistake, contact the site's owner."}})
	blockedJSON = `{"decision":"block","error":"this request was refused as automated or abusive traffic"}` + "\n"

	unavailableHTML = renderMessage(message{Title: "Temporarily unavailable", Paragraphs: []string{
		"The site's protection service is unreachable and the site is configured to refuse unverified visitors meanwhile. Please try again in a minute."}})
	unavailableJSON = `{"decision":"block","error":"bot protection is temporarily unavailable; try again later"}` + "\n"
)

// The errors returned to Caddy for blocked and unavailable when the site
// has handle_errors routes; {http.error.message} is their text.
var (
	errBlocked     = errors.New("advcaptcha: request refused as automated or abusive traffic")
	errUnavailable = errors.New("advcaptcha: bot protection is temporarily unavailable")
)

// siteHandlesErrors reports whether the site has handle_errors routes. The
// block and unavailable answers are then returned to Caddy as errors, so
// the site styles them like its other error pages (with the decision's
// {http.advcaptcha.*} placeholders); without such routes Caddy would answer
// an empty body, so the built-in pages are written instead.
func siteHandlesErrors(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return ok && srv.Errors != nil && len(srv.Errors.Routes) > 0
}

func writeBlocked(w http.ResponseWriter, r *http.Request) error {
	if siteHandlesErrors(r) {
		return caddyhttp.Error(http.StatusForbidden, errBlocked)
	}
	return writePage(w, r, http.StatusForbidden, blockedJSON, blockedHTML)
}

func writeUnavailable(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Retry-After", "30")
	if siteHandlesErrors(r) {
		return caddyhttp.Error(http.StatusServiceUnavailable, errUnavailable)
	}
	return writePage(w, r, http.StatusServiceUnavailable, unavailableJSON, unavailableHTML)
}

// writeError answers a request to advcaptcha's own routes that cannot be
// served (an expired captcha, a limit reached…) with msg.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	if wantsJSON(r) {
		return writeJSON(w, status, map[string]any{"ok": false, "error": msg})
	}
	return writeHTML(w, status, "", cspMessage, "message.html", message{Title: http.StatusText(status), Paragraphs: []string{msg}})
}

// writeCaptchaPage serves a challenge: the HTML page, or for JSON clients
// {"decision":"challenge","challenge":{id,image,answer,refresh,expires_in}}.
func writeCaptchaPage(w http.ResponseWriter, r *http.Request, status int, ch *challengeView) error {
	if wantsJSON(r) {
		body := map[string]any{"decision": "challenge", "challenge": ch}
		if ch.Error != "" {
			body["error"] = ch.Error
		}
		return writeJSON(w, status, body)
	}
	ch.Text = textFor(r)
	return writeHTML(w, status, ch.Text.Lang, cspCaptcha, "captcha.html", ch)
}

// writeSlidePage serves a slide check: the HTML page, or for JSON clients
// {"decision":"challenge","slide":{nonce,post,script,expires_in}}.
func writeSlidePage(w http.ResponseWriter, r *http.Request, s *slideView, brand *Branding) error {
	if wantsJSON(r) {
		return writeJSON(w, http.StatusForbidden, map[string]any{"decision": "challenge", "slide": s})
	}
	s.Text, s.Brand = textFor(r), brand
	if s.Brand == nil {
		s.Brand = &defaultBranding
	}
	return writeHTML(w, http.StatusForbidden, s.Text.Lang, cspSlide, "slide.html", s)
}

// writeWaitPage answers a request for a captcha while the pool is empty
// under fallback wait: 503 with Retry-After, an HTML page that goes on by
// itself to retry after secs, or for JSON clients
// {"decision":"challenge","retry_after":N,"retry":URL}.
func writeWaitPage(w http.ResponseWriter, r *http.Request, secs int, retry string) error {
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	if wantsJSON(r) {
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"decision": "challenge", "retry_after": secs, "retry": retry,
			"error": "a check is being prepared; try again in a few seconds"})
	}
	return writeHTML(w, http.StatusServiceUnavailable, "", cspWait, "wait.html",
		struct{ Refresh, Retry string }{fmt.Sprintf("%d;url=%s", secs, retry), retry})
}

// writeDashboardAsset serves one of the dashboard's files.
func writeDashboardAsset(w http.ResponseWriter, contentType string, b []byte) error {
	hdr := w.Header()
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", cspAdmin)
	return writeFile(w, contentType, "no-cache", b)
}

// redirectTo sends the client to a path safeReturn accepted. Unlike
// http.Redirect it writes the path as it is: http.Redirect cleans dot
// segments, which can turn a harmless path into one a browser reads as
// another host.
func redirectTo(w http.ResponseWriter, path string) {
	hdr := w.Header()
	hdr.Set("Location", safeReturn(path))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}
