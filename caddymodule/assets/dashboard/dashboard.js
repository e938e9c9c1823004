// advcaptcha operators' dashboard: draws GET ./summary every 5 s and sends
// label reviews to POST ./labels. No libraries; the charts are plain SVG.
"use strict";

const TOKEN_KEY = "advcaptcha-admin-token";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let timer = null;

function headers(json) {
  const h = {};
  const t = sessionStorage.getItem(TOKEN_KEY);
  if (t) h["Authorization"] = "Bearer " + t;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.setAttribute("class", v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmt(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}
const pct = (x) => (x * 100).toFixed(1) + "%";
const ago = (iso) => {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 129600) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
};

// legendOf builds the legend with coloured squares (set through the
// CSSOM, which the page's CSP allows, rather than style attributes).
function legendOf(items) {
  const box = el("div", { class: "legend" });
  for (const [name, color] of items) {
    const sw = el("i");
    sw.style.background = color;
    box.append(el("span", {}, sw, name));
  }
  return box;
}

// axis returns the ticks of a value axis from 0 to at least v: at most
// five steps of 1, 2 or 5 times a power of ten, so that ticks are round.
function axis(v, percent) {
  if (percent) return [0, 0.25, 0.5, 0.75, 1];
  v = Math.max(1, v);
  let step = 1;
  for (let p = 1; ; p *= 10) {
    const m = [1, 2, 5].find((m) => m * p * 5 >= v);
    if (m) { step = m * p; break; }
  }
  const ticks = [];
  for (let t = 0; t < v + step; t += step) ticks.push(t);
  return ticks;
}

// lineChart draws series of {t, v} (v null: no data) over a shared time axis.
function lineChart(target, series, opts) {
  const W = 900, H = opts.height || 220, L = 44, R = 10, T = 10, B = 24;
  const pts = series.flatMap((s) => s.values);
  const ts = pts.map((p) => p.t);
  const t1 = ts.length ? Math.max(...ts) : Date.now() / 1000;
  // At least ten minutes wide, so that a fresh start shows its first
  // points at the right rather than a single point across the chart.
  const t0 = Math.min(t1 - 600, ...ts);
  const ticks = axis(Math.max(0, ...pts.map((p) => p.v || 0)), opts.percent);
  const vmax = ticks[ticks.length - 1];
  const x = (t) => L + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label });
  for (const v of ticks) {
    svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e6ec" }));
    svg.append(el("svg:text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", text: opts.percent ? Math.round(v * 100) + "%" : fmt(v) }));
  }
  if (pts.length === 0) {
    svg.append(el("svg:text", { x: W / 2, y: H / 2, "text-anchor": "middle", text: "no data yet" }));
  } else {
    for (const frac of [0, 0.5, 1]) {
      const t = t0 + frac * (t1 - t0);
      svg.append(el("svg:text", { x: x(t), y: H - 6, "text-anchor": frac === 0 ? "start" : frac === 1 ? "end" : "middle",
        text: new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }));
    }
  }
  for (const s of series) {
    let d = "";
    let pen = false;
    for (const p of s.values) {
      if (p.v == null) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p.v).toFixed(1);
      pen = true;
    }
    if (d) svg.append(el("svg:path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "data-series": s.name }));
    const few = s.values.filter((p) => p.v != null).length < 40;
    for (const p of s.values) {
      if (p.v != null && (s.dots || few)) svg.append(el("svg:circle", { cx: x(p.t), cy: y(p.v), r: 2.5, fill: s.color }));
    }
  }
  target.replaceChildren(svg, legendOf(series.map((s) => [s.name, s.color])));
}

