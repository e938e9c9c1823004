package caddymodule

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/advcaptcha/advcaptcha/store"
)

// RedisConfig selects the Redis store. With one address it is a single
// node; with several, a Cluster; with master_name, the addresses are
// Sentinels.
type RedisConfig struct {
	// Addresses of the Redis node, the Cluster nodes or the Sentinels, as
	// host:port. Placeholders such as {env.REDIS_ADDR} are replaced.
	Addresses []string `json:"addresses,omitempty"`
	// MasterName is the Sentinel master name; set it to use Sentinel.
	MasterName string `json:"master_name,omitempty"`
	// Cluster forces Cluster mode with a single configuration endpoint.
	Cluster bool `json:"cluster,omitempty"`
	// Username for Redis ACLs. Placeholders are replaced.
	Username string `json:"username,omitempty"`
	// Password for Redis (or the user). Placeholders are replaced, so it
	// can come from {env.REDIS_PASSWORD} rather than the config file.
	Password string `json:"password,omitempty"`
	// SentinelPassword authenticates to the Sentinels.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// DB selects the database (single node and Sentinel only).
	DB int `json:"db,omitempty"`
	// TLS connects with TLS. ServerName defaults to the address's host.
	TLS *RedisTLS `json:"tls,omitempty"`
	// KeyPrefix starts every key; default "advc:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds each Redis operation; a request never waits longer
	// for Redis before the on_store_error rule applies. Default 250ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// LocalFirst scores requests from counts kept in this instance,
	// without waiting for Redis: the counts go to Redis in one batch every
	// 100ms, and each batch brings back what the other instances counted
	// and the labels set anywhere. Requests never wait for Redis (about
	// the throughput of the in-memory store); the price is that an
	// instance learns of other instances' requests and labels up to 100ms
	// late, so a client spread over n instances gets up to n×100ms of
	// requests past the strict limit. A store outage is noticed at the
	// first failed batch, and on_store_error applies from then on.
	// Challenges, pools and logs stay exact, as they go straight to Redis.
	LocalFirst bool `json:"local_first,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// ServerName to verify; default the address's host.
	ServerName string `json:"server_name,omitempty"`
	// CAFile is a PEM file of the CA certificates to trust for Redis
	// (default: the system's).
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipVerify disables certificate verification. Testing only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// stores holds the stores in use, shared by every handler with the same
// store configuration, so that counters, labels and connections survive a
// config reload: the new handler takes a reference before the old one
// releases its own.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

func (p pooledStore) Destruct() error { return p.Store.Close() }

// storeKey identifies a store configuration in the pool.
func storeKey(redisCfg *RedisConfig, maxEntities int, windows []time.Duration) string {
	b, _ := json.Marshal(struct {
		R *RedisConfig
		M int
		W []time.Duration
	}{redisCfg, maxEntities, windows})
	return string(b)
}

func openStore(redisCfg *RedisConfig, maxEntities int, windows []time.Duration) (string, store.Store, error) {
	key := storeKey(redisCfg, maxEntities, windows)
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		opts := store.Options{Windows: windows}
		if redisCfg == nil {
			m, err := store.NewMemory(store.MemoryOptions{Options: opts, MaxEntities: maxEntities})
			if err != nil {
				return nil, err
			}
			return pooledStore{m}, nil
		}
		ro := store.RedisOptions{
			Options:          opts,
			Addrs:            redisCfg.Addresses,
			MasterName:       redisCfg.MasterName,
			Cluster:          redisCfg.Cluster,
			Username:         redisCfg.Username,
			Password:         redisCfg.Password,
			SentinelPassword: redisCfg.SentinelPassword,
			DB:               redisCfg.DB,
			KeyPrefix:        redisCfg.KeyPrefix,
			ReadTimeout:      time.Duration(redisCfg.Timeout),
			DialTimeout:      2 * time.Duration(redisCfg.Timeout),
		}
		if redisCfg.TLS != nil {
			ro.TLS = &tls.Config{
				MinVersion:         tls.VersionTLS12,
				ServerName:         redisCfg.TLS.ServerName,
				InsecureSkipVerify: redisCfg.TLS.InsecureSkipVerify, //nolint:gosec // operator's explicit choice, documented as testing only
			}
			if f := redisCfg.TLS.CAFile; f != "" {
				pem, err := os.ReadFile(f)
				if err != nil {
					return nil, fmt.Errorf("redis tls ca_file: %w", err)
				}
				ro.TLS.RootCAs = x509.NewCertPool()
				if !ro.TLS.RootCAs.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("redis tls ca_file %s: no PEM certificate in it", f)
				}
			}
		}
		r, err := store.NewRedis(ro)
		if err != nil {
			return nil, err
		}
		if redisCfg.LocalFirst {
			f, err := store.NewLocalFirst(r, store.LocalFirstOptions{Options: opts, MaxEntities: maxEntities})
			if err != nil {
				r.Close()
				return nil, err
			}
			return pooledStore{f}, nil
		}
		return pooledStore{r}, nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("opening store: %w", err)
	}
	return key, v.(pooledStore).Store, nil
}

// processSecret signs cookies when no secret is configured. It lives as
// long as the process, so reloads keep clearances valid; a restart or a
// second instance does not share it, which is why production configs
// should set `secret`.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return b
})
