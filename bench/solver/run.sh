#!/usr/bin/env bash
# Benchmarks the solver against the same network in PyTorch, in one run on
# the same machine: per-image forward, forward + input gradient, a 10-step
# attack loop and a training step at batch 32 — ms per op, GFLOP/s from the
# analytic FLOP count, and peak RSS. Ours runs with gonum's pure-Go BLAS and
# with OpenBLAS (build tag openblas); PyTorch (Debian's python3-torch) uses
# OpenBLAS too. Every process gets both cores.
#
#   bench/solver/run.sh            # N=20 repetitions of the fast measurements
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-20}
mkdir -p bench/out
need=()
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch)
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }

out=bench/out/solver.txt
: >"$out"
for blas in gonum openblas; do
	tags=""
	[ $blas = openblas ] && tags="-tags openblas"
	go test $tags -c -o bench/out/solver-$blas.test ./solver
	for b in Forward Gradient Attack10 TrainStep32; do
		# The training step runs two workers side by side, one BLAS thread
		# each; the single-image measurements give BLAS both cores.
		n=$N threads=2
		case $b in Attack10) n=$((N / 4 > 2 ? N / 4 : 2)) ;; TrainStep32) n=$((N / 4 > 2 ? N / 4 : 2)) threads=1 ;; esac
		# One process per measurement, so that its peak RSS is its own.
		OPENBLAS_NUM_THREADS=$threads /usr/bin/time -f "rss %M KB" bench/out/solver-$blas.test \
			-test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime ${n}x 2>&1 |
			awk -v blas=$blas '/^Benchmark/ {name=$1; ms=$3/1e6; gf=$5} /^rss/ {printf "go-%s %s %.2f ms %.2f GFLOP/s rss %.0f MB\n", blas, name, ms, gf, $2/1024}' |
			sed 's/Benchmark//; s/-2 / /' | tee -a "$out"
	done
done
/usr/bin/python3 bench/solver/torch_crnn.py "$N" 2 | tee -a "$out"
