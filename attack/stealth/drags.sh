#!/usr/bin/env bash
# The slide's trajectory judge against drags sent through Debian's headless
# Chromium (issue 23, item 1): the real ghost-cursor and windmouse npm
# libraries, the stealth drive's own eased drag, and held-out people's
# recorded drags replayed at their own times (drive.js --drag); the kind
# ghost-cursor-playwright (a library no training set has, driven by
# playwright) when named in KINDS. Each
# session's drag is judged alone by this tree's judge (judgetool dump),
# twice: as the page posted it, and as the script sent it — the difference
# is what Chromium's event pipeline on this machine does to a drag.
# Plain headless: the fingerprint refuses it anyway (RESULTS.md); this
# measures the trajectory alone.
#
#   attack/stealth/drags.sh [SESSIONS_PER_KIND] [SEED] [KINDS]
#   LOAD=2 attack/stealth/drags.sh …   # with 2 busy loops beside the browser
#
# LOAD=N keeps N busy loops running beside the (nice 10) browser: an
# attacker's machine running other sessions, where every move's round
# trip waits for frames the busy renderer is late to draw.
#
# Writes attack/stealth/out/drags-SEED/{KIND.posted,KIND.sent}.jsonl and
# prints, per kind, the share accepted (Score < 50) and clean (< 20, a
# slide that may clear a client alone), by the judge alone and with the
# gateway's sparse_pointer points added. Takes ~5 s a session.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-40}
seed=${2:-1}
kinds=${3:-"eased ghost-cursor windmouse human"}
out=attack/stealth/out/drags-$seed
mkdir -p "$out" /tmp/stealth
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq "${LOAD:-0}"); do
	(while :; do :; done) &
	pids+=($!)
done
[ -x bin/caddy ] || make -s build
(cd attack/stealth && [ -d node_modules/ghost-cursor-playwright ] || npm ci --no-audit --no-fund >/dev/null)
if ! curl -s -o /dev/null http://localhost:8790/; then
	bin/caddy run --config attack/stealth/Caddyfile --adapter caddyfile >/tmp/stealth/drags-caddy.out 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do curl -s -o /dev/null http://localhost:8790/ && break; sleep 0.2; done
fi
for k in $kinds; do
	rm -f "$out/$k.jsonl"
	driver=puppeteer
	[ "$k" = ghost-cursor-playwright ] && driver=playwright
	nice -n 10 node attack/stealth/drive.js http://localhost:8790 --config plain --sessions "$n" \
		--seed "$seed" --drag "$k" --driver $driver --drags "$out/$k.jsonl" >"$out/$k.sessions.jsonl"
	node -e '
		const fs = require("fs"); const [src, dir, k] = process.argv.slice(1)
		const lines = fs.readFileSync(src, "utf8").split("\n").filter(Boolean).map(JSON.parse)
		for (const w of ["posted", "sent"]) fs.writeFileSync(dir + "/" + k + "." + w + ".jsonl",
			lines.map(d => JSON.stringify({ generator: k, settings: d.settings, points: w === "posted" ? d.points : d.sent })).join("\n") + "\n")
	' "$out/$k.jsonl" "$out" "$k"
done
# A Chromium mouse drag with a median interval over 20 ms gains 30 points in
# the gateway (caddymodule's sparse_pointer; a drag too short to have one,
# "NaN" here, gains nothing): "with sparse_pointer" is the share
# still under the refusal line of 50 with them, "clean" (< 20) what may
# clear a client alone, were the fingerprint passed.
judge() { bench/lab trajectory/judgetool dump "$1" | awk '{n++; s = $1 + (($3 != "NaN" && $3 + 0 > 20) ? 30 : 0); if ($1 < 50) a++; if (s < 50) b++; if ($1 < 20) c++; if (s < 20) d++}
	END {printf "%d/%d = %.1f%% accepted (%d clean); with sparse_pointer %d = %.1f%% (%d clean)", a, n, 100*a/n, c, b, 100*b/n, d}'; }
echo "trajectory judge alone, drags through headless Chromium (seed $seed, $n sessions a kind):"
for k in $kinds; do
	echo "  $k: posted $(judge "$out/$k.posted.jsonl"); as sent $(judge "$out/$k.sent.jsonl")"
done
