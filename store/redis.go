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
	// NoCoalescing sends every Observe as its own script call. By default
	// (off a Cluster) the small calls that arrive while others are in flight
	// share one, which costs Redis and the gateway less per request.
	NoCoalescing bool
}

// Redis is a Store on Redis single node, Sentinel or Cluster. Each entity's
// keys share a hash tag, so its script touches one slot.
type Redis struct {
	opts   RedisOptions
	client redis.UniversalClient
	// cluster: keys of different entities live in different slots, so
	// each entity gets its own script call.
	cluster bool
	// windowArgs and retentionArg are script arguments in milliseconds.
	windowArgs   []string
	retentionArg string
	// coalesce merges concurrent small Observe calls; nil on a Cluster or
	// with NoCoalescing.
	coalesce *coalescer
}

// observeScript adds hits to entities' bucket counters and returns, per
// entity, its label, then the current bucket count of each window, then
// its audio-captcha count, then the previous bucket count of each window. It takes any number of
// entities: all of a request's on a single node or Sentinel, one at a time
// on a Cluster (their keys live in different slots). Field names are
// computed by the caller, so the script formats no strings on its common
// path; it runs for every scored request, and Lua time is Redis CPU.
//
// KEYS: per entity, its counters hash and its label string.
// ARGV[1] hash TTL in ms, ARGV[2] number of windows n, then the n current
// bucket fields ("<window ms>:<bucket index>"), the n previous bucket
// fields, then the hits per entity.
var observeScript = redis.NewScript(`
local ttl, nwin = ARGV[1], tonumber(ARGV[2])
local out, n = {}, 0
for e = 1, #KEYS / 2 do
  local counters = KEYS[2*e - 1]
  local hits = tonumber(ARGV[2 + 2*nwin + e])
  n = n + 1
  out[n] = redis.call('GET', KEYS[2*e]) or ''
  for i = 1, nwin do
    n = n + 1
    if hits > 0 then
      out[n] = redis.call('HINCRBY', counters, ARGV[2 + i], hits)
    else
      out[n] = redis.call('HGET', counters, ARGV[2 + i]) or '0'
    end
  end
  local prev = redis.call('HMGET', counters, 'audio', unpack(ARGV, 3 + nwin, 2 + 2*nwin))
  for i = 1, nwin + 1 do
    n = n + 1
    out[n] = prev[i] or '0'
  end
  if hits > 0 then
    if redis.call('HLEN', counters) > 2 * nwin then
      -- buckets older than the previous one are left: forget them
      local keep = {audio = true}
      for i = 3, 2 + 2*nwin do keep[ARGV[i]] = true end
      for _, f in ipairs(redis.call('HKEYS', counters)) do
        if not keep[f] then redis.call('HDEL', counters, f) end
      end
    end
    redis.call('PEXPIRE', counters, ttl)
  end
end
return out
`)

// maxScriptEntities bounds the entities of one script call, and so how long
// one call holds Redis (about 30 µs of Redis time per entity on the
// project's machine, under 1 ms per call; BenchmarkRedisObserve).
const maxScriptEntities = 32

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
	_, isCluster := client.(*redis.ClusterClient)
	r := &Redis{opts: opts, client: client, cluster: isCluster,
		retentionArg: strconv.FormatInt(opts.retention().Milliseconds(), 10)}
	for _, w := range opts.Windows {
		r.windowArgs = append(r.windowArgs, strconv.FormatInt(w.Milliseconds(), 10))
	}
	if !isCluster && !opts.NoCoalescing {
		// A call waits at most one batch ahead of its own, plus its own.
		r.coalesce = newCoalescer(opts.Windows, 2*(opts.DialTimeout+opts.ReadTimeout), r.observe)
	}
	return r, nil
}

func (r *Redis) keys(e Entity) (counters, label string) {
	tag := r.opts.KeyPrefix + "{" + e.Key() + "}"
	return tag + ":w", tag + ":l"
}

// Observe implements Store in one round trip: one script call for all
// entities (shared with other callers' when they coincide), or on a
// Cluster one per entity in a single pipeline.
func (r *Redis) Observe(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error) {
	if len(hits) == 0 {
		return nil, nil
	}
	if r.coalesce != nil && len(hits) <= coalesceMaxHits {
		return r.coalesce.observe(ctx, now, hits)
	}
	return r.observe(ctx, now, hits)
}

