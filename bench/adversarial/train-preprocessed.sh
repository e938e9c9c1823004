#!/usr/bin/env bash
# Trains transfer solvers that read through an attacker's preprocessing
# (issue 26): the classic pipeline binarises (or filters) every captcha, at
# training and at test time. Each is fine-tuned from one of the transfer
# solvers (never attacked, never the shipped substitute) on clean captchas
# preprocessed by the filter, so the benchmark can ask what an attacker who
# trains on preprocessed captchas reads of the served ones. Resumable from
# its checkpoints (bench/out/preprocessed).
#
#   bench/adversarial/train-preprocessed.sh                 # binarize, from narrow
#   FILTERS="binarize median" FROM=bilstm bench/adversarial/train-preprocessed.sh
#   COUNT=10000 EPOCHS=2 …                                  # training set and passes
#   STYLE='{}' TAG=shaded FILTERS="none binarize" …  # the default (shaded) style; untagged: unshaded
#   CONTINUE=1 EPOCHS=3 STYLE='{}' TAG=shaded FILTERS=open …  # train a solver further, from itself
#
# Writes bench/adversarial/solvers/<from>-<filter>[-<tag>].crnn (filter
# "none": fine-tuned on the style's clean captchas, an attacker who simply
# trains on what is served); evaluate it with
# `caddy advcaptcha eval --model … --filter <filter>`.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
D=bench/out/preprocessed
S=bench/adversarial/solvers
FROM=${FROM:-narrow}
FILTERS=${FILTERS:-binarize}
COUNT=${COUNT:-10000}
EPOCHS=${EPOCHS:-2}
TAG=${TAG:-}
# CONTINUE=1 trains an existing <from>-<filter>[-<tag>] solver EPOCHS more
# from itself (its own checkpoint, <name>-more), for a solver that has not
# yet learnt to read the clean captchas through its filter.
CONTINUE=${CONTINUE:-}
# Untagged solvers are the unshaded style's (renderer captcha/1, the default
# until 2026-12-07), which the committed <from>-<filter>.crnn were trained on.
STYLE=${STYLE:-'{"shading":-1}'}
if [ -n "$TAG" ]; then
	D=$D-$TAG
fi
mkdir -p $D
# The seed ranges the transfer solvers were trained and validated on
# (train-transfer.sh): no benchmark captcha (seed 7000000…) among them.
[ -f $D/train/labels.csv ] || $B advcaptcha dataset --count "$COUNT" --seed 5000000 --style "$STYLE" --out $D/train >/dev/null
[ -f $D/val/labels.csv ] || $B advcaptcha dataset --count 1000 --seed 6000000 --style "$STYLE" --out $D/val >/dev/null
for f in $FILTERS; do
	name=$FROM-$f${TAG:+-$TAG}
	filter=$f
	[ "$f" = none ] && filter=""
	init=$S/$FROM.crnn run=$name
	if [ -n "$CONTINUE" ]; then
		[ -f $S/$name.crnn ] || { echo "CONTINUE: no $S/$name.crnn to continue" >&2; exit 1; }
		# $S/$name.crnn is replaced only once the run is done, and a done run
		# ($D/$run.crnn) is not started again.
		init=$S/$name.crnn run=$name-more
		[ -f $D/$run.crnn ] && continue
	else
		[ -f $S/$name.crnn ] && continue
	fi
	resume=""
	[ -f $D/$run.ckpt ] && resume=--resume
	OPENBLAS_NUM_THREADS=1 $B advcaptcha train --data $D/train --val $D/val --init $init --filter "$filter" \
		--out $D/$run.crnn --checkpoint $D/$run.ckpt --curve $S/$run.curve.png \
		--epochs "$EPOCHS" --batch 32 --workers 2 --lr 3e-4 --no-augment $resume \
		--about "transfer solver $FROM fine-tuned on $f-preprocessed captchas of style $STYLE for bench/adversarial (issue 26)"
	# The final model or the best epoch's, whichever reads more of the
	# preprocessed validation set.
	solved() { $B advcaptcha eval --model "$1" --data $D/val --filter "$filter" | awk '/^solved/ {split($2, a, "/"); print a[1]}'; }
	if [ -f $D/$run.crnn.best ] && [ "$(solved $D/$run.crnn.best)" -gt "$(solved $D/$run.crnn)" ]; then
		cp $D/$run.crnn.best $S/$name.crnn
	else
		cp $D/$run.crnn $S/$name.crnn
	fi
done
