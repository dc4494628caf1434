// The staff's calendar of posts: asks ../api/calendar for the days on screen and lays them out as a week (Monday
// first) or a month. Days are plain "YYYY-MM-DD" strings computed in UTC, so the browser's own time zone never moves
// a post to another day; every time shown comes from the server, already in Vietnam time. Nothing from the JSON is
// inserted as HTML.
"use strict";

const REFRESH_MS = 30000;
const params = new URLSearchParams(location.search);
const api = new URL("../api/calendar", location.href);
const uiRoot = new URL("../../", location.href);  // the Airflow UI: this page is <ui>/bridgecast/calendar/

const state = { view: params.get("view") === "month" ? "month" : "week", anchor: validDay(params.get("date")),
                event: params.get("event"), data: null, timer: null, loading: 0 };
window.__calendar = { loads: 0, lastError: null, range: null };

const $ = (id) => document.getElementById(id);

function el(tag, className, textValue) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (textValue != null) node.textContent = String(textValue);
  return node;
}

// --- days as strings -------------------------------------------------------------------------------------------------
function validDay(value) {
  return value && /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : null;
}
function toDate(day) { const [y, m, d] = day.split("-").map(Number); return new Date(Date.UTC(y, m - 1, d)); }
function toDay(date) { return date.toISOString().slice(0, 10); }
function addDays(day, n) { const d = toDate(day); d.setUTCDate(d.getUTCDate() + n); return toDay(d); }
function mondayOf(day) { return addDays(day, -((toDate(day).getUTCDay() + 6) % 7)); }
function dmy(day) { const [y, m, d] = day.split("-"); return `${d}/${m}/${y}`; }
function dm(day) { const [, m, d] = day.split("-"); return `${d}/${m}`; }
function firstOfMonth(day, shift = 0) {
  const d = toDate(day.slice(0, 8) + "01");
  d.setUTCMonth(d.getUTCMonth() + shift);
  return toDay(d);
}
function weekdayOf(day) { return (toDate(day).getUTCDay() + 6) % 7; }  // 0 = Monday, as WEEKDAYS_VI

function range() {
  if (state.view === "week") {
    const from = mondayOf(state.anchor);
    return { from, to: addDays(from, 6) };
  }
  const first = firstOfMonth(state.anchor);
  const last = addDays(firstOfMonth(state.anchor, 1), -1);
  return { from: mondayOf(first), to: addDays(mondayOf(last), 6) };
}

function rangeTitle() {
  if (state.view === "week") {
    const { from, to } = range();
    return `Tuần ${dmy(from)} – ${dmy(to)}`;
  }
  const [y, m] = state.anchor.split("-");
  return `Tháng ${Number(m)}/${y}`;
}

// --- links to Airflow's pages ------------------------------------------------------------------------------------------
// Inside Airflow's UI this page is a sandboxed frame (scripts and same origin, no pop-ups), so a link that opens a
// new tab must be followed by the UI's own document (same origin); standalone, the browser follows it as usual.
function openOutside(event) {
  const a = event.target.closest("a[target=_blank]");
  if (!a || window.top === window) return;
  try {
    const doc = window.top.document;
    const outer = doc.createElement("a");
    outer.href = a.href; outer.target = "_blank"; outer.rel = "noopener";
    doc.body.appendChild(outer);
    outer.click();
    outer.remove();
    event.preventDefault();
  } catch (err) {
    // another origin frames us: leave the link to the browser
  }
}

function uiLink(path, label) {
  const a = el("a", null, label);
  a.href = new URL(path, uiRoot).href;
  a.target = "_blank";
  return a;
}

