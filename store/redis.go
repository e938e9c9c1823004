package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure the Redis store.
type RedisOptions struct {
	Options
	// Addrs are host:port addresses: one for a single node, several for a
	// Cluster, or the Sentinels when MasterName is set.
	Addrs []string
	// MasterName selects Sentinel mode.
	MasterName string
	// Cluster forces Cluster mode with a single (configuration) address.
	Cluster bool
	// Username and Password authenticate to Redis (ACL or requirepass).
	Username string
	Password string
	// SentinelPassword authenticates to the Sentinels, when they need it.
	SentinelPassword string
	// DB selects the database of a single node or Sentinel master.
	DB int
	// TLS, when non-nil, connects with TLS.
	TLS *tls.Config
	// KeyPrefix starts every key, so several deployments can share a Redis.
	KeyPrefix string
	// DialTimeout and ReadTimeout bound each operation, so a dead Redis
	// fails a request fast instead of stalling it. Defaults 500ms and 250ms.
	DialTimeout, ReadTimeout time.Duration
	// PoolSize is the connection pool size per node (go-redis default when 0).
	PoolSize int
}

// Redis is a Store on Redis single node, Sentinel or Cluster. Each entity's
// keys share a hash tag, so its script touches one slot.
type Redis struct {
	opts   RedisOptions
	client redis.UniversalClient
	// windowArgs are the windows in milliseconds, as script arguments.
	windowArgs []string
}

// observeScript adds hits to one entity's bucket counters and returns, for
// each window, the current and previous bucket counts, with the entity's
// label first.
//
// KEYS[1] counters hash, KEYS[2] label string.
// ARGV[1] hits, ARGV[2] hash TTL in ms, then per window: its length in ms
// and the current bucket index (computed by the caller, so Lua never turns
// big numbers into floats).
var observeScript = redis.NewScript(`
local hits = tonumber(ARGV[1])
local out = {redis.call('GET', KEYS[2]) or ''}
local rolled = false
local current = {}
for i = 3, #ARGV, 2 do
  local w, idx = ARGV[i], tonumber(ARGV[i+1])
  current[w] = idx
  local f = w .. ':' .. ARGV[i+1]
  local cur
  if hits > 0 then
    cur = redis.call('HINCRBY', KEYS[1], f, hits)
    if cur == hits then rolled = true end
  else
    cur = tonumber(redis.call('HGET', KEYS[1], f) or '0')
  end
  out[#out+1] = cur
  out[#out+1] = tonumber(redis.call('HGET', KEYS[1], w .. ':' .. string.format('%d', idx - 1)) or '0')
end
if hits > 0 then
  if rolled then
    -- a bucket began: forget buckets older than the previous one
    for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
      local sep = string.find(f, ':', 1, true)
      local idx = current[string.sub(f, 1, sep - 1)]
      if idx == nil or tonumber(string.sub(f, sep + 1)) < idx - 1 then
        redis.call('HDEL', KEYS[1], f)
      end
    end
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return out
`)

// NewRedis connects lazily; use Ping to check reachability.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 500 * time.Millisecond
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 250 * time.Millisecond
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:            opts.Addrs,
		MasterName:       opts.MasterName,
		IsClusterMode:    opts.Cluster,
		Username:         opts.Username,
		Password:         opts.Password,
		SentinelPassword: opts.SentinelPassword,
		DB:               opts.DB,
		TLSConfig:        opts.TLS,
		DialTimeout:      opts.DialTimeout,
		ReadTimeout:      opts.ReadTimeout,
		WriteTimeout:     opts.ReadTimeout,
		PoolSize:         opts.PoolSize,
		// A request must not wait on retries against a dead server; the
		// gateway's fail-open/closed rule decides instead.
		MaxRetries: 1,
	})
	r := &Redis{opts: opts, client: client}
	for _, w := range opts.Windows {
		r.windowArgs = append(r.windowArgs, strconv.FormatInt(w.Milliseconds(), 10))
	}
	return r, nil
}

func (r *Redis) keys(e Entity) (counters, label string) {
	tag := r.opts.KeyPrefix + "{" + e.Key() + "}"
	return tag + ":w", tag + ":l"
}

// Observe implements Store: one EVALSHA per entity, all in one pipeline.
func (r *Redis) Observe(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error) {
	if len(hits) == 0 {
		return nil, nil
	}
	ttl := strconv.FormatInt(r.opts.retention().Milliseconds(), 10)
	args := make([][]any, len(hits))
	keys := make([][]string, len(hits))
	for i, h := range hits {
		a := make([]any, 0, 2+2*len(r.opts.Windows))
		a = append(a, h.N, ttl)
		for j, w := range r.opts.Windows {
			a = append(a, r.windowArgs[j], bucketIndex(now, w))
		}
		c, l := r.keys(h.Entity)
		args[i], keys[i] = a, []string{c, l}
	}
	cmds, err := r.runObserve(ctx, keys, args, false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = r.runObserve(ctx, keys, args, true)
	}
	if err != nil {
		return nil, fmt.Errorf("redis observe: %w", err)
	}
	out := make([]Tally, len(hits))
	for i, cmd := range cmds {
		vals, err := cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("redis observe %s: %w", hits[i].Entity, err)
		}
		if len(vals) != 1+2*len(r.opts.Windows) {
			return nil, fmt.Errorf("redis observe %s: script returned %d values", hits[i].Entity, len(vals))
		}
		if s, _ := vals[0].(string); s != "" {
			var l Label
			if err := json.Unmarshal([]byte(s), &l); err == nil && now.Before(l.Expires) {
				out[i].Label = &l
			}
		}
		out[i].Counts = make([]float64, len(r.opts.Windows))
		for j, w := range r.opts.Windows {
			cur, _ := vals[1+2*j].(int64)
			prev, _ := vals[2+2*j].(int64)
			out[i].Counts[j] = slidingCount(now, w, cur, prev)
		}
	}
	return out, nil
}

func (r *Redis) runObserve(ctx context.Context, keys [][]string, args [][]any, withSource bool) ([]*redis.Cmd, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(keys))
	for i := range keys {
		if withSource {
			cmds[i] = observeScript.Eval(ctx, pipe, keys[i], args[i]...)
		} else {
			cmds[i] = observeScript.EvalSha(ctx, pipe, keys[i], args[i]...)
		}
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

// SetLabel implements Store.
func (r *Redis) SetLabel(ctx context.Context, e Entity, l Label) error {
	ttl := time.Until(l.Expires)
	if ttl <= 0 {
		return ErrBadLabel
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, key := r.keys(e)
	if err := r.client.Set(ctx, key, b, ttl).Err(); err != nil {
		return fmt.Errorf("redis set label %s: %w", e, err)
	}
	return nil
}

// ClearLabel implements Store.
func (r *Redis) ClearLabel(ctx context.Context, e Entity) error {
	_, key := r.keys(e)
	if err := r.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis clear label %s: %w", e, err)
	}
	return nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close implements Store.
func (r *Redis) Close() error { return r.client.Close() }

// Client exposes the underlying client for packages that keep their own
// state in the same Redis (challenges, the captcha pool).
func (r *Redis) Client() redis.UniversalClient { return r.client }

var _ Store = (*Redis)(nil)
