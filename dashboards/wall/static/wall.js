// The war-room wall: renders one dashboard of dashboards/generated/*.json from its panels'
// frames. It never sends SQL: only dashboard, panel, variable values and a time range.
"use strict";

const TZ = "Asia/Bangkok";
const BKK_MS = 7 * 3600 * 1000; // Asia/Bangkok has no daylight saving time
const REFRESH_MS = 10000;
const ALERTS_SOURCE = { uid: "warroom-national", title: "การแจ้งเตือนล่าสุด" };
const COLORS = {
  green: "#37872d", red: "#c4162a", orange: "#fa6400", yellow: "#e0b400", blue: "#1f60c4",
  purple: "#8f3bb8", "dark-red": "#8c1515", "dark-green": "#19730e", "dark-orange": "#c04d00",
  transparent: "transparent", text: "#e6edf3",
};
const PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
  "#705da0", "#37872d", "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c"];

const dateFmt = new Intl.DateTimeFormat("th-TH-u-ca-buddhist", {
  timeZone: TZ, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});
const dayFmt = new Intl.DateTimeFormat("th-TH-u-ca-buddhist", {
  timeZone: TZ, day: "numeric", month: "short", year: "2-digit",
});
const hourFmt = new Intl.DateTimeFormat("th-TH", { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
const clockFmt = new Intl.DateTimeFormat("th-TH-u-ca-buddhist", {
  timeZone: TZ, weekday: "long", day: "numeric", month: "long", year: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});

const params = new URLSearchParams(location.search);
const state = {
  uid: decodeURIComponent(location.pathname.split("/")[2] || "warroom-national"),
  model: null,
  vars: {}, // name -> [values]
  from: params.get("from") || "now-24h",
  to: params.get("to") || "now",
  panels: [], // {panel, el, body}
  refreshes: 0,
};
for (const [k, v] of params) {
  if (k.startsWith("var-")) (state.vars[k.slice(4)] ||= []).push(v);
}
if (params.has("kiosk")) document.body.classList.add("kiosk");

// --- formatting ------------------------------------------------------------------------------

const fmtDate = (ms) => (ms == null ? "" : dateFmt.format(new Date(ms)));
const bkkString = (ms) => new Date(ms + BKK_MS).toISOString().slice(0, 19).replace("T", " ");

function fmtNumber(v, cfg) {
  if (v == null || Number.isNaN(v)) return cfg.noValue ?? "-";
  if (typeof v !== "number") return String(v);
  const unit = cfg.unit || "short";
  const decimals = cfg.decimals ?? (Number.isInteger(v) ? 0 : Math.abs(v) < 10 ? 2 : 1);
  const num = new Intl.NumberFormat("th-TH", {
    minimumFractionDigits: decimals, maximumFractionDigits: decimals,
  });
  if (unit === "percent") return num.format(v) + " %";
  if (unit.startsWith("currency:")) return unit.slice(9) + num.format(v);
  if (unit === "s") {
    if (Math.abs(v) >= 86400) return num.format(v / 86400) + " วัน";
    if (Math.abs(v) >= 3600) return num.format(v / 3600) + " ชม.";
    if (Math.abs(v) >= 60) return num.format(v / 60) + " นาที";
    return num.format(v) + " วินาที";
  }
  return num.format(v);
}

const color = (name) => COLORS[name] || name;

function fieldConfig(panel, name) {
  const fc = panel.fieldConfig || {};
  const cfg = { ...(fc.defaults || {}) };
  cfg.custom = { ...(cfg.custom || {}) };
  for (const o of fc.overrides || []) {
    if (o.matcher?.id !== "byName" || o.matcher.options !== name) continue;
    for (const p of o.properties) {
      if (p.id.startsWith("custom.")) cfg.custom[p.id.slice(7)] = p.value;
      else cfg[p.id] = p.value;
    }
  }
  cfg.displayName ||= name;
  return cfg;
}

function thresholdColor(cfg, v) {
  const steps = cfg.thresholds?.steps;
  if (!steps || v == null || typeof v !== "number") return null;
  let c = null;
  for (const s of steps) if (s.value == null || v >= s.value) c = s.color;
  return c ? color(c) : null;
}

const isTime = (col) => col.type.includes("DateTime");
const isNumber = (col) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(col.type);

// --- panels ----------------------------------------------------------------------------------

function renderStat(p, frames, body) {
  const cells = [];
  for (const f of frames) {
    f.columns.forEach((col, i) => {
      if (!isNumber(col)) return;
      let v = null;
      for (const r of f.rows) if (r[i] != null) v = r[i];
      cells.push({ cfg: fieldConfig(p, col.name), v });
    });
  }
  if (!cells.length) cells.push({ cfg: fieldConfig(p, "value"), v: null });
  const showName = p.options?.textMode === "value_and_name" || (p.options?.textMode === "auto" && cells.length > 1);
  let root = body.querySelector(".stat");
  if (!root || root.children.length !== cells.length) {
    body.innerHTML = "";
    root = document.createElement("div");
    root.className = "stat";
    for (const _ of cells) {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.innerHTML = '<span class="stat-value"></span><span class="stat-name"></span>';
      root.appendChild(cell);
    }
    body.appendChild(root);
  }
  cells.forEach(({ cfg, v }, i) => {
    const cell = root.children[i];
    const bg = thresholdColor(cfg, v ?? 0) || color("blue");
    cell.style.background = p.options?.colorMode === "background" ? bg : "transparent";
    cell.querySelector(".stat-value").textContent = fmtNumber(v, cfg);
    cell.querySelector(".stat-value").dataset.value = v == null ? "" : String(v);
    cell.querySelector(".stat-name").textContent = showName ? cfg.displayName : "";
    cell.dataset.field = cfg.displayName;
  });
}

function linkFor(template, f, row) {
  const fields = Object.fromEntries(f.columns.map((c, i) => [c.name, row[i]]));
  return template
    .replace(/\$\{__data\.fields\.([\w]+)\}/g, (_, n) => encodeURIComponent(fields[n] ?? ""))
    .replace(/\$\{__url_time_range\}/g, `from=${encodeURIComponent(state.from)}&to=${encodeURIComponent(state.to)}`)
    .replace(/\$\{[^}]*\}/g, "");
}

function renderTable(p, frames, body) {
  const f = frames[0];
  const table = document.createElement("table");
  table.className = "frame";
  const cfgs = f.columns.map((c) => fieldConfig(p, c.name));
  const head = table.createTHead().insertRow();
  cfgs.forEach((cfg) => { const th = document.createElement("th"); th.textContent = cfg.displayName; head.appendChild(th); });
  const tb = table.createTBody();
  for (const row of f.rows) {
    const tr = tb.insertRow();
    f.columns.forEach((col, i) => {
      const td = tr.insertCell();
      const v = row[i];
      const cfg = cfgs[i];
      const text = isTime(col) ? fmtDate(v) : isNumber(col) ? fmtNumber(v, { ...cfg, noValue: "" }) : v ?? "";
      if (isNumber(col)) td.className = "num";
      const links = cfg.links || [];
      if (links.length) {
        const a = document.createElement("a");
        a.href = linkFor(links[0].url, f, row);
        a.title = links[0].title || "";
        a.textContent = text;
        td.appendChild(a);
      } else {
        td.textContent = text;
      }
      if (cfg.custom.cellOptions?.type === "color-background") {
        const c = thresholdColor(cfg, v);
        if (c) td.style.background = c;
      }
    });
  }
  if (!f.rows.length) {
    const td = tb.insertRow().insertCell();
    td.colSpan = f.columns.length;
    td.textContent = "ไม่มีข้อมูล";
  }
  body.replaceChildren(table);
}

const PLOT_LAYOUT = {
  paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  font: { color: "#c9d1d9", family: "Noto Sans Thai, Sarabun, Tahoma, sans-serif", size: 11 },
  margin: { l: 48, r: 10, t: 6, b: 34 },
  legend: { orientation: "h", y: -0.18 },
  xaxis: { gridcolor: "#2a3440", automargin: true },
  yaxis: { gridcolor: "#2a3440", automargin: true, rangemode: "tozero" },
  showlegend: true,
};
const PLOT_CONFIG = { displayModeBar: false, responsive: true };

// plotly.js is 4.8 MB of script: loaded beside the data, so stats and tables need not wait
const plotlyReady = new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = "/wall/static/plotly.min.js";
  script.onload = resolve;
  script.onerror = () => reject(new Error("plotly.min.js"));
  document.head.appendChild(script);
});

