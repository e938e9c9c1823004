package caddycommand

import (
	"errors"
	"os"

	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/store"
)

// redisFlags select the gateway's Redis for the commands that work on its
// shared state (pool, model, extract).
type redisFlags struct {
	addrs      []string
	masterName string
	prefix     string
}

func (r *redisFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&r.addrs, "redis", nil, "Redis address (repeatable: several make a Cluster)")
	f.StringVar(&r.masterName, "master-name", "", "Sentinel master name (the addresses are Sentinels)")
	f.StringVar(&r.prefix, "prefix", "advc:", "key prefix, as the gateway's redis key_prefix")
}

// open connects; the password, if any, comes from the environment variable
// ADVCAPTCHA_REDIS_PASSWORD, never from the command line.
func (r *redisFlags) open() (*store.Redis, error) {
	if len(r.addrs) == 0 {
		return nil, errors.New("--redis is required")
	}
	return store.NewRedis(store.RedisOptions{
		Addrs: r.addrs, MasterName: r.masterName, KeyPrefix: r.prefix,
		Password: os.Getenv("ADVCAPTCHA_REDIS_PASSWORD"),
	})
}
