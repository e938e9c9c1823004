package caddycommand

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/caddymodule"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/store"
)

// gatewayFile is the gateway's own config (--config, registered with the
// Redis flags): the commands that work on the gateway's Redis read its
// redis and adversarial settings from it instead of keeping parallel
// flags, and the flags given replace what it says.
type gatewayFile struct {
	path string
	once sync.Once
	h    *caddymodule.Handler
	err  error
}

func (g *gatewayFile) register(f *pflag.FlagSet) {
	f.Var(g, "config", "the gateway's Caddyfile (or Caddy JSON config, *.json): its advcaptcha handler's redis, solver_model and adversarial settings, which the flags given replace")
}

func (g *gatewayFile) String() string { return g.path }
func (g *gatewayFile) Type() string   { return "file" }
func (g *gatewayFile) Set(v string) error {
	g.path = v
	return nil
}

// gatewayOf is the --config registered on f; one that reads nothing when
// there is none.
func gatewayOf(f *pflag.FlagSet) *gatewayFile {
	if f != nil {
		if fl := f.Lookup("config"); fl != nil {
			if g, ok := fl.Value.(*gatewayFile); ok {
				return g
			}
		}
	}
	return &gatewayFile{}
}

// handler is the gateway's advcaptcha handler as configured (not
// provisioned), or nil without --config. A config with several handlers is
// read when they agree on what the commands read.
func (g *gatewayFile) handler() (*caddymodule.Handler, error) {
	if g.path == "" {
		return nil, nil
	}
	g.once.Do(func() { g.h, g.err = g.load() })
	return g.h, g.err
}

func (g *gatewayFile) load() (*caddymodule.Handler, error) {
	hs, err := caddymodule.LoadHandlers(g.path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("--config %s: no advcaptcha handler in it", g.path)
	}
	shared := func(h *caddymodule.Handler) []byte {
		b, _ := json.Marshal([]any{h.Redis, h.SolverModel, h.Adversarial})
		return b
	}
	for _, h := range hs[1:] {
		if !bytes.Equal(shared(h), shared(hs[0])) {
			return nil, fmt.Errorf("--config %s: its %d advcaptcha handlers differ in redis, solver_model or adversarial settings; give them as flags", g.path, len(hs))
		}
	}
	return hs[0], nil
}

// redis is the gateway's Redis connection with placeholders ({env.…})
// replaced; empty without --config or a redis block.
func (g *gatewayFile) redis() (store.RedisConnection, error) {
	h, err := g.handler()
	if err != nil || h == nil || h.Redis == nil {
		return store.RedisConnection{}, err
	}
	repl := caddy.NewReplacer()
	return h.Redis.RedisConnection.Replaced(func(s string) string { return repl.ReplaceKnown(s, "") }), nil
}

// adversarial is the gateway's adversarial block, nil without --config.
func (g *gatewayFile) adversarial() (*caddymodule.Adversarial, error) {
	h, err := g.handler()
	if err != nil || h == nil {
		return nil, err
	}
	if h.Adversarial == nil {
		return &caddymodule.Adversarial{}, nil
	}
	return h.Adversarial, nil
}

// attack is the gateway's attack settings, nil without --config.
func (g *gatewayFile) attack() (*perturb.Overrides, error) {
	a, err := g.adversarial()
	if err != nil || a == nil {
		return nil, err
	}
	return a.Attack, nil
}

// models are the gateway's solver_model ("" for the built-in one) and
// ensemble, nil without --config.
func (g *gatewayFile) models() ([]string, error) {
	h, err := g.handler()
	if err != nil || h == nil {
		return nil, err
	}
	a, err := g.adversarial()
	if err != nil {
		return nil, err
	}
	return append([]string{h.SolverModel}, a.Ensemble...), nil
}

// poolSize is the gateway's pool_size, 0 when it does not say.
func (g *gatewayFile) poolSize() (int, error) {
	a, err := g.adversarial()
	if err != nil || a == nil {
		return 0, err
	}
	return a.PoolSize, nil
}

// followModels is the gateway's follow_models (0 for off), and whether it
// says.
func (g *gatewayFile) followModels() (time.Duration, bool, error) {
	a, err := g.adversarial()
	if err != nil || a == nil || a.FollowModels == 0 {
		return 0, false, err
	}
	return max(time.Duration(a.FollowModels), 0), true, nil
}
