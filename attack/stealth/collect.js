#!/usr/bin/env node
// Collects machine drags as Chromium delivers them, for the trajectory
// judge's training and checks (issue 23): one headless Chromium, one page
// whose slider records pointer events exactly as slide.js does (coalesced
// events, timestamps since the press), and many drags in a row sent by the
// tools attackers use — ghost-cursor's path, the windmouse package, eased
// Bézier and minimum-jerk paths — over CDP, paced either by awaiting each
// move (CDP's own round trip) or by sleeping between moves. Offline
// generators (bench/trajectory/gen.js) time their points themselves; a
// browser driven over CDP times them by its event loop and the machine's
// load, which is what the gateway sees.
//
//   node collect.js --kind KIND --n N --seed S --out FILE.jsonl
//
// KIND: ghost-cursor (its defaults), ghost-cursor-random (spread and
// moveSpeed ≥ 5 drawn), windmouse (npm package, its waits slept), bezier
// (cubic Bézier, eased, slept), minjerk (minimum-jerk reach with a
// correction, slept), human (a held-out person's recorded drag from
// ../shared/data replayed at its times — a replay, never a person).
// The real slide page (drive.js, drags.sh) is the check that this page's
// recording matches the gateway's.
'use strict'

const fs = require('fs')
const { rng, gaps, ghostCursorPlan, windMousePlan, nearestDrag } = require('./dragplans')

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--window-size=1200,800']

// The slider and slide.js's recording (its pointerdown, pointermove and
// release handlers), without the fingerprint and the POST: each finished
// drag is pushed to window.drags.
const PAGE = `<!doctype html><html><head><style>
body{margin:0;font:16px sans-serif}main{width:560px;margin:120px auto}
#track{position:relative;height:48px;border-radius:24px;background:#e8e8e8;touch-action:none;user-select:none}
#handle{position:absolute;left:0;top:0;width:48px;height:48px;border-radius:24px;background:#36c;touch-action:none}
</style></head><body><main><div id="track"><div id="handle"></div></div></main><script>
(function () {
  var handle = document.getElementById('handle'), pts = [], down = null
  window.drags = []
  handle.addEventListener('pointerdown', function (e) {
    e.preventDefault()
    handle.setPointerCapture(e.pointerId)
    down = { x: e.clientX, y: e.clientY, t: e.timeStamp }
    pts = [[0, 0, 0]]
  })
  handle.addEventListener('pointermove', function (e) {
    if (!down) return
    var evs = e.getCoalescedEvents ? e.getCoalescedEvents() : []
    if (!evs.length) evs = [e]
    for (var i = 0; i < evs.length; i++) {
      var v = evs[i], t = Math.max(pts[pts.length - 1][2], v.timeStamp - down.t)
      pts.push([v.clientX - down.x, v.clientY - down.y, t])
    }
    if (pts.length > 4000) pts.length = 4000
  })
  handle.addEventListener('pointerup', function (e) {
    if (!down) return
    var t = Math.max(pts[pts.length - 1][2], e.timeStamp - down.t)
    pts.push([e.clientX - down.x, e.clientY - down.y, t])
    down = null
    window.drags.push(pts)
  })
})()
</script></body></html>`

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

// Each kind returns { points: [{x, y}] in page pixels from (x0, y0),
// waits: ms to sleep before each point (null: awaited moves only),
// settings }.
const KINDS = {
  'ghost-cursor': (rand, x0, y0, dist) => ghostCursorPlan(rand, x0, y0, dist),
  'ghost-cursor-random': (rand, x0, y0, dist) => {
    const spread = [undefined, 3, 8, 15, 30][Math.floor(rand() * 5)]
    // ghost-cursor makes (log2 Fitts + 75 / moveSpeed) · 3 points: speeds
    // under ~5 give 400–2,300-point, 5–40 s drags that the judge's duration
    // alone tells, and cost the collection 10–30 s each, so they are left out.
    const moveSpeed = [undefined, 5, 10, 20, 40][Math.floor(rand() * 5)]
    const opts = {}
    if (spread !== undefined) opts.spreadOverride = spread
    if (moveSpeed !== undefined) opts.moveSpeed = moveSpeed
    const sleepy = rand() < 0.5
    const { points } = ghostCursorPlan(rand, x0, y0, dist, opts)
    return { points, waits: sleepy ? points.map(() => 2 + rand() * 12) : null, settings: Object.assign({ sleepy }, opts) }
  },
  windmouse: windMousePlan,
  bezier: (rand, x0, y0, dist) => eased(rand, x0, y0, dist, 'bezier'),
  minjerk: (rand, x0, y0, dist) => eased(rand, x0, y0, dist, 'minjerk'),
  human: (rand, x0, y0, dist) => {
    const d = nearestDrag(dist, rand)
    const p = d.points
    const k = d.k
    return {
      points: p.slice(1).map(([x, y]) => ({ x: x0 + x * k, y: y0 + y })),
      waits: gaps(p.slice(1).map(([, , t]) => t)),
      settings: { line: d.line, source: d.source, user: d.user, scale: k }
    }
  }
}

