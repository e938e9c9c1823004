package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestInvalidConfigStartsNothing: a configuration Validate refuses is
// refused by Provision before the store is opened or generation workers
// start, and checking it changes nothing.
func TestInvalidConfigStartsNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		h    Handler
		want string
	}{
		"captcha_at above block_at": {Handler{ChallengeAt: 30, BlockAt: 60, CaptchaAt: 70}, "captcha_at"},
		"bad cookie name":           {Handler{DeviceCookie: "a b"}, "device_cookie"},
		"bad attack setting":        {Handler{Adversarial: &Adversarial{PoolSize: -1}}, "adversarial"},
		"unknown fallback":          {Handler{Adversarial: &Adversarial{Fallback: "maybe"}}, "adversarial"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
			defer cancel()
			h := tc.h
			err := h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision: %v, want an error naming %s", err, tc.want)
			}
			if h.store != nil || h.storeKey != "" || h.pool != nil || h.poolKey != "" {
				t.Fatalf("a refused configuration opened the store (%q) or the pool (%q)", h.storeKey, h.poolKey)
			}
			before, _ := json.Marshal(&h)
			if err2 := h.Validate(); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("Validate after Provision: %v, want the same error %v", err2, err)
			}
			if after, _ := json.Marshal(&h); string(after) != string(before) {
				t.Fatalf("Validate changed the configuration:\n%s\n%s", before, after)
			}
		})
	}
}
