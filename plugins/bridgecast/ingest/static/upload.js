// Upload page logic: resumable chunked uploads through the gateway's session API, then processing status.
// Untrusted text (file names, server messages) only ever reaches the page through textContent.
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("bc-config").textContent);
  const $ = (selector) => document.querySelector(selector);
  const list = $("#list");
  const startButton = $("#start");
  const banner = $("#banner");
  const summary = $("#summary");

  const PARALLEL_FILES = 2; // two streams keep a 4G uplink busy without starving each other
  const MAX_FAILURES = 8; // ~2 minutes of back-off, then the file waits for a tap or for the network
  const STALL_MS = 45000; // no upload progress this long: the connection is dead even if the OS says otherwise
  const HISTORY_KEY = "bridgecast:uploads:" + cfg.eventId + ":" + cfg.pointId;
  const HISTORY_LIMIT = 200;

  const KIND_VI = { photo: "Ảnh", video: "Video", recording: "Bản ghi" };
  const STATUS_VI = {
    403: "Đường link gửi ảnh không hợp lệ hoặc đã bị thu hồi. Xin ban tổ chức đường link mới.",
    413: "Tệp quá lớn" + (cfg.maxUploadMb ? " (tối đa " + formatNumber(cfg.maxUploadMb) + " MB mỗi tệp)." : "."),
    415: "Không phải ảnh hoặc video — trang này chỉ nhận ảnh và video.",
    422: "Thông tin tệp không hợp lệ.",
  };

  const items = [];
  const queue = [];
  let running = 0;
  let tokenRefused = false;
  let wakeLock = null;
  let wakeLockBusy = false; // request() is async: without this, two quick state changes would take two locks

  // --- small helpers -------------------------------------------------------------------------------------
  function formatNumber(value, digits) {
    return new Intl.NumberFormat("vi-VN", { maximumFractionDigits: digits || 0 }).format(value);
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024 * 1024) return formatNumber(bytes / 1024 / 1024 / 1024, 2) + " GB";
    if (bytes >= 1024 * 1024) return formatNumber(bytes / 1024 / 1024, 1) + " MB";
    return formatNumber(Math.max(1, Math.round(bytes / 1024))) + " KB";
  }

  function apiUrl(path) {
    // The page lives at /u/{token}; the API at /api/... of the same origin (and of the same mount prefix).
    return new URL("../api/uploads" + path, window.location.href).toString();
  }

  class HttpError extends Error {
    constructor(status, detail) {
      super(detail || "HTTP " + status);
      this.status = status;
      this.detail = detail || "";
    }
  }

  function retryable(status) {
    return status === 0 || status === 408 || status === 429 || status >= 500;
  }

  function parseJson(text) {
    try { return text ? JSON.parse(text) : {}; } catch (err) { return {}; }
  }

  function detailOf(data) {
    if (!data) return "";
    if (typeof data.detail === "string") return data.detail;
    if (typeof data.error === "string") return data.error;
    return "";
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(apiUrl(path), {
        method: method,
        headers: Object.assign({ Authorization: "Bearer " + cfg.token },
                               body ? { "Content-Type": "application/json" } : {}),
        body: body ? JSON.stringify(body) : undefined,
        cache: "no-store",
      });
    } catch (err) {
      throw new HttpError(0, "mất kết nối");
    }
    const data = parseJson(await response.text().catch(() => ""));
    if (!response.ok) throw new HttpError(response.status, detailOf(data));
    return data;
  }

  function backoffMs(failures) {
    // 1 s, 2 s, 4 s … capped at 30 s, with jitter so 64 teams coming back online don't hit the gateway in step.
    const base = Math.min(30000, 1000 * Math.pow(2, failures - 1));
    return Math.round(base * (0.6 + Math.random() * 0.4));
  }

  function waitForRetry(ms) {
    // Coming back online ends the wait early: no reason to sit out a 30 s back-off once the network is back.
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); window.removeEventListener("online", done); resolve(); };
      const timer = setTimeout(done, ms);
      window.addEventListener("online", done);
    });
  }

  function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  // --- rows ----------------------------------------------------------------------------------------------
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function createRow(item) {
    const row = element("li", "file");
    const name = element("div", "file-name", item.name);
    const meta = element("div", "file-meta");
    const progress = element("progress");
    progress.max = 1000;
    progress.value = 0;
    const status = element("div", "file-status");
    const detail = element("div", "file-detail");
    const actions = element("div", "file-actions");
    row.append(name, meta, progress, status, detail, actions);
    item.row = row;
    item.ui = { name, meta, progress, status, detail, actions };
    list.prepend(row);
    $("#empty").hidden = true;
    renderMeta(item);
  }

  function renderMeta(item) {
    const parts = [formatSize(item.size)];
    if (item.kind) parts.push(KIND_VI[item.kind] || item.kind);
    if (item.fromHistory) parts.push("đã gửi trước đó");
    item.ui.meta.textContent = parts.join(" · ");
    if (item.duplicate && !item.ui.name.querySelector(".badge")) {
      item.ui.name.append(element("span", "badge", "Trùng"));
    }
  }

  function setState(item, state, statusText, detailText) {
    item.state = state;
    item.row.dataset.state = state;
    if (statusText !== undefined) item.ui.status.textContent = statusText;
    if (detailText !== undefined) item.ui.detail.textContent = detailText || "";
    updateSummary();
  }

  function setActions(item, buttons) {
    item.ui.actions.replaceChildren(...buttons.map(([label, onClick]) => {
      const button = element("button", "btn small", label);
      button.type = "button";
      button.addEventListener("click", onClick);
      return button;
    }));
  }

  function showProgress(item, bytes) {
    item.ui.progress.value = item.size ? Math.round((1000 * bytes) / item.size) : 1000;
    item.ui.status.textContent = "Đang gửi " + formatSize(bytes) + " / " + formatSize(item.size) +
      " (" + formatNumber((100 * bytes) / (item.size || 1)) + "%)";
  }

  function updateSummary() {
    const count = (states) => items.filter((i) => !i.fromHistory && states.includes(i.state)).length;
    const ready = count(["ready"]);
    const active = count(["queued", "uploading", "waiting"]);
    const done = count(["received", "processed", "quarantined"]);
    const refused = count(["rejected"]);
    const paused = count(["paused"]);
    startButton.disabled = ready === 0 || tokenRefused;
    startButton.textContent = ready ? "Gửi " + ready + " tệp" : "Gửi";
    const parts = [];
    if (active) parts.push("Đang gửi " + active + " tệp");
    if (done) parts.push("Đã gửi " + done + " tệp");
    if (paused) parts.push(paused + " tệp tạm dừng");
    if (refused) parts.push(refused + " tệp bị từ chối");
    summary.textContent = parts.join(" · ");
    toggleWakeLock(active > 0);
  }

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = false;
  }

  async function toggleWakeLock(on) {
    // A phone that locks its screen mid-upload suspends the page; keep it awake while bytes are flowing.
    if (!("wakeLock" in navigator) || wakeLockBusy) return;
    wakeLockBusy = true;
    try {
      if (on && !wakeLock) {
        wakeLock = await navigator.wakeLock.request("screen");
        wakeLock.addEventListener("release", () => { wakeLock = null; });
      } else if (!on && wakeLock) {
        await wakeLock.release();
      }
    } catch (err) {
      wakeLock = null; // refused (battery saver, hidden tab): uploads go on, the screen may just lock
    } finally {
      wakeLockBusy = false;
    }
  }

  // --- history (so a reload still shows what was sent and how processing went) --------------------------
  function loadHistory() {
    try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (err) { return []; }
  }

  function remember(item) {
    if (!item.sha256) return;
    const entries = loadHistory().filter((e) => e.sha256 !== item.sha256 || e.name !== item.name);
    entries.push({ name: item.name, size: item.size, sha256: item.sha256, kind: item.kind,
                   duplicate: !!item.duplicate, state: item.state, status: item.ui.status.textContent,
                   detail: item.ui.detail.textContent, at: Date.now() });
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(entries.slice(-HISTORY_LIMIT))); } catch (err) { /* full */ }
  }

  function restoreHistory() {
    for (const entry of loadHistory()) {
      if (typeof entry.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(entry.sha256)) continue;
      const item = { name: String(entry.name || ""), size: Number(entry.size) || 0, sha256: entry.sha256,
                     kind: entry.kind, duplicate: !!entry.duplicate, fromHistory: true, fingerprint: null };
      items.push(item);
      createRow(item);
      item.ui.progress.value = 1000;
      setState(item, entry.state || "received", entry.status || "Đã nhận", entry.detail || "");
      if (item.state === "received") pollProcessing(item);
    }
  }

  // --- choosing files ------------------------------------------------------------------------------------
  function fingerprintOf(file) {
    // What the server keys a resumable session on: re-choosing the same file after a reload resumes it.
    return file.name + ":" + file.size + ":" + file.lastModified;
  }

  function addFiles(fileList) {
    for (const file of Array.from(fileList)) {
      const fingerprint = fingerprintOf(file);
      const existing = items.find((i) => i.fingerprint === fingerprint && !i.fromHistory);
      if (existing && existing.state !== "rejected") continue; // chosen twice: one upload is enough
      const item = { file, fingerprint, name: file.name, size: file.size, state: "ready" };
      items.push(item);
      createRow(item);
      setState(item, "ready", "Sẵn sàng gửi", "");
      setActions(item, [["Bỏ", () => removeItem(item)]]);
    }
    updateSummary();
  }

  function removeItem(item) {
    if (item.state !== "ready") return;
    items.splice(items.indexOf(item), 1);
    item.row.remove();
    $("#empty").hidden = items.length > 0;
    updateSummary();
  }

  function startAll() {
    for (const item of items) {
      if (item.state === "ready") enqueue(item);
    }
  }

  function enqueue(item) {
    setActions(item, []);
    setState(item, "queued", "Đang chờ đến lượt", "");
    queue.push(item);
    pump();
  }

  function pump() {
    while (running < PARALLEL_FILES && queue.length && !tokenRefused) {
      const item = queue.shift();
      running += 1;
      upload(item).catch((err) => pause(item, err)).finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  // --- the resumable upload ------------------------------------------------------------------------------
  function openSession(item) {
    return api("POST", "/sessions", { filename: item.name, size: item.size,
                                      content_type: item.file.type || "", fingerprint: item.fingerprint });
  }

  function sendChunk(item, sessionId, start, end) {
    // XMLHttpRequest rather than fetch: it reports upload progress, which a team on a slow link needs to see.
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      let lastProgress = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastProgress > STALL_MS) xhr.abort();
      }, 5000);
      const settle = (fn, value) => { clearInterval(watchdog); item.xhr = null; fn(value); };
      xhr.open("PATCH", apiUrl("/sessions/" + encodeURIComponent(sessionId)));
      xhr.setRequestHeader("Authorization", "Bearer " + cfg.token);
      xhr.setRequestHeader("Upload-Offset", String(start));
      xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
      xhr.upload.onprogress = (event) => { lastProgress = Date.now(); showProgress(item, start + event.loaded); };
      xhr.onload = () => settle(resolve, { status: xhr.status, data: parseJson(xhr.responseText) });
      xhr.onerror = () => settle(reject, new HttpError(0, "mất kết nối"));
      xhr.onabort = () => settle(reject, new HttpError(0, "kết nối bị treo"));
      item.xhr = xhr;
      xhr.send(item.file.slice(start, end));
    });
  }

  async function upload(item) {
    setState(item, "uploading", "Đang bắt đầu…", "");
    let session = null;
    let failures = 0;
    let reopened = 0;
    while (true) {
      try {
        if (!session) {
          session = await openSession(item);
          item.offset = session.offset || 0;
          if (session.result) return received(item, session.result);
          if (item.offset > 0) item.ui.detail.textContent = "Gửi tiếp từ " + formatSize(item.offset);
        }
        showProgress(item, item.offset);
        // At the very end this is an empty chunk: it asks the server to finish a file whose bytes all arrived but
        // whose answer was lost or whose storing failed; a finished session just answers with its result again.
        const end = Math.min(item.size, item.offset + (session.chunk_size || 8 * 1024 * 1024));
        const answer = await sendChunk(item, session.id, item.offset, end);
        if (answer.status === 200) {
          failures = 0;
          if (item.state !== "uploading") setState(item, "uploading", undefined, "");
          if (answer.data.result) return received(item, answer.data.result);
          item.offset = answer.data.offset;
        } else if (answer.status === 409) {
          item.offset = answer.data.offset; // the server holds a different number of bytes: it is right
        } else if (answer.status === 404 && reopened < 3) {
          reopened += 1;
          session = null; // the server dropped the session (cleaned up): start a fresh one
        } else {
          throw new HttpError(answer.status, detailOf(answer.data));
        }
      } catch (err) {
        const status = err instanceof HttpError ? err.status : 0;
        if (!retryable(status)) return reject(item, status, err.detail || String(err));
        failures += 1;
        if (failures > MAX_FAILURES) return pause(item, err);
        const delay = backoffMs(failures);
        setState(item, "waiting", "Mất kết nối — tự thử lại sau " + Math.ceil(delay / 1000) + " giây (lần " +
          failures + ")", err.detail || "");
        await waitForRetry(delay);
        setState(item, "uploading", "Đang kết nối lại…");
        if (session) {
          // Resume from what the server really has: part of the failed chunk may have reached it.
          try {
            const state = await api("GET", "/sessions/" + encodeURIComponent(session.id));
            if (state.result) return received(item, state.result);
            item.offset = state.offset;
          } catch (lookupErr) {
            if (lookupErr.status === 404) session = null;
            else if (!retryable(lookupErr.status)) return reject(item, lookupErr.status, lookupErr.detail);
          }
        }
      }
    }
  }

  function reject(item, status, detail) {
    item.ui.progress.value = 0;
    setActions(item, []);
    const reason = STATUS_VI[status] || ("Máy chủ từ chối tệp (mã " + status + ").");
    setState(item, "rejected", "Bị từ chối: " + reason, detail || "");
    if (status === 403) refuseToken(detail);
  }

  function refuseToken(detail) {
    // A revoked link refuses every file: stop now instead of letting each file fail on its own.
    tokenRefused = true;
    showBanner(STATUS_VI[403]);
    for (const other of queue.splice(0)) {
      other.ui.progress.value = 0;
      setState(other, "rejected", "Bị từ chối: " + STATUS_VI[403], detail || "");
    }
    updateSummary();
  }

  function pause(item, err) {
    setState(item, "paused", "Tạm dừng: chưa gửi được sau nhiều lần thử. Bấm «Gửi tiếp» khi có sóng.",
             (err && err.detail) || String(err || ""));
    setActions(item, [["Gửi tiếp", () => enqueue(item)]]);
  }

  function received(item, result) {
    item.ui.progress.value = 1000;
    setActions(item, []);
    if (!result.accepted) return reject(item, result.status_code || 0, result.error || "");
    item.sha256 = result.sha256;
    item.kind = result.kind;
    item.duplicate = !!result.duplicate;
    renderMeta(item);
    const detail = item.duplicate
      ? "Máy chủ đã có đúng tệp này từ trước — không lưu thêm bản nữa."
      : "Mã tệp " + result.sha256.slice(0, 12);
    applyProcessing(item, result.status || "received", null, detail);
    remember(item);
    if (item.state === "received") pollProcessing(item);
  }

  // --- processing status ---------------------------------------------------------------------------------
  function applyProcessing(item, status, reason, detail) {
    reason = reason || {};
    if (status === "processed") {
      setState(item, "processed", "Đã nhận và xử lý xong" + (item.kind ? " (" + (KIND_VI[item.kind] || item.kind).toLowerCase() + ")" : ""),
               detail);
    } else if (status === "quarantined") {
      // The server's own words (media.team_message: what is wrong and what to do), one table for every page and
      // mail; its leading "<file name>: " is dropped, the row already names the file.
      const said = (reason.text || "").replace(item.name + ": ", "");
      setState(item, "quarantined", "Đã nhận nhưng bị giữ lại để kiểm tra: " + (said || "tệp có vấn đề"),
               reason.code ? "mã lỗi " + reason.code : "");
    } else {
      setState(item, "received", "Đã nhận — đang chờ xử lý", detail);
    }
  }

  async function pollProcessing(item) {
    let delay = 3000;
    while (item.state === "received" && !tokenRefused) {
      await sleep(delay);
      delay = Math.min(30000, Math.round(delay * 1.5));
      try {
        const manifest = await api("GET", "/" + item.sha256);
        if (manifest.status && manifest.status !== "received") {
          applyProcessing(item, manifest.status, { code: manifest.reason_code, text: manifest.reason },
                          item.ui.detail.textContent);
          remember(item);
        }
      } catch (err) {
        if (err.status === 403) refuseToken(err.detail);
        if (err.status === 404 && item.fromHistory) return; // belongs to an older event or a reset stack
      }
    }
  }

  // --- the district team's sign-up form -------------------------------------------------------------------
  // Sent with the same token as the uploads; on any failure the values stay in the form, to send again.
  function wireSignupForm() {
    const form = $("#signup-form");
    const result = $("#su-result");
    const send = $("#su-send");
    function say(text, isError) {
      result.textContent = text;
      result.classList.toggle("error", Boolean(isError));
      result.hidden = false;
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const count = $("#su-count").value.trim();
      const forms = $("#su-forms").value.trim();
      if (!/^\d+$/.test(count)) { say("«Số người tham gia mới»: nhập một số nguyên ≥ 0 (0 nếu không có).", true); return; }
      if (forms && !/^\d+$/.test(forms)) { say("«Số tờ khai»: nhập một số nguyên ≥ 0, hoặc để trống.", true); return; }
      const body = { day: $("#su-day").value, count: Number(count), forms: forms ? Number(forms) : null };
      send.disabled = true;
      say("Đang gửi…", false);
      try {
        const response = await fetch(new URL("../api/signups", window.location.href).toString(), {
          method: "POST", cache: "no-store", body: JSON.stringify(body),
          headers: { Authorization: "Bearer " + cfg.token, "Content-Type": "application/json" },
        });
        const data = parseJson(await response.text().catch(() => ""));
        if (!response.ok) {
          say(detailOf(data) || STATUS_VI[response.status] || ("Không gửi được (HTTP " + response.status +
              ") — thử lại sau."), true);
          return;
        }
        say(data.message || "Đã nhận báo cáo.", false);
      } catch (err) {
        say("Mất kết nối — số đã nhập vẫn còn đây, hãy thử lại sau.", true);
      } finally {
        send.disabled = false;
      }
    });
  }

  // --- wiring --------------------------------------------------------------------------------------------
  for (const input of [$("#files"), $("#camera")]) {
    input.addEventListener("change", () => {
      addFiles(input.files);
      input.value = ""; // choosing the same file again (after a failure) must fire "change" again
    });
  }
  startButton.addEventListener("click", startAll);
  $("#print").addEventListener("click", () => window.print());
  window.addEventListener("online", () => {
    for (const item of items) if (item.state === "paused") enqueue(item);
  });
  window.addEventListener("beforeunload", (event) => {
    if (items.some((i) => ["queued", "uploading", "waiting"].includes(i.state))) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") updateSummary(); // re-acquire the wake lock the OS dropped
  });
  if (cfg.signups) wireSignupForm();
  restoreHistory();
  $("#empty").hidden = items.length > 0;
  updateSummary();
})();