async function plot(body, traces, layout) {
  await plotlyReady;
  let div = body.querySelector(".chart");
  if (!div) {
    body.replaceChildren();
    div = document.createElement("div");
    div.className = "chart";
    body.appendChild(div);
  }
  await Plotly.react(div, traces, { ...PLOT_LAYOUT, ...layout }, PLOT_CONFIG);
}

function timeTicks(fromMs, toMs) {
  // Thai labels with Buddhist-Era years; plotly itself only knows Gregorian dates
  const n = 6;
  const span = toMs - fromMs;
  const vals = [];
  const text = [];
  for (let i = 0; i <= n; i++) {
    const ms = fromMs + (span * i) / n;
    vals.push(bkkString(ms));
    text.push(span <= 2 * 86400000 ? hourFmt.format(new Date(ms)) + (i === 0 ? "<br>" + dayFmt.format(new Date(ms)) : "") : dayFmt.format(new Date(ms)));
  }
  return { tickvals: vals, ticktext: text };
}

function renderTimeseries(p, frames, body, range) {
  const traces = [];
  for (const f of frames) {
    const t = f.columns.findIndex(isTime);
    if (t < 0) continue;
    const label = f.columns.findIndex((c, i) => i !== t && !isNumber(c));
    f.columns.forEach((col, i) => {
      if (i === t || !isNumber(col)) return;
      const groups = new Map();
      for (const r of f.rows) {
        const key = label >= 0 ? String(r[label]) : fieldConfig(p, col.name).displayName;
        if (!groups.has(key)) groups.set(key, { x: [], y: [] });
        groups.get(key).x.push(bkkString(r[t]));
        groups.get(key).y.push(r[i]);
      }
      for (const [name, g] of groups) {
        traces.push({ type: "scatter", mode: "lines", name, x: g.x, y: g.y,
          line: { width: 2, color: PALETTE[traces.length % PALETTE.length] } });
      }
    });
  }
  return plot(body, traces, { xaxis: { ...PLOT_LAYOUT.xaxis, type: "date",
    range: [bkkString(range.from), bkkString(range.to)], ...timeTicks(range.from, range.to) } });
}

