#!/usr/bin/env bash
# Compares Caddy binaries (e.g. builds of two commits) on one load scenario
# of bench/run.sh, in the same run, rounds interleaved, with plain Caddy
# from the first binary as the peer. Besides wrk's figures it records the
# Redis CPU each run took (used_cpu_user + used_cpu_sys from INFO), per
# request.
#
#   bench/compare.sh bin/caddy-old bin/caddy-new     (SCENARIO=b by default)
#
# Scenarios: a (cleared client on Redis), b (new client on Redis),
# bl (new client on Redis with local_first), bm (new client on the memory
# store). PIN=1 runs Redis alone on the
# second core and Caddy and wrk on the first — Redis on a machine of its
# own, as deployed — instead of all three sharing both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-3}
CONN=${CONN:-16}
SCENARIO=${SCENARIO:-b}
(($# > 0)) || { echo "usage: $0 caddy-binary..." >&2; exit 2; }
out=bench/out/compare-$SCENARIO${PIN:+-pinned}
mkdir -p "$out"
(cd bench && go build -o ../bin/mintcookie ./mintcookie) # bench/ is a module of its own
redis_port=16379
gateway=() redis=()
if [ "${PIN:-}" = 1 ]; then gateway=(taskset -c 0) redis=(taskset -c 1); fi
"${redis[@]}" redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning >/dev/null &
redis_pid=$!
caddy_pid=
trap 'kill $caddy_pid $redis_pid 2>/dev/null || true' EXIT
export BENCH_SECRET=bench-secret-0123456789abcdef0123456789
export BENCH_REDIS=127.0.0.1:$redis_port
UA='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
browser=(-H "User-Agent: $UA" -H 'Accept: text/html' -H 'Accept-Language: en' -H 'Accept-Encoding: gzip' -H 'Sec-Fetch-Site: none' -H 'Sec-Fetch-Mode: navigate')
case $SCENARIO in
a) port=18083 args=("${browser[@]}" -H "Cookie: $(bin/mintcookie -secret "$BENCH_SECRET" -ua "$UA")") ;;
b) port=18083 args=("${browser[@]}" -s bench/newclient.lua) ;;
bl) port=18084 args=("${browser[@]}" -s bench/newclient.lua) ;;
bm) port=18082 args=("${browser[@]}" -s bench/newclient.lua) ;;
*) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac

redis_cpu() {
	redis-cli -p $redis_port info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'
}
start() { # binary
	"${gateway[@]}" "$1" run --config bench/Caddyfile --adapter caddyfile >"$out/caddy.log" 2>&1 &
	caddy_pid=$!
	for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:18080/ && return; sleep 0.2; done
	echo "caddy did not start: $(tail -3 "$out/caddy.log")" >&2
	exit 1
}
stop() { kill "$caddy_pid"; wait "$caddy_pid" 2>/dev/null || true; caddy_pid=; }
run() { # name port args...
	local name=$1 port=$2 before after f="$out/$1.$round.txt"
	shift 2
	before=$(redis_cpu)
	"${gateway[@]}" wrk -t1 -c"$CONN" -d"$DUR" --latency "$@" "http://127.0.0.1:$port/" >"$f"
	after=$(redis_cpu)
	awk -v name="$name" -v round="$round" -v cpu="$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')" '
		function ms(v) { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; return n }
		/^Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
		/requests in/ { reqs = $1 }
		END { printf "%s %s %s %.3f %.3f %.1f\n", name, round, rps, p50, p99, reqs ? 1e6 * cpu / reqs : 0 }' "$f" >>"$out/raw.txt"
	tail -1 "$out/raw.txt"
}

: >"$out/raw.txt"
for round in $(seq 1 "$ROUNDS"); do
	for bin in "$@"; do
		start "$bin"
		if [ "$bin" = "$1" ]; then run plain 18080 "${browser[@]}"; fi
		run "$(basename "$bin")" $port "${args[@]}"
		stop
	done
done

echo "== scenario $SCENARIO${PIN:+, Redis pinned to its own core}, medians over $ROUNDS rounds (wrk -t1 -c$CONN -d$DUR; $(date -u +%FT%TZ), $(nproc) cores)" | tee "$out/summary.txt"
awk '
function median(arr, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t } return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
{ k = $1; n[k]++; rps[k, n[k]] = $3; p50[k, n[k]] = $4; p99[k, n[k]] = $5; cpu[k, n[k]] = $6; if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
END {
  for (i = 1; i <= m; i++) { k = order[i]; for (j = 1; j <= n[k]; j++) { a[j] = rps[k, j]; b[j] = p50[k, j]; c[j] = p99[k, j]; d[j] = cpu[k, j] } R[k] = median(a, n[k]); P50[k] = median(b, n[k]); P99[k] = median(c, n[k]); C[k] = median(d, n[k]) }
  printf "| binary | req/s | vs plain | p50 ms | p99 ms | p99 added ms | Redis CPU µs/request |\n|---|---|---|---|---|---|---|\n"
  for (i = 1; i <= m; i++) { k = order[i]; printf "| %s | %.0f | %.2fx | %.2f | %.2f | %+.2f | %.1f |\n", k, R[k], R[k] / R["plain"], P50[k], P99[k], P99[k] - P99["plain"], C[k] }
}' "$out/raw.txt" | tee -a "$out/summary.txt"
