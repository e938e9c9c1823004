'use strict'
// What drive.js (the real slide page) and collect.js (the recording
// harness) share: their seeded random numbers, and the plans of the drags
// the attackers' tools make — points in page pixels from (x0, y0) to the
// slot dist pixels to the right, with the waits before each (null: send
// them as fast as the browser takes them).

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

// gaps turns cumulative times into the wait before each.
const gaps = (ts) => ts.map((t, i) => Math.max(0, t - (i ? ts[i - 1] : 0)))

// The real ghost-cursor library's path() with its defaults (Bézier curve,
// Fitts-law point count, overshoot on long moves); Math.random, which it
// draws from, is seeded by the caller.
function ghostCursorPlan (rand, x0, y0, dist, opts) {
  const { path: ghostPath } = require('ghost-cursor')
  return { points: ghostPath({ x: x0, y: y0 }, { x: x0 + dist, y: y0 + (rand() - 0.5) * 6 }, opts), waits: null, settings: {} }
}

// The npm windmouse package (a port of BenLand100's WindMouse), its
// README's ranges of settings; its waits are slept.
async function windMousePlan (rand, x0, y0, dist) {
  const WindMouse = require('windmouse')
  const u = (a, b) => a + (b - a) * rand()
  const settings = {
    startX: Math.round(x0), startY: Math.round(y0), endX: Math.round(x0 + dist), endY: Math.round(y0),
    gravity: u(3, 10), wind: u(1, 6), minWait: u(1, 4), maxWait: u(4, 10), maxStep: u(1, 4), targetArea: u(3, 10)
  }
  const p = await new WindMouse(Math.floor(rand() * 1e6)).GeneratePoints(Object.assign({}, settings))
  return { points: p.map(([x, y]) => ({ x, y })), waits: gaps(p.map(([, , t]) => t)), settings }
}

// The corpus a replayer draws from: held-out people's recorded drags
// (../shared/data, the users bench/trajectory/split.js keeps out of the
// judge's training).
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

module.exports = { rng, gaps, ghostCursorPlan, windMousePlan, nearestDrag }