function renderBar(p, frames, body) {
  const f = frames[0];
  const xName = p.options?.xField;
  let x = f.columns.findIndex((c) => c.name === xName);
  if (x < 0) x = f.columns.findIndex((c) => !isNumber(c));
  const traces = [];
  f.columns.forEach((col, i) => {
    if (i === x || !isNumber(col)) return;
    traces.push({ type: "bar", name: fieldConfig(p, col.name).displayName,
      x: f.rows.map((r) => (x >= 0 ? r[x] : "")), y: f.rows.map((r) => r[i]),
      marker: { color: PALETTE[traces.length % PALETTE.length] } });
  });
  const stacked = p.options?.stacking && p.options.stacking !== "none";
  return plot(body, traces, { barmode: stacked ? "stack" : "group",
    // Grafana thins crowded labels; here they slant instead
    xaxis: { ...PLOT_LAYOUT.xaxis, tickangle: p.options?.xTickLabelRotation || (f.rows.length > 8 ? -35 : 0) } });
}

function renderPie(p, frames, body) {
  const f = frames[0];
  const l = f.columns.findIndex((c) => !isNumber(c));
  const v = f.columns.findIndex(isNumber);
  return plot(body, [{ type: "pie", hole: p.options?.pieType === "donut" ? 0.45 : 0,
    labels: f.rows.map((r) => r[l]), values: f.rows.map((r) => r[v]), sort: false,
    marker: { colors: PALETTE }, textinfo: "percent" }], { legend: { orientation: "v" } });
}

const RENDER = { stat: renderStat, table: renderTable, timeseries: renderTimeseries,
  barchart: renderBar, piechart: renderPie };

// --- requests --------------------------------------------------------------------------------

