'use strict'
// What the attack scripts read of the slide they drive: where the ticket's
// slot is (from the page) and what the gateway made of the drag (from its
// log).
const fs = require('fs')

// Where the slide ticket's slot is, read from its image as any script can:
// the mean column of the darkest opaque pixels, as a share of the image's
// width (1, the end of the track, when there is no image or no slot).
function slotShare (page) {
  return page.evaluate(async () => {
    const img = document.getElementById('advc-slider-target')
    if (!img) return 1
    if (!img.complete) await new Promise(resolve => { img.onload = img.onerror = resolve })
    const c = document.createElement('canvas')
    c.width = img.naturalWidth; c.height = img.naturalHeight
    const g = c.getContext('2d')
    g.drawImage(img, 0, 0)
    const d = g.getImageData(0, 0, c.width, c.height).data
    let sum = 0; let n = 0
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255 && d[i] < 0x50) { sum += (i / 4) % c.width; n++ }
    return n ? (sum / n + 0.5) / c.width : 1
  })
}

// The newest "slide judged" line of the gateway's JSON log written since
// offset.
function judged (logFile, offset) {
  if (!logFile) return null
  let text
  try {
    const fd = fs.openSync(logFile, 'r')
    const size = fs.fstatSync(fd).size
    const buf = Buffer.alloc(Math.max(0, size - offset))
    fs.readSync(fd, buf, 0, buf.length, offset)
    fs.closeSync(fd)
    text = buf.toString('utf8')
  } catch (e) { return null }
  let last = null
  for (const line of text.split('\n')) {
    if (!line.includes('"slide judged"')) continue
    try { last = JSON.parse(line) } catch (e) {}
  }
  return last && { score: last.score, certain: last.certain, reasons: last.reasons }
}

module.exports = { slotShare, judged }