const EASINGS = {
  cubic: (u) => u < 0.5 ? 4 * u ** 3 : 1 - (-2 * u + 2) ** 3 / 2,
  sine: (u) => -(Math.cos(Math.PI * u) - 1) / 2,
  quint: (u) => u < 0.5 ? 16 * u ** 5 : 1 - (-2 * u + 2) ** 5 / 2,
  outQuart: (u) => 1 - (1 - u) ** 4,
  minjerk: (u) => 10 * u ** 3 - 15 * u ** 4 + 6 * u ** 5
}

// An eased path sampled on a sleep-paced loop: the script sleeps a few ms,
// reads the clock, and moves to where the easing says it should be (what
// the stealth drive and most hand-written bots do). bezier: a cubic
// Bézier with random controls under one of several easings; minjerk: a
// minimum-jerk primary movement that stops short or overshoots, then a
// correction.
function eased (rand, x0, y0, dist, kind) {
  const T = 350 + rand() * 1400
  const step = 4 + rand() * 12
  const names = Object.keys(EASINGS)
  const easing = kind === 'minjerk' ? 'minjerk' : names[Math.floor(rand() * names.length)]
  const e = EASINGS[easing]
  const c1 = { x: dist * (0.2 + rand() * 0.3), y: (rand() - 0.5) * 40 }
  const c2 = { x: dist * (0.5 + rand() * 0.3), y: (rand() - 0.5) * 40 }
  const bez = (s) => {
    const a = (1 - s) ** 3; const b = 3 * (1 - s) ** 2 * s; const c = 3 * (1 - s) * s * s; const d = s ** 3
    return { x: b * c1.x + c * c2.x + d * dist, y: b * c1.y + c * c2.y }
  }
  const f1 = 0.85 + rand() * 0.22
  const T2 = 120 + rand() * 250
  const where = (t) => {
    if (kind === 'bezier') { const q = bez(e(Math.min(1, t / T))); return { x: x0 + q.x, y: y0 + q.y } }
    const m = t < T ? f1 * e(t / T) : f1 + (1 - f1) * e(Math.min(1, (t - T) / T2))
    return { x: x0 + dist * m, y: y0 + 6 * Math.sin(Math.PI * Math.min(1, m)) }
  }
  const total = kind === 'bezier' ? T : T + T2
  return { clock: { where, total, step }, settings: { easing, T: Math.round(T), step: Math.round(step * 10) / 10, f1: kind === 'minjerk' ? f1 : undefined } }
}

// Where a drag starts (the handle's centre, a few pixels off) and how far
// it goes; page.$ is the same in puppeteer and playwright.
async function aim (page, rand) {
  const box = await (await page.$('#handle')).boundingBox()
  const x0 = box.x + box.width / 2 + (rand() - 0.5) * 10
  const y0 = box.y + box.height / 2 + (rand() - 0.5) * 10
  return { x0, y0, dist: 150 + rand() * 300 }
}

// The page's count of finished drags, taken before the release, and then
// the drag the release finished, as the page recorded it.
const dragCount = (page) => page.evaluate(() => window.drags.length)
async function recorded (page, before) {
  for (let i = 0; i < 50; i++) {
    if (await page.evaluate((n) => window.drags.length > n, before)) break
    await sleep(20)
  }
  return page.evaluate(() => window.drags[window.drags.length - 1])
}

