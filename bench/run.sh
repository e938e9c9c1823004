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
CONN=${CONN:-16}
mkdir -p bench/out
for tool in wrk redis-server; do
	command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done

echo "== Go benchmarks"
go test -run '^$' -bench . -benchmem -count 1 ./riskscore ./clearance ./caddymodule | tee bench/out/go.txt

echo "== load benchmark (wrk -t1 -c$CONN -d$DUR)"
go build -o bin/caddy ./cmd/caddy
go build -o bin/mintcookie ./bench/mintcookie
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
	wrk -t1 -c"$CONN" -d"$DUR" --latency "$@" "http://127.0.0.1:$port/" >"bench/out/$name.txt"
	local rps p50 p99 non2xx
	rps=$(awk '/^Requests\/sec/ {print $2}' "bench/out/$name.txt")
	p50=$(awk '$1=="50%" {print $2}' "bench/out/$name.txt")
	p99=$(awk '$1=="99%" {print $2}' "bench/out/$name.txt")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "bench/out/$name.txt")
	printf '%-34s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}" | tee -a bench/out/summary.txt
}
: >bench/out/summary.txt
run plain-browser 18080 "${browser[@]}"
run a-cleared-memory 18082 "${browser[@]}" -H "Cookie: $cookie"
run a-cleared-redis 18083 "${browser[@]}" -H "Cookie: $cookie"
run b-newclient-redis 18083 "${browser[@]}" -s bench/newclient.lua
run b-newclient-memory 18082 "${browser[@]}" -s bench/newclient.lua
run plain-curl 18080 -H 'User-Agent: curl/8.5.0' -H 'Accept: */*'
run c-challenged-redis 18083 -H 'User-Agent: curl/8.5.0' -H 'Accept: */*' -H 'Accept-Language: en' -s bench/newclient.lua
run plain-browser-again 18080 "${browser[@]}"
echo "== results in bench/out/ ($(date -u +%FT%TZ), $(nproc) cores, $(go version | cut -d' ' -f3))"
