#!/usr/bin/env bash
# The next round of the arms race against the adapting attacker (issue 26).
# Round 1 (PREPROCESSED.md): the defender trains a robust reader of its own
# (solvers/defender.crnn) and attacks it beside the shipped model; attacker
# A — a narrow robust reader that learnt from 4,000 served captchas
# (bench/out/robust/robust8.crnn, STAGES=3 train-robust.sh) — fell from 56%
# to 5%, but it had not seen a single hardened captcha. Round 2 is what the
# attacker does next: its farm labels the captchas it is now served
# (hardened: against the shipped model and the defender), and it fine-tunes
# on them beside what it already had.
#
#   bench/adversarial/arms-race.sh                  # attacker A, N=4000 hardened captchas
#   ATTACKERS="a2 b2" bench/adversarial/arms-race.sh  # and attacker B (bilstm)
#
# Seeds of their own: 8300000… (the attacker's hardened captchas), 8800000…
# (its validation), and the benchmark's 7000000… (never trained on by any
# reader) for the hardened benchmark. Prints what each attacker asked for
# reads of the benchmark's served and hardened captchas before and after the
# round, and what two never-adapted solvers read of the hardened ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
S=bench/adversarial/solvers
R=bench/out/robust
D=bench/out/arms-race
N=${N:-4000}
HARDEN=(--model solver/models/default.crnn --model $S/defender.crnn)
mkdir -p $D
[ -f $R/robust8.crnn ] || STAGES=3 bench/adversarial/train-robust.sh
hardened() { [ -f $D/$2/labels.csv ] || $B advcaptcha dataset --adversarial "${HARDEN[@]}" --count "$3" --seed "$1" --out $D/$2 >/dev/null; }
hardened 7000000 bench-hardened 100
hardened 8800000 hard-val 300
hardened 8300000 hard-train "$N"
# Round 2: each attacker fine-tunes from where it stood, 4 epochs on the
# hardened captchas, the served ones it learnt from and the clean ones.
#   a2: attacker A (narrow, the defender's architecture)
#   b2: attacker B (bilstm, solvers/robust-bilstm.crnn: the same 4,000 served)
ATTACKERS=${ATTACKERS:-a2}
round2() {
	local name=$1 init=$2 seed=$3
	[ -f $D/attacker-$name.crnn ] && return 0
	local resume=""
	[ -f $D/attacker-$name.ckpt ] && resume=--resume
	OPENBLAS_NUM_THREADS=1 $B advcaptcha train --data $D/hard-train --data $R/adv-train --data $R/clean-train \
		--val $D/hard-val --init "$init" --out $D/attacker-$name.crnn --checkpoint $D/attacker-$name.ckpt \
		--curve $D/attacker-$name.curve.png --epochs 4 --batch 32 --workers 2 --lr 2e-4 --seed "$seed" $resume \
		--about "attacker $name, round 2 of bench/adversarial/arms-race.sh: $(basename "$init") fine-tuned on $N hardened captchas (shipped + defender), its 4,000 served and 10,000 clean"
}
models=()
for a in $ATTACKERS; do
	case $a in
	a2) round2 a2 $R/robust8.crnn 21; models+=($R/robust8.crnn $D/attacker-a2.crnn) ;;
	b2) round2 b2 $S/robust-bilstm.crnn 22; models+=($S/robust-bilstm.crnn $D/attacker-b2.crnn) ;;
	*) echo "unknown attacker $a (a2, b2)" >&2; exit 2 ;;
	esac
done
read_() { echo "$1 on $2: $($B advcaptcha eval --model "$1" --data "$2" | grep '^solved')"; }
for m in "${models[@]}"; do
	read_ $m $R/bench-served
	read_ $m $D/bench-hardened
done
read_ $S/narrow-none-shaded.crnn $D/bench-hardened
read_ $S/bilstm-none-shaded.crnn $D/bench-hardened
