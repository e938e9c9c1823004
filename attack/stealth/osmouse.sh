#!/usr/bin/env bash
# The people side of sparse_pointer without people: Debian's Chromium,
# headful on a virtual X display, dragged by the X server's pointer at a
# mouse's polling rate (osmouse.js, xdrag.py) rather than over CDP, quiet and
# with LOAD busy loops beside it. Prints, per run, the median sampling
# interval slide.js posted and how often sparse_pointer fired. Needs
# xvfb, xdotool and python3-xlib (apt), which it installs when missing.
#
#   attack/stealth/osmouse.sh [SESSIONS] [HZ] [SEED]
#   LOAD=2 attack/stealth/osmouse.sh …
#   PATHKIND=ghost-cursor attack/stealth/osmouse.sh …   # the npm ghost-cursor's paths, through X
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20}
hz=${2:-125}
seed=${3:-1}
command -v Xvfb >/dev/null && command -v xdotool >/dev/null && /usr/bin/python3 -c 'import Xlib' 2>/dev/null ||
	apt-get install -y -q xvfb xdotool python3-xlib >/dev/null
out=attack/stealth/out/osmouse-$seed
mkdir -p "$out" /tmp/stealth
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
Xvfb :99 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq "${LOAD:-0}"); do
	(while :; do :; done) &
	pids+=($!)
done
[ -x bin/caddy ] || make -s build
(cd attack/stealth && [ -d node_modules/puppeteer-core ] || npm ci --no-audit --no-fund >/dev/null)
if ! curl -s -o /dev/null http://localhost:8790/; then
	bin/caddy run --config attack/stealth/Caddyfile --adapter caddyfile >/tmp/stealth/osmouse-caddy.out 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do curl -s -o /dev/null http://localhost:8790/ && break; sleep 0.2; done
fi
sleep 0.5
f=$out/${PATHKIND:+$PATHKIND-}hz$hz-load${LOAD:-0}.jsonl
rm -f "${f%.jsonl}.posted.jsonl"
DISPLAY=:99 nice -n 10 node attack/stealth/osmouse.js http://localhost:8790 "$n" "$hz" "$seed" --log /tmp/stealth/caddy.log \
	${PATHKIND:+--path "$PATHKIND"} --drags "${f%.jsonl}.posted.jsonl" >"$f"
node -e '
	const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse)
	const meds = rows.map(r => r.median).filter(m => m != null).sort((a, b) => a - b)
	const q = p => meds.length ? meds[Math.min(meds.length - 1, Math.floor(p * meds.length))].toFixed(1) : "-"
	const sparse = rows.filter(r => (r.reasons || []).includes("sparse_pointer")).length
	const ml = rows.filter(r => (r.reasons || []).includes("machine_like")).length
	console.log(`${process.argv[2]} Hz, LOAD=${process.argv[3]}: ${rows.length} drags posted by slide.js, median interval p5/p50/p95 ${q(0.05)}/${q(0.5)}/${q(0.95)} ms; sparse_pointer fired on ${sparse}, machine_like on ${ml}; points p50 ${rows.map(r => r.points || 0).sort((a, b) => a - b)[Math.floor(rows.length / 2)]}`)
' "$f" "$hz" "${LOAD:-0}"
echo "trajectory judge alone (bench/lab trajectory/judgetool dump ${f%.jsonl}.posted.jsonl): $(bench/lab trajectory/judgetool dump "${f%.jsonl}.posted.jsonl" |
	awk '{n++; if ($1 < 50) a++; if ($1 < 20) c++} END {printf "%d/%d accepted (score < 50), %d clean (< 20)", a, n, c}')"