func (r *Redis) observe(ctx context.Context, now time.Time, hits []Hit) ([]Tally, error) {
	nwin := len(r.opts.Windows)
	common := make([]any, 0, 2+2*nwin+len(hits))
	common = append(common, r.retentionArg, nwin)
	for i, w := range r.opts.Windows {
		common = append(common, r.windowArgs[i]+":"+strconv.FormatInt(bucketIndex(now, w), 10))
	}
	for i, w := range r.opts.Windows {
		common = append(common, r.windowArgs[i]+":"+strconv.FormatInt(bucketIndex(now, w)-1, 10))
	}
	var cmds []*redis.Cmd
	if r.cluster {
		calls := make([]scriptCall, len(hits))
		for i, h := range hits {
			c, l := r.keys(h.Entity)
			calls[i] = scriptCall{keys: []string{c, l}, args: append(common[:len(common):len(common)], h.N)}
		}
		var err error
		if cmds, err = r.runObserve(ctx, calls); err != nil {
			return nil, fmt.Errorf("redis observe: %w", err)
		}
	} else {
		// Redis runs one script at a time and every other client waits
		// for it, so a large batch (a busy counter flush) goes in chunks,
		// one round trip each, that other clients' calls run between.
		for start := 0; start < len(hits); start += maxScriptEntities {
			chunk := hits[start:min(start+maxScriptEntities, len(hits))]
			call := scriptCall{keys: make([]string, 0, 2*len(chunk)), args: common[:len(common):len(common)]}
			for _, h := range chunk {
				c, l := r.keys(h.Entity)
				call.keys = append(call.keys, c, l)
				call.args = append(call.args, h.N)
			}
			done, err := r.runObserve(ctx, []scriptCall{call})
			if err != nil {
				return nil, fmt.Errorf("redis observe: %w", err)
			}
			cmds = append(cmds, done...)
		}
	}
	per := 2 + 2*nwin
	var vals []any
	for _, cmd := range cmds {
		v, err := cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("redis observe: %w", err)
		}
		vals = append(vals, v...)
	}
	if len(vals) != per*len(hits) {
		return nil, fmt.Errorf("redis observe: script returned %d values for %d entities", len(vals), len(hits))
	}
	out := make([]Tally, len(hits))
	for i := range hits {
		v := vals[i*per : (i+1)*per]
		if s, _ := v[0].(string); s != "" {
			var l Label
			if err := json.Unmarshal([]byte(s), &l); err == nil && now.Before(l.Expires) {
				out[i].Label = &l
			}
		}
		out[i].Counts = make([]float64, nwin)
		for j, w := range r.opts.Windows {
			out[i].Counts[j] = slidingCount(now, w, replyInt(v[1+j]), replyInt(v[2+nwin+j]))
		}
		out[i].Audio = replyInt(v[1+nwin])
	}
	return out, nil
}

// replyInt reads a count the script returned as an integer or a string.
func replyInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

type scriptCall struct {
	keys []string
	args []any
}

// runObserve sends the calls by script hash, in one pipeline when there
// are several. Calls refused with NOSCRIPT (a node that restarted, failed
// over or never saw the script) are sent again with the script's source;
// only those, because on a Cluster the others have already run.
func (r *Redis) runObserve(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := r.sendObserve(ctx, calls, nil, false)
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		retried := r.sendObserve(ctx, calls, again, true)
		for j, i := range again {
			cmds[i] = retried[j]
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return nil, err
		}
	}
	return cmds, nil
}

// sendObserve sends calls (those at the indexes only, when given).
func (r *Redis) sendObserve(ctx context.Context, calls []scriptCall, only []int, withSource bool) []*redis.Cmd {
	if only == nil {
		only = make([]int, len(calls))
		for i := range only {
			only[i] = i
		}
	}
	run := func(c redis.Scripter, call scriptCall) *redis.Cmd {
		if withSource {
			return observeScript.Eval(ctx, c, call.keys, call.args...)
		}
		return observeScript.EvalSha(ctx, c, call.keys, call.args...)
	}
	if len(only) == 1 {
		return []*redis.Cmd{run(r.client, calls[only[0]])}
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(only))
	for j, i := range only {
		cmds[j] = run(pipe, calls[i])
	}
	_, _ = pipe.Exec(ctx) // errors are on the commands
	return cmds
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

// PutOnce implements Store.
func (r *Redis) PutOnce(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := r.client.Set(ctx, r.opts.KeyPrefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redis put %s: %w", key, err)
	}
	return nil
}

// Peek implements Store.
func (r *Redis) Peek(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.Get(ctx, r.opts.KeyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis peek %s: %w", key, err)
	}
	return b, nil
}

// Take implements Store with GETDEL (Redis ≥ 6.2), which is atomic.
func (r *Redis) Take(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.GetDel(ctx, r.opts.KeyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis take %s: %w", key, err)
	}
	return b, nil
}

// incrScript increments a counter and gives it a TTL when it has none.
var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// Incr implements Store.
func (r *Redis) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	n, err := incrScript.Run(ctx, r.client, []string{r.opts.KeyPrefix + key}, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis incr %s: %w", key, err)
	}
	return n, nil
}

