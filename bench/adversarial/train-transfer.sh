#!/usr/bin/env bash
# Trains the two transfer solvers the robustness benchmark attacks without
# having computed a single gradient against them: this project's training
# code on clean captchas, with other architectures and seeds than the shipped
# substitute. Resumable: rerun after an interruption and it continues from
# the checkpoints (bench/out/transfer). The models are committed in
# bench/adversarial/solvers/, so run.sh does not need this script.
#
#   bench/adversarial/train-transfer.sh      # → bench/adversarial/solvers/{narrow,bilstm}.crnn
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
D=bench/out/transfer
S=bench/adversarial/solvers
# The committed models were trained on the unshaded style (renderer captcha/1,
# the default until 2026-12-07).
STYLE=${STYLE:-'{"shading":-1}'}
mkdir -p $D $S
[ -f $D/train/labels.csv ] || $B advcaptcha dataset --count 40000 --seed 5000000 --style "$STYLE" --out $D/train >/dev/null
[ -f $D/val/labels.csv ] || $B advcaptcha dataset --count 1000 --seed 6000000 --style "$STYLE" --out $D/val >/dev/null
train() {
	name=$1
	shift
	[ -f $S/$name.crnn ] && return
	resume=""
	[ -f $D/$name.ckpt ] && resume=--resume
	OPENBLAS_NUM_THREADS=1 $B advcaptcha train --data $D/train --val $D/val --out $D/$name.crnn \
		--checkpoint $D/$name.ckpt --curve $S/$name.curve.png \
		--batch 32 --workers 2 $resume "$@" --about "transfer solver $name for bench/adversarial"
	# Keep the final model or the best epoch's, whichever reads more of the
	# validation set.
	solved() { $B advcaptcha eval --model "$1" --data $D/val | awk '/^solved/ {split($2, a, "/"); print a[1]}'; }
	if [ -f $D/$name.crnn.best ] && [ "$(solved $D/$name.crnn.best)" -gt "$(solved $D/$name.crnn)" ]; then
		cp $D/$name.crnn.best $S/$name.crnn
	else
		cp $D/$name.crnn $S/$name.crnn
	fi
}
# Narrower convolutions, one LSTM layer of 128, in two stages:
#  1. seed 11, lr 1e-3 over a 5-epoch schedule: too slow (24% of the
#     validation set after epoch 2, 33.5% after epoch 3); its epoch-3 best is
#     committed as solvers/narrow-stage1.crnn (the run was stopped in epoch 4;
#     without that file a 3-epoch run stands in for it, which is not the same
#     schedule, so not the same bits);
#  2. fine-tuned from it at lr 2e-3 over a 3-epoch schedule (at 2e-3 from
#     scratch the network diverged in its fourth epoch), keeping the best
#     epoch. The committed narrow.crnn is this run's first epoch (93.9% of
#     the validation set), stopped there for time; the script runs all three.
if [ ! -f $S/narrow.crnn ]; then
	[ -f $S/narrow-stage1.crnn ] || OPENBLAS_NUM_THREADS=1 $B advcaptcha train --data $D/train --val $D/val --out $S/narrow-stage1.crnn \
		--epochs 3 --batch 32 --workers 2 --lr 1e-3 --conv 32/2x2,64/2x2,96/2x1,48/2x1 --hidden 128 --layers 1 --seed 11 \
		--about "transfer solver narrow for bench/adversarial, stage 1"
	train narrow --init $S/narrow-stage1.crnn --epochs 3 --lr 2e-3 --seed 13
fi
# One bidirectional LSTM layer of 96 over other narrow convolutions, seed 12,
# lr 2e-3 over a 4-epoch schedule. It left the CTC plateau by step 600
# (validation after epoch 1: 91.1%, epoch 2: 95.6%); the committed
# bilstm.crnn is epoch 2's best, the run stopped there for time (the script
# runs all four).
# (Two bidirectional layers of 128 over 48/96/96/48 filters cost about twice
# the narrow network's 0.45 s a step: 80 minutes on two cores.)
train bilstm --conv 32/2x2,64/2x2,64/2x1,48/2x1 --hidden 96 --layers 1 --bidirectional --seed 12 --epochs 4 --lr 2e-3
