#!/usr/bin/env bash
# Benchmarks the solver against the same network in PyTorch, in one run on
# the same machine, next to the machine's measured SGEMM peak:
#  1. the BLAS PyTorch really uses (refuses to report PyTorch figures unless it
#     is OpenBLAS: bench/solver/blas.py) and the machine (CPU, AVX flags, load);
#  2. SGEMM through OpenBLAS from C (gemm.c), numpy and torch at 1 and 2
#     threads — 1024³ and the network's largest convolution as im2col;
#  3. ours (go test -bench in ./solver), with gonum's pure-Go BLAS and with
#     OpenBLAS (build tag openblas): the four benchmarks below plus any
#     Benchmark*Batch<N> the package has; ms per image, GFLOP/s, peak RSS;
#  4. PyTorch (Debian's python3-torch on OpenBLAS) at its best: every row in a
#     fresh process for torch threads {1,2} × OPENBLAS_NUM_THREADS {1,2}, the
#     fastest reported with its setting (torch_crnn.py);
#  5. the table (summarize.py). Raw lines: bench/out/solver.txt; table:
#     bench/out/solver.md.
#
#   bench/solver/run.sh            # N=20 repetitions of the fast measurements
#   N=2 bench/solver/run.sh        # a quick check that everything runs
# Figures are a baseline only on a quiet machine: the header prints the load
# average, and a warning when it is 0.5 or more.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-20}
mkdir -p bench/out
out=bench/out/solver.txt
: >"$out"
log() { echo "$*" | tee -a "$out"; }

# --- 1. What is installed, and that libblas.so.3 is OpenBLAS -----------------
need=()
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || need+=(python3-torch python3-numpy)
for p in libopenblas0-pthread libopenblas-dev; do dpkg -s $p >/dev/null 2>&1 || need+=($p); done
command -v cc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "need root to install: ${need[*]}" >&2; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
	alt=$lib-$arch
	cur=$(update-alternatives --query "$alt" | awk '/^Value:/ {print $2}')
	if [[ $cur != */openblas-pthread/* ]]; then
		want=/usr/lib/$arch/openblas-pthread/$lib
		[ "$(id -u)" = 0 ] || { echo "$alt points at $cur, not OpenBLAS; as root: update-alternatives --set $alt $want" >&2; exit 1; }
		update-alternatives --set "$alt" "$want"
		cur=$want
	fi
	log "# alternative $alt -> $cur"
done

load=$(cut -d' ' -f1 /proc/loadavg)
log "# date $(date -u '+%Y-%m-%d %H:%M UTC'); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
log "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
log "# $(go version); $(/usr/bin/python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'); OpenBLAS $(dpkg-query -W -f '${Version}' libopenblas0-pthread)"
# The PyTorch lines are only reported if this passes (torch_crnn.py checks again in every process).
/usr/bin/python3 bench/solver/blas.py check | tee -a "$out"

# --- 2. The machine's SGEMM peak ----------------------------------------------
cc -O2 -o bench/out/gemm bench/solver/gemm.c -lopenblas
bench/out/gemm 10 | tee -a "$out"
(cd bench/solver && /usr/bin/python3 blas.py gemm 10) | tee -a "$out"
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
	# OPENBLAS_CORETYPE forces one kernel set on everything below (Go and
	# PyTorch alike); show what OpenBLAS's own choice for this CPU reaches.
	log "# OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE is set: everything below runs that core; OpenBLAS's own choice without it:"
	env -u OPENBLAS_CORETYPE bench/out/gemm 10 | sed 's/^peak /peak-autocore /' | tee -a "$out"
fi

# --- 3. Ours ------------------------------------------------------------------
for blas in gonum openblas; do
	tags=""
	[ $blas = openblas ] && tags="-tags openblas"
	go test $tags -c -o bench/out/solver-$blas.test ./solver
	benches="Forward Gradient Attack10 TrainStep32"
	# Batch benchmarks, if the package has them (BenchmarkGradientBatch16, ...).
	benches+=" $(bench/out/solver-$blas.test -test.list '^Benchmark.*Batch[0-9]+$' | sed 's/^Benchmark//' | tr '\n' ' ')"
	for b in $benches; do
		# The training step runs two workers side by side, one BLAS thread
		# each; the other measurements give BLAS both cores.
		n=$N threads=2
		case $b in Attack*) n=$((N / 4 > 2 ? N / 4 : 2)) ;; TrainStep*) n=$((N / 4 > 2 ? N / 4 : 2)) threads=1 ;; esac
		# One process per measurement, so that its peak RSS is its own.
		OPENBLAS_NUM_THREADS=$threads /usr/bin/time -f "rss %M KB" bench/out/solver-$blas.test \
			-test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime ${n}x 2>&1 |
			awk -v impl=go-$blas -v threads=$threads '
				/^Benchmark/ {
					name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
					msop = $3 / 1e6; gf = "-"
					for (i = 5; i < NF; i += 2) if ($(i + 1) == "GFLOP/s") gf = $i
					kind = name; batch = 1
					if (match(name, /Batch[0-9]+$/)) { batch = substr(name, RSTART + 5) + 0; kind = substr(name, 1, RSTART - 1) }
					if (kind == "TrainStep32") { kind = "train"; batch = 32 }
					kind = tolower(kind)
				}
				/^rss/ { printf "%s %s b%d %.2f ms/img %s GFLOP/s rss %.0f MB threads %d bench %s ms/op %.2f\n", impl, kind, batch, msop / batch, gf, $2 / 1024, threads, name, msop }
				/^(FAIL|panic)/ { print "# " impl " " $0 }' | tee -a "$out"
	done
done

# --- 4. PyTorch at its best ---------------------------------------------------
(cd bench/solver && /usr/bin/python3 torch_crnn.py "$N") | tee -a "$out"

load_end=$(cut -d' ' -f1 /proc/loadavg)
log "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v a="$load" -v b="$load_end" 'BEGIN {exit !(a >= 0.5 || b >= 0.5)}'; then
	log "# WARNING: load average $load at start, $load_end at end (>= 0.5): other work shared the cores; not a baseline"
fi

# --- 5. The table -------------------------------------------------------------
/usr/bin/python3 bench/solver/summarize.py "$out" | tee bench/out/solver.md