// barChart draws bars of {label, value, color}.
function barChart(target, bars, opts) {
  const W = 440, H = 200, L = 40, B = 34, T = 10;
  const ticks = axis(Math.max(0, ...bars.map((b) => b.value)));
  const vmax = ticks[ticks.length - 1];
  const bw = (W - L) / Math.max(1, bars.length);
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label });
  for (const v of ticks) {
    const yy = T + (1 - v / vmax) * (H - T - B);
    svg.append(el("svg:line", { x1: L, x2: W, y1: yy, y2: yy, stroke: "#e3e6ec" }));
    svg.append(el("svg:text", { x: L - 6, y: yy + 4, "text-anchor": "end", text: fmt(v) }));
  }
  bars.forEach((b, i) => {
    const h = (b.value / vmax) * (H - T - B);
    svg.append(el("svg:rect", { x: L + i * bw + 2, y: H - B - h, width: Math.max(1, bw - 4), height: h, fill: b.color, "data-value": b.value },
      el("svg:title", { text: `${b.label}: ${b.value}` })));
    if (b.label) svg.append(el("svg:text", { x: L + (i + (b.span || 1) / 2) * bw, y: H - B + 16, "text-anchor": "middle", text: b.label }));
  });
  target.replaceChildren(svg);
  if (opts.legend) target.append(legendOf(opts.legend));
}

const COLORS = { allow: "#2e9e5b", challenge: "#e0a100", block: "#d64545", clean: "#3b6fd8", adversarial: "#a23bd8" };

function sum(list, pred) {
  return list.filter(pred).reduce((a, n) => a + n.value, 0);
}

