#!/usr/bin/env bash
# Trains a second substitute for ensemble attacks (perturb's gradients of
# several models at once): this project's training code on clean captchas,
# with an architecture and seed of its own — neither the shipped model's nor
# either transfer solver's, which must stay unattacked for run.sh to mean
# anything. Resumable from bench/out/ensemble/second.ckpt.
#
# One bidirectional LSTM layer: a unidirectional layer of 192 over the same
# convolutions was still on the CTC plateau (loss 17.7) after 690 steps,
# where the bidirectional transfer solver had left it by step 600; one
# epoch's schedule, because an ensemble member needs gradients, not 97%.
#
#   bench/adversarial/train-ensemble.sh    # → bench/adversarial/solvers/second.crnn
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
D=bench/out/ensemble
S=bench/adversarial/solvers
# The committed models were trained on the unshaded style (renderer captcha/1,
# the default until 2026-12-07).
STYLE=${STYLE:-'{"shading":-1}'}
mkdir -p $D $S
# Its own training captchas (other seeds than the transfer solvers').
[ -f $D/train/labels.csv ] || $B advcaptcha dataset --count 40000 --seed 8000000 --style "$STYLE" --out $D/train >/dev/null
[ -f $D/val/labels.csv ] || $B advcaptcha dataset --count 1000 --seed 8100000 --style "$STYLE" --out $D/val >/dev/null
resume=""
[ -f $D/second.ckpt ] && resume=--resume
OPENBLAS_NUM_THREADS=1 $B advcaptcha train --data $D/train --val $D/val --out $D/second.crnn \
	--checkpoint $D/second.ckpt --curve $S/second.curve.png \
	--batch 32 --workers 2 $resume --conv 48/2x2,96/2x2,128/2x1,64/2x1 --hidden 128 --layers 1 --bidirectional --seed 31 \
	--epochs ${EPOCHS:-1} --lr 2e-3 --about "second substitute for ensemble attacks (bench/adversarial)"
cp $D/second.crnn $S/second.crnn
