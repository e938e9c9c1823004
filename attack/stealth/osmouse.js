'use strict'
// The people side of the gateway's sparse_pointer rule, as far as this
// machine can measure it without people: a headful Debian Chromium on an
// X display (Xvfb), dragged by the X server's own pointer (xdrag.py: XTest
// motion events at a mouse's polling rate, on the wall clock), not by CDP.
// The browser receives these as it receives a real mouse's events on Linux;
// what slide.js posts of them (getCoalescedEvents) is what Chromium's
// pipeline makes of a real device, quiet or under load. The movement
// itself is a script's; only its sampling is at issue here.
//
//   DISPLAY=:99 node osmouse.js BASE_URL SESSIONS HZ SEED [--log CADDY_LOG] [--path ghost-cursor] [--drags FILE]
//
// --drags appends each posted drag to FILE as {"generator", "settings",
// "points"}, for bench/lab trajectory/judgetool dump (the judge alone).
//
// --path ghost-cursor moves along the npm ghost-cursor's path() from the
// handle to the slot, one point per motion event: the library driven
// through the display server (as xdotool bots do) instead of CDP. Its
// paths use Math.random, so SEED does not fix them.
//
// Prints one JSON line per session: the rate sent, the points posted, their
// median positive interval (ms), and the gateway's verdict and reasons.
const { spawnSync, execFileSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const puppeteer = require('puppeteer-core')
const { slotShare, judged } = require('./slide')

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const [base, sessions, hz, seed] = process.argv.slice(2, 6)
const logIdx = process.argv.indexOf('--log')
const logFile = logIdx > 0 ? process.argv[logIdx + 1] : null
const pathIdx = process.argv.indexOf('--path')
const pathKind = pathIdx > 0 ? process.argv[pathIdx + 1] : null
const dragsIdx = process.argv.indexOf('--drags')
const dragsFile = dragsIdx > 0 ? process.argv[dragsIdx + 1] : null
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function median (pts) {
  const gaps = []
  for (let i = 1; i < pts.length; i++) if (pts[i][2] > pts[i - 1][2]) gaps.push(pts[i][2] - pts[i - 1][2])
  if (gaps.length < 8) return null
  gaps.sort((a, b) => a - b)
  return gaps[Math.floor(gaps.length / 2)]
}

async function session (i) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advc-osmouse-'))
  const offset = logFile && fs.existsSync(logFile) ? fs.statSync(logFile).size : 0
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: false,
    defaultViewport: null,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--kiosk', '--window-position=0,0', '--window-size=1280,800', '--user-data-dir=' + dir]
  })
  const out = { hz: Number(hz), session: i }
  try {
    const page = (await browser.pages())[0] || await browser.newPage()
    let posted = null
    let reply = null
    page.on('request', r => { if (r.method() === 'POST' && r.url().endsWith('/.advcaptcha/slide')) posted = r.postData() })
    page.on('response', r => { if (r.request().method() === 'POST' && r.url().endsWith('/.advcaptcha/slide')) reply = r.status() })
    await page.goto(base + '/?os=' + seed + '-' + i, { waitUntil: 'load' })
    const handle = await page.$('#advc-slider-handle')
    if (!handle) { out.outcome = 'no-slide'; return out }
    // Where page coordinates are on the screen: move the X pointer once and
    // read the event the page got.
    await page.evaluate(() => { window.__off = null; addEventListener('mousemove', e => { window.__off = [e.screenX - e.clientX, e.screenY - e.clientY] }, { once: true }) })
    execFileSync('xdotool', ['mousemove', '300', '300'])
    await sleep(200)
    const off = await page.evaluate(() => window.__off) || [0, 0]
    const hb = await handle.boundingBox()
    const tb = await (await page.$('#advc-slider-track')).boundingBox()
    const share = await slotShare(page)
    await sleep(900)
    const dur = 700 + ((Number(seed) * 7919 + i * 104729) % 600)
    const x0 = off[0] + hb.x + hb.width / 2
    const y0 = off[1] + hb.y + hb.height / 2
    const dist = share * (tb.width - hb.width)
    const args = [path.join(__dirname, 'xdrag.py'), x0, y0, dist, dur, hz, Number(seed) * 1000 + i]
    if (pathKind === 'ghost-cursor') {
      const pts = require('ghost-cursor').path({ x: 0, y: 0 }, { x: dist, y: 0 }).map(p => [p.x, p.y])
      const file = path.join(dir, 'path.json')
      fs.writeFileSync(file, JSON.stringify(pts))
      args.push(file)
      out.path = 'ghost-cursor'
    }
    const r = spawnSync('/usr/bin/python3', args)
    if (r.status !== 0) { out.outcome = 'xdrag failed: ' + String(r.stderr).slice(0, 200); return out }
    for (let k = 0; k < 50 && reply === null; k++) await sleep(100)
    const body = posted ? JSON.parse(posted) : null
    out.outcome = reply === 200 ? 'passed' : reply === null ? 'no-reply' : 'status ' + reply
    if (body) {
      out.points = body.points.length
      out.median = median(body.points)
      out.pointer = body.pointer && body.pointer.type
      if (dragsFile) fs.appendFileSync(dragsFile, JSON.stringify({ generator: 'osmouse-' + (pathKind || 'minjerk'), settings: { hz: Number(hz), seed: Number(seed), i }, points: body.points }) + '\n')
    }
    Object.assign(out, judged(logFile, offset) || {})
    return out
  } finally {
    await browser.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

;(async () => {
  for (let i = 0; i < Number(sessions); i++) console.log(JSON.stringify(await session(i)))
})().catch(e => { console.error(e); process.exit(1) })
