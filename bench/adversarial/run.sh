#!/usr/bin/env bash
# How well adversarial captchas resist solvers: the substitute itself
# (white-box) and the transfer solvers of train-transfer.sh, on clean
# captchas and on captchas perturbed by each method at each ε, each with no
# preprocessing and with each attacker filter applied once and three times.
# Writes one table per method and ε to bench/adversarial/RESULTS.md.
#
#   bench/adversarial/run.sh                 # N=200 captchas per set
#   METHODS="mifgsm" EPSILONS="8 16" N=100 bench/adversarial/run.sh
#   SETS="mifgsm-8 mifgsm-16 fgsm-16" bench/adversarial/run.sh   # chosen method-ε sets
#   TRANSFER=narrow bench/adversarial/run.sh                      # only these transfer solvers
#   SETS="mifgsm-24-ens" bench/adversarial/run.sh   # -ens: against the shipped model and
#                                                   # solvers/second.crnn at once (train-ensemble.sh)
#   OUT=bench/adversarial/BUDGET.md SETS="…" bench/adversarial/run.sh  # tables elsewhere than RESULTS.md
#   PREPROCESSED="narrow-binarize" …  # solvers trained on a preprocessing, read through it
#                                     # (default: every solvers/<from>-<filter>[-<style tag>].crnn; "" for none)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-200}
METHODS=${METHODS:-fgsm bim mifgsm}
EPSILONS=${EPSILONS:-4 8 12 16}
FILTERS=${FILTERS:-gaussian median mean bilateral binarize resize jpeg}
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
make -s build
B=bin/caddy
D=bench/out/adversarial
T=bench/adversarial/solvers
TRANSFER=${TRANSFER:-narrow bilstm}
solvers=("substitute:")
for m in $TRANSFER; do
	[ -f $T/$m.crnn ] || { echo "missing $T/$m.crnn: run bench/adversarial/train-transfer.sh first" >&2; exit 1; }
	solvers+=("$m:$T/$m.crnn")
done
# Solvers trained on a preprocessing (train-preprocessed.sh), named
# <from>-<filter>: each reads every set through its filter.
PREPROCESSED=${PREPROCESSED-$(cd $T && ls *-*.crnn 2>/dev/null | grep -E -- '^[a-z]+-(none|gaussian|median|mean|bilateral|binarize|adaptive|flatten|flatbinarize|threshold100|resize|jpeg)(-[a-z]+)?\.crnn$' | sed 's/\.crnn$//' | tr '\n' ' ')}
trained=()
for m in $PREPROCESSED; do
	[ -f $T/$m.crnn ] || { echo "missing $T/$m.crnn: run bench/adversarial/train-preprocessed.sh first" >&2; exit 1; }
	trained+=("$m:$T/$m.crnn")
done
mkdir -p $D
# Sets are kept between runs; captchas of another renderer or style (the
# default changed) would be stale, so the kept sets move aside.
if [ -f $D/clean/000000.png ]; then
	probe=$(mktemp -d)
	$B advcaptcha dataset --count 1 --seed 7000000 --out "$probe" >/dev/null
	if ! cmp -s "$probe/000000.png" $D/clean/000000.png; then
		stale=$D.stale-$(date +%s)
		echo "$D holds captchas of another renderer or style: moved to $stale" >&2
		mv $D "$stale"
		mkdir -p $D
	fi
	rm -rf "$probe"
fi
# A fresh seed range no model trained or validated on.
[ -f $D/clean/labels.csv ] || $B advcaptcha dataset --count $N --seed 7000000 --out $D/clean >/dev/null
if [ -z "${SETS:-}" ]; then
	for m in $METHODS; do
		for e in $EPSILONS; do SETS="${SETS:-} $m-$e"; done
	done
fi
sets=(clean)
for s in $SETS; do
	IFS=- read -r m e variant <<<"$s"
	extra=()
	if [ "$variant" = ens ]; then
		[ -f $T/second.crnn ] || { echo "missing $T/second.crnn: run bench/adversarial/train-ensemble.sh first" >&2; exit 1; }
		extra=(--model solver/models/default.crnn --model $T/second.crnn)
	fi
	[ -f $D/$s/attack.json ] || $B advcaptcha dataset --adversarial --method $m --epsilon $e "${extra[@]}" --count $N --seed 7000000 --out $D/$s >/dev/null
	sets+=("$s")
