"""The control room's board in the real Airflow api-server: refused without an Airflow login; with one, rendered in
headless Chromium (laptop and phone widths) during a rehearsal event — all 73 rows, live states from real publishers
with real stream keys, a thumbnail that changes between two refreshes, a drop shown within 10 s of a publisher
stopping — and inside Airflow's own UI (nav entry and the launch run's tab). Screenshots: test-artifacts/board/."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import yaml

import kit
from kit import jpeg_bytes, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

STREAMING = ("trung-uong", "ha-noi", "vinh-phuc", "hai-phong")  # publish from the start
DROPPING = "hai-phong"  # stopped mid-test: must show as dropped within 10 s
NO_GO = "ha-giang"  # never streams; marked no-go in the preflight artefact
TEAM = "tam-dao"
ROWS_JS = """JSON.stringify(Array.from(document.querySelectorAll('#rows .point')).map(el => ({
  id: el.dataset.point, live: el.querySelector('.live .pill').textContent,
  pre: el.querySelector('.preflight .pill').textContent, stream: el.querySelector('.stream').textContent,
  photos: el.querySelector('.photos').textContent, links: el.querySelector('.links').textContent,
  thumb: el.querySelector('.thumb img').getAttribute('src'), thumbShown: !el.querySelector('.thumb img').hidden})))"""


# The picture a row shows, as the browser decoded it (a hash of its pixels), or null while there is none.
PICTURE_JS = """(() => {
  const img = document.querySelector('#rows .point[data-point="%s"] .thumb img');
  if (!img || img.hidden || !img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 0; for (let i = 0; i < data.length; i += 7) h = (h * 31 + data[i]) | 0;
  return `${canvas.width}x${canvas.height}:${h}`;
})()"""


def row(chromium, point: str) -> dict:
    return next(r for r in json.loads(chromium.evaluate(ROWS_JS)) if r["id"] == point)


# --- the rehearsal event and its publishers --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def board_event(stack):
    """A rehearsal copy of the event (T0 a minute ago, 30 min long) with its own point keys, kept in S3 where a
    launch run keeps its event."""
    from bridgecast.event import default_event_path, load_event
    from bridgecast.ingest.keys import issue_point_keys
    from bridgecast.run_event import save_run_event
    from devstack.rehearsal import RehearsalOptions, rehearsal_event

    t0 = (datetime.now(timezone.utc) - timedelta(minutes=1)).replace(microsecond=0)
    raw = rehearsal_event(default_event_path(), RehearsalOptions(points=64, event_minutes=30), t0)
    raw["id"] = f"rehearsal-board-{uuid.uuid4().hex[:6]}"
    work = stack.layout.var / "rehearsals" / raw["id"]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "event.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    event = load_event(path)
    keys_file = issue_point_keys(stack.layout.secrets, event.id, [p.id for p in event.points], event_file=str(path))
    event_key = save_run_event(event, path.read_bytes())
    return event, json.loads(keys_file.read_text())["points"], event_key


class Publishers:
    def __init__(self, stack, keys: dict, feeds: Path):
        self.stack, self.keys, self.feeds, self.procs = stack, keys, feeds, {}

    def start(self, point: str) -> None:
        from devstack import synthetic

        feed = self.feeds / f"{point}.mp4"
        if not feed.exists():
            synthetic.rehearsal_stream(feed.with_suffix(".part.mp4"), f"Điểm cầu {point}", duration=12)
            feed.with_suffix(".part.mp4").replace(feed)
        url = f"rtmp://127.0.0.1:{self.stack.layout.ports.rtmp}/live/{point}?key={self.keys[point]['stream_key']}"
        binary, *rest = synthetic.publish_argv(feed, url)
        self.procs[point] = subprocess.Popen([binary, "-hide_banner", "-loglevel", "error", *rest],
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self, point: str) -> None:
        proc = self.procs.pop(point)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for point in list(self.procs):
            self.stop(point)


@pytest.fixture(scope="module")
def publishers(stack, board_event):
    _, keys, _ = board_event
    feeds = stack.layout.var / "rehearsals" / "board-feeds"
    feeds.mkdir(parents=True, exist_ok=True)
    pubs = Publishers(stack, keys, feeds)
    try:
        for point in STREAMING:
            pubs.start(point)
        yield pubs
    finally:
        pubs.stop_all()


def _shot(browser: kit.HeadlessChromium, path: Path, height: int | None = None) -> Path:
    """The top of the page (what a person sees first, and a picture one can look at), not all 73 rows."""
    return kit.screenshot(browser, path, height or browser.height)


@pytest.fixture
def board_artifacts(artifacts_dir) -> Path:
    path = artifacts_dir / "board"
    path.mkdir(exist_ok=True)
    return path


# --- the tests ----------------------------------------------------------------------------------------------------------
def test_the_plugin_refuses_requests_without_an_airflow_login(airflow_url, admin_token, board_event):
    event, _, _ = board_event
    urls = ["/bridgecast/board/", "/bridgecast/board/static/board.js", f"/bridgecast/api/board?event={event.id}",
            "/bridgecast/api/thumbnails/ha-noi.jpg"]
    for path in urls:
        anonymous = requests.get(f"{airflow_url}{path}", timeout=30, allow_redirects=False)
        assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:200])
        forged = requests.get(f"{airflow_url}{path}", timeout=30, cookies={"_token": "not-a-jwt"},
                              allow_redirects=False)
        assert forged.status_code in (401, 403), (path, forged.status_code)
        expired = requests.get(f"{airflow_url}{path}", timeout=30, allow_redirects=False,
                               headers={"Authorization": f"Bearer {admin_token[:-4]}AAAA"})
        assert expired.status_code in (401, 403), (path, expired.status_code)
    page = requests.get(f"{airflow_url}/bridgecast/board/", timeout=30, cookies={"_token": admin_token})
    assert page.status_code == 200 and "Bảng điều khiển" in page.text
    data = requests.get(f"{airflow_url}/bridgecast/api/board", params={"event": event.id}, timeout=30,
                        headers={"Authorization": f"Bearer {admin_token}"}).json()
    assert data["event"]["id"] == event.id and len(data["points"]) == 73


def test_the_board_in_chromium_during_a_rehearsal(stack, board_event, publishers, airflow_url, admin_token,
                                                  board_artifacts, tmp_path):
    from bridgecast.ledger import FAILED, Ledger
    from bridgecast.objects import launch_key
    from bridgecast.storage import Storage

    event, keys, _ = board_event
    storage = Storage.from_connection()
    # The launch's preflight artefact: the streaming points go, one point sent nothing.
    storage.put_json(launch_key(event.id, "preflight.json"), {
        "points_go": len(STREAMING), "points_total": 64, "no_go": [NO_GO], "channels_ok": True, "channels": {},
        "points": [{"point": p, "go": p != NO_GO, "problems": [] if p != NO_GO else
                    ["no test stream received by the ingest"], "notes": []} for p in (*STREAMING, NO_GO)]})
    # A team sends two photos through the upload API; a publication fails in the ledger.
    gateway = f"http://127.0.0.1:{stack.layout.ports.gateway}"
    sent = requests.post(f"{gateway}/api/uploads", timeout=60,
                         headers={"Authorization": f"Bearer {keys[TEAM]['upload_token']}"},
                         files=[("files", (f"anh-{i}.jpg", jpeg_bytes(), "image/jpeg")) for i in range(2)])
    assert sent.status_code == 200, sent.text
    ledger = Ledger()
    ledger.mark_pending(event.id, "press", "launch/press-kit", "0" * 64)
    ledger.mark(event.id, "press", "launch/press-kit", FAILED, "SMTP 550 mailbox unavailable")

    phone = kit.open_chromium(tmp_path, board_artifacts, 390, 844, mobile=True)
    desktop = kit.open_chromium(tmp_path, board_artifacts, 1366, 900, mobile=False)
    try:
        for browser in (phone, desktop):
            kit.sign_in(browser, airflow_url, admin_token)
        started = time.monotonic()
        desktop.open(f"{airflow_url}/bridgecast/board/?event={event.id}")
        wait_for(lambda: desktop.evaluate("window.__board.refreshes") >= 1, timeout_s=30, what="the first refresh")
        first_render_ms, ready_ms = desktop.evaluate("[window.__board.firstRenderMs, window.__board.firstRenderAt]")
        print(f"\nboard: 73 rows built and filled in {first_render_ms:.0f} ms; on screen {ready_ms:.0f} ms after "
              "navigation (page, script, first /api/board answer)", file=sys.stderr)
        assert desktop.evaluate("document.querySelectorAll('#rows .point').length") == 73
        assert first_render_ms < 1000 and ready_ms < 5000

        # live states from the real publishers, through the gateway and nginx
        def all_live():
            rows = {r["id"]: r for r in json.loads(desktop.evaluate(ROWS_JS))}
            return rows if all(rows[p]["live"] == "Đang phát" and "kb/s" in rows[p]["stream"] for p in STREAMING) \
                else None

        rows = wait_for(all_live, timeout_s=40, interval_s=1, what="the publishing points to show live with bitrate")
        # the preflight artefact is read again within the sources' few-seconds cache
        wait_for(lambda: row(desktop, NO_GO)["pre"] == "Không đạt", timeout_s=15, what="the no-go verdict")
        rows = {r["id"]: r for r in json.loads(desktop.evaluate(ROWS_JS))}
        assert rows[NO_GO]["live"] == "Chưa lên sóng"
        assert rows["ha-noi"]["pre"] == "Đạt"
        assert rows["cao-bang"]["live"] == "Chưa lên sóng" and rows[TEAM]["live"] == "Không phát trực tiếp"
        assert wait_for(lambda: row(desktop, TEAM)["photos"].startswith("2 · "), timeout_s=30,
                        what="the team's two photos counted")
        alerts = wait_for(lambda: (lambda t: t if "Đăng bài lỗi" in t else None)(
            desktop.evaluate("document.querySelector('#alerts').textContent")), timeout_s=15, what="the ledger's failure")
        assert "Hà Giang: không đạt kiểm tra trước giờ G" in alerts
        assert "Đăng bài lỗi: Báo chí — Thông cáo báo chí (SMTP 550" in alerts
        assert desktop.evaluate("document.querySelector('#c-live').textContent") == f"{len(STREAMING)}/64"
        assert desktop.evaluate("document.querySelector('#countdown').textContent").startswith("Đã phát động")

        # a thumbnail that changes between two refreshes: the pixels the page shows, not only its URL
        def shown_picture() -> str | None:
            return desktop.evaluate(PICTURE_JS % "ha-noi")

        first = wait_for(shown_picture, timeout_s=30, what="a thumbnail of Hà Nội on the page")
        wait_for(lambda: (lambda now: now and now != first)(shown_picture()), timeout_s=25, interval_s=0.5,
                 what="Hà Nội's thumbnail to show a newer picture")
        shot = row(desktop, "ha-noi")["thumb"]
        got = requests.get(f"{airflow_url}/bridgecast/board/{shot}", timeout=30, cookies={"_token": admin_token})
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg" and got.content[:2] == b"\xff\xd8"

        phone.call("Emulation.setCPUThrottlingRate", {"rate": 4})  # a mid-range phone is ~4× slower than this box
        phone.open(f"{airflow_url}/bridgecast/board/?event={event.id}")
        wait_for(lambda: phone.evaluate("window.__board.refreshes") >= 1, timeout_s=30, what="the phone's first refresh")
        phone_render_ms = phone.evaluate("window.__board.firstRenderMs")
        print(f"board: 73 rows on a 4×-throttled phone in {phone_render_ms:.0f} ms", file=sys.stderr)
        assert phone_render_ms < 1000
        phone.call("Emulation.setCPUThrottlingRate", {"rate": 1})
        wait_for(lambda: row(phone, "ha-noi")["thumbShown"], timeout_s=30, what="the phone's board with pictures")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        desktop.screenshot(board_artifacts / "board-desktop-full.png")
        _shot(desktop, board_artifacts / "board-desktop.png")
        _shot(phone, board_artifacts / "board-phone.png", height=1600)
        phone.evaluate("document.querySelector('button[data-filter=problem]').click()")
        _shot(phone, board_artifacts / "board-phone-problems.png", height=1600)
        phone.evaluate("document.querySelector('button[data-filter=all]').click()")

        # a drop, seen within 10 s of the publisher stopping
        publishers.stop(DROPPING)
        stopped = time.monotonic()
        wait_for(lambda: row(desktop, DROPPING)["live"] == "Mất tín hiệu", timeout_s=10, interval_s=0.25,
                 what=f"{DROPPING} shown as dropped")
        shown_after = time.monotonic() - stopped
        print(f"board: drop of {DROPPING} shown {shown_after:.1f} s after its publisher stopped", file=sys.stderr)
        assert "mất tín hiệu lúc" in desktop.evaluate("document.querySelector('#alerts').textContent")
        _shot(desktop, board_artifacts / "board-desktop-drop.png")
        assert desktop.exceptions == [] and phone.exceptions == []
        csp = [e for e in desktop.log_entries + phone.log_entries if "Content Security Policy" in e.get("text", "")]
        assert csp == []
        assert time.monotonic() - started < 240
    finally:
        phone.close()
        desktop.close()


def test_the_board_is_in_airflow_s_navigation_and_on_the_launch_run(stack, board_event, airflow_url, admin_token,
                                                                    airflow_api, board_artifacts, tmp_path):
    event, _, event_key = board_event
    run_id = f"board__{event.id}"
    airflow_api.wait_for_dag("bridgecast_launch", timeout_s=180)
    airflow_api.trigger("bridgecast_launch", {"event_key": event_key}, run_id=run_id)  # the DAG stays paused
    browser = kit.open_chromium(tmp_path, board_artifacts, 1366, 900, mobile=False)
    try:
        kit.sign_in(browser, airflow_url, admin_token)
        board_frame = "document.querySelector('iframe[title=\"Bảng điều khiển\"]')"
        rows_in_frame = f"({board_frame}?.contentDocument?.querySelectorAll('#rows .point').length || 0)"
        browser.open(f"{airflow_url}/plugin/bridgecast-board")
        wait_for(lambda: browser.evaluate(rows_in_frame) == 73, timeout_s=60, what="the board inside Airflow's UI")
        nav = browser.evaluate("Array.from(document.querySelectorAll('a')).filter(a => "
                               "a.textContent.includes('Bảng điều khiển')).map(a => a.getAttribute('href'))")
        _shot(browser, board_artifacts / "airflow-nav-board.png")
        assert any(href.endswith("plugin/bridgecast-board") for href in nav), nav

        browser.open(f"{airflow_url}/dags/bridgecast_launch/runs/{run_id}/plugin/bridgecast-board-run")
        wait_for(lambda: browser.evaluate(rows_in_frame) == 73, timeout_s=60, what="the board on the launch run")
        frame_text = f"{board_frame}.contentDocument.querySelector('{{}}').textContent"
        wait_for(lambda: run_id in browser.evaluate(frame_text.format("#event-meta")), timeout_s=30,
                 what="the board to follow the launch run")
        assert browser.evaluate(frame_text.format("#event-title")).startswith("[Diễn tập")  # the run's event
        _shot(browser, board_artifacts / "airflow-run-board.png")
    finally:
        browser.close()
        airflow_api.set_run_state("bridgecast_launch", run_id, "failed")


def test_only_one_thumbnailer_grabs_and_a_stopped_one_hands_over_at_once(stack):
    from bridgecast.board.thumbnails import Lease
    from bridgecast.storage import Storage

    storage, name = Storage.from_connection(), f"test-lease-{uuid.uuid4().hex[:8]}.json"
    first, second = (Lease(storage, holder, ttl_s=3, name=name) for holder in ("api-server-a", "ingest-host-b"))
    try:
        assert first.hold() and first.hold()  # taken, then renewed
        assert not second.hold()  # held by the first
        time.sleep(3.5)
        assert second.hold() and not first.hold()  # the first stopped renewing: the lease expired and moved
        second.release()
        assert first.hold()  # handed back: no wait for the expiry
    finally:
        storage.delete(first.key)
