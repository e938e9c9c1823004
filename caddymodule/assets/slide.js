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

  // Facts gathered before the slide ends. Spoofing tools patch the page's
  // own objects with JavaScript, so the page reports (a) what other
  // realms see — a Worker and a fresh iframe — for the server to compare,
  // (b) which browser functions are not plain native ones, and (c) the
  // traces the patching leaves on objects. riskscore.JudgeFingerprint
  // judges all of it; every field is optional there.
  var extra = {};
  function list(x) { return x ? Array.prototype.slice.call(x) : []; }
  function brands(d) {
    return d && d.brands ? d.brands.map(function (b) { return b.brand + "/" + b.version; }) : undefined;
  }
  try {
    // The worker reports the same facts as the page, a WebGL renderer
    // from an OffscreenCanvas, and its own view of the notification
    // permission; it answers once, after at most 400 ms.
    var src = "(" + function () {
      var n = navigator, o = { ua: n.userAgent, platform: n.platform, cores: n.hardwareConcurrency || 0,
        memory: n.deviceMemory || 0, languages: n.languages ? Array.prototype.slice.call(n.languages) : [] };
      try { o.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* no Intl */ }
      if (n.userAgentData) {
        o.uaData = { brands: n.userAgentData.brands.map(function (b) { return b.brand + "/" + b.version; }),
          mobile: !!n.userAgentData.mobile, platform: n.userAgentData.platform || "" };
      }
      try {
        var gl = new OffscreenCanvas(8, 8).getContext("webgl"), d = gl && gl.getExtension("WEBGL_debug_renderer_info");
        if (d) { o.glVendor = String(gl.getParameter(d.UNMASKED_VENDOR_WEBGL)); o.glRenderer = String(gl.getParameter(d.UNMASKED_RENDERER_WEBGL)); }
      } catch (e) { /* no OffscreenCanvas WebGL */ }
      var sent = false;
      function send() { if (!sent) { sent = true; postMessage(o); } }
      try {
        n.permissions.query({ name: "notifications" }).then(function (p) { o.notificationQuery = p.state; send(); }, send);
      } catch (e) { send(); }
      setTimeout(send, 400);
    } + ")()";
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
    // Fonts every installation of a platform has: a page claiming that
    // platform without them runs elsewhere.
    var base = ["monospace", "serif", "sans-serif"], widths = {}, probe = "mmmmmmmmmmlli WQ@#1";
    base.forEach(function (b) { cx.font = "40px " + b; widths[b] = cx.measureText(probe).width; });
    extra.fonts = ["Segoe UI", "Tahoma", "Helvetica Neue", "Menlo", "Roboto", "DejaVu Sans", "Liberation Sans", "Noto Sans"].filter(function (f) {
      return base.some(function (b) { cx.font = "40px \"" + f + "\", " + b; return cx.measureText(probe).width !== widths[b]; });
    });
  } catch (e) { extra.canvas = ""; }
  try {
    extra.notification = typeof Notification === "function" ? Notification.permission : "";
    if (navigator.permissions) {
      navigator.permissions.query({ name: "notifications" }).then(function (p) {
        extra.notificationQuery = p.state;
        // A PermissionStatus keeps its state on the prototype.
        if (Object.getOwnPropertyNames(p).length) (extra.own = extra.own || []).push("PermissionStatus:" + Object.getOwnPropertyNames(p).join("+"));
      });
    }
  } catch (e) { /* no permissions API */ }
  try {
    if (navigator.userAgentData && navigator.userAgentData.getHighEntropyValues) {
      navigator.userAgentData.getHighEntropyValues(["architecture", "bitness", "model", "platformVersion", "fullVersionList", "wow64"]).then(function (v) {
        extra.uaHigh = { architecture: v.architecture || "", bitness: v.bitness || "", model: v.model || "",
          platformVersion: v.platformVersion || "", fullVersionList: brands({ brands: v.fullVersionList }) || [] };
      });
    }
  } catch (e) { /* no client hints */ }
  // CDP's Runtime.enable (every puppeteer and playwright page) makes the
  // console serialise logged errors, reading their stack.
  try {
    var probeErr = new Error(""), cdp = false;
    Object.defineProperty(probeErr, "stack", { configurable: true, get: function () { cdp = true; return ""; } });
    console.debug(probeErr);
    extra.cdp = cdp;
  } catch (e) { /* no console */ }

  // native reports whether fn is a browser's own function, untouched: its
  // source reads [native code], and it is not a Proxy (a Proxy's
  // prototype chain can be made to loop through itself, which V8 and
  // SpiderMonkey refuse for ordinary functions with "cyclic __proto__").
  function native(fn, realmToString) {
    if (typeof fn !== "function") return true;
    var str;
    try { str = Function.prototype.toString.call(fn); } catch (e) { return false; }
    if (!/\{\s*\[native code\]\s*\}\s*$/.test(str)) return false;
    if (realmToString) {
      // Another realm's untouched toString sees a Proxy for what it is.
      try { if (realmToString.call(fn) !== str) return false; } catch (e) { return false; }
    }
    var proto = Object.getPrototypeOf(fn), ok = false;
    try { Object.setPrototypeOf(fn, Object.create(fn)); } catch (e) { ok = e instanceof TypeError; }
    try { Object.setPrototypeOf(fn, proto); } catch (e) { ok = false; }
    return ok;
  }
  function getter(o, k) { var d = o && Object.getOwnPropertyDescriptor(o, k); return d && d.get; }
  function lies(realmToString) {
    var out = [], w = window, N = w.Navigator && Navigator.prototype, S = w.Screen && Screen.prototype;
    var checks = { "Function.toString": Function.prototype.toString };
    ["userAgent", "platform", "languages", "language", "hardwareConcurrency", "deviceMemory", "webdriver", "vendor",
      "plugins", "mimeTypes", "maxTouchPoints", "userAgentData"].forEach(function (k) { checks["navigator." + k] = getter(N, k); });
    ["width", "height", "availWidth", "availHeight", "colorDepth"].forEach(function (k) { checks["screen." + k] = getter(S, k); });
    checks["window.devicePixelRatio"] = getter(w, "devicePixelRatio");
    checks["window.outerWidth"] = getter(w, "outerWidth");
    checks["window.outerHeight"] = getter(w, "outerHeight");
    if (w.WebGLRenderingContext) checks["WebGL.getParameter"] = WebGLRenderingContext.prototype.getParameter;
    if (w.WebGL2RenderingContext) checks["WebGL2.getParameter"] = WebGL2RenderingContext.prototype.getParameter;
    if (w.Permissions) checks["permissions.query"] = Permissions.prototype.query;
    if (w.Notification) checks["Notification.permission"] = getter(Notification, "permission");
    if (w.HTMLMediaElement) checks["canPlayType"] = HTMLMediaElement.prototype.canPlayType;
    checks["document.createElement"] = document.createElement;
    checks["canvas.toDataURL"] = HTMLCanvasElement.prototype.toDataURL;
    checks["canvas.getContext"] = HTMLCanvasElement.prototype.getContext;
    if (w.CanvasRenderingContext2D) checks["canvas2d.getImageData"] = CanvasRenderingContext2D.prototype.getImageData;
    checks["Date.getTimezoneOffset"] = Date.prototype.getTimezoneOffset;
    checks["Intl.resolvedOptions"] = Intl.DateTimeFormat.prototype.resolvedOptions;
    if (w.MediaDevices) checks["mediaDevices.enumerateDevices"] = MediaDevices.prototype.enumerateDevices;
    if (w.chrome && typeof w.chrome === "object") {
      ["csi", "loadTimes"].forEach(function (k) { checks["chrome." + k] = w.chrome[k]; });
      if (w.chrome.runtime) { checks["chrome.runtime.sendMessage"] = w.chrome.runtime.sendMessage; checks["chrome.runtime.connect"] = w.chrome.runtime.connect; }
    }
    for (var k in checks) if (checks[k] && !native(checks[k], realmToString)) out.push(k);
    return out;
  }
  // Traces of patching on the objects themselves: browsers keep these
  // properties on prototypes, never on the instances.
  function own() {
    var out = extra.own ? extra.own.slice() : [];
    var nav = Object.getOwnPropertyNames(navigator).filter(function (k) { return k !== "brave"; }); // Brave's own marker
    if (nav.length) out.push("navigator:" + nav.slice(0, 8).join("+"));
    if (Object.prototype.hasOwnProperty.call(document, "createElement")) out.push("document.createElement");
    try {
      var fr = document.createElement("iframe"), names = Object.getOwnPropertyNames(fr);
      if (names.length) out.push("iframe:" + names.slice(0, 8).join("+"));
    } catch (e) { /* no iframes */ }
    ["outerWidth", "outerHeight", "innerWidth", "devicePixelRatio", "screen"].forEach(function (k) {
      var d = Object.getOwnPropertyDescriptor(window, k);
      if (d && !d.get) out.push("window." + k); // [Replaceable] accessors someone assigned to
    });
    return out;
  }
  function media() {
    var s = screen, m = function (q) { try { return matchMedia(q).matches; } catch (e) { return false; } };
    // Ranges, not equalities: zoom makes both sides fractional. Reported
    // only where the browser understands the query at all.
    var r = devicePixelRatio, o = { dpr: r };
    if (m("(min-resolution: 0.001dppx)")) o.resolution = m("(min-resolution: " + (r - 0.02) + "dppx) and (max-resolution: " + (r + 0.02) + "dppx)");
    if (m("(min-device-width: 1px)")) {
      o.deviceSize = m("(min-device-width: " + (s.width - 2) + "px) and (max-device-width: " + (s.width + 2) + "px) and (min-device-height: " +
        (s.height - 2) + "px) and (max-device-height: " + (s.height + 2) + "px)");
    }
    o.pointer = m("(pointer: fine)") ? "fine" : m("(pointer: coarse)") ? "coarse" : m("(pointer: none)") ? "none" : "";
    o.anyPointer = m("(any-pointer: fine)") ? "fine" : m("(any-pointer: coarse)") ? "coarse" : m("(any-pointer: none)") ? "none" : "";
    o.hover = m("(hover: hover)");
    return o;
  }
  // What a fresh same-origin iframe's realm sees, and its untouched
  // Function.prototype.toString (scripts injected into every new document
  // reach it too, but not always).
  function frame() {
    var f, out = null;
    try {
      f = document.createElement("iframe");
      f.style.display = "none";
      document.body.appendChild(f);
      var w = f.contentWindow, n = w.navigator;
      out = { ua: n.userAgent, platform: n.platform, cores: n.hardwareConcurrency || 0, memory: n.deviceMemory || 0,
        languages: list(n.languages), webdriver: !!n.webdriver };
      out.lies = lies(w.Function.prototype.toString);
    } catch (e) { /* sandboxed or no DOM */ }
    try { if (f) f.parentNode.removeChild(f); } catch (e) { /* gone */ }
    return out;
  }
  function codecs() {
    var v = document.createElement("video"), a = document.createElement("audio"), o = {};
    try {
      o.h264 = v.canPlayType("video/mp4; codecs=\"avc1.42E01E\"");
      o.aac = a.canPlayType("audio/mp4; codecs=\"mp4a.40.2\"");
      if (window.MediaSource && MediaSource.isTypeSupported) {
        o.mse = true;
        o.h264MSE = MediaSource.isTypeSupported("video/mp4; codecs=\"avc1.42E01E\"");
        o.aacMSE = MediaSource.isTypeSupported("audio/mp4; codecs=\"mp4a.40.2\"");
      }
    } catch (e) { /* no media */ }
    return o;
  }
  function engine() {
    var stack = "";
    try { null.x; } catch (e) { stack = String(e.stack || ""); }
    return { evalLength: String(eval).length, stackV8: /\n\s+at /.test(stack) };
  }

  function fingerprint(drag) {
    var n = navigator, s = screen, o = {
      webdriver: !!n.webdriver, ua: n.userAgent, platform: n.platform || "",
      languages: list(n.languages),
      cores: n.hardwareConcurrency || 0, memory: n.deviceMemory || 0,
      screen: [s.width, s.height, s.availWidth, s.availHeight, s.colorDepth],
      window: [innerWidth, innerHeight, outerWidth, outerHeight],
      timezone: (Intl.DateTimeFormat().resolvedOptions().timeZone || ""),
      plugins: n.plugins ? n.plugins.length : 0, mimeTypes: n.mimeTypes ? n.mimeTypes.length : 0,
      touch: n.maxTouchPoints || 0, chrome: typeof window.chrome === "object",
      webdriverIn: "webdriver" in n, tzOffset: new Date().getTimezoneOffset(), drag: drag || ""
    };
    if (n.userAgentData) {
      o.uaData = { brands: brands(n.userAgentData), mobile: !!n.userAgentData.mobile, platform: n.userAgentData.platform || "" };
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
    o.uaHigh = extra.uaHigh;
    o.fonts = extra.fonts || [];
    o.cdp = !!extra.cdp;
    var parts = { lies: lies, own: own, media: media, frame: frame, codecs: codecs, engine: engine };
    for (var k in parts) { try { o[k] = parts[k](); } catch (e) { o[k] = undefined; } }
    if (window.chrome && typeof window.chrome === "object") { try { o.chromeKeys = Object.keys(window.chrome).sort(); } catch (e) { /* odd chrome */ } }
    return o;
  }

  function submit(kind) {
    if (done) return;
    done = true;
    say(root.getAttribute("data-checking"));
    var body = { nonce: cfg.nonce, points: pts, pointer: { type: kind || ptype, pressures: pressures.slice(0, 64) },
      wall_ms: performance.now() - wall0, travel: maxX(), fingerprint: fingerprint(kind || ptype) };
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
    // The slot is only in the image: the server judges whether the drag
    // ended on it. A drag that barely moved is a slip, not an answer.
    if (dx >= 8) { submit(); } else { place(0); say(root.getAttribute("data-again")); }
  }
  handle.addEventListener("pointerup", release);
  handle.addEventListener("pointercancel", function () { down = null; place(0); });

  // Keyboard path: arrows, Home and End move the handle, Enter or Space
  // submits. Keyboard slides always go on to the text captcha (with its
  // audio), so a person who cannot see the slot is not held to it.
  handle.addEventListener("keydown", function (e) {
    if (done) return;
    var step = maxX() / (e.shiftKey ? 10 : 50);
    if (e.key === "ArrowRight" || e.key === "Right") place(dx + step);
    else if (e.key === "End") place(maxX());
    else if (e.key === "ArrowLeft" || e.key === "Left") place(dx - step);
    else if (e.key === "Home") place(0);
    else if (e.key === "Enter" || e.key === " ") { e.preventDefault(); submit("keyboard"); return; }
    else return;
    e.preventDefault();
    if (!pts.length || !wall0) { wall0 = performance.now(); pts = [[0, 0, 0]]; }
    pts.push([dx, 0, performance.now() - wall0]);
  });
})();
