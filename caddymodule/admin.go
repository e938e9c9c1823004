package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/store"
)

// The operators' area: where it is served, how it is guarded, its router,
// and the operator API for labels. The dashboard's data is in dashboard.go.

// Admin places and guards the operators' area: the dashboard and the
// operator API (label review, the label log, the summary the dashboard
// draws). It exists when admin_token is set or the guard is caddy_auth.
type Admin struct {
	// Path is the prefix the area is served under, ending in "/": the
	// dashboard at Path, the API at Path+"labels", Path+"label",
	// Path+"summary". Default "/.advcaptcha/admin/".
	Path string `json:"path,omitempty"`
	// Guard decides who gets in. "token" (default): every API request
	// carries "Authorization: Bearer <admin_token>"; the dashboard page
	// itself holds no data and asks for the token. "caddy_auth": a Caddy
	// authentication handler that runs before advcaptcha (basic_auth,
	// forward_auth…, e.g. with `order basic_auth before advcaptcha`)
	// must have authenticated the request ({http.auth.user.id} set);
	// requests that it did not are refused, so a missing basic_auth fails
	// closed. The bearer token is accepted in both modes.
	Guard string `json:"guard,omitempty"`
}

const defaultAdminPath = routePrefix + "admin/"

func (a *Admin) provision() {
	if a.Path == "" {
		a.Path = defaultAdminPath
	}
	if a.Guard == "" {
		a.Guard = "token"
	}
}

func (a *Admin) validate(haveToken bool) error {
	switch {
	case !strings.HasPrefix(a.Path, "/") || !strings.HasSuffix(a.Path, "/") || path.Clean(a.Path)+"/" != a.Path && a.Path != "/":
		return fmt.Errorf("path %q: want a clean absolute path ending in /, e.g. /ops/advcaptcha/", a.Path)
	case a.Path == "/":
		return fmt.Errorf("path %q: the operators' area cannot take the whole site", a.Path)
	case strings.HasPrefix(a.Path, routePrefix) && !strings.HasPrefix(a.Path, defaultAdminPath):
		return fmt.Errorf("path %q: under %s only %s… is free for it", a.Path, routePrefix, defaultAdminPath)
	case a.Guard != "token" && a.Guard != "caddy_auth":
		return fmt.Errorf("guard %q: want token or caddy_auth", a.Guard)
	case a.Guard == "token" && !haveToken && a.Path != defaultAdminPath:
		return fmt.Errorf("guard token needs admin_token")
	}
	return nil
}

//go:embed assets/dashboard
var dashboardAssets embed.FS

// dashboardFiles maps the names under the admin path to the embedded
// assets and their content types.
var dashboardFiles = map[string][2]string{
	"":              {"assets/dashboard/index.html", "text/html; charset=utf-8"},
	"dashboard.js":  {"assets/dashboard/dashboard.js", "text/javascript; charset=utf-8"},
	"dashboard.css": {"assets/dashboard/dashboard.css", "text/css; charset=utf-8"},
}

// serveDashboardAsset serves the dashboard's page and its script and style.
// They hold no data: everything shown comes from the guarded API.
func serveDashboardAsset(w http.ResponseWriter, name string) error {
	f := dashboardFiles[name]
	b, err := dashboardAssets.ReadFile(f[0])
	if err != nil {
		return err
	}
	return writeDashboardAsset(w, f[1], b)
}

