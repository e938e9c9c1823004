'use strict'
// What drive.js and collect.js share: their seeded random numbers, and
// the corpus a replayer draws from — held-out people's recorded drags
// (../shared/data, the users bench/trajectory/split.js keeps out of the
// judge's training).

const fs = require('fs')
const path = require('path')

// mulberry32: a small seeded PRNG, so that every run can be repeated.
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

let pool = null
function heldOutDrags () {
  if (pool) return pool
  const { isHeldOutUser } = require('../../bench/trajectory/split.js')
  const file = process.env.HUMAN_DRAGS || path.join(__dirname, '../../../shared/data/human_drags_dev.jsonl')
  pool = []
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return
    const d = JSON.parse(line)
    const p = d.points
    // Rightward drags long enough to scale to a slot 40–100% of the way.
    if (isHeldOutUser(d.source, d.user) && p.length >= 5 && p[p.length - 1][0] >= 150) pool.push({ line: i + 1, source: d.source, user: d.user, points: p })
  })
  return pool
}

// A replayer with a corpus sends one of the eight drags nearest the
// slot's distance, so that little scaling is needed; k scales its x to
// end on the slot.
function nearestDrag (dist, rand) {
  const byDist = heldOutDrags().slice().sort((a, b) => Math.abs(a.points[a.points.length - 1][0] - dist) - Math.abs(b.points[b.points.length - 1][0] - dist))
  const d = byDist[Math.floor(rand() * Math.min(8, byDist.length))]
  return Object.assign({ k: dist / d.points[d.points.length - 1][0] }, d)
}

module.exports = { rng, nearestDrag }
