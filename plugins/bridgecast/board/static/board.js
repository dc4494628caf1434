// The Bridgecast board: polls ../api/board every few seconds and updates the page in place (no reload).
// Rows are built once per event and then only their changed texts, classes and pictures are touched, so a refresh
// of 73 rows stays cheap on a phone. Everything shown comes from the JSON; nothing here is inserted as HTML.
"use strict";

const REFRESH_MS = 4000;
const params = new URLSearchParams(location.search);
const api = new URL("../api/board", location.href);
for (const name of ["event", "run_id", "dag_id"]) {
  if (params.get(name)) api.searchParams.set(name, params.get(name));
}

const state = { eventId: null, rows: new Map(), filter: "all", query: "", t0: null, end: null, offsetMs: 0,
                timer: null, failures: 0 };
window.__board = { refreshes: 0, firstRenderMs: null, firstRenderAt: null, lastRenderMs: null, lastOk: null,
                  lastError: null };

const $ = (id) => document.getElementById(id);

function text(el, value) {
  const v = value == null ? "" : String(value);
  if (el.textContent !== v) el.textContent = v;
}

function cls(el, name, on) {
  if (el.classList.contains(name) !== on) el.classList.toggle(name, on);
}

function setState(el, prefix, value) {
  const wanted = `${prefix}-${value}`;
  for (const c of [...el.classList]) if (c.startsWith(prefix + "-") && c !== wanted) el.classList.remove(c);
  if (!el.classList.contains(wanted)) el.classList.add(wanted);
}

// --- rows ------------------------------------------------------------------------------------------------------------
function buildRows(points) {
  const template = $("row-template").content.firstElementChild;
  const container = $("rows");
  const fragment = document.createDocumentFragment();
  state.rows.clear();
  for (const p of points) {
    const el = template.cloneNode(true);
    el.dataset.point = p.id;
    el.dataset.kind = p.kind;
    const refs = {
      el, img: el.querySelector(".thumb img"), nothumb: el.querySelector(".nothumb"),
      name: el.querySelector(".name strong"), kind: el.querySelector(".name small"),
      pre: el.querySelector(".preflight .pill"), preDetail: el.querySelector(".preflight small"),
      live: el.querySelector(".live .pill"), liveDetail: el.querySelector(".live small"),
      stream: el.querySelector(".stream"), segments: el.querySelector(".segments"),
      photos: el.querySelector(".photos"), links: el.querySelector(".links"), thumbUrl: null, linksKey: null,
    };
    refs.img.addEventListener("load", () => { refs.img.hidden = false; refs.nothumb.hidden = true; });
    refs.img.addEventListener("error", () => { refs.img.hidden = true; refs.nothumb.hidden = false; });
    state.rows.set(p.id, refs);
    fragment.appendChild(el);
  }
  container.replaceChildren(fragment);
}

function problem(p) {
  const live = p.live.state;
  return p.preflight.verdict === "no-go" || live === "dropped" || live === "missing" || live === "unknown"
    || (p.stream && p.stream.bitrate_kbps === 0)
    || (p.photos && p.photos.quarantined > 0)
    || p.publications.some((x) => x.status === "failed" || x.status === "unknown");
}

function updateRow(refs, p) {
  text(refs.name, p.name);
  text(refs.kind, p.kind_label);
  if (refs.name.title !== p.display_name) refs.name.title = p.display_name;
  text(refs.pre, p.preflight.label);
  text(refs.preDetail, p.preflight.detail);
  setState(refs.pre, "v", p.preflight.verdict);
  text(refs.live, p.live.label);
  text(refs.liveDetail, p.live.detail);
  setState(refs.live, "s", p.live.state);
  setState(refs.el, "s", p.live.state);
  cls(refs.el, "problem", problem(p));
  refs.el.dataset.name = `${p.name} ${p.display_name}`.toLowerCase();
  const kbps = p.stream && p.stream.bitrate_kbps == null ? "đang đo" : p.stream && `${p.stream.bitrate_kbps} kb/s`;
  text(refs.stream, p.stream ? `${kbps} · ${p.stream.fps ?? "?"} fps` +
       (p.stream.size ? ` · ${p.stream.size}` : "") : (p.streams ? "—" : ""));
  text(refs.segments, p.segments ? `${p.segments.stored} đã lưu` + (p.segments.pending ? ` · ${p.segments.pending} đang ghi` : "")
       : (p.streams ? "—" : ""));
  text(refs.photos, p.photos ? `${p.photos.received} · ${p.photos.processed} · ${p.photos.quarantined}` +
       (p.photos.videos ? ` · ${p.photos.videos} video` : "") : "—");
  cls(refs.photos, "warn", Boolean(p.photos && p.photos.quarantined));
  updateThumb(refs, p);
  updateLinks(refs.links, p.publications, refs);
}

