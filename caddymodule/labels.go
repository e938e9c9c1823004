package caddymodule

import (
	"context"
	"encoding/json"
	"time"

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