function render(s) {
  const inst = s.instance;
  const dec = (d) => sum(inst.decisions, (n) => n.labels.decision === d);
  const ans = (c, cl, o) => sum(inst.answers, (n) => n.labels.captcha === c && n.labels.client === cl && (!o || n.labels.outcome === o));
  const rate = (c) => { const t = ans(c, "attacker"); return t ? pct(ans(c, "attacker", "correct") / t) : "–"; };
  const active = s.offenders.filter((o) => o.active).length;
  const tiles = [
    ["allowed", fmt(dec("allow"))], ["challenged", fmt(dec("challenge"))], ["blocked", fmt(dec("block"))],
    ["labelled now (of the newest)", String(active)],
    ["attackers solve clean", rate("clean")], ["attackers solve adversarial", rate("adversarial")],
    ["pool", s.pool ? `${s.pool.depth} / ${s.pool.size}` : "off"],
    ["clean captchas (5 min)", pct(inst.clean_share || 0)],
    ["model serving", s.models.serving ? s.models.serving.slice(0, 8) : "none"],
    ["store", inst.store + (inst.store_errors ? ` (${fmt(inst.store_errors)} errors)` : "")],
  ];
  $("tiles").replaceChildren(...tiles.map(([k, v]) => el("div", { class: "tile" }, el("div", { class: "v", text: v }), el("div", { class: "k", text: k }))));

  const series = s.series;
  lineChart($("decisions-chart"), ["allow", "challenge", "block"].map((k) => ({
    name: k, color: COLORS[k], values: series.map((p) => ({ t: p.t, v: p[k] })),
  })), { label: "decisions per 10 seconds" });

  barChart($("score-chart"), inst.score.filter((b) => isFinite(b.le)).map((b, i) => ({
    label: i === 0 ? "0" : `≤${b.le}`, value: b.count, color: b.le < 40 ? COLORS.allow : b.le < 90 ? COLORS.challenge : COLORS.block,
  })), { label: "score histogram" });

  const stages = ["slide", "captcha", "audio"], outcomes = ["issued", "passed", "failed", "refused"];
  const oc = { issued: "#8a93a6", passed: COLORS.allow, failed: COLORS.challenge, refused: COLORS.block };
  const bars = [];
  for (const st of stages) {
    for (const o of outcomes) {
      const v = sum(inst.challenges, (n) => n.labels.stage === st && n.labels.outcome === o);
      bars.push({ label: o === "issued" ? st : "", span: outcomes.length, value: v, color: oc[o] });
    }
    bars.push({ label: "", value: 0, color: "none" }); // a gap between stages
  }
  barChart($("challenges-chart"), bars.slice(0, -1), { label: "challenge steps by stage and outcome", legend: outcomes.map((o) => [o, oc[o]]) });

  // Success per minute: six 10-s points a minute, null when no answers.
  const perMin = new Map();
  for (const p of series) {
    const m = Math.floor(p.t / 60) * 60;
    const a = perMin.get(m) || { c: [0, 0], a: [0, 0] };
    a.c[0] += p.clean_attacker[0]; a.c[1] += p.clean_attacker[1];
    a.a[0] += p.adversarial_attacker[0]; a.a[1] += p.adversarial_attacker[1];
    perMin.set(m, a);
  }
  const mins = [...perMin.entries()].sort((a, b) => a[0] - b[0]);
  lineChart($("success-chart"), [
    { name: "clean captchas", color: COLORS.clean, dots: true, values: mins.map(([t, a]) => ({ t, v: a.c[1] ? a.c[0] / a.c[1] : null })) },
    { name: "adversarial captchas", color: COLORS.adversarial, dots: true, values: mins.map(([t, a]) => ({ t, v: a.a[1] ? a.a[0] / a.a[1] : null })) },
  ], { label: "attackers' success rate", percent: true, height: 200 });

  const cur = s.models.current ? s.models.current.version : s.models.serving;
  const rows = s.models.history.map((v) => el("tr", {},
    el("td", {}, el("code", { text: v.version.slice(0, 12) }), v.version === cur ? el("span", { class: "pill cleared", text: " current" }) : ""),
    el("td", { text: ago(v.published) }),
    el("td", {}, bar(v.char_fidelity), el("span", { class: "muted", text: v.char_fidelity || v.fidelity ? `${pct(v.char_fidelity || 0)} of characters, ${pct(v.fidelity || 0)} of answers` : "–" })),
    el("td", { text: v.clean_accuracy ? pct(v.clean_accuracy) : "–" }),
    el("td", { text: (v.rollback ? "rollback. " : "") + (v.note || "") })));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5, text: `built-in model ${s.models.serving ? s.models.serving.slice(0, 12) : "(none)"}; nothing published in the store yet` })));
  $("models").tBodies[0].replaceChildren(...rows);

  const served = (src) => sum(inst.served, (n) => n.labels.source === src);
  // Supply against demand over the last 5 minutes of the series: what this
  // instance's workers made, and what was asked of the pool (served from it,
  // computed on request, plain, or told to wait).
  const supplyText = (pts) => {
    const since = Date.now() / 1000 - 300;
    let made = 0, asked = 0;
    for (const p of pts) {
      if (p.t < since) continue;
      made += p.generated || 0;
      asked += (p.served || []).reduce((x, y) => x + y, 0);
    }
    return `last 5 minutes: ${fmt(made / 300 * 60)} captchas a minute generated here, ${fmt(asked / 300 * 60)} asked for`;
  };
  $("pool").replaceChildren(s.pool ? el("div", {},
    el("p", {}, el("strong", { text: `${s.pool.depth} of ${s.pool.size}` }), " adversarial captchas ready"),
    el("div", { class: "bar" }, barSpan(s.pool.depth / s.pool.size)),
    el("p", { class: "muted", text: `attack ${s.pool.method}, model ${s.pool.model.slice(0, 12)}` }),
    el("p", { text: `served from the pool ${fmt(served("pool"))}, computed on request ${fmt(served("sync"))}, plain ${fmt(served("clean"))}, asked to wait ${fmt(served("wait"))}` +
      (inst.generation ? ` · ${inst.generation.count} generated here, ${inst.generation.mean_seconds.toFixed(2)} s each` : "") }),
    el("p", { id: "clean-share", text: `last 5 minutes: ${pct(inst.clean_share || 0)} of captchas served were clean, ${pct(inst.wait_share || 0)} of requests waited for the pool` }),
    el("p", { id: "supply", text: supplyText(series) }),
  ) : el("p", { text: "adversarial captchas are off: plain captchas are served" }));

  // Share of clean captchas among those served, and of requests told to
  // wait, per minute (served: pool, sync, clean, wait).
  const servedMin = new Map();
  for (const p of series) {
    const m = Math.floor(p.t / 60) * 60;
    const a = servedMin.get(m) || [0, 0, 0, 0, 0];
    (p.served || []).forEach((v, i) => { a[i] += v; });
    a[4] += p.generated || 0;
    servedMin.set(m, a);
  }
  const sm = [...servedMin.entries()].sort((a, b) => a[0] - b[0]);
  lineChart($("supply-chart"), [
    { name: "captchas generated here", color: COLORS.allow, dots: true, values: sm.map(([t, a]) => ({ t, v: a[4] })) },
    { name: "captchas asked for", color: COLORS.challenge, dots: true, values: sm.map(([t, a]) => ({ t, v: a[0] + a[1] + a[2] + a[3] })) },
  ], { label: "adversarial captchas generated and asked for, per minute", height: 160 });
  lineChart($("served-chart"), [
    { name: "clean share of captchas served", color: COLORS.clean, dots: true, values: sm.map(([t, a]) => { const n = a[0] + a[1] + a[2]; return { t, v: n ? a[2] / n : null }; }) },
    { name: "requests asked to wait", color: COLORS.challenge, dots: true, values: sm.map(([t, a]) => { const n = a[0] + a[1] + a[2] + a[3]; return { t, v: n ? a[3] / n : null }; }) },
  ], { label: "clean captchas and waits per minute", percent: true, height: 160 });

  const off = s.offenders.map((o) => {
    const state = o.active ? el("span", { class: "pill active", text: "labelled" }) : o.cleared ? el("span", { class: "pill cleared", text: "cleared" }) : el("span", { class: "pill expired", text: "expired" });
    const act = o.active
      ? el("button", { class: "clear", "data-entity": o.entity, text: "Clear", onclick: () => review(o.entity, "clear") })
      : el("button", { class: "confirm", "data-entity": o.entity, text: "Confirm", onclick: () => review(o.entity, "confirm") });
    return el("tr", { "data-entity": o.entity },
      el("td", {}, el("code", { text: o.entity })),
      el("td", { text: o.reasons.join("; ") || "–" }),
      el("td", { text: String(o.labels) }),
      el("td", { text: fmt(o.per_minute) }),
      el("td", { text: `${ago(o.last_at)} (${o.source})` }),
      el("td", {}, state, o.active ? el("span", { class: "muted", text: " until " + new Date(o.expires).toLocaleTimeString() }) : ""),
      el("td", {}, act));
  });
  if (off.length === 0) off.push(el("tr", {}, el("td", { colspan: 7, text: "no labels in the log" })));
  $("offenders").tBodies[0].replaceChildren(...off);

  const st = $("status");
  st.textContent = s.errors && s.errors.length ? "store: " + s.errors.join(", ") : "live";
  st.className = "status " + (s.errors && s.errors.length ? "bad" : "ok");
  $("updated").textContent = "updated " + new Date(s.at).toLocaleTimeString();
}

