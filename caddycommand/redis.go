package caddycommand

import (
	"errors"
	"os"

	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/store"
)

// Environment variables holding the Redis passwords, which never go on the
// command line.
const (
	redisPasswordEnv         = "ADVCAPTCHA_REDIS_PASSWORD"
	redisSentinelPasswordEnv = "ADVCAPTCHA_REDIS_SENTINEL_PASSWORD"
)

// redisFlags select the gateway's Redis for the commands that work on its
// shared state (pool, model, extract): the same connection settings as the
// gateway's `redis` block (store.RedisConnection), from the flags, or from
// the gateway's own config (--config), which the flags given override.
type redisFlags struct {
	conn    store.RedisConnection
	tls     store.RedisTLS
	useTLS  bool
	gateway gatewayFile
	fs      *pflag.FlagSet
}

func (r *redisFlags) register(f *pflag.FlagSet) {
	r.fs = f
	f.StringArrayVar(&r.conn.Addresses, "redis", nil, "Redis address (repeatable: several make a Cluster)")
	f.StringVar(&r.conn.MasterName, "master-name", "", "Sentinel master name (the addresses are Sentinels)")
	f.BoolVar(&r.conn.Cluster, "cluster", false, "Cluster mode with a single configuration endpoint")
	f.StringVar(&r.conn.Username, "username", "", "Redis ACL user (the password comes from "+redisPasswordEnv+", the Sentinels' from "+redisSentinelPasswordEnv+")")
	f.IntVar(&r.conn.DB, "db", 0, "database (single node and Sentinel)")
	f.BoolVar(&r.useTLS, "tls", false, "connect with TLS")
	f.StringVar(&r.tls.ServerName, "tls-server-name", "", "with --tls: the name to verify (default: the address's host)")
	f.StringVar(&r.tls.CAFile, "tls-ca-file", "", "with --tls: PEM file of the CA certificates to trust (default: the system's)")
	f.BoolVar(&r.tls.InsecureSkipVerify, "tls-insecure-skip-verify", false, "with --tls: do not verify the certificate (testing only)")
	f.StringVar(&r.conn.KeyPrefix, "prefix", "advc:", "key prefix, as the gateway's redis key_prefix")
	r.gateway.register(f)
}

// connection is how to reach Redis: the gateway's (--config) with the
// flags given replacing its settings; the passwords come from the
// environment (ADVCAPTCHA_REDIS_PASSWORD, ADVCAPTCHA_REDIS_SENTINEL_PASSWORD)
// when set there, else from the gateway's config.
func (r *redisFlags) connection() (store.RedisConnection, error) {
	c, err := r.gateway.redis()
	if err != nil {
		return c, err
	}
	if len(c.Addresses) == 0 {
		c.Addresses = r.conn.Addresses
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = r.conn.KeyPrefix
	}
	tlsFlag := func(set func(t *store.RedisTLS)) {
		if c.TLS == nil {
			c.TLS = &store.RedisTLS{}
		} else {
			t := *c.TLS
			c.TLS = &t
		}
		set(c.TLS)
	}
	if r.fs != nil {
		r.fs.Visit(func(f *pflag.Flag) {
			switch f.Name {
			case "redis":
				c.Addresses = r.conn.Addresses
			case "master-name":
				c.MasterName = r.conn.MasterName
			case "cluster":
				c.Cluster = r.conn.Cluster
			case "username":
				c.Username = r.conn.Username
			case "db":
				c.DB = r.conn.DB
			case "prefix":
				c.KeyPrefix = r.conn.KeyPrefix
			case "tls":
				tlsFlag(func(*store.RedisTLS) {})
			case "tls-server-name":
				tlsFlag(func(t *store.RedisTLS) { t.ServerName = r.tls.ServerName })
			case "tls-ca-file":
				tlsFlag(func(t *store.RedisTLS) { t.CAFile = r.tls.CAFile })
			case "tls-insecure-skip-verify":
				tlsFlag(func(t *store.RedisTLS) { t.InsecureSkipVerify = r.tls.InsecureSkipVerify })
			}
		})
		if r.fs.Changed("tls") && !r.useTLS {
			c.TLS = nil
		}
	}
	if v := os.Getenv(redisPasswordEnv); v != "" {
		c.Password = v
	}
	if v := os.Getenv(redisSentinelPasswordEnv); v != "" {
		c.SentinelPassword = v
	}
	return c, nil
}

// open connects.
func (r *redisFlags) open() (*store.Redis, error) {
	c, err := r.connection()
	if err != nil {
		return nil, err
	}
	if len(c.Addresses) == 0 {
		return nil, errors.New("--redis (or --config with the gateway's redis) is required")
	}
	opts, err := c.Options(store.Options{})
	if err != nil {
		return nil, err
	}
	return store.NewRedis(opts)
}
