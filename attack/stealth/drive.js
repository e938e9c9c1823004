#!/usr/bin/env node
// Drives the advcaptcha slide page of a running gateway with Debian's
// headless Chromium through puppeteer-core, plain or patched by
// puppeteer-extra-plugin-stealth (all evasions, or any subset), performs
// one drag per session (--drag) and prints one JSON line per
// session with the gateway's verdict (and, given --log, the reasons from
// the gateway's "slide judged" log line).
//
//   node drive.js BASE_URL [--config NAME]... [--sessions N] [--log FILE] [--seed S] [--careful] [--fingerprint] [--drag KIND] [--drags FILE]
//
// Configurations (--config, repeatable; default "stealth-all"):
//   plain            puppeteer-core, no plugin
//   stealth-all      every evasion the plugin enables by default
//   without:NAME     all but one evasion
//   only:NAME        one evasion alone
//   set:A+B+C        exactly these evasions
//   random:K         K evasions drawn at random (seeded by --seed)
//   matrix           plain, stealth-all, every without:, every only:, 6 random subsets
//
// --careful: what a careful attacker adds to the plugin: a normal
// (non-headless) UA for the whole browser on --user-agent, the Windows
// mask off (maskLinux false) and the machine's real core count.
// --paranoid: --careful, and webgl.vendor set to a Linux GPU's strings.
// --fingerprint: print the fingerprint the page posted.
// --driver playwright: playwright-core / playwright-extra instead of
// puppeteer-core / puppeteer-extra (same plugin, same evasions).
// --drag KIND: what moves the handle — eased (default: the drive's own
// minimum-jerk drag), ghost-cursor (the npm library, its defaults),
// windmouse (the npm package), human (a held-out person's recorded drag
// from ../shared/data, scaled to the slot, at its recorded times).
// --drags FILE: append each drag as the page posted it (JSON lines with
// "points"), to be judged alone: bench/lab trajectory/judgetool dump FILE.
//
// One browser at a time; every session a fresh user-data-dir.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const { rng, ghostCursorPlan, windMousePlan, nearestDrag } = require('./dragplans')
const { slotShare, judged } = require('./slide')

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run']

function stealthEvasions () {
  return [...require('puppeteer-extra-plugin-stealth')().enabledEvasions].sort()
}

function expand (configs, seed) {
  const all = stealthEvasions()
  const rand = rng(seed)
  const out = []
  const pick = (k) => {
    const xs = all.slice()
    for (let i = xs.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [xs[i], xs[j]] = [xs[j], xs[i]] }
    return xs.slice(0, k).sort()
  }
  for (const c of configs) {
    if (c === 'matrix') {
      out.push({ name: 'plain', evasions: null }, { name: 'stealth-all', evasions: all })
      for (const e of all) out.push({ name: 'without:' + e, evasions: all.filter(x => x !== e) })
      for (const e of all) out.push({ name: 'only:' + e, evasions: [e] })
      for (let i = 0; i < 6; i++) {
        const k = 2 + Math.floor(rand() * (all.length - 3))
        const s = pick(k)
        out.push({ name: 'random:' + k + ':' + s.join('+'), evasions: s })
      }
    } else if (c === 'plain') out.push({ name: c, evasions: null })
    else if (c === 'stealth-all') out.push({ name: c, evasions: all })
    else if (c.startsWith('without:')) out.push({ name: c, evasions: all.filter(x => x !== c.slice(8)) })
    else if (c.startsWith('only:')) out.push({ name: c, evasions: [c.slice(5)] })
    else if (c.startsWith('set:')) out.push({ name: c, evasions: c.slice(4).split('+').filter(Boolean) })
    else if (c.startsWith('random:')) {
      const s = pick(Number(c.slice(7)))
      out.push({ name: 'random:' + s.length + ':' + s.join('+'), evasions: s })
    } else throw new Error('unknown config ' + c)
  }
  return out
}

// A normal desktop Chrome UA of the installed major version, on the
// machine's real platform (Linux), for --careful.
function normalUA () {
  const v = require('child_process').execFileSync(CHROMIUM, ['--version']).toString()
  const major = (v.match(/ (\d+)\./) || [])[1] || '131'
  return 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/' + major + '.0.0.0 Safari/537.36'
}

