#!/usr/bin/env bash
# Generation capacity you can plan with (issue 24 item 3): how many default
# adversarial captchas a second `caddy advcaptcha pool` supplies to a shared
# Redis — one process with one worker, one process with a worker per core,
# and two processes with one worker each (external workers on other
# machines add up the same way; here they share this machine's cores).
#
#   bench/capacity/run.sh            # N=48 captchas per measurement
#   POOL_ARGS="--model solver/models/default.crnn --model bench/adversarial/solvers/defender.crnn" \
#     bench/capacity/run.sh          # the same with an ensemble (or any other pool flags)
#
# Each measurement starts from an empty pool and times the pool from its
# first captcha to N (so start-up and model loading are left out); the
# figure is (N - first) / that time. Output: bench/out/capacity.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-48}
mkdir -p bench/out
out=bench/out/capacity.txt
: >"$out"
tags=""
ls /usr/lib/*/libopenblas.so >/dev/null 2>&1 && tags="-tags openblas"
go build $tags -o bench/out/caddy ./cmd/caddy
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --save '' --appendonly no --dir "$dir" >/dev/null &
redis=$!
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; kill $redis 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export ADVCAPTCHA_SECRET=capacity-bench-secret-0123456789abcdef
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; build ${tags:-pure Go}; load average $(cut -d' ' -f1-3 /proc/loadavg); N=$N default captchas${POOL_ARGS:+; pool flags: $POOL_ARGS}" | tee -a "$out"

# measure NAME PROCESSES WORKERS: PROCESSES pool commands with WORKERS workers
# each fill one pool to N.
measure() {
	local name=$1 procs=$2 workers=$3
	redis-cli -p "$port" flushall >/dev/null
	pids=()
	for _ in $(seq "$procs"); do
		bench/out/caddy advcaptcha pool --redis "127.0.0.1:$port" --size "$N" --workers "$workers" --follow-models 0 ${POOL_ARGS:-} >/dev/null 2>&1 &
		pids+=($!)
	done
	local key="" n=0 first="" t0="" t1=""
	while :; do
		[ -n "$key" ] || key=$(redis-cli -p "$port" --scan --pattern '*pool:*' | head -1)
		[ -n "$key" ] && n=$(redis-cli -p "$port" llen "$key")
		if [ -z "$t0" ] && [ "${n:-0}" -gt 0 ]; then t0=$(date +%s.%N); first=$n; fi
		if [ "${n:-0}" -ge "$N" ]; then t1=$(date +%s.%N); break; fi
		sleep 0.05
	done
	kill "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	pids=()
	awk -v name="$name" -v n="$N" -v f="$first" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "%s: %.2f captchas/s (%d captchas in %.1f s after the first %d)\n", name, (n - f) / (b - a), n - f, b - a, f }' | tee -a "$out"
}
measure "one process, one worker" 1 1
measure "one process, $(nproc) workers" 1 "$(nproc)"
measure "two processes, one worker each" 2 1
