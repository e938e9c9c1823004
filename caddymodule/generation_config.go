package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// LoadHandlers reads a gateway's config — a Caddyfile, adapted as Caddy
// adapts it, or Caddy JSON when the file ends in .json — and returns its
// advcaptcha handlers as the gateway decodes them: not provisioned, so
// defaults are not applied and placeholders not replaced. The commands
// (`caddy advcaptcha pool --config`, `extract --config`) read the gateway's
// Redis and adversarial settings from it rather than keeping their own.
func LoadHandlers(path string) ([]*Handler, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(filepath.Ext(path), ".json") {
		adapter := caddyconfig.GetAdapter("caddyfile")
		if adapter == nil {
			return nil, errors.New("no caddyfile config adapter in this build")
		}
		if body, _, err = adapter.Adapt(body, map[string]any{"filename": path}); err != nil {
			return nil, fmt.Errorf("adapting %s: %w", path, err)
		}
	}
	return ConfiguredHandlers(body)
}

// ConfiguredHandlers returns the advcaptcha handlers of a Caddy JSON
// config, wherever they sit (routes, subroutes, any app), as LoadHandlers.
func ConfiguredHandlers(config []byte) ([]*Handler, error) {
	var doc any
	if err := json.Unmarshal(config, &doc); err != nil {
		return nil, fmt.Errorf("caddy config: %w", err)
	}
	var raws []json.RawMessage
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "advcaptcha" {
				b, err := json.Marshal(v)
				if err != nil {
					return err
				}
				raws = append(raws, b)
				return nil
			}
			for _, e := range v {
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range v {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(doc); err != nil {
		return nil, err
	}
	out := make([]*Handler, len(raws))
	for i, b := range raws {
		out[i] = new(Handler)
		if err := json.Unmarshal(b, out[i]); err != nil {
			return nil, fmt.Errorf("advcaptcha handler %d: %w", i+1, err)
		}
	}
	return out, nil
}