async function one (page, client, kind, rand) {
  const { x0, y0, dist } = await aim(page, rand)
  const plan = await KINDS[kind](rand, x0, y0, dist)
  const mouse = (type, x, y) => client.send('Input.dispatchMouseEvent', {
    type, x, y, button: 'left', buttons: type === 'mouseReleased' ? 0 : 1, clickCount: type === 'mouseMoved' ? 0 : 1, force: type === 'mouseReleased' ? 0 : 0.5, pointerType: 'mouse'
  })
  await client.send('Input.dispatchMouseEvent', { type: 'mouseMoved', x: x0, y: y0, button: 'none', buttons: 0 })
  await sleep(60 + rand() * 150)
  await mouse('mousePressed', x0, y0)
  let at = { x: x0, y: y0 }
  if (plan.clock) {
    const t0 = Date.now()
    for (;;) {
      const t = Date.now() - t0
      at = plan.clock.where(t)
      await mouse('mouseMoved', at.x, at.y)
      if (t >= plan.clock.total) break
      await sleep(plan.clock.step * (0.6 + 0.8 * rand()))
    }
  } else {
    for (let i = 0; i < plan.points.length; i++) {
      if (plan.waits) await sleep(plan.waits[i])
      at = plan.points[i]
      await mouse('mouseMoved', at.x, at.y)
    }
  }
  await sleep(rand() * 100)
  const n = await dragCount(page)
  await mouse('mouseReleased', at.x, at.y)
  return { settings: plan.settings, points: await recorded(page, n) }
}

// ghost-cursor-playwright's drag, as drive.js sends it on the real page:
// the library's own moves (its older ghost-cursor path, points sent back to
// back through playwright's page.mouse) with playwright's button held.
async function oneGhostCursorPlaywright (page, cursor, rand) {
  const { x0, y0, dist } = await aim(page, rand)
  await cursor.actions.move({ x: x0, y: y0 })
  await sleep(60 + rand() * 150)
  const n = await dragCount(page)
  await page.mouse.down()
  await cursor.actions.move({ x: x0 + dist, y: y0 })
  await page.mouse.up()
  return { settings: { library: 'ghost-cursor-playwright@2.1.0' }, points: await recorded(page, n) }
}

async function main () {
  const argv = process.argv.slice(2)
  const opts = { n: 100, seed: 1, kind: 'ghost-cursor', out: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--kind') opts.kind = argv[++i]
    else if (a === '--n') opts.n = Number(argv[++i])
    else if (a === '--seed') opts.seed = Number(argv[++i])
    else if (a === '--out') opts.out = argv[++i]
    else throw new Error('unexpected argument ' + a)
  }
  const gcp = opts.kind === 'ghost-cursor-playwright'
  if (!KINDS[opts.kind] && !gcp) throw new Error('--kind: one of ' + Object.keys(KINDS).concat('ghost-cursor-playwright').join(', '))
  if (!opts.out) throw new Error('usage: node collect.js --kind KIND --n N --seed S --out FILE.jsonl')
  const rand = rng(opts.seed * 7919 + 29)
  Math.random = rng(opts.seed * 104729 + 5) // ghost-cursor's
  const browser = gcp
    ? await require('playwright-core').chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
    : await require('puppeteer-core').launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  // Each drag is appended as it is made, so a long run shows its progress
  // and keeps what it made if stopped.
  fs.writeFileSync(opts.out, '')
  let made = 0
  try {
    const page = await browser.newPage()
    await page.setContent(PAGE)
    const client = gcp ? null : await page.target().createCDPSession()
    const cursor = gcp ? await require('ghost-cursor-playwright').createCursor(page, { debug: false }) : null
    for (let i = 0; i < opts.n; i++) {
      const d = gcp ? await oneGhostCursorPlaywright(page, cursor, rand) : await one(page, client, opts.kind, rand)
      if (!d.points || d.points.length < 2) { console.error(opts.kind + ': drag ' + i + ' recorded nothing'); continue }
      fs.appendFileSync(opts.out, JSON.stringify({ generator: 'browser_' + opts.kind.replace(/-/g, ''), settings: Object.assign({ kind: opts.kind, seed: opts.seed, i }, d.settings), points: d.points }) + '\n')
      made++
    }
  } finally {
    await browser.close()
  }
  console.error(opts.kind + ': ' + made + ' drags → ' + opts.out)
}

main().catch(e => { console.error(e); process.exit(1) })
