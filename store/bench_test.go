package store_test

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/redis/go-redis/v9"
)

// BenchmarkRedisObserve measures one Observe call as the gateway makes
// them: one new IP (a new client's scoring round trip) and a few hundred
// new devices (a busy counter flush). Besides the time per call it reports
// Redis's time in the script per call (redis-µs/op, from INFO
// commandstats), Redis's whole CPU per call (redis-cpu-µs/op: used_cpu_user
// + used_cpu_sys, which also counts reading requests, dispatching and
// writing replies — the figure that decides how much a Redis can serve) and the
// median and longest single script run (p50-cmd-µs, max-cmd-µs): Redis runs one script at a time, so
// a long script is time every other client waits.
func BenchmarkRedisObserve(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	for _, n := range []int{1, 300} {
		b.Run("entities="+strconv.Itoa(n), func(b *testing.B) {
			r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "bench" + strconv.Itoa(n) + ":"})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			hits := make([]store.Hit, n)
			next := 0
			fill := func() {
				for i := range hits {
					next++
					hits[i] = store.Hit{Entity: store.Entity{Kind: store.KindDevice, ID: "d" + strconv.Itoa(next)}, N: 1}
				}
			}
			fill() // loads the script
			if _, err := r.Observe(ctx, time.Now(), hits); err != nil {
				b.Fatal(err)
			}
			admin.ConfigResetStat(ctx)
			cpu := redisCPU(ctx, b, admin)
			admin.SlowLogReset(ctx)
			admin.ConfigSet(ctx, "slowlog-log-slower-than", "0")
			admin.ConfigSet(ctx, "slowlog-max-len", "100000")
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				fill()
				b.StartTimer()
				if _, err := r.Observe(ctx, time.Now(), hits); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(commandMicros(ctx, b, admin)/float64(b.N), "redis-µs/op")
			b.ReportMetric((redisCPU(ctx, b, admin)-cpu)/float64(b.N), "redis-cpu-µs/op")
			logs, err := admin.SlowLogGet(ctx, -1).Result()
			if err != nil {
				b.Fatal(err)
			}
			var took []int64
			for _, l := range logs {
				if len(l.Args) > 0 && strings.EqualFold(l.Args[0], "evalsha") {
					took = append(took, l.Duration.Microseconds())
				}
			}
			slices.Sort(took)
			if len(took) > 0 {
				b.ReportMetric(float64(took[len(took)/2]), "p50-cmd-µs")
				b.ReportMetric(float64(took[len(took)-1]), "max-cmd-µs")
			}
			admin.ConfigSet(ctx, "slowlog-log-slower-than", "10000")
		})
	}
}

// commandMicros is the Redis CPU time spent in EVALSHA since the stats
// were reset.
func commandMicros(ctx context.Context, b *testing.B, c *redis.Client) float64 {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") {
			continue
		}
		for _, kv := range strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "cmdstat_evalsha:")), ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
	}
	return 0
}

// redisCPU is the CPU time Redis's process has used, in µs.
func redisCPU(ctx context.Context, b *testing.B, c *redis.Client) float64 {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total * 1e6
}

// BenchmarkRedisObserveParallel is a new client's scoring call (one new
// IP) from 16 concurrent requests, with the calls that coincide merged
// (the default) and each sent alone.
func BenchmarkRedisObserveParallel(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	for _, mode := range []string{"coalesced", "alone"} {
		b.Run(mode, func(b *testing.B) {
			r, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: mode + ":", NoCoalescing: mode == "alone"})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var next atomic.Int64
			admin.ConfigResetStat(ctx)
			cpu := redisCPU(ctx, b, admin)
			b.SetParallelism(16 / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				hits := make([]store.Hit, 1)
				for pb.Next() {
					hits[0] = store.Hit{Entity: store.Entity{Kind: store.KindIP, ID: "ip" + strconv.FormatInt(next.Add(1), 10)}, N: 1}
					if _, err := r.Observe(ctx, time.Now(), hits); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(commandMicros(ctx, b, admin)/float64(b.N), "redis-µs/op")
			b.ReportMetric((redisCPU(ctx, b, admin)-cpu)/float64(b.N), "redis-cpu-µs/op")
		})
	}
}

// BenchmarkMemoryObserve measures the in-memory store's Observe as the
// gateway calls it for a request (IP, device, account), over a working set
// of 10,000 clients of which some are labelled, from all cores at once.
func BenchmarkMemoryObserve(b *testing.B) {
	m, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	const clients = 10_000
	for i := 0; i < clients; i += 100 {
		l := store.Label{Reason: "bench", At: time.Now(), Expires: time.Now().Add(time.Hour)}
		if err := m.SetLabel(ctx, store.Entity{Kind: store.KindIP, ID: strconv.Itoa(i)}, l); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		hits := make([]store.Hit, 3)
		for pb.Next() {
			i := strconv.Itoa(int(seq.Add(1) % clients))
			hits[0] = store.Hit{Entity: store.Entity{Kind: store.KindIP, ID: i}, N: 1}
			hits[1] = store.Hit{Entity: store.Entity{Kind: store.KindDevice, ID: i}, N: 1}
			hits[2] = store.Hit{Entity: store.Entity{Kind: store.KindAccount, ID: i}, N: 1}
			if _, err := m.Observe(ctx, time.Now(), hits); err != nil {
				b.Fatal(err)
			}
		}
	})
}
