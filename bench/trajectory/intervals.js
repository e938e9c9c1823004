'use strict';
// How many drags the gateway's sparse_pointer rule would flag, were they a
// Chromium mouse's: a median positive sampling interval over 20 ms, with at
// least 8 intervals (trajectory/features.go's MedianInterval; the rule is
// caddymodule/slide.go's sparsePointer). Per source (people) or
// generator (machines), with the median interval's 5th/50th/95th percentile.
//
//   node bench/trajectory/intervals.js [--heldout|--dev] FILE.jsonl…
//
// --heldout / --dev keep only people of split.js's held-out / dev users.
const fs = require('fs');
const { isHeldOutUser } = require('./split');

const args = process.argv.slice(2);
const only = args[0] === '--heldout' ? true : args[0] === '--dev' ? false : null;
const files = only === null ? args : args.slice(1);
const groups = new Map();
for (const f of files) {
  for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const d = JSON.parse(line);
    if (d.user !== undefined && only !== null && isHeldOutUser(d.source, d.user) !== only) continue;
    const gaps = [];
    for (let i = 1; i < d.points.length; i++) {
      const g = d.points[i][2] - d.points[i - 1][2];
      if (g > 0) gaps.push(g);
    }
    const key = d.source || d.generator || f;
    if (!groups.has(key)) groups.set(key, []);
    if (gaps.length < 8) {
      groups.get(key).push(NaN);
      continue;
    }
    gaps.sort((a, b) => a - b);
    groups.get(key).push(gaps[Math.floor(gaps.length / 2)]);
  }
}
const q = (v, p) => v.length ? v[Math.min(v.length - 1, Math.floor(p * v.length))].toFixed(1) : '-';
for (const [key, meds] of groups) {
  const judged = meds.filter(m => !Number.isNaN(m)).sort((a, b) => a - b);
  const sparse = judged.filter(m => m > 20).length;
  console.log(`${key}: ${sparse}/${meds.length} sparse (${meds.length - judged.length} too short to judge); median interval p5/p50/p95 ${q(judged, 0.05)}/${q(judged, 0.5)}/${q(judged, 0.95)} ms`);
}
