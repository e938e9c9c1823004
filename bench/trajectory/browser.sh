#!/usr/bin/env bash
# Machine drags as headless Chromium delivers them (attack/stealth/collect.js):
# the tools' paths sent over CDP and recorded by a page with slide.js's
# recording, so their timestamps are the browser's, not the generator's.
#
#   bench/trajectory/browser.sh dev     # seed 1, 200 a kind → out/dev/browser_*.jsonl (the judge trains on them)
#   bench/trajectory/browser.sh check   # seed 2, 100 a kind → out/browser/ (SPLIT=browser judgetool eval; once per decision)
#
# Kinds: ghost-cursor (defaults, awaited moves), ghost-cursor-random (spread,
# moveSpeed, half with sleeps), windmouse (its waits slept), bezier and minjerk
# (eased, sleep-paced); the check adds human (held-out people's drags
# replayed over CDP: a replay family, never trained on). ~1–3 s a drag.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:?usage: bench/trajectory/browser.sh dev|check}
(cd attack/stealth && [ -d node_modules/ghost-cursor ] || npm ci --no-audit --no-fund >/dev/null)
case $what in
dev) seed=1 n=${N:-200} dir=bench/trajectory/out/dev kinds="ghost-cursor ghost-cursor-random windmouse bezier minjerk" ;;
check) seed=2 n=${N:-100} dir=bench/trajectory/out/browser kinds="ghost-cursor ghost-cursor-random windmouse bezier minjerk human" ;;
*) echo "dev or check" >&2; exit 2 ;;
esac
mkdir -p "$dir"
for k in $kinds; do
	f=$dir/browser_${k//-/}.jsonl
	[ -s "$f" ] && continue
	node attack/stealth/collect.js --kind "$k" --n "$n" --seed "$seed" --out "$f.part"
	mv "$f.part" "$f"
done
