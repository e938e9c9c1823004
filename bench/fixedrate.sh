#!/usr/bin/env bash
# Latency at a fixed request rate: what advcaptcha adds to a request when
# the machine is not saturated. wrk (bench/run.sh, bench/compare.sh) keeps
# 16 connections busy, so its percentiles are mostly queueing behind
# whatever CPU each request costs; here vegeta sends a constant rate,
# open loop (a request is due at its time whether or not earlier ones have
# been answered, so a slow server cannot slow the load down and hide its
# latency), and measures each request from when it was due.
#
#   bench/fixedrate.sh [caddy-binary]      (default bin/caddy)
#
# RATES (default "500 1000" req/s; at 2000 vegeta itself loads two cores
# enough to dominate the tail), DUR (default 15s), ROUNDS (default 3).
# Scenarios, each at each rate, rounds interleaved, medians reported:
# plain Caddy, a cleared client on Redis, a new client on Redis (every
# request a new IP and no cookie), a new client on the memory store.
set -euo pipefail
cd "$(dirname "$0")/.."
caddy=${1:-bin/caddy}
RATES=${RATES:-500 1000}
DUR=${DUR:-15s}
ROUNDS=${ROUNDS:-3}
out=bench/out/fixedrate
mkdir -p "$out" bin
[ -x bin/vegeta ] || GOBIN=$PWD/bin go install github.com/tsenart/vegeta/v12@v12.12.0
(cd bench && go build -o ../bin/mintcookie ./mintcookie) # bench/ is a module of its own
redis_port=16379
redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning >/dev/null &
redis_pid=$!
caddy_pid=
trap 'kill $caddy_pid $redis_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p $redis_port ping >/dev/null 2>&1 && break; sleep 0.1; done
export BENCH_SECRET=bench-secret-0123456789abcdef0123456789
export BENCH_REDIS=127.0.0.1:$redis_port
UA='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
cookie=$(bin/mintcookie -secret "$BENCH_SECRET" -ua "$UA")

# targets PORT N [COOKIE]: N vegeta targets, each from a new IP (an
# X-Forwarded-For the trusted loopback proxy passes on).
targets() {
	awk -v port="$1" -v n="$2" -v ua="$UA" -v cookie="${3:-}" 'BEGIN {
		for (i = 0; i < n; i++) {
			h = sprintf("\"User-Agent\":[\"%s\"],\"Accept\":[\"text/html\"],\"Accept-Language\":[\"en\"],\"Accept-Encoding\":[\"gzip\"],\"Sec-Fetch-Site\":[\"none\"],\"Sec-Fetch-Mode\":[\"navigate\"],\"X-Forwarded-For\":[\"10.%d.%d.%d\"]", ua, int(i / 65536) % 256, int(i / 256) % 256, i % 256)
			if (cookie != "") h = h sprintf(",\"Cookie\":[\"%s\"]", cookie)
			printf "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:%s/\",\"header\":{%s}}\n", port, h
		}
	}'
}

start() {
	"$caddy" run --config bench/Caddyfile --adapter caddyfile >"$out/caddy.log" 2>&1 &
	caddy_pid=$!
	for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:18080/ && return; sleep 0.2; done
	echo "caddy did not start: $(tail -3 "$out/caddy.log")" >&2
	exit 1
}

secs=${DUR%s}
: >"$out/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
	for rate in $RATES; do
		n=$((rate * secs))
		for s in plain:18080 a-cleared-redis:18083 b-new-client-redis:18083 b-new-client-redis-local-first:18084 b-new-client-memory:18082; do
			name=${s%%:*} port=${s##*:}
			if [ "$name" = a-cleared-redis ]; then targets "$port" "$n" "$cookie"; else targets "$port" "$n"; fi >"$out/targets.json"
			redis-cli -p $redis_port flushall >/dev/null
			start # a fresh process per run: no run inherits another's state or GC heap
			bin/vegeta attack -format=json -targets="$out/targets.json" -rate="$rate/s" -duration="$DUR" -keepalive=true |
				bin/vegeta report -type=json >"$out/$name.$rate.$round.json"
			kill "$caddy_pid"
			wait "$caddy_pid" 2>/dev/null || true
			caddy_pid=
			jq -r --arg name "$name" --arg rate "$rate" --arg round "$round" \
				'[$name, $rate, $round, .latencies["50th"] / 1e6, .latencies["90th"] / 1e6, .latencies["99th"] / 1e6, .latencies.max / 1e6, .success, .throughput] | @tsv' \
				"$out/$name.$rate.$round.json" | tee -a "$out/raw.txt"
		done
	done
done

{
	echo "== fixed rate, open loop (vegeta; $ROUNDS rounds of $DUR, medians; $(date -u +%FT%TZ), $(nproc) cores, $(git rev-parse --short HEAD))"
	echo "| scenario | rate req/s | p50 ms | p90 ms | p99 ms | p99 added ms | max ms | success |"
	echo "|---|---|---|---|---|---|---|---|"
	awk -F'\t' '
	function median(arr, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t } return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
	{ k = $1 SUBSEP $2; c[k]++; for (f = 4; f <= 8; f++) v[k, f, c[k]] = $f; if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
	END {
		for (i = 1; i <= m; i++) { k = order[i]; for (f = 4; f <= 8; f++) { for (j = 1; j <= c[k]; j++) a[j] = v[k, f, j]; M[k, f] = median(a, c[k]) } }
		for (i = 1; i <= m; i++) { k = order[i]; split(k, p, SUBSEP)
			printf "| %s | %s | %.2f | %.2f | %.2f | %+.2f | %.1f | %.1f%% |\n", p[1], p[2], M[k, 4], M[k, 5], M[k, 6], M[k, 6] - M["plain" SUBSEP p[2], 6], M[k, 7], 100 * M[k, 8] }
	}' "$out/raw.txt"
} | tee "$out/summary.txt"