// --paranoid: careful, and the WebGL evasion told to report a GPU a Linux
// Chrome really has instead of its macOS default.
const PARANOID_GL = { vendor: 'Google Inc. (Intel)', renderer: 'ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL 4.6)' }

function puppeteerFor (evasions, careful) {
  if (evasions === null) return require('puppeteer-core')
  // A fresh puppeteer-extra instance per session, so that plugins of one
  // configuration never leak into the next.
  const { addExtra } = require('puppeteer-extra')
  const pptr = addExtra(require('puppeteer-core'))
  if (careful) {
    // The careful attacker's settings: no Windows mask over a Linux
    // machine, the machine's own core count.
    const ev = (n, o) => { if (evasions.includes(n)) pptr.use(require('puppeteer-extra-plugin-stealth/evasions/' + n)(o)) }
    ev('user-agent-override', { maskLinux: false })
    ev('navigator.hardwareConcurrency', { hardwareConcurrency: os.cpus().length })
    if (careful === 'paranoid') ev('webgl.vendor', PARANOID_GL)
  }
  const stealth = require('puppeteer-extra-plugin-stealth')()
  for (const e of [...stealth.enabledEvasions]) if (!evasions.includes(e)) stealth.enabledEvasions.delete(e)
  pptr.use(stealth)
  return pptr
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

// What a drag sent, relative to the press (x, y, ms since it), next to
// what the page recorded: the difference is Chromium's (and this loaded
// machine's) doing.
function recorder () {
  let x0 = 0; let y0 = 0; let t0 = 0
  const sent = []
  return {
    sent,
    press (x, y) { x0 = x; y0 = y; t0 = Date.now(); sent.push([0, 0, 0]) },
    move (x, y) { if (sent.length) sent.push([x - x0, y - y0, Date.now() - t0]) }
  }
}

// Raw CDP mouse events, recorded by rec, with a pressure while the button
// is held (force 0.5, as a real mouse reports; a careful attacker sets it).
function cdpMouse (client, rec) {
  return (type, x, y, held) => {
    if (type === 'mousePressed') rec.press(x, y); else rec.move(x, y)
    return client.send('Input.dispatchMouseEvent', {
      type, x, y, button: (type === 'mouseMoved' && !held) ? 'none' : 'left', buttons: held ? 1 : 0,
      clickCount: type === 'mouseMoved' ? 0 : 1, force: held || type === 'mousePressed' ? 0.5 : 0, pointerType: 'mouse'
    })
  }
}

// Where the drag starts and how far it must go: the handle's centre (a few
// pixels off), and the slot's place read from the ticket's image (the
// darkest pixels' mean column), as any script can.
async function aim (page, rand) {
  const handle = await page.$('#advc-slider-handle')
  const track = await page.$('#advc-slider-track')
  const hb = await handle.boundingBox()
  const tb = await track.boundingBox()
  const x0 = hb.x + hb.width / 2 + (rand() - 0.5) * 10
  const y0 = hb.y + hb.height / 2 + (rand() - 0.5) * 10
  const share = await slotShare(page)
  return { x0, y0, dist: share * (tb.width - hb.width) + (rand() - 0.5) * 8 }
}

// The drag kinds (--drag). Each returns what it did (its settings), for
// the --drags file, and what it sent.
const DRAGS = { eased: dragEased, 'ghost-cursor': dragGhostCursor, 'ghost-cursor-playwright': dragGhostCursorPlaywright, windmouse: dragWindMouse, human: dragHuman }

// A human-like eased drag, sent as raw CDP mouse events with a pressure
// (force 0.5, as a real mouse reports while its button is held; a careful
// attacker sets it): minimum-jerk profile, a little vertical drift,
// ~60-120 Hz moves. The fingerprint is what the stealth drive studies, so
// the drag avoids the trajectory judge's findings as far as it can.
async function dragEased (page, rand) {
  const client = page.target ? await page.target().createCDPSession() : await page.context().newCDPSession(page)
  const { x0, y0, dist } = await aim(page, rand)
  const rec = recorder()
  const mouse = cdpMouse(client, rec)
  const xs = x0 - 40 - rand() * 60; const ys = y0 + 30 + rand() * 40
  for (let i = 0; i <= 8; i++) {
    const s = i / 8
    await mouse('mouseMoved', xs + (x0 - xs) * s, ys + (y0 - ys) * s, false)
    await sleep(12 + rand() * 10)
  }
  await sleep(120 + rand() * 200)
  await mouse('mousePressed', x0, y0, true)
  await sleep(60 + rand() * 90)
  // Every session its own shape (so the gateway's replay detection does
  // not link them): a primary sub-movement that stops short or overshoots,
  // a pause, a correction; a vertical path of two random components.
  const T1 = 450 + rand() * 800
  const T2 = 120 + rand() * 250
  const pause = rand() * 140
  const f1 = 0.82 + rand() * 0.24
  const skew = 0.7 + rand() * 0.7
  const a = (rand() - 0.5) * 40; const b = (rand() - 0.5) * 20; const phi = rand() * 6.28
  const mj = (u) => 10 * u ** 3 - 15 * u ** 4 + 6 * u ** 5
  const yAt = (m) => a * Math.sin(Math.PI * Math.min(1, m)) + b * Math.sin(2 * Math.PI * Math.min(1, m) + phi) - b * Math.sin(phi) * (1 - Math.min(1, m))
  const run = async (from, to, T, skw) => {
    const t0 = Date.now()
    for (;;) {
      const t = Math.min(1, (Date.now() - t0) / T)
      const m = from + (to - from) * mj(t ** skw)
      await mouse('mouseMoved', x0 + dist * m, y0 + yAt(m), true)
      if (t >= 1) break
      await sleep(6 + rand() * 8)
    }
  }
  await run(0, f1, T1, skew)
  await sleep(pause)
  await run(f1, 1, T2, 1)
  await sleep(40 + rand() * 120)
  await mouse('mouseReleased', x0 + dist, y0, false)
  await client.detach().catch(() => {})
  return { settings: { T1: Math.round(T1), T2: Math.round(T2), f1 }, sent: rec.sent }
}

// The real ghost-cursor library's path() to the slot (its defaults) and
// the npm windmouse package's points (its waits slept), each point sent
// by puppeteer's page.mouse.move with the button held. Ghost-cursor's own
// cursor.mouseDown/moveTo do not drag: its moves carry no button, and in
// our try the page saw the press, a few moves with no button held and no
// release, so nothing was posted; an attacker soon learns to send its path
// this way. Its Math.random is the drive's seeded one (main).
function dragGhostCursor (page, rand) { return dragPlanned(page, rand, ghostCursorPlan) }
function dragWindMouse (page, rand) { return dragPlanned(page, rand, windMousePlan) }

async function dragPlanned (page, rand, plan) {
  const { x0, y0, dist } = await aim(page, rand)
  const { points, waits, settings } = await plan(rand, x0, y0, dist)
  await page.mouse.move(x0, y0)
  await sleep(80 + rand() * 200)
  const rec = recorder()
  await page.mouse.down()
  rec.press(x0, y0)
  let at = { x: x0, y: y0 }
  for (let i = 0; i < points.length; i++) {
    if (waits) await sleep(waits[i])
    at = points[i]
    rec.move(at.x, at.y)
    await page.mouse.move(at.x, at.y)
  }
  if (!waits) await sleep(rand() * 120)
  rec.move(at.x, at.y)
  await page.mouse.up()
  return { settings: Object.assign({ n: points.length }, settings), sent: rec.sent }
}

// The npm ghost-cursor-playwright library (2.1.0, the older ghost-cursor
// path: a Bézier curve's points sent back to back, no waits), used the way
// its README suggests and a slider solver would: its cursor moves to the
// handle, playwright's page.mouse presses (playwright then sends the held
// button with every move), the cursor moves to the slot, the mouse is
// released. No training set has this library; a check of a tool the judge
// was never shown. Its Math.random is the drive's seeded one (main).
async function dragGhostCursorPlaywright (page, rand) {
  if (!page.context) throw new Error('--drag ghost-cursor-playwright drives playwright pages only (--driver playwright)')
  const { createCursor } = require('ghost-cursor-playwright')
  const { x0, y0, dist } = await aim(page, rand)
  const cursor = await createCursor(page, { debug: false })
  const rec = recorder()
  const move = page.mouse.move.bind(page.mouse)
  page.mouse.move = async (x, y, o) => { rec.move(x, y); return move(x, y, o) }
  try {
    await cursor.actions.move({ x: x0, y: y0 })
    await page.mouse.down()
    rec.press(x0, y0)
    await cursor.actions.move({ x: x0 + dist, y: y0 })
    await page.mouse.up()
  } finally {
    page.mouse.move = move
  }
  return { settings: { library: 'ghost-cursor-playwright@2.1.0' }, sent: rec.sent }
}

// A held-out person's recorded drag (../shared/data, the users
// bench/trajectory/split.js holds out of the judge's training), one of
// those nearest the slot's distance, scaled in x so that it ends on it,
// sent as CDP mouse events at its recorded times with a held button's
// pressure. Two readings: what Chromium's event pipeline (on this loaded
// machine) does to a person's drag, and the replay attack with a corpus
// the gateway has never seen.
async function dragHuman (page, rand) {
  const client = page.target ? await page.target().createCDPSession() : await page.context().newCDPSession(page)
  const { x0, y0, dist } = await aim(page, rand)
  const d = nearestDrag(dist, rand)
  const p = d.points
  const k = d.k
  const rec = recorder()
  const mouse = cdpMouse(client, rec)
  await mouse('mouseMoved', x0, y0, false)
  await sleep(80 + rand() * 200)
  await mouse('mousePressed', x0, y0, true)
  const t0 = Date.now()
  for (let i = 1; i < p.length; i++) {
    const [x, y, t] = p[i]
    const wait = t0 + t - Date.now()
    if (wait > 0) await sleep(wait)
    if (i === p.length - 1) await mouse('mouseReleased', x0 + x * k, y0 + y, false)
    else await mouse('mouseMoved', x0 + x * k, y0 + y, true)
  }
  await client.detach().catch(() => {})
  return { settings: { line: d.line, source: d.source, user: d.user, scale: k }, sent: rec.sent }
}

async function session (base, cfg, opts, rand) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advc-stealth-'))
  const offset = opts.log && fs.existsSync(opts.log) ? fs.statSync(opts.log).size : 0
  const pptr = opts.driver === 'playwright' ? null : puppeteerFor(cfg.evasions, opts.careful)
  const out = { config: cfg.name, profile: (opts.driver === 'playwright' ? 'playwright ' : '') + (opts.careful === 'paranoid' ? 'paranoid' : opts.careful ? 'careful' : 'default') }
  let browser
  try {
    // Every session its own window size, so that sessions are different
    // machines to the gateway's fingerprint id (a labelled fingerprint
    // would otherwise follow one session into the next).
    const w = 1100 + Math.floor(rand() * 600); const h = 700 + Math.floor(rand() * 300)
    const size = ['--window-size=' + w + ',' + (h - 80), '--screen-info={' + w + 'x' + h + '}']
    // --careful: a normal UA for every context (workers too) from the command line.
    if (opts.careful) size.push('--user-agent=' + normalUA())
    let page
    if (opts.driver === 'playwright') {
      // playwright-core (+ playwright-extra with the same stealth plugin);
      // playwright makes its own fresh profile and refuses --user-data-dir.
      const { chromium } = require('playwright-core')
      let launcher = chromium
      if (cfg.evasions !== null) {
        launcher = require('playwright-extra').addExtra(chromium)
        if (opts.careful) {
          const ev = (n, o) => { if (cfg.evasions.includes(n)) launcher.use(require('puppeteer-extra-plugin-stealth/evasions/' + n)(o)) }
          ev('user-agent-override', { maskLinux: false })
          ev('navigator.hardwareConcurrency', { hardwareConcurrency: os.cpus().length })
          if (opts.careful === 'paranoid') ev('webgl.vendor', PARANOID_GL)
        }
        const stealth = require('puppeteer-extra-plugin-stealth')()
        for (const e of [...stealth.enabledEvasions]) if (!cfg.evasions.includes(e)) stealth.enabledEvasions.delete(e)
        launcher.use(stealth)
      }
      browser = await launcher.launch({ executablePath: CHROMIUM, headless: true, args: ARGS.concat(size) })
      const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: null })
      page = await context.newPage()
    } else {
      browser = await pptr.launch({ executablePath: CHROMIUM, headless: true, acceptInsecureCerts: true, args: ARGS.concat(['--user-data-dir=' + dir], size) })
      // A new page: puppeteer-extra patches pages created after launch, not
      // the first tab.
      page = await browser.newPage()
    }
    const errors = []
    page.on('pageerror', e => errors.push(String(e && e.message || e).slice(0, 200)))
    page.on('console', m => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(m.text().slice(0, 200)) })
    let posted = null
    let reply = null
    page.on('request', r => { if (r.method() === 'POST' && r.url().endsWith('/.advcaptcha/slide')) posted = r.postData() })
    page.on('response', async r => {
      if (r.request().method() === 'POST' && r.url().endsWith('/.advcaptcha/slide')) {
        try { reply = { status: r.status(), body: await r.json() } } catch (e) { reply = { status: r.status() } }
      }
    })
    const res = await page.goto(base + '/?s=' + Math.floor(rand() * 1e9), { waitUntil: 'load' })
    out.status = res.status()
    if (!(await page.$('#advc-slider-handle'))) {
      out.outcome = 'no-slide'
      out.body = (await page.content()).slice(0, 200)
      return out
    }
    await sleep(900 + rand() * 600) // slide.js collects (Worker, iframe, permissions)
    const dragged = await DRAGS[opts.drag](page, rand)
    for (let i = 0; i < 50 && !reply; i++) await sleep(100)
    if (errors.length) out.pageErrors = errors
    if (!reply) { out.outcome = 'no-reply'; return out }
    // The body may be lost when the page navigates on (to the return
    // URL or the captcha) before it is read: the status still tells. Only
    // a cleared slide answers 200.
    const b = reply.body || {}
    const passed = b.ok || reply.status === 200
    out.outcome = passed ? 'passed' : (reply.status === 403 && b.error ? 'refused' : (b.next || reply.status === 403 ? 'captcha' : 'error:' + reply.status))
    out.refused = !passed
    Object.assign(out, judged(opts.log, offset) || {})
    if (opts.fingerprint && posted) { try { out.fingerprint = JSON.parse(posted).fingerprint } catch (e) {} }
    if (opts.drags && posted) {
      // The drag as the page posted it, for `judgetool dump` or `caddy
      // advcaptcha trajectories`: the judge alone, on what the browser made
      // of the drag.
      try {
        const b = JSON.parse(posted)
        fs.appendFileSync(opts.drags, JSON.stringify({ generator: opts.drag, config: cfg.name, settings: Object.assign({ drag: opts.drag }, dragged.settings), points: b.points, sent: dragged.sent }) + '\n')
      } catch (e) {}
    }
    return out
  } catch (e) {
    out.outcome = 'error'
    out.error = String(e && e.message || e).slice(0, 300)
    return out
  } finally {
    if (browser) await browser.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function main () {
  const argv = process.argv.slice(2)
  const opts = { configs: [], sessions: 1, log: null, seed: 1, fingerprint: false, drag: 'eased', drags: null }
  let base = null
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--config') opts.configs.push(argv[++i])
    else if (a === '--sessions') opts.sessions = Number(argv[++i])
    else if (a === '--log') opts.log = argv[++i]
    else if (a === '--seed') opts.seed = Number(argv[++i])
    else if (a === '--fingerprint') opts.fingerprint = true
    else if (a === '--careful') opts.careful = true
    else if (a === '--paranoid') opts.careful = 'paranoid'
    else if (a === '--driver') opts.driver = argv[++i]
    else if (a === '--drag') opts.drag = argv[++i]
    else if (a === '--drags') opts.drags = argv[++i]
    else if (a === '--list') { console.log(stealthEvasions().join('\n')); return }
    else if (!base) base = a.replace(/\/$/, '')
    else throw new Error('unexpected argument ' + a)
  }
  if (!base) throw new Error('usage: node drive.js BASE_URL [--config NAME]... [--sessions N] [--log FILE] [--seed S] [--fingerprint] [--careful|--paranoid] [--driver puppeteer|playwright]')
  if (!opts.configs.length) opts.configs.push('stealth-all')
  if (!DRAGS[opts.drag]) throw new Error('--drag: one of ' + Object.keys(DRAGS).join(', '))
  if (opts.drag === 'ghost-cursor' && opts.driver === 'playwright') throw new Error('--drag ghost-cursor drives puppeteer pages only')
  const rand = rng(opts.seed * 7919 + 17)
  // ghost-cursor draws from Math.random: seeded too, so a run repeats.
  Math.random = rng(opts.seed * 104729 + 3)
  for (const cfg of expand(opts.configs, opts.seed)) {
    for (let i = 0; i < opts.sessions; i++) console.log(JSON.stringify(await session(base, cfg, opts, rand)))
  }
}

main().catch(e => { console.error(e); process.exit(1) })
