#!/usr/bin/env bash
# Benchmarks advcaptcha. Writes bench/out/ and prints a summary that
# bench/RESULTS.md records.
#
# 1. Go benchmarks of the scoring function and cookie checks.
# 2. Load through Caddy with wrk: plain Caddy reverse_proxy against Caddy +
#    advcaptcha to the same upstream, in the same run, for (a) a cleared
#    client, (b) a new client scored against real Redis (and the memory
#    store), (c) a client that gets challenged.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-3}
CONN=${CONN:-16}
mkdir -p bench/out
for tool in wrk redis-server; do
	command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done

echo "== Go benchmarks"
go test -run '^$' -bench . -benchmem -count 1 ./riskscore ./clearance ./captcha ./captchapool ./caddymodule | tee bench/out/go.txt

echo "== load benchmark (wrk -t1 -c$CONN -d$DUR)"
go build -o bin/caddy ./cmd/caddy
(cd bench && go build -o ../bin/mintcookie ./mintcookie) # bench/ is a module of its own
redis_port=16379
redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning >/dev/null &
redis_pid=$!
export BENCH_SECRET=bench-secret-0123456789abcdef0123456789
export BENCH_REDIS=127.0.0.1:$redis_port
bin/caddy run --config bench/Caddyfile --adapter caddyfile >bench/out/caddy.log 2>&1 &
caddy_pid=$!
trap 'kill $caddy_pid $redis_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.2; done

UA='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
browser=(-H "User-Agent: $UA" -H 'Accept: text/html' -H 'Accept-Language: en' -H 'Accept-Encoding: gzip' -H 'Sec-Fetch-Site: none' -H 'Sec-Fetch-Mode: navigate')
cookie=$(bin/mintcookie -secret "$BENCH_SECRET" -ua "$UA")

run() { # name port [wrk args...]
	local name=$1 port=$2
	shift 2
	local out="bench/out/$name.$round.txt"
	wrk -t1 -c"$CONN" -d"$DUR" --latency "$@" "http://127.0.0.1:$port/" >"$out"
	local rps p50 p99 non2xx
	rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
	p50=$(awk '$1=="50%" {print $2}' "$out")
	p99=$(awk '$1=="99%" {print $2}' "$out")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
	printf '%s %s %s %s %s %s\n' "$name" "$round" "$rps" "$(ms "$p50")" "$(ms "$p99")" "${non2xx:-0}" >>bench/out/raw.txt
	printf '  round %s  %-22s %9s req/s  p50 %7s  p99 %7s  non-2xx %s\n' "$round" "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
ms() { # wrk latency ("812.00us", "1.44ms", "1.02s") in ms
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.3f", n }'
}
: >bench/out/raw.txt
# Rounds interleave the scenarios, so that drift of the machine (other
# load, thermal) spreads over all of them; the summary takes medians.
for round in $(seq 1 "$ROUNDS"); do
	run plain 18080 "${browser[@]}"
	run a-cleared-memory 18082 "${browser[@]}" -H "Cookie: $cookie"
	run a-cleared-redis 18083 "${browser[@]}" -H "Cookie: $cookie"
	run b-new-client-redis 18083 "${browser[@]}" -s bench/newclient.lua
	run b-new-client-memory 18082 "${browser[@]}" -s bench/newclient.lua
	run b-new-client-redis-local-first 18084 "${browser[@]}" -s bench/newclient.lua
	run c-challenged-redis 18083 -H 'User-Agent: curl/8.5.0' -H 'Accept: */*' -H 'Accept-Language: en' -s bench/newclient.lua
done

echo "== medians over $ROUNDS rounds (wrk -t1 -c$CONN -d$DUR each; $(date -u +%FT%TZ), $(nproc) cores, $(go version | cut -d' ' -f3))" | tee bench/out/summary.txt
awk '
function median(arr, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t } return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
{ k = $1; n[k]++; rps[k, n[k]] = $3; p50[k, n[k]] = $4; p99[k, n[k]] = $5; bad[k] += $6; if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
END {
  for (i = 1; i <= m; i++) { k = order[i]; for (j = 1; j <= n[k]; j++) { a[j] = rps[k, j]; b[j] = p50[k, j]; c[j] = p99[k, j] } R[k] = median(a, n[k]); P50[k] = median(b, n[k]); P99[k] = median(c, n[k]) }
  printf "| scenario | req/s | vs plain | p50 ms | p99 ms | p99 added ms | non-2xx |\n|---|---|---|---|---|---|---|\n"
  for (i = 1; i <= m; i++) { k = order[i]; printf "| %s | %.0f | %.2fx | %.2f | %.2f | %+.2f | %d |\n", k, R[k], R[k] / R["plain"], P50[k], P99[k], P99[k] - P99["plain"], bad[k] }
}' bench/out/raw.txt | tee -a bench/out/summary.txt
