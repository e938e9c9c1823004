#!/usr/bin/env bash
# Machine drags as headless Chromium delivers them (attack/stealth/collect.js):
# the tools' paths sent over CDP and recorded by a page with slide.js's
# recording, so their timestamps are the browser's, not the generator's.
#
#   bench/trajectory/browser.sh dev     # seed 1, 200 a kind → out/dev/browser_*.jsonl (the judge trains on them)
#   bench/trajectory/browser.sh check   # seed 2, 100 a kind → out/browser/ (SPLIT=browser judgetool eval; once per decision)
#   SEED=3 bench/trajectory/browser.sh check   # another seed → out/browser-3/ (SPLIT=browser-3 judgetool eval)
#
# Kinds: ghost-cursor (defaults, awaited moves), ghost-cursor-random (spread,
# moveSpeed, half with sleeps), windmouse (its waits slept), bezier and minjerk
# (eased, sleep-paced); the check adds human (held-out people's drags
# replayed over CDP: a replay family, never trained on). ~1–3 s a drag
# (the randomised ghost-cursor's and windmouse's: several s, so dev has half as many).
# KINDS="a b" collects only those (two runs side by side use both cores);
# KINDS=ghost-cursor-playwright the npm library of that name (playwright).
# LOAD=N runs N busy loops beside a nice-10 browser, as on an attacker's
# machine running other sessions, and names the files browser_KINDload:
# every move's round trip then waits on a late renderer (20–70 ms steps).
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:?usage: bench/trajectory/browser.sh dev|check}
(cd attack/stealth && [ -d node_modules/ghost-cursor-playwright ] || npm ci --no-audit --no-fund >/dev/null)
case $what in
dev) seed=1 n=${N:-200} dir=bench/trajectory/out/dev kinds="ghost-cursor ghost-cursor-random windmouse bezier minjerk" ;;
check) seed=${SEED:-2} n=${N:-100} dir=bench/trajectory/out/browser${SEED:+-$SEED} kinds="ghost-cursor ghost-cursor-random windmouse bezier minjerk human" ;;
*) echo "dev or check" >&2; exit 2 ;;
esac
mkdir -p "$dir"
kinds=${KINDS:-$kinds}
load=${LOAD:-0} suffix="" nice=0
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
if [ "$load" -gt 0 ]; then
	suffix=load nice=10
	for _ in $(seq "$load"); do
		(while :; do :; done) &
		pids+=($!)
	done
fi
for k in $kinds; do
	f=$dir/browser_${k//-/}$suffix.jsonl
	[ -s "$f" ] && continue
	# The randomised ghost-cursor's paths are long (up to ~400 points) and
	# windmouse sleeps its waits: several seconds a drag through the
	# browser, so the training set has half as many of them.
	kn=$n
	case $what/$k in dev/ghost-cursor-random | dev/windmouse) kn=$((n / 2)) ;; esac
	nice -n $nice node attack/stealth/collect.js --kind "$k" --n "$kn" --seed "$seed" --out "$f.part"
	mv "$f.part" "$f"
done
