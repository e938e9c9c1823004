#!/usr/bin/env node
// Summarises drive.js output (JSON lines) as a Markdown matrix:
//   node summarize.js out/after-default.jsonl [more.jsonl ...]
// A session counts as refused when the slide did not clear it (a 403
// "refused as automated", or sent on to the captcha); "certain" is the
// first kind. Reasons that riskscore.JudgeFingerprint did not produce
// (trajectory, pressure, clocks, replay, labels) are shown apart.
'use strict'
const fs = require('fs')

// The findings riskscore.JudgeFingerprint produces; every other reason
// comes from the trajectory, pressure, clocks, replay or labels.
const fingerprintNames = new Set(['webdriver', 'ua_contradiction', 'headless', 'worker_contradiction',
  'worker_gpu_contradiction', 'frame_contradiction', 'notification_inconsistent', 'native_lie', 'patched_instance',
  'webdriver_deleted', 'engine_contradiction', 'runtime_enable', 'codec_contradiction', 'uach_contradiction',
  'stale_grease_brand', 'uach_incomplete', 'platform_contradiction', 'chromium_as_chrome', 'platform_fonts',
  'software_gpu', 'gpu_contradiction', 'stealth_webgl', 'gpu_vendor_contradiction', 'no_pointer_device',
  'screen_media_contradiction', 'impossible_screen', 'no_languages', 'no_plugins', 'no_window_chrome'])
const notFingerprint = { has: (x) => !fingerprintNames.has(x) }

// Older drive.js lines: a lost body left "error:200" (a cleared slide,
// the only 200) and "error:403" (the captcha).
const fix = (r) => {
  if (r.outcome === 'error:200') { r.outcome = 'passed'; r.refused = false }
  if (r.outcome === 'error:403') { r.outcome = 'captcha'; r.refused = true }
  return r
}
const rows = []
for (const f of (process.argv[2] === '--compare' ? [] : process.argv.slice(2))) {
  for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim()) continue
    try { rows.push(fix(JSON.parse(line))) } catch (e) {}
  }
}
const stealth = rows.filter(r => r.config !== 'plain')
const judged = (r) => r.outcome === 'passed' || r.outcome === 'refused' || r.outcome === 'captcha'
const refused = (r) => r.refused === true
const fmt = (xs) => xs.length ? [...new Set(xs)].join(', ') : '—'
if (process.argv[2] !== '--compare') {
console.log('| profile | configuration | verdict | score | fingerprint reasons | other reasons |')
console.log('|---|---|---|---|---|---|')
for (const r of rows) {
  const reasons = r.reasons || []
  const fp = reasons.filter(x => !notFingerprint.has(x))
  const other = reasons.filter(x => notFingerprint.has(x))
  const verdict = !judged(r) ? r.outcome : (r.certain ? 'refused (certain)' : refused(r) ? 'refused (captcha)' : 'PASSED')
  console.log(`| ${r.profile || ''} | ${r.config} | ${verdict} | ${r.score == null ? '' : Math.round(r.score)} | ${fmt(fp)} | ${fmt(other)} |`)
}
const sj = stealth.filter(judged)
const sr = sj.filter(refused)
const sc = sj.filter(r => r.certain)
// Refused on the fingerprint alone: every fingerprint finding is worth at
// least 20 points, the most a slide may score and still clear.
const byFp = sj.filter(r => (r.reasons || []).some(x => !notFingerprint.has(x)))
console.log('')
console.log(`stealth sessions refused: ${sr.length}/${sj.length} (certain: ${sc.length}/${sj.length}; on the fingerprint alone: ${byFp.length}/${sj.length})` +
  (stealth.length !== sj.length ? `; ${stealth.length - sj.length} sessions without a verdict (errors) not counted` : ''))
}

// --compare BEFORE.jsonl AFTER.jsonl: one row per (profile, configuration)
// with both verdicts and their fingerprint reasons.
if (process.argv[2] === '--compare') {
  const load = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map(l => { try { return fix(JSON.parse(l)) } catch (e) { return null } }).filter(Boolean)
  const key = (r) => (r.profile || '') + '|' + r.config
  const before = new Map(load(process.argv[3]).map(r => [key(r), r]))
  const v = (r) => !r ? 'not run' : !judged(r) ? r.outcome : r.certain ? 'refused (certain)' : refused(r) ? 'refused (captcha)' : 'PASSED'
  const fpr = (r) => r ? fmt((r.reasons || []).filter(x => !notFingerprint.has(x))) : ''
  console.log('| profile | configuration | before | before: fingerprint reasons | after | after: fingerprint reasons |')
  console.log('|---|---|---|---|---|---|')
  for (const r of load(process.argv[4])) {
    const b = before.get(key(r))
    console.log(`| ${r.profile} | ${r.config} | ${v(b)} | ${fpr(b)} | ${v(r)} | ${fpr(r)} |`)
  }
}
