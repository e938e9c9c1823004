#!/usr/bin/env bash
# The learning loop against the adapting attacker on the default captchas
# (issue 26): the robust reader (solvers/robust.crnn, trained on served
# captchas) plays a farm that has adapted. It answers N served captchas
# (seeds 9400000…, made as the gateway serves them) — the answers a labelled
# attacker leaves in the logs — and the extraction fine-tunes the shipped
# substitute on them as the gateway's does (bench/extractlab, companion rule
# as `caddy advcaptcha extract` defaults), but only the default's share-0
# fine-tuning: not its share-0.5 one nor the distilled second try
# (`extract --pair-share 0.5,0 --distill 1`). The reader then reads 100 fresh
# captchas (seeds 94000000…):
#   - perturbed against the shipped substitute alone: where the attacker
#     stands before the loop runs (the control);
#   - perturbed against the extraction and the shipped substitute together:
#     what the gateway serves once the extraction is published as a companion.
# Two solvers that never adapted read the same captchas: the new captchas
# must keep fooling them.
#
#   bench/adversarial/loop-robust.sh                   # N=1000
#   N=300 READER=bench/out/robust/robust.crnn bench/adversarial/loop-robust.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
B=bin/caddy
S=bench/adversarial/solvers
N=${N:-1000}
READER=${READER:-$S/robust.crnn}
D=bench/out/loop-$N
JUDGES=$S/narrow-none-shaded.crnn,$S/bilstm-none-shaded.crnn
mkdir -p $D
[ -f $D/served/labels.csv ] || $B advcaptcha dataset --adversarial --count "$N" --seed 9400000 --out $D/served >/dev/null
cp "$READER" $D/attacker-adapted.crnn
# The reader's answers as the gateway records them: what it read (the truth
# where it read right), one captcha in five held out to measure fidelity,
# empty readings dropped (the gateway records no empty answer).
mkdir -p $D/train $D/heldout
$B advcaptcha eval --misreads --model "$READER" --data $D/served | awk -v d=$D '
	/^misread / { r = $4; gsub(/"/, "", r); read[$2] = r }
	END {
		train = d "/train/labels.csv"; held = d "/heldout/labels.csv"
		print "file,text" > train; print "file,text" > held
		i = 0
		while ((getline line < (d "/served/labels.csv")) > 0) {
			if (line == "file,text") continue
			split(line, f, ",")
			a = (i in read) ? read[i] : f[2]
			if (a != "") print "../served/" f[1] "," a > (i % 5 == 0 ? held : train)
			i++
		}
	}'
export GOFLAGS=-tags=openblas OPENBLAS_NUM_THREADS=1
echo "== control: captchas against the shipped substitute alone"
bench/lab extractlab -dir $D -from solver/models/default.crnn -n 100 -judges $JUDGES | grep ' on captchas'
echo "== the loop: extraction on the reader's answers, captchas against it and the shipped substitute"
bench/lab extractlab -dir $D -ensemble -companion-max-drop 0.10 -save $D/extracted.crnn -n 100 -judges $JUDGES