function query(extra = {}, onlyVars = null) {
  const q = new URLSearchParams({ from: state.from, to: state.to, ...extra });
  for (const [name, values] of Object.entries(state.vars)) {
    if (onlyVars && !onlyVars.includes(name)) continue;
    for (const v of values) q.append("var-" + name, v);
  }
  return q;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// this round's answers by panel id: the alerts column reuses its dashboard's own alerts panel
let answers = new Map();
const panelData = (id) => {
  if (!answers.has(id)) answers.set(id, getJSON(`/wall/api/d/${state.uid}/panel/${id}?${query()}`));
  return answers.get(id);
};

async function loadPanel(item) {
  const { panel, el, body } = item;
  try {
    const data = await panelData(panel.id);
    if (data.notice) {
      el.dataset.state = "notice";
      if (!body.querySelector(".notice")) body.innerHTML = '<div class="notice"></div>';
      body.querySelector(".notice").textContent = data.notice;
      return;
    }
    await (RENDER[panel.type] || renderTable)(panel, data.frames, body, data.range);
    el.classList.remove("error");
    el.dataset.state = "ok";
  } catch (err) {
    el.classList.add("error");
    el.dataset.state = "error";
    body.innerHTML = '<div class="notice"></div>';
    body.querySelector(".notice").textContent = "แสดงไม่ได้: " + err.message;
  }
}

async function loadAlerts() {
  const list = document.getElementById("alert-list");
  try {
    const src = await alertsPanel();
    const data = await (src.uid === state.uid
      ? panelData(src.id)
      : getJSON(`/wall/api/d/${src.uid}/panel/${src.id}?${query({}, src.vars)}`));
    const f = data.frames[0];
    const col = (name) => f.columns.findIndex((c) => c.name === name);
    const [at, title, dname, prov, st, code] = ["fired_at", "title", "district", "province", "state", "district_code"].map(col);
    list.replaceChildren(...f.rows.slice(0, 30).map((r) => {
      const li = document.createElement("li");
      li.className = r[st] === "คลี่คลายแล้ว" ? "resolved" : "firing";
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = `${fmtDate(r[at])} · ${r[st] ?? ""}`;
      const a = document.createElement("a");
      a.href = `/d/warroom-district/?var-district=${encodeURIComponent(r[code])}&from=${state.from}&to=${state.to}`;
      a.textContent = `${r[dname] ?? r[code]} (${r[prov] ?? ""})`;
      li.append(when, document.createTextNode(r[title] + " — "), a);
      return li;
    }));
    if (!f.rows.length) list.innerHTML = "<li>ไม่มีการแจ้งเตือนในช่วงเวลานี้</li>";
  } catch (err) {
    list.innerHTML = "";
    const li = document.createElement("li");
    li.textContent = "แสดงไม่ได้: " + err.message;
    list.appendChild(li);
  }
}

let alertsSource = null;
async function alertsPanel() {
  if (alertsSource) return alertsSource;
  // the current dashboard's own alerts panel (it follows the variables), else the national one
  const own = state.model.panels.find((p) => p.title === ALERTS_SOURCE.title);
  if (own) return (alertsSource = { uid: state.uid, id: own.id, vars: null });
  const nat = await getJSON(`/wall/api/d/${ALERTS_SOURCE.uid}`);
  const p = nat.panels.find((q) => q.title === ALERTS_SOURCE.title);
  return (alertsSource = { uid: ALERTS_SOURCE.uid, id: p.id, vars: [] });
}

let busy = false;
async function refresh() {
  if (busy) return; // a slow store: skip a beat rather than pile up requests
  busy = true;
  answers = new Map();
  try {
    await Promise.all([...state.panels.map(loadPanel), loadAlerts()]);
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    document.getElementById("status").textContent = `ปรับปรุงล่าสุด ${clockFmt.format(new Date())} · ทุก 10 วินาที`;
  } finally {
    busy = false;
  }
}

// --- controls --------------------------------------------------------------------------------

function showSelection() {
  // what the page is narrowed to, in words (a phone hides the controls)
  const picked = [...document.querySelectorAll("#variables select")]
    .filter((sel) => sel.value && sel.value !== "$__all" && sel.selectedOptions[0])
    .map((sel) => sel.selectedOptions[0].text);
  document.getElementById("selection").textContent = picked.join(" · ");
}

function syncURL() {
  showSelection();
  const q = query();
  if (params.has("kiosk")) q.set("kiosk", "");
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

async function buildVariables() {
  const box = document.getElementById("variables");
  box.replaceChildren();
  const vars = state.model.templating?.list || [];
  for (const [i, v] of vars.entries()) {
    const label = document.createElement("label");
    label.className = "ctl";
    label.textContent = v.label || v.name;
    const sel = document.createElement("select");
    sel.id = "var-" + v.name;
    sel.dataset.variable = v.name;
    label.appendChild(sel);
    box.appendChild(label);
    sel.addEventListener("change", async () => {
      state.vars[v.name] = [sel.value];
      // a later variable whose options follow this one (directly or through another) starts
      // over; the others (e.g. SDG goal after region) keep what was picked
      const changed = new Set([v.name]);
      for (const later of vars.slice(i + 1)) {
        if ((later.dependsOn || []).some((n) => changed.has(n))) {
          changed.add(later.name);
          delete state.vars[later.name];
        }
      }
      await fillOptions(vars.slice(i + 1));
      syncURL();
      refresh();
    });
  }
  await fillOptions(vars);
}

async function fillOptions(vars) {
  const before = [];
  for (const v of state.model.templating?.list || []) {
    if (vars.includes(v)) {
      const sel = document.getElementById("var-" + v.name);
      const data = await getJSON(`/wall/api/d/${state.uid}/options/${v.name}?${query({}, [...before])}`);
      const opts = data.options.map((o) => [o.value, o.text]);
      if (v.includeAll) opts.unshift(["$__all", "ทั้งหมด"]);
      sel.replaceChildren(...opts.map(([value, text]) => new Option(text, value)));
      const cur = state.vars[v.name]?.[0] ?? v.current?.value ?? "$__all";
      sel.value = opts.some((o) => o[0] === cur) ? cur : opts[0]?.[0] ?? "";
      if (state.vars[v.name] && sel.value !== cur) state.vars[v.name] = [sel.value];
    }
    before.push(v.name);
  }
}

function localInput(ms) {
  return bkkString(ms).slice(0, 16).replace(" ", "T");
}

function buildRange() {
  const sel = document.getElementById("range");
  const custom = document.getElementById("custom");
  const known = [...sel.options].map((o) => o.value);
  if (state.to === "now" && known.includes(state.from)) sel.value = state.from;
  else {
    sel.value = "custom";
    custom.hidden = false;
  }
  sel.addEventListener("change", () => {
    if (sel.value === "custom") {
      custom.hidden = false;
      const to = Date.now();
      document.getElementById("custom-from").value = localInput(to - 86400000);
      document.getElementById("custom-to").value = localInput(to);
      return;
    }
    custom.hidden = true;
    state.from = sel.value;
    state.to = "now";
    syncURL();
    refresh();
  });
  document.getElementById("custom-apply").addEventListener("click", () => {
    // the inputs are Bangkok wall-clock times
    const parse = (id) => Date.parse(document.getElementById(id).value + ":00+07:00");
    state.from = String(parse("custom-from"));
    state.to = String(parse("custom-to"));
    syncURL();
    refresh();
  });
}

async function buildNav() {
  const nav = document.getElementById("nav");
  const list = await getJSON("/wall/api/dashboards");
  nav.replaceChildren(...list.map((d) => {
    const a = document.createElement("a");
    a.href = `/d/${d.uid}/`;
    a.textContent = d.title.replace(/\s*\(.*\)$/, "");
    if (d.uid === state.uid) a.className = "current";
    return a;
  }));
}

function buildGrid() {
  const grid = document.getElementById("grid");
  grid.replaceChildren();
  state.panels = [];
  for (const p of state.model.panels) {
    const el = document.createElement("div");
    el.className = "panel " + (p.type === "row" ? "row" : p.type === "stat" ? "" : "tall");
    el.dataset.panelId = p.id;
    el.dataset.type = p.type;
    el.dataset.title = p.title;
    const g = p.gridPos;
    el.style.gridColumn = `${g.x + 1} / span ${g.w}`;
    el.style.gridRow = `${g.y + 1} / span ${g.h}`;
    const h = document.createElement("h3");
    h.textContent = p.title;
    h.title = p.description || "";
    el.appendChild(h);
    if (p.type !== "row") {
      const body = document.createElement("div");
      body.className = "body";
      el.appendChild(body);
      el.dataset.state = "loading";
      state.panels.push({ panel: p, el, body });
    }
    grid.appendChild(el);
  }
}

function tick() {
  document.getElementById("clock").textContent = clockFmt.format(new Date());
}

async function main() {
  document.getElementById("filters").addEventListener("click", () => {
    document.body.classList.toggle("show-controls");
  });
  tick();
  setInterval(tick, 1000);
  state.model = await getJSON(`/wall/api/d/${state.uid}`);
  document.title = state.model.title + " · warroom";
  document.getElementById("title").textContent = state.model.title;
  buildGrid();
  buildRange();
  await Promise.all([buildNav(), buildVariables()]);
  syncURL();
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

main().catch((err) => {
  document.getElementById("title").textContent = "เปิดแดชบอร์ดไม่ได้: " + err.message;
});