function updateThumb(refs, p) {
  const t = p.thumbnail;
  text(refs.nothumb, p.streams ? (t ? "" : "chưa có hình") : "đội lưu động");
  cls(refs.img, "stale", Boolean(t && t.stale));
  if (!t) {
    refs.img.hidden = true; refs.nothumb.hidden = false; refs.thumbUrl = null; refs.img.removeAttribute("src");
    return;
  }
  refs.img.title = `Hình lúc ${t.at_local}`;
  if (refs.thumbUrl === t.url) return;
  refs.thumbUrl = t.url;
  // Load off-screen first so the old picture stays until the new one is ready (no flicker).
  const next = new Image();
  next.onload = () => { if (refs.thumbUrl === t.url) refs.img.src = t.url; };
  next.src = t.url;
  refs.img.dataset.at = t.at;
}

function updateLinks(container, publications, refs) {
  const key = JSON.stringify(publications.map((x) => [x.key, x.status, x.url]));
  if (refs && refs.linksKey === key) return;
  if (refs) refs.linksKey = key;
  const nodes = publications.map((x) => {
    const label = `${x.channel_label}: ${x.label}`;
    let node;
    if (x.url) {
      node = document.createElement("a");
      node.href = x.url; node.target = "_blank"; node.rel = "noopener noreferrer";
    } else {
      node = document.createElement("span");
    }
    node.className = `pub st-${x.status}`;
    node.textContent = x.status === "published" ? label : `${label} (${x.status_label})`;
    if (x.error) node.title = x.error;
    return node;
  });
  container.replaceChildren(...nodes);
}

// --- above the rows -------------------------------------------------------------------------------------------------
function updateHeader(data) {
  const e = data.event;
  text($("event-title"), (e.rehearsal && !e.short_title.includes("Diễn tập") ? "Diễn tập — " : "") + e.short_title);
  document.title = `Bảng điều khiển — ${e.short_title}`;
  const run = data.run ? ` · lượt chạy ${data.run.run_id} (${data.run.state})` : " · chưa có lượt chạy";
  const moved = e.steered && e.planned_t0_local !== e.t0_local ? ` (dự kiến ${e.planned_t0_local})` : "";
  text($("event-meta"), `Giờ G: ${e.t0_local}${moved} · kết thúc ${e.end_local}${run}`);
  state.t0 = Date.parse(e.t0); state.end = Date.parse(e.end);
  state.offsetMs = Date.parse(data.now) - Date.now();
  const c = data.counters;
  text($("c-live"), c.points_live == null ? "?" : `${c.points_live}/${c.points_planned}`);
  text($("c-nogo"), String(c.points_no_go));
  text($("c-photos"), c.photos ? `${c.photos.received} · ${c.photos.processed} · ${c.photos.quarantined}` : "?");
  text($("c-teams"), `${c.teams_with_photos}/${c.teams}`);
  text($("c-pubs"), c.publications ? `${c.publications.published}/${c.publications.total}` +
       (c.publications.failed + c.publications.unknown ? ` · ${c.publications.failed + c.publications.unknown} lỗi` : "")
       : "?");
  cls($("c-pubs"), "bad", Boolean(c.publications && c.publications.failed + c.publications.unknown));
  cls($("c-nogo"), "bad", c.points_no_go > 0);
  updateAlerts(data.alerts);
  if (data.results) updateResults(data.results);
  if (data.publications.length) updateLinks($("publications"), data.publications, state.pubRefs ??= {});
  if (data.note) showBanner(data.note, "info");
}