function outLink(href, label) {
  const a = el("a", null, label);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

// --- the grid ------------------------------------------------------------------------------------------------------------
function pill(stateName, label) {
  return el("span", `pill st-${stateName}`, label);
}

// A month's cells show a card's time and title only (CSS); a phone lists a month's days and shows it all.
function card(post) {
  const b = el("button", `post st-${post.state}`);
  b.type = "button";
  b.dataset.key = post.key;
  b.title = `${post.time_words} — ${post.title}`;
  const when = el("span", "time", post.time);
  when.append(" ", el("small", null, "giờ Việt Nam"));
  b.append(when, el("span", "title", post.title), pill(post.state, post.state_label));
  const channels = el("span", "chans");
  for (const c of post.channels) {
    const item = el("span", `chan st-${c.state}`, c.name);
    item.title = `${c.name}: ${c.state_label}`;
    channels.append(item);
  }
  b.append(channels);
  b.addEventListener("click", () => openDetails(post.key));
  return b;
}

function render() {
  const data = state.data;
  const today = data.today;
  const byDay = new Map(data.days.map((d) => [d, []]));
  for (const post of data.posts) if (byDay.has(post.date)) byDay.get(post.date).push(post);
  const grid = $("grid");
  grid.className = `grid ${state.view}`;
  const month = state.anchor.slice(0, 7);
  const cells = data.days.map((day) => {
    const posts = byDay.get(day);
    const cell = el("div", "day");
    cell.dataset.day = day;
    if (day === today) cell.classList.add("today");
    if (state.view === "month" && day.slice(0, 7) !== month) cell.classList.add("other");
    if (!posts.length) cell.classList.add("empty");
    const head = el("div", "day-head");
    head.append(el("span", "wd", data.weekdays[weekdayOf(day)]), " ",
                el("span", "dm", state.view === "month" && day.slice(8) !== "01" ? String(Number(day.slice(8))) : dm(day)),
                el("span", "full", dmy(day)));
    if (day === today) head.append(el("span", "tag", "hôm nay"));
    cell.append(head);
    const list = el("div", "posts");
    for (const post of posts) list.append(card(post));
    if (!posts.length && state.view === "week") list.append(el("span", "none", "Không có bài"));
    cell.append(list);
    return cell;
  });
  grid.replaceChildren(...cells);
  $("weekdays").replaceChildren(...data.weekdays.map((w) => el("span", null, w)));
  $("weekdays").hidden = state.view === "week";  // a week's columns name their own day
  $("range-title").textContent = rangeTitle();
  for (const b of document.querySelectorAll(".views button")) {
    b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
  }
  const e = data.event;
  $("event-meta").textContent = `${e.title} · ${data.posts.length} bài trong ${state.view === "week" ? "tuần" : "các ngày"} này`;
  document.title = `Lịch đăng bài — ${e.title}`;
  const legend = Object.entries(data.states).map(([name, label]) => {
    const li = el("li");
    li.append(pill(name, label));
    return li;
  });
  $("legend").replaceChildren(...legend);
  const at = new Date(data.now).toLocaleTimeString("vi-VN", { timeZone: e.timezone, hour12: false });
  $("updated").textContent = `Cập nhật lúc ${at} giờ Việt Nam · tệp lịch: ${data.calendar_dir}`;
  if (data.problems.length) showBanner(data.problems.join("\n"), "error");
  else $("banner").hidden = true;
}

// --- one post --------------------------------------------------------------------------------------------------------------
function openDetails(key) {
  const post = state.data.posts.find((p) => p.key === key);
  if (!post) return;
  const dialog = $("details");
  dialog.dataset.key = key;
  $("d-source").textContent = post.source === "form"
    ? `Bài từ biểu mẫu${post.edit.repost ? " (đăng lại)" : ""}`
    : `Bài trong tệp lịch · id ${post.label}`;
  $("d-title").textContent = post.title;
  $("d-time").textContent = `Giờ đăng: ${post.time_words}`;
  const approval = $("d-approval");
  approval.hidden = !post.approval;
  if (post.approval) {
    const a = post.approval;
    const who = (a.approvers || []).join(", ");
    approval.className = `approval ap-${a.state}`;
    approval.replaceChildren(el("strong", null, "Duyệt: "),
      `${a.note || a.state}${who && (a.state === "waiting" || a.state === "not_asked") ? ` — người duyệt: ${who}` : ""}`);
    if (a.state === "waiting" && a.open) approval.append(" · ", uiLink(a.path, "Mở yêu cầu duyệt"));
  }
  $("d-channels").replaceChildren(...post.channels.map((c) => {
    const li = el("li");
    li.append(el("strong", null, c.name), " ", pill(c.state, c.state_label));
    if (c.url && c.state === "published") li.append(" ", outLink(c.url, "Xem bài đã đăng"));
    else if (c.url) li.append(" ", outLink(c.url, "Xem trên kênh"));
    if (c.approvers.length) li.append(el("small", null, `Chờ người duyệt: ${c.approvers.join(", ")}`));
    if (c.reason) li.append(el("small", c.state === "failed" ? "reason bad" : "reason", c.reason));
    return li;
  }));
  $("d-body").textContent = post.body;
  $("d-excerpt").hidden = !post.excerpt;
  $("d-excerpt").textContent = post.excerpt ? `Tóm tắt: ${post.excerpt}` : "";
  $("d-link").hidden = !post.link;
  $("d-link").replaceChildren(...(post.link ? ["Liên kết kèm bài: ", outLink(post.link, post.link)] : []));
  $("d-media-text").textContent = post.media.photos.length ? "" : post.media.text;
  $("d-photos").replaceChildren(...post.media.photos.map((p) => {
    const a = el("a", "photo");
    a.href = p.url; a.target = "_blank";
    const img = el("img");
    img.alt = p.caption || "ảnh";
    img.loading = "lazy";
    img.addEventListener("error", () => { if (img.src !== new URL(p.url, location.href).href) img.src = p.url; },
                         { once: true });
    img.src = p.thumb_url;
    a.append(img);
    if (p.caption) a.append(el("span", null, p.caption));
    return a;
  }));
  $("d-previews-box").hidden = !post.previews.length;
  $("d-previews").replaceChildren(...post.previews.map((p) => {
    const li = el("li");
    li.append(outLink(p.url, p.name));
    return li;
  }));
  $("d-edit").replaceChildren(...editHelp(post));
  $("d-runs").replaceChildren(...post.runs.map((r) => {
    const li = el("li");
    li.append(uiLink(r.path, `Lượt chạy ${r.run_id}`), el("small", null, ` (${r.state})`));
    return li;
  }));
  if (!dialog.open) dialog.showModal();
}

function editHelp(post) {
  const e = post.edit;
  if (e.kind === "file") {
    const p = el("p");
    p.append("Bài này nằm trong tệp lịch ", el("code", null, e.path), ` (mục có id: ${e.post_id}) — sửa ngay trong ` +
             "tệp đó. Lịch được đọc lại mỗi 5 phút (DAG «Lịch đăng bài»); bài đã đăng được cập nhật, không đăng lần hai.");
    return [p];
  }
  if (e.kind === "removed") {
    return [el("p", null, "Bài đã được bỏ khỏi tệp lịch; muốn đăng lại thì thêm vào tệp lịch với id mới.")];
  }
  const p = el("p");
  p.append("Mở lượt chạy của bài, bấm ", el("strong", null, "Trigger"), " rồi chọn ",
           el("strong", null, "Trigger again with this config"), ": biểu mẫu mở sẵn nội dung bài này. Giữ nguyên ",
           "tiêu đề, ngày và giờ đăng thì chính bài này được cập nhật (sau khi được duyệt lại); đổi giờ đăng là một ",
           "bài mới — khi đó dừng lượt cũ bằng «Mark run as → Failed». ");
  p.append(uiLink(e.path, "Mở lượt chạy để sửa"));
  return [p];
}

// --- loading ------------------------------------------------------------------------------------------------------------
function showBanner(message, level) {
  const b = $("banner");
  b.textContent = message;
  b.className = `banner lv-${level}`;
  b.hidden = false;
}

async function load() {
  clearTimeout(state.timer);
  const ticket = ++state.loading;
  const url = new URL(api);
  if (state.anchor) {
    const { from, to } = range();
    url.searchParams.set("from", from);
    url.searchParams.set("to", to);
  }
  if (state.event) url.searchParams.set("event", state.event);
  try {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store",
                                         headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) {
      throw new Error("Phiên đăng nhập Airflow đã hết hạn hoặc tài khoản không có quyền xem lịch — hãy đăng nhập " +
                      "lại trong Airflow.");
    }
    const data = await response.json();
    if (!response.ok) throw new Error(`Máy chủ báo lỗi: ${data.detail || response.status}`);
    if (ticket !== state.loading) return;  // a newer request (the user moved on) answers instead
    if (!state.anchor) {  // first load: the server said which day it is in Vietnam
      state.anchor = data.today;
      if (state.view !== "week") return load();
    }
    state.data = data;
    render();
    window.__calendar.loads += 1;
    window.__calendar.range = [data.from, data.to];
    window.__calendar.lastError = null;
    const dialog = $("details");
    if (dialog.open && data.posts.some((p) => p.key === dialog.dataset.key)) openDetails(dialog.dataset.key);
  } catch (err) {
    window.__calendar.lastError = String(err);
    showBanner(err.message.startsWith("Máy chủ") || err.message.startsWith("Phiên") ? err.message
               : "Mất kết nối tới máy chủ — đang thử lại…", "error");
  } finally {
    if (ticket === state.loading) state.timer = setTimeout(load, REFRESH_MS);
  }
}

function go(anchor, view) {
  state.anchor = anchor;
  if (view) state.view = view;
  const shown = new URL(location.href);
  shown.searchParams.set("view", state.view);
  shown.searchParams.set("date", state.anchor);
  history.replaceState(null, "", shown);
  if (state.data) $("range-title").textContent = rangeTitle();
  load();
}

document.addEventListener("DOMContentLoaded", () => {
  document.addEventListener("click", openOutside);
  $("prev").addEventListener("click", () => state.anchor && go(state.view === "week" ? addDays(state.anchor, -7)
                                                                         : firstOfMonth(state.anchor, -1)));
  $("next").addEventListener("click", () => state.anchor && go(state.view === "week" ? addDays(state.anchor, 7)
                                                                         : firstOfMonth(state.anchor, 1)));
  $("today").addEventListener("click", () => state.data && go(state.data.today));
  for (const b of document.querySelectorAll(".views button")) {
    b.addEventListener("click", () => state.anchor && go(state.anchor, b.dataset.view));
  }
  $("d-close").addEventListener("click", () => $("details").close());
  $("details").addEventListener("click", (e) => { if (e.target === $("details")) $("details").close(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && state.data) load(); });
  load();
});
