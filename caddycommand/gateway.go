package caddycommand

import (
	"time"

	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/store"
)

// gatewayFile is the gateway's own config (--config), read for the
// settings the commands share with it.
type gatewayFile struct{ path string }

func (g *gatewayFile) register(f *pflag.FlagSet) {}

// redis is the gateway's Redis connection, with placeholders replaced.
func (g *gatewayFile) redis() (store.RedisConnection, error) { return store.RedisConnection{}, nil }

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

func (g *gatewayFile) attack() (*perturb.Overrides, error)        { return nil, nil }
func (g *gatewayFile) models() ([]string, error)                  { return nil, nil }
func (g *gatewayFile) poolSize() (int, error)                     { return 0, nil }
func (g *gatewayFile) followModels() (time.Duration, bool, error) { return 0, false, nil }

func (g *gatewayFile) String() string     { return g.path }
func (g *gatewayFile) Type() string       { return "file" }
func (g *gatewayFile) Set(v string) error { g.path = v; return nil }