// The results panel: per district sign-ups against the target, the province against the plan, links to the report.
function updateResults(r) {
  const key = JSON.stringify(r);
  if (state.resultsKey === key) return;
  state.resultsKey = key;
  text($("results-day"), r.day_local ? `· báo cáo ngày ${r.day_local}` +
       (r.day_number ? ` (ngày ${r.day_number}/${r.campaign_length} của tháng cao điểm)` : "") : "");
  const summary = $("results-summary");
  if (r.state !== "ready") {
    text(summary, r.text);
    summary.className = r.state === "none" ? "none" : "warn";
  } else {
    const plan = r.plan_6m ? ` · tỉnh: ${r.total}/${r.plan_6m} người so với kế hoạch 6 tháng (${r.plan_progress}%` +
      (r.plan_missing ? `, còn thiếu ${r.plan_missing}` : "") + ")" + (r.plan_placeholder ? " — kế hoạch tạm tính" : "")
      : ` · tổng: ${r.total} người (chưa có kế hoạch 6 tháng)`;
    text(summary, `${r.units_reached}/${r.units_total} huyện đạt mục tiêu ${r.target_per_unit} người${plan}`);
    summary.className = "";
  }
  const links = Object.entries(r.links || {}).map(([kind, href]) => {
    const a = document.createElement("a");
    a.href = href; a.target = "_blank"; a.rel = "noopener";
    a.textContent = kind === "pdf" ? "Báo cáo PDF" : "Báo cáo HTML";
    return a;
  });
  $("results-links").replaceChildren(...links);
  const items = (r.districts || []).map((d) => {
    const li = document.createElement("li");
    li.className = d.reached ? "ok" : "short";
    const name = document.createElement("span");
    name.textContent = d.name;
    const figure = document.createElement("strong");
    figure.textContent = `${d.total}/${d.target}` + (d.reached ? " ✓" : ` · thiếu ${d.missing}`);
    li.append(name, figure);
    return li;
  });
  $("results-districts").replaceChildren(...items);
}