function barSpan(frac) {
  const s = el("span");
  s.style.width = Math.max(0, Math.min(1, frac || 0)) * 100 + "%";
  return s;
}
function bar(frac) {
  return el("div", { class: "bar" }, barSpan(frac));
}

async function review(entity, action) {
  const body = { entity, action, reason: action === "clear" ? "cleared on the dashboard" : "confirmed on the dashboard", ttl: action === "confirm" ? "24h" : undefined };
  const res = await fetch("labels", { method: "POST", headers: headers(true), body: JSON.stringify(body), credentials: "same-origin" });
  const out = await res.json().catch(() => ({}));
  $("review-msg").textContent = res.ok ? `${entity}: ${action === "clear" ? "cleared" : "confirmed"}` : `${entity}: ${out.error || res.status}`;
  refresh();
}

async function refresh() {
  let res;
  try {
    res = await fetch("summary", { headers: headers(false), credentials: "same-origin" });
  } catch (e) {
    $("status").textContent = "unreachable";
    $("status").className = "status bad";
    return;
  }
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin((await res.json().catch(() => ({}))).error || "");
    return;
  }
  const s = await res.json();
  $("login").classList.add("hidden");
  $("board").classList.remove("hidden");
  render(s);
}

function showLogin(msg) {
  clearInterval(timer);
  timer = null;
  $("board").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = msg && sessionStorage.getItem(TOKEN_KEY) === null && $("token").value ? msg : "";
  $("status").textContent = "locked";
  $("status").className = "status";
}

function start() {
  refresh();
  if (!timer) timer = setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    start();
  });
  start();
});