// sameOrigin refuses state-changing requests a browser sent for another
// site: with caddy_auth, basic-auth credentials travel with every request
// the browser makes, so a page elsewhere must not be able to use them.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// serveAdmin answers the operators' area: the dashboard's page (which holds
// no data) and the operator API, every request of which must pass the
// guard.
func (v *visit) serveAdmin(w http.ResponseWriter, path string) error {
	get := v.r.Method == http.MethodGet || v.r.Method == http.MethodHead
	_, asset := dashboardFiles[path]
	caddyAuth := v.h.Admin.Guard == "caddy_auth"
	if !(asset && get && !caddyAuth) && !v.h.adminAuthorized(v.r) {
		if caddyAuth {
			return writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "not authenticated: admin guard caddy_auth needs an authentication handler (basic_auth, forward_auth…) to run before advcaptcha on this path, or the admin token"})
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="advcaptcha admin"`)
		return writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "missing or wrong admin token (Authorization: Bearer …)"})
	}
	if v.r.Method == http.MethodPost && !sameOrigin(v.r) {
		return writeJSON(w, http.StatusForbidden, map[string]any{"ok": false, "error": "cross-site request refused"})
	}
	switch {
	case asset && get:
		return serveDashboardAsset(w, path)
	case path == "summary" && get:
		return v.serveSummary(w)
	case path == "labels" && v.r.Method == http.MethodGet:
		return v.serveLabelLog(w)
	case path == "labels" && v.r.Method == http.MethodPost:
		return v.serveOperatorLabel(w)
	case path == "label" && v.r.Method == http.MethodGet:
		return v.serveLabelLookup(w)
	}
	return writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "no such admin endpoint"})
}

// adminAuthorized passes a request that carries the admin token, compared
// in constant time (over hashes, so the comparison does not leak the
// token's length either), or, with guard caddy_auth, one that an
// authentication handler before this one authenticated.
func (h *Handler) adminAuthorized(r *http.Request) bool {
	if h.Admin.Guard == "caddy_auth" {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			if id, _ := repl.GetString("http.auth.user.id"); id != "" {
				return true
			}
		}
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || h.adminToken == nil {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], h.adminToken) == 1
}

type labelLogPage struct {
	OK     bool             `json:"ok"`
	Events []labelLogRecord `json:"events"`
	// Next is the id to pass as after= for the following page; empty at
	// the end of the log.
	Next string `json:"next,omitempty"`
}

type labelLogRecord struct {
	ID string `json:"id"`
	extraction.LabelEvent
}

// serveLabelLog lists the label log oldest first: ?after=ID&limit=N.
func (v *visit) serveLabelLog(w http.ResponseWriter) error {
	q := v.r.URL.Query()
	limit := defaultLabelPage
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLabelPage {
			return writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": fmt.Sprintf("limit must be 1 to %d", maxLabelPage)})
		}
		limit = n
	}
	after := q.Get("after")
	if len(after) > 64 {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "after: not a log id"})
	}
	recs, err := v.h.store.Range(v.r.Context(), extraction.LabelLog, after, limit)
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "store unavailable"})
	}
	page := labelLogPage{OK: true, Events: make([]labelLogRecord, 0, len(recs))}
	for _, r := range recs {
		rec := labelLogRecord{ID: r.ID}
		if err := json.Unmarshal(r.Value, &rec.LabelEvent); err != nil {
			v.h.logger.Error("corrupt label record skipped", zap.String("id", r.ID), zap.Error(err))
			continue
		}
		page.Events = append(page.Events, rec)
	}
	if len(recs) == limit {
		page.Next = recs[len(recs)-1].ID
	}
	return writeJSON(w, http.StatusOK, page)
}

// serveLabelLookup returns an entity's label now: ?entity=KIND:ID.
func (v *visit) serveLabelLookup(w http.ResponseWriter) error {
	e, err := v.h.parseEntity(v.r.URL.Query().Get("entity"))
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": err.Error()})
	}
	t, err := v.h.store.Observe(v.r.Context(), time.Now(), []store.Hit{{Entity: e}})
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "store unavailable"})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"ok": true, "entity": e.Key(), "label": t[0].Label, "counts": t[0].Counts})
}

// operatorLabel is the body of POST /.advcaptcha/admin/labels.
type operatorLabel struct {
	// Entity is KIND:ID with KIND ip, dev, acct or fp; an ip may be an
	// address, which is grouped by the configured prefix.
	Entity string `json:"entity"`
	// Action is "confirm" (label as an attacker) or "clear" (remove the
	// label and record that it was wrong).
	Action string `json:"action"`
	Reason string `json:"reason"`
	// TTL of a confirmed label, e.g. "24h". Default label_ttl.
	TTL string `json:"ttl,omitempty"`
}

func (v *visit) serveOperatorLabel(w http.ResponseWriter) error {
	bad := func(msg string) error {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": msg})
	}
	if !isJSONBody(v.r) {
		// A JSON content type cannot be sent cross-site without a CORS
		// preflight, which this endpoint never grants.
		return writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{"ok": false, "error": "send the label as application/json"})
	}
	v.r.Body = http.MaxBytesReader(w, v.r.Body, maxAdminBody)
	dec := json.NewDecoder(v.r.Body)
	dec.DisallowUnknownFields()
	var req operatorLabel
	if err := dec.Decode(&req); err != nil || dec.More() {
		return bad(`malformed label (want {"entity": "ip:203.0.113.7", "action": "confirm"|"clear", "reason": "…", "ttl": "24h"})`)
	}
	e, err := v.h.parseEntity(req.Entity)
	if err != nil {
		return bad(err.Error())
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > maxLabelReason {
		return bad(fmt.Sprintf("reason: say why, in 1 to %d bytes", maxLabelReason))
	}
	ctx := v.r.Context()
	switch req.Action {
	case "confirm":
		ttl := time.Duration(v.h.LabelTTL)
		if req.TTL != "" {
			if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl < time.Second || ttl > maxOperatorTTL {
				return bad(fmt.Sprintf("ttl: want a duration from 1s to %v, e.g. \"24h\"", maxOperatorTTL))
			}
		}
		now := time.Now()
		l := store.Label{Reason: req.Reason, Source: extraction.SourceOperator, At: now, Expires: now.Add(ttl)}
		err = v.h.setLabel(ctx, e, l)
	case "clear":
		err = v.h.clearLabel(ctx, e, req.Reason, extraction.SourceOperator)
	default:
		return bad(`action: want "confirm" or "clear"`)
	}
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "store unavailable; nothing changed"})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"ok": true, "entity": e.Key(), "action": req.Action})
}

// parseEntity reads KIND:ID as the operator API takes it.
func (h *Handler) parseEntity(s string) (store.Entity, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok || id == "" || len(id) > 256 {
		return store.Entity{}, errors.New("entity: want KIND:ID with KIND ip, dev, acct or fp")
	}
	switch k := store.Kind(kind); k {
	case store.KindIP:
		if a, err := netip.ParseAddr(id); err == nil {
			return store.Entity{Kind: k, ID: prefixID(a, h.IPv4Prefix, h.IPv6Prefix)}, nil
		}
		if p, err := netip.ParsePrefix(id); err == nil {
			if want := prefixID(p.Addr(), h.IPv4Prefix, h.IPv6Prefix); want == p.Masked().String() {
				return store.Entity{Kind: k, ID: want}, nil
			}
		}
		return store.Entity{}, fmt.Errorf("entity: %q is not an IP address or a /%d or /%d prefix", id, h.IPv4Prefix, h.IPv6Prefix)
	case store.KindDevice, store.KindAccount, store.KindFingerprint:
		return store.Entity{Kind: k, ID: id}, nil
	}
	return store.Entity{}, fmt.Errorf("entity: unknown kind %q (want ip, dev, acct or fp)", kind)
}
