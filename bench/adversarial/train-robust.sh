#!/usr/bin/env bash
# Trains the robust reader (issue 26, item 3): a solver that has seen the
# served perturbation — fine-tuned on adversarial captchas made exactly as
# the gateway serves them (default style and attack, against the shipped
# model) next to clean ones, with the trainer's augmentation. It is never a
# substitute and never one of the transfer checks; it answers two
# questions with one number, what it reads of fresh served captchas:
#   - legibility without people: the text is still there for a reader that
#     knows what the perturbation looks like (want ≥ 90%);
#   - the adapting attacker: a farm that labels served captchas can train
#     the same reader, which is what the learning loop must answer.
# Resumable from its checkpoint (bench/out/robust).
#
#   bench/adversarial/train-robust.sh            # ADV=4000 adversarial + 10,000 clean, 2 epochs
#   ADV=2000 EPOCHS=1 FROM=narrow-none-shaded bench/adversarial/train-robust.sh
#
# Writes bench/adversarial/solvers/robust.crnn and prints what it reads of
# the benchmark's seeds (7000000…, never trained on): clean and served.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
D=bench/out/robust
S=bench/adversarial/solvers
ADV=${ADV:-4000}
EPOCHS=${EPOCHS:-2}
FROM=${FROM:-narrow-none-shaded}
mkdir -p $D
# Seeds of their own: 8200000… (adversarial), 5000000… (clean, the transfer
# solvers' training seeds), 8700000… (validation); the benchmark's are
# 7000000….
[ -f $D/adv-train/labels.csv ] || $B advcaptcha dataset --adversarial --count "$ADV" --seed 8200000 --out $D/adv-train >/dev/null
[ -f $D/adv-val/labels.csv ] || $B advcaptcha dataset --adversarial --count 300 --seed 8700000 --out $D/adv-val >/dev/null
[ -f $D/clean-train/labels.csv ] || $B advcaptcha dataset --count 10000 --seed 5000000 --out $D/clean-train >/dev/null
[ -f $D/bench-clean/labels.csv ] || $B advcaptcha dataset --count 100 --seed 7000000 --out $D/bench-clean >/dev/null
[ -f $D/bench-served/labels.csv ] || $B advcaptcha dataset --adversarial --count 100 --seed 7000000 --out $D/bench-served >/dev/null
if [ ! -f $S/robust.crnn ]; then
	resume=""
	[ -f $D/robust.ckpt ] && resume=--resume
	OPENBLAS_NUM_THREADS=1 $B advcaptcha train --data $D/adv-train --data $D/clean-train --val $D/adv-val \
		--init $S/$FROM.crnn --out $D/robust.crnn --checkpoint $D/robust.ckpt --curve $S/robust.curve.png \
		--epochs "$EPOCHS" --batch 32 --workers 2 --lr 3e-4 $resume \
		--about "robust reader for bench/adversarial (issue 26): $FROM fine-tuned on $ADV served captchas (seeds 8200000…) and 10,000 clean ones"
	cp $D/robust.crnn $S/robust.crnn
fi
for set in bench-clean bench-served; do
	echo "robust reader, $set: $($B advcaptcha eval --model $S/robust.crnn --data $D/$set | grep '^solved')"
done
