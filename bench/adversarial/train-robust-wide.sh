#!/usr/bin/env bash
# The legibility guard's open question (issue 26, PREPROCESSED.md): is the
# robust reader's last 10% capacity or information? A reader of the shipped
# architecture (the paper's Table 6, ~4× the narrow reader's parameters),
# trained from a clean start — never from the model the captchas are made
# against — on the same 32,000 served and 10,000 clean captchas as stage 6
# of train-robust.sh (run that first), validated on the same 300.
# ~0.65 s a step on 2 cores, ~14 min an epoch; it checkpoints every 200 steps,
# and a rerun resumes. Then it reads the guard's 1,000 (seeds 7300000…).
#
#   bench/adversarial/train-robust-wide.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
D=bench/out/robust
out=$D/robust-wide-clean
train=(adv-train adv-8204000 adv-8208000 adv-8212000 adv-8216000 adv-8220000 adv-8224000 adv-8228000 clean-train)
for d in "${train[@]}" adv-val guard-served; do
	[ -f $D/$d/labels.csv ] || { echo "missing $D/$d: run STAGES=6 bench/adversarial/train-robust.sh first" >&2; exit 1; }
done
if [ ! -f $out.crnn ]; then
	resume=""
	[ -f $out.ckpt ] && resume=--resume
	data=()
	for d in "${train[@]}"; do data+=(--data "$D/$d"); done
	OPENBLAS_NUM_THREADS=1 $B advcaptcha train "${data[@]}" --val $D/adv-val \
		--out $out.crnn --checkpoint $out.ckpt --curve $out.curve.png \
		--epochs 12 --batch 32 --workers 2 --lr 1e-3 --seed 9 $resume \
		--about "wide robust reader for bench/adversarial (issue 26): the shipped architecture from a clean start on 32,000 served and 10,000 clean captchas"
fi
echo "wide robust reader ($out.crnn), guard-served: $($B advcaptcha eval --model $out.crnn --data $D/guard-served | grep '^solved')"
