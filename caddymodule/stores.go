package caddymodule

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/advcaptcha/advcaptcha/store"
)

// RedisConfig selects the Redis store: how to reach it
// (store.RedisConnection, the type the commands' Redis flags fill too) and
// how this gateway uses it.
type RedisConfig struct {
	store.RedisConnection
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
type RedisTLS = store.RedisTLS

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
		ro, err := redisCfg.Options(opts)
		if err != nil {
			return nil, err
		}
		ro.ReadTimeout, ro.DialTimeout = time.Duration(redisCfg.Timeout), 2*time.Duration(redisCfg.Timeout)
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
