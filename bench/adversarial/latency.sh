#!/usr/bin/env bash
# What the in-process generation workers cost the requests of the same
# Caddy: wrk on a route advcaptcha does not touch (/other), with the pool
# workers generating (one worker, cpu_budget 0.5 — the default — and one at
# cpu_budget 1), and with adversarial captchas off. Same binary, same run.
#
#   bench/adversarial/latency.sh            # → bench/adversarial/LATENCY.md
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-20s}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
make -s build
dir=$(mktemp -d)
pid=""
trap 'kill $pid 2>/dev/null || true; rm -rf $dir' EXIT
out=bench/adversarial/LATENCY.md
measure() { # name adversarial-block
	cat >$dir/Caddyfile <<CF
{
	admin off
	auto_https off
	log {
		output discard
	}
}
:18380 {
	bind 127.0.0.1
	handle /other {
		respond "ok"
	}
	handle {
		advcaptcha {
			$2
		}
		respond "site"
	}
}
CF
	OPENBLAS_NUM_THREADS=1 bin/caddy run --config $dir/Caddyfile --adapter caddyfile >$dir/caddy.log 2>&1 &
	pid=$!
	for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:18380/other && break; sleep 0.1; done
	sleep 5 # the workers are generating by now
	wrk -t1 -c8 -d"$DUR" --latency http://127.0.0.1:18380/other >$dir/wrk.txt
	kill $pid
	wait $pid 2>/dev/null || true
	printf '| %s | %s | %s | %s |\n' "$1" "$(awk '/^Requests\/sec/ {print $2}' $dir/wrk.txt)" \
		"$(awk '$1=="50%" {print $2}' $dir/wrk.txt)" "$(awk '$1=="99%" {print $2}' $dir/wrk.txt)"
}
{
	echo "# Request latency while adversarial captchas are generated in the same process"
	echo
	echo "Command: \`bench/adversarial/latency.sh\` ($(date -u +%F), $(nproc) cores; wrk -t1 -c8 -d$DUR on /other, which advcaptcha does not handle)."
	echo
	echo "| generation | req/s | p50 | p99 |"
	echo "|---|---|---|---|"
	measure "off" "adversarial off"
	measure "1 worker, cpu_budget 0.5 (default)" "adversarial {
				pool_size 100000
			}"
	measure "1 worker, cpu_budget 1" "adversarial {
				pool_size 100000
				cpu_budget 1
			}"
	measure "2 workers, cpu_budget 1" "adversarial {
				pool_size 100000
				workers 2
				cpu_budget 1
			}"
} | tee $out
