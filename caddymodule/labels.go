package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/store"
)

// Bounds of the operator API.
const (
	maxAdminBody     = 4 << 10
	maxOperatorTTL   = 90 * 24 * time.Hour
	maxLabelReason   = 200
	defaultLabelPage = 100
	maxLabelPage     = 1000
)

// label marks an entity a confirmed attacker by one of the gateway's rules,
// for label_ttl.
func (h *Handler) label(ctx context.Context, e store.Entity, reason string) {
	h.labelFor(ctx, e, reason, time.Duration(h.LabelTTL))
}

// labelFor is label for another time.
func (h *Handler) labelFor(ctx context.Context, e store.Entity, reason string, ttl time.Duration) {
	now := time.Now()
	l := store.Label{Reason: reason, Source: extraction.SourceRule, At: now, Expires: now.Add(ttl)}
	if err := h.setLabel(ctx, e, l); err != nil {
		h.health.failed(err, h.OnStoreError)
	}
}

// setLabel stores a label and records it in the label log, which the
// learning loop reads to find attackers' answers — including the answers
// they gave before they were caught.
func (h *Handler) setLabel(ctx context.Context, e store.Entity, l store.Label) error {
	if err := h.store.SetLabel(ctx, e, l); err != nil {
		return err
	}
	h.appendLabelEvent(ctx, extraction.LabelEvent{
		Kind: extraction.Labelled, Entity: e.Key(), Reason: l.Reason, Source: l.Source, At: l.At, Expires: l.Expires,
	})
	h.logger.Info("labelled attacker", zap.String("entity", e.Key()), zap.String("reason", l.Reason),
		zap.String("source", l.Source), zap.Time("expires", l.Expires))
	h.emit("advcaptcha_labelled", map[string]any{"entity": e.Key(), "reason": l.Reason, "source": l.Source, "expires": l.Expires})
	return nil
}

// emit sends a Caddy event (subscribe with the events app, e.g. `events {
// on advcaptcha_labelled exec …}`). Events are rare: labels, model changes.
func (h *Handler) emit(name string, data map[string]any) {
	if h.events != nil {
		h.events.Emit(h.eventsCtx, name, data)
	}
}

func (h *Handler) clearLabel(ctx context.Context, e store.Entity, reason, source string) error {
	if err := h.store.ClearLabel(ctx, e); err != nil {
		return err
	}
	h.appendLabelEvent(ctx, extraction.LabelEvent{
		Kind: extraction.Cleared, Entity: e.Key(), Reason: reason, Source: source, At: time.Now(),
	})
	h.logger.Info("label cleared", zap.String("entity", e.Key()), zap.String("reason", reason), zap.String("source", source))
	h.emit("advcaptcha_label_cleared", map[string]any{"entity": e.Key(), "reason": reason, "source": source})
	return nil
}

// appendLabelEvent writes to the label log. A failure is logged, not
// passed on: the label itself is in force.
func (h *Handler) appendLabelEvent(ctx context.Context, ev extraction.LabelEvent) {
	b, err := json.Marshal(ev)
	if err == nil {
		err = h.store.Append(ctx, extraction.LabelLog, b)
	}
	if err != nil {
		h.logger.Error("label record lost", zap.String("entity", ev.Entity), zap.Error(err))
	}
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