function updateAlerts(alerts) {
  text($("alert-count"), String(alerts.length));
  cls($("alert-count"), "bad", alerts.some((a) => a.level === "error"));
  const key = JSON.stringify(alerts);
  if (state.alertsKey === key) return;
  state.alertsKey = key;
  const items = alerts.slice(0, 60).map((a) => {
    const li = document.createElement("li");
    li.className = `alert lv-${a.level}`;
    const when = document.createElement("time");
    when.textContent = a.at_local || "";
    const what = document.createElement("span");
    what.textContent = a.text;
    li.append(when, what);
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "Không có cảnh báo.";
    items.push(li);
  }
  $("alerts").replaceChildren(...items);
}

function hms(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
}

function tick() {
  if (state.t0 == null) return;
  const now = Date.now() + state.offsetMs;
  const el = $("countdown");
  if (now < state.t0) {
    text(el, `Còn ${hms(state.t0 - now)} đến giờ G`); setState(el, "ph", "before");
  } else if (now < state.end) {
    text(el, `Đã phát động ${hms(now - state.t0)}`); setState(el, "ph", "live");
  } else {
    text(el, "Đã kết thúc"); setState(el, "ph", "ended");
  }
}

function applyFilter() {
  const q = state.query;
  for (const refs of state.rows.values()) {
    const el = refs.el;
    const byFilter = state.filter === "all" || (state.filter === "problem" && el.classList.contains("problem"))
      || (state.filter === "live" && (el.classList.contains("s-live") || el.classList.contains("s-back")));
    const show = byFilter && (!q || el.dataset.name.includes(q));
    if (el.hidden === show) el.hidden = !show;
  }
}

function showBanner(message, level) {
  const b = $("banner");
  text(b, message);
  setState(b, "lv", level);
  b.hidden = false;
}

// --- the loop ---------------------------------------------------------------------------------------------------------
function render(data) {
  const t = performance.now();
  if (state.eventId !== data.event.id || state.rows.size !== data.points.length) {
    state.eventId = data.event.id;
    buildRows(data.points);
  }
  updateHeader(data);
  for (const p of data.points) updateRow(state.rows.get(p.id), p);
  applyFilter();
  tick();
  const ms = performance.now() - t;
  window.__board.lastRenderMs = ms;
  if (window.__board.firstRenderMs == null) {
    window.__board.firstRenderMs = ms;  // building and filling every row
    window.__board.firstRenderAt = performance.now();  // since navigation: page, script, first API answer, render
  }
}

async function refresh() {
  try {
    const response = await fetch(api, { credentials: "same-origin", cache: "no-store",
                                        headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) {
      showBanner("Phiên đăng nhập Airflow đã hết hạn hoặc tài khoản không có quyền xem bảng này — hãy đăng nhập lại " +
                 "trong Airflow.", "error");
      throw new Error(`HTTP ${response.status}`);
    }
    const data = await response.json();
    if (!response.ok) {
      showBanner(`Máy chủ báo lỗi: ${data.detail || response.status}`, "error");
      throw new Error(`HTTP ${response.status}`);
    }
    render(data);
    state.failures = 0;
    if (!data.note) $("banner").hidden = true;
    window.__board.refreshes += 1;
    window.__board.lastOk = new Date().toISOString();
    text($("updated"), `cập nhật lúc ${new Date().toLocaleTimeString("vi-VN", { timeZone: data.event.timezone })}`);
    cls($("updated"), "stale", false);
  } catch (err) {
    state.failures += 1;
    window.__board.lastError = String(err);
    cls($("updated"), "stale", true);
    if (state.failures >= 2 && $("banner").hidden) {
      showBanner("Mất kết nối tới máy chủ — đang thử lại…", "error");
    }
  } finally {
    state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

// --- steering: go live now, postpone T0, switch the program point, end early (recorded with who) -----------------
const STEER_REFRESH_MS = 12000;
const steerApi = new URL("../api/steering", location.href);
if (params.get("event")) steerApi.searchParams.set("event", params.get("event"));

function localTime(iso, tz) {
  return new Date(iso).toLocaleTimeString("vi-VN", { timeZone: tz || "Asia/Ho_Chi_Minh", hour12: false });
}

function renderSteering(s) {
  state.steerEvent = s.event_id;
  const f = s.in_force;
  text($("steer-state"), `Đang áp dụng: giờ G ${localTime(f.t0)}, kết thúc ${localTime(f.end)}, tín hiệu chương ` +
       `trình từ ${f.program_name}` + (s.revision ? ` · ${s.revision} lệnh đã ra` : " · chưa có lệnh nào"));
  const select = $("steer-point");
  if (select.options.length !== s.points.length) {
    select.replaceChildren(...s.points.map((p) => new Option(p.name, p.id)));
  }
  if (document.activeElement !== select) select.value = f.program_point;
  const items = s.log.slice().reverse().map((e) => {
    const li = document.createElement("li");
    li.textContent = `${localTime(e.at)} · ${e.by}: ${e.said}`;
    return li;
  });
  $("steer-log").replaceChildren(...items);
}

async function loadSteering() {
  try {
    const response = await fetch(steerApi, { credentials: "same-origin", cache: "no-store",
                                             headers: { Accept: "application/json" } });
    if (response.ok) renderSteering(await response.json());
  } catch (err) {
    window.__board.lastError = String(err);
  }
}

async function steer(action) {
  const body = { action };
  if (action === "postpone") body.minutes = Number($("steer-minutes").value);
  if (action === "switch_program") body.point = $("steer-point").value;
  if (params.get("event")) body.event = params.get("event");
  const label = document.querySelector(`[data-steer="${action}"]`).textContent;
  const detail = action === "postpone" ? ` ${body.minutes} phút` :
    action === "switch_program" ? `: ${$("steer-point").selectedOptions[0].text}` : "";
  if (!window.confirm(`Xác nhận: ${label}${detail}?`)) return;
  const result = $("steer-result");
  for (const b of document.querySelectorAll("[data-steer]")) b.disabled = true;
  try {
    const response = await fetch(new URL("../api/steer", location.href), {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (response.status === 403) {
      text(result, "Tài khoản của bạn không có quyền điều khiển buổi phát (cần quyền chạy lại tác vụ của bridgecast_launch).");
    } else if (!response.ok) {
      text(result, `Không thực hiện: ${data.detail || "HTTP " + response.status}`);
    } else {
      text(result, `Đã thực hiện: ${data.done}` + (data.clear_error ? " — nhưng chưa đánh thức được các bước chờ; " +
           "chúng sẽ tự đọc lệnh khi đến giờ cũ." : ""));
      renderSteering(data);
      clearTimeout(state.timer);  // the countdown and the header show the new times now, not at the next poll
      refresh();
    }
    cls(result, "ok", response.ok && !data.clear_error);
    cls(result, "bad", !response.ok || Boolean(data.clear_error));
  } finally {
    for (const b of document.querySelectorAll("[data-steer]")) b.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-steer]")) {
    button.addEventListener("click", () => steer(button.dataset.steer));
  }
  loadSteering();
  setInterval(loadSteering, STEER_REFRESH_MS);
  for (const button of document.querySelectorAll(".filters button")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.filter;
      for (const b of document.querySelectorAll(".filters button")) b.setAttribute("aria-pressed", String(b === button));
      applyFilter();
    });
  }
  $("search").addEventListener("input", (e) => { state.query = e.target.value.trim().toLowerCase(); applyFilter(); });
  setInterval(tick, 1000);
  refresh();
});
