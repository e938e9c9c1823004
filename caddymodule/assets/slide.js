// advcaptcha slide check: records the drag and a browser fingerprint and
// posts them once. Served from /.advcaptcha/slide.js; no dependencies.
(function () {
  "use strict";
  var root = document.getElementById("advc-slide");
  if (!root) return;
  var track = document.getElementById("advc-slider-track");
  var handle = document.getElementById("advc-slider-handle");
  var fill = document.getElementById("advc-slider-fill");
  var status = document.getElementById("advc-status");
  var cfg = { nonce: root.getAttribute("data-nonce"), post: root.getAttribute("data-post"), ret: root.getAttribute("data-return") };
  var pts = [], pressures = [], ptype = "", down = null, wall0 = 0, dx = 0, done = false;

  function maxX() { return track.clientWidth - handle.offsetWidth; }
  function place(x) {
    dx = Math.max(0, Math.min(maxX(), x));
    handle.style.transform = "translateX(" + dx + "px)";
    fill.style.width = (dx + handle.offsetWidth / 2) + "px";
    handle.setAttribute("aria-valuenow", String(Math.round(100 * dx / Math.max(1, maxX()))));
  }
  function say(msg) { status.textContent = msg; }

  // Facts gathered before the slide ends: what a Worker sees (spoofing
  // tools often patch the page's navigator only), a canvas hash, and the
  // two views of the notification permission (inconsistent in headless).
  var extra = {};
  try {
    var src = "postMessage({ua:navigator.userAgent,platform:navigator.platform,cores:navigator.hardwareConcurrency||0," +
      "memory:navigator.deviceMemory||0,languages:navigator.languages?Array.prototype.slice.call(navigator.languages):[]})";
    var wk = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })));
    wk.onmessage = function (e) { extra.worker = e.data; wk.terminate(); };
  } catch (e) { extra.worker = null; }
  try {
    var cv = document.createElement("canvas"); cv.width = 220; cv.height = 30;
    var cx = cv.getContext("2d");
    cx.textBaseline = "top"; cx.font = "16px Arial"; cx.fillStyle = "#f60"; cx.fillRect(100, 1, 62, 20);
    cx.fillStyle = "#069"; cx.fillText("advcaptcha \u2603 0.1", 2, 8);
    var d = cv.toDataURL(), h = 2166136261;
    for (var i = 0; i < d.length; i++) { h ^= d.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    extra.canvas = h.toString(16);
  } catch (e) { extra.canvas = ""; }
  try {
    extra.notification = typeof Notification === "function" ? Notification.permission : "";
    if (navigator.permissions) navigator.permissions.query({ name: "notifications" }).then(function (p) { extra.notificationQuery = p.state; });
  } catch (e) { /* no permissions API */ }

  function fingerprint() {
    var n = navigator, s = screen, o = {
      webdriver: !!n.webdriver, ua: n.userAgent, platform: n.platform || "",
      languages: n.languages ? Array.prototype.slice.call(n.languages) : [],
      cores: n.hardwareConcurrency || 0, memory: n.deviceMemory || 0,
      screen: [s.width, s.height, s.availWidth, s.availHeight, s.colorDepth],
      window: [innerWidth, innerHeight, outerWidth, outerHeight],
      timezone: (Intl.DateTimeFormat().resolvedOptions().timeZone || ""),
      plugins: n.plugins ? n.plugins.length : 0, mimeTypes: n.mimeTypes ? n.mimeTypes.length : 0,
      touch: n.maxTouchPoints || 0, chrome: typeof window.chrome === "object"
    };
    if (n.userAgentData) {
      o.uaData = { brands: n.userAgentData.brands.map(function (b) { return b.brand + "/" + b.version; }),
        mobile: !!n.userAgentData.mobile, platform: n.userAgentData.platform || "" };
    }
    try {
      var gl = document.createElement("canvas").getContext("webgl");
      if (gl) {
        var d = gl.getExtension("WEBGL_debug_renderer_info");
        o.glVendor = String(gl.getParameter(d ? d.UNMASKED_VENDOR_WEBGL : gl.VENDOR));
        o.glRenderer = String(gl.getParameter(d ? d.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      }
    } catch (e) { /* no WebGL */ }
    o.worker = extra.worker || null;
    o.canvas = extra.canvas || "";
    o.notification = extra.notification || "";
    o.notificationQuery = extra.notificationQuery || "";
    return o;
  }

  function submit(kind) {
    if (done) return;
    done = true;
    say(root.getAttribute("data-checking"));
    var body = { nonce: cfg.nonce, points: pts, pointer: { type: kind || ptype, pressures: pressures.slice(0, 64) },
      wall_ms: performance.now() - wall0, fingerprint: fingerprint() };
    fetch(cfg.post, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        if (j.ok) { location.replace(j["return"] || "/"); return; }
        if (j.next) { location.replace(j.next); return; }
        say(root.getAttribute("data-refused"));
      })
      .catch(function () { say(root.getAttribute("data-network")); });
  }

  handle.addEventListener("pointerdown", function (e) {
    if (done) return;
    e.preventDefault();
    handle.setPointerCapture(e.pointerId);
    down = { x: e.clientX, y: e.clientY, t: e.timeStamp };
    wall0 = performance.now();
    ptype = e.pointerType;
    pts = [[0, 0, 0]];
    pressures = [e.pressure];
  });
  handle.addEventListener("pointermove", function (e) {
    if (!down) return;
    var evs = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    if (!evs.length) evs = [e];
    for (var i = 0; i < evs.length; i++) {
      var v = evs[i], t = Math.max(pts[pts.length - 1][2], v.timeStamp - down.t);
      pts.push([v.clientX - down.x, v.clientY - down.y, t]);
      if (pressures.length < 64) pressures.push(v.pressure);
    }
    if (pts.length > 4000) pts.length = 4000;
    place(e.clientX - down.x);
  });
  function release(e) {
    if (!down) return;
    var t = Math.max(pts[pts.length - 1][2], e.timeStamp - down.t);
    pts.push([e.clientX - down.x, e.clientY - down.y, t]);
    down = null;
    if (dx >= maxX() - 2) { submit(); } else { place(0); say(root.getAttribute("data-again")); }
  }
  handle.addEventListener("pointerup", release);
  handle.addEventListener("pointercancel", function () { down = null; place(0); });

  // Keyboard path: arrows or End move the handle; its slides are judged
  // more strictly on the server (they go on to the text captcha).
  handle.addEventListener("keydown", function (e) {
    if (done) return;
    var step = maxX() / 10;
    if (e.key === "ArrowRight" || e.key === "Right") place(dx + step);
    else if (e.key === "End") place(maxX());
    else if (e.key === "ArrowLeft" || e.key === "Left") place(dx - step);
    else if (e.key === "Home") place(0);
    else return;
    e.preventDefault();
    if (!pts.length || !wall0) { wall0 = performance.now(); pts = [[0, 0, 0]]; }
    pts.push([dx, 0, performance.now() - wall0]);
    if (dx >= maxX() - 1) submit("keyboard");
  });
})();