done
solved() { # solver-model dataset [filter passes] → percent
	model=()
	[ -n "$1" ] && model=(--model "$1")
	filter=()
	[ $# -gt 2 ] && filter=(--filter "$3" --passes "$4")
	# Results are kept next to the dataset, keyed by the solver file's
	# hash, so a rerun with more sets evaluates only what is new.
	local cache
	cache="$2/eval-$(sha256sum "${1:-solver/models/default.crnn}" | cut -c1-12)-${3:-none}-${4:-0}"
	if [ ! -s "$cache" ]; then
		$B advcaptcha eval "${model[@]}" --data "$2" "${filter[@]}" | awk '/^solved/ {sub("%", "", $4); print $4}' >"$cache.tmp"
		mv "$cache.tmp" "$cache"
	fi
	cat "$cache"
}
out=${OUT:-bench/adversarial/RESULTS.md}
{
	echo "# Solver accuracy on clean and adversarial captchas"
	echo
	echo "Command: \`N=$N SETS=\"$(echo $SETS)\" TRANSFER=\"$TRANSFER\" PREPROCESSED=\"$(echo $PREPROCESSED)\" bench/adversarial/run.sh\` ($(date -u +%F), $(nproc) cores)."
	echo "Substitute: the shipped model; transfer solvers: bench/adversarial/solvers (never attacked)."
	for s in "${sets[@]}"; do
		echo
		if [ $s = clean ]; then echo "## clean"; else
			echo "## $(jq -r .description $D/$s/attack.json)"
			echo
			echo "against model $(jq -r .models $D/$s/attack.json); mean SSIM $(jq -r '.mean_ssim*1000|round/1000' $D/$s/attack.json), on the strokes $(jq -r 'if .mean_stroke_ssim then (.mean_stroke_ssim*1000|round/1000) else "–" end' $D/$s/attack.json), substitute fooled at generation $(jq -r '.substitute_fooled*100|round' $D/$s/attack.json)%"
		fi
		echo
		printf "| solver | none |"
		for f in $FILTERS; do printf " %s ×1 | %s ×3 |" $f $f; done
		echo
		printf "|---|---|"
		for f in $FILTERS; do printf -- "---|---|"; done
		echo
		for sv in "${solvers[@]}"; do
			name=${sv%%:*} path=${sv#*:}
			printf "| %s | %s |" $name "$(solved "$path" $D/$s)"
			for f in $FILTERS; do printf " %s | %s |" "$(solved "$path" $D/$s $f 1)" "$(solved "$path" $D/$s $f 3)"; done
			echo
		done
	done
	if [ ${#trained[@]} -gt 0 ]; then
		echo
		echo "## Solvers trained on a preprocessing (issue 26)"
		echo
		echo "Each was trained on captchas preprocessed by its filter and reads every captcha through it, at"
		echo "training and at test time — the classic captcha-breaking pipeline (train-preprocessed.sh;"
		echo "fine-tuned from a transfer solver, never attacked). Percent read, per set:"
		echo
		printf "| solver (reads through) |"
		for s in "${sets[@]}"; do printf " %s |" "$s"; done
		echo
		printf "|---|"
		for s in "${sets[@]}"; do printf -- "---|"; done
		echo
		for sv in "${trained[@]}"; do
			name=${sv%%:*} path=${sv#*:}
			# <from>-<filter>[-<style tag>]; filter "none": trained on the style's clean captchas.
			f=$(echo "$name" | cut -d- -f2)
			printf "| %s (%s) |" "$name" "$f"
			for s in "${sets[@]}"; do
				if [ "$f" = none ]; then printf " %s |" "$(solved "$path" $D/$s)"; else printf " %s |" "$(solved "$path" $D/$s $f 1)"; fi
			done
			echo
		done
	fi
} | tee "$out"