// PushList implements Store in one pipeline.
func (r *Redis) PushList(ctx context.Context, key string, value []byte, keep int, ttl time.Duration) ([][]byte, error) {
	k := r.opts.KeyPrefix + key
	pipe := r.client.Pipeline()
	pipe.LPush(ctx, k, value)
	pipe.LTrim(ctx, k, 0, int64(keep-1))
	pipe.PExpire(ctx, k, ttl)
	list := pipe.LRange(ctx, k, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis push %s: %w", key, err)
	}
	out := make([][]byte, len(list.Val()))
	for i, v := range list.Val() {
		out[i] = []byte(v)
	}
	return out, nil
}

// PushQueue implements Store with a list (new values on the left, the
// oldest popped from the right), in one pipeline.
func (r *Redis) PushQueue(ctx context.Context, key string, value []byte, max int, ttl time.Duration) (int, error) {
	k := r.opts.KeyPrefix + key
	pipe := r.client.Pipeline()
	pipe.LPush(ctx, k, value)
	pipe.LTrim(ctx, k, 0, int64(max-1))
	pipe.PExpire(ctx, k, ttl)
	n := pipe.LLen(ctx, k)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis queue push %s: %w", key, err)
	}
	return int(n.Val()), nil
}

// PopQueue implements Store.
func (r *Redis) PopQueue(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.RPop(ctx, r.opts.KeyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis queue pop %s: %w", key, err)
	}
	return b, nil
}

// QueueLen implements Store.
func (r *Redis) QueueLen(ctx context.Context, key string) (int, error) {
	n, err := r.client.LLen(ctx, r.opts.KeyPrefix+key).Result()
	if err != nil {
		return 0, fmt.Errorf("redis queue length %s: %w", key, err)
	}
	return int(n), nil
}

// Append implements Store with a Redis stream, trimmed approximately to
// MaxLogLen and given LogTTL, in one pipeline.
func (r *Redis) Append(ctx context.Context, log string, record []byte) error {
	key := r.opts.KeyPrefix + "log:" + log
	pipe := r.client.Pipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: MaxLogLen, Approx: true, Values: []any{"v", record}})
	pipe.PExpire(ctx, key, LogTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis append %s: %w", log, err)
	}
	return nil
}

// Range implements Store.
func (r *Redis) Range(ctx context.Context, log, after string, max int) ([]Record, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := r.client.XRangeN(ctx, r.opts.KeyPrefix+"log:"+log, start, "+", int64(max)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis range %s: %w", log, err)
	}
	return streamRecords(msgs), nil
}

func streamRecords(msgs []redis.XMessage) []Record {
	out := make([]Record, 0, len(msgs))
	for _, m := range msgs {
		v, _ := m.Values["v"].(string)
		out = append(out, Record{ID: m.ID, Value: []byte(v)})
	}
	return out
}

// Latest implements Store.
func (r *Redis) Latest(ctx context.Context, log string, max int) ([]Record, error) {
	msgs, err := r.client.XRevRangeN(ctx, r.opts.KeyPrefix+"log:"+log, "+", "-", int64(max)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis latest %s: %w", log, err)
	}
	return streamRecords(msgs), nil
}

// CountAudio implements Store: the count lives in the entity's counters
// hash, so it lasts as long as the entity is active.
func (r *Redis) CountAudio(ctx context.Context, e Entity) error {
	counters, _ := r.keys(e)
	pipe := r.client.Pipeline()
	pipe.HIncrBy(ctx, counters, "audio", 1)
	pipe.PExpire(ctx, counters, r.opts.retention())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis count audio %s: %w", e, err)
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
func (r *Redis) Close() error {
	if r.coalesce != nil {
		r.coalesce.close()
	}
	return r.client.Close()
}

// Client exposes the underlying client for packages that keep their own
// state in the same Redis (challenges, the captcha pool).
func (r *Redis) Client() redis.UniversalClient { return r.client }

var _ Store = (*Redis)(nil)
