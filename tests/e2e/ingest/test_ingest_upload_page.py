"""The field-team upload page in headless Chromium at phone size: pick two photos, send them, see them received."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import replace

import pytest
from ingest_testkit import EVENT_ID, jpeg_bytes, wait_for

from bridgecast.ingest.keys import PointIdentity
from bridgecast.ingest.page import render_upload_page

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

POINT = "tam-dao"
DONE_STATES = ("received", "processed", "quarantined")
# A file name a phone would never produce but an attacker could: it must show up as text, never as markup.
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">Ảnh đội Tam Đảo.jpg'

ROWS_JS = """JSON.stringify(Array.from(document.querySelectorAll('#list li.file')).map(li => ({
  state: li.dataset.state, name: li.querySelector('.file-name').firstChild.textContent,
  status: li.querySelector('.file-status').textContent, meta: li.querySelector('.file-meta').textContent})))"""


def test_the_page_uploads_two_photos_from_a_phone_sized_browser(chromium, gateway, manifests, artifacts_dir,
                                                               tmp_path):
    started = time.monotonic()
    photos = {"Lễ ra quân – Tam Đảo 01.jpg": jpeg_bytes(1600, 1200), HOSTILE_NAME: jpeg_bytes(1200, 1600)}
    paths = []
    for name, data in photos.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)

    chromium.open(f"{gateway.url}/u/{gateway.token(POINT)}")
    assert chromium.evaluate("document.querySelector('h1').textContent") == "Đội tuyên truyền lưu động Tam Đảo"
    assert chromium.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    wait_for(lambda: chromium.evaluate("document.querySelector('.qr img').naturalWidth") > 0, timeout_s=10,
             what="the QR code image to load")

    chromium.set_files("#files", paths)
    rows = wait_for(lambda: [r for r in json.loads(chromium.evaluate(ROWS_JS)) if r["state"] == "ready"],
                    timeout_s=10, what="the chosen files to be listed")
    assert sorted(r["name"] for r in rows) == sorted(photos)
    chromium.evaluate("document.querySelector('#start').click()")

    def all_received():
        current = json.loads(chromium.evaluate(ROWS_JS))
        return current if len(current) == 2 and all(r["state"] in DONE_STATES for r in current) else None

    rows = wait_for(all_received, timeout_s=90, interval_s=0.3, what="both photos to be received by the gateway")
    page_s = time.monotonic() - started
    chromium.screenshot(artifacts_dir / "upload-page.png")
    print(f"\nupload page: opened, 2 photos sent and received in {page_s:.1f}s", file=sys.stderr)

    assert all(r["status"].startswith("Đã nhận") and "Ảnh" in r["meta"] for r in rows), rows
    assert chromium.evaluate("window.__pwned === undefined && document.querySelectorAll('#list img').length === 0")
    assert chromium.exceptions == []
    csp_violations = [e for e in chromium.log_entries if "Content Security Policy" in e.get("text", "")]
    assert csp_violations == []

    for name, data in photos.items():
        manifest = manifests.get(EVENT_ID, POINT, hashlib.sha256(data).hexdigest())
        assert manifest is not None, f"no manifest in S3 for {name!r}"
        assert manifest["kind"] == "photo" and name in [r["original_name"] for r in manifest["receipts"]]


def _rows(chromium) -> list[dict]:
    return json.loads(chromium.evaluate(ROWS_JS))


def test_a_dropped_chunk_is_retried_and_a_reload_resumes_from_the_servers_offset(chromium, gateway, manifests,
                                                                                tmp_path):
    video = tmp_path / "Video lễ ra quân.mp4"
    with open(video, "wb") as fh:  # 2½ chunks: the resume point falls on a chunk boundary the server chose
        fh.write(os.urandom(20 * 1024 * 1024))
    sha256 = hashlib.sha256(video.read_bytes()).hexdigest()
    patches: list[dict] = []
    network = {"up": True, "drop_next": False}

    def phone_network(request, answered):
        if request["method"] != "PATCH":
            return None
        patches.append({"offset": int(request["headers"]["Upload-Offset"]), "dropped": False})
        if not network["up"] or network["drop_next"]:
            network["drop_next"] = False
            patches[-1]["dropped"] = True
            return ("fail", "ConnectionReset")
        if len(patches) == 1:
            network["drop_next"] = True  # the chunk right after the first one is lost once: retried in place
        elif len(patches) == 3:
            network["up"] = False  # then the signal goes for good, until the team reloads the page
        return None

    chromium.intercept("*/api/uploads/*", phone_network)
    page_url = f"{gateway.url}/u/{gateway.token(POINT)}"
    chromium.open(page_url)
    chromium.set_files("#files", [video])
    chromium.evaluate("document.querySelector('#start').click()")

    # chunk 1 ok, chunk 2 dropped then resent ok, chunk 3 dropped while the network stays down: the page backs off.
    def backing_off():
        rows = _rows(chromium)  # evaluating also lets the test serve the requests the page has pending
        return len(patches) >= 4 and rows[0]["state"] == "waiting"

    wait_for(backing_off, timeout_s=60, what="the page to back off after losing the network")
    assert [p["offset"] for p in patches[:4]] == [0, 8 * 1024 * 1024, 8 * 1024 * 1024, 16 * 1024 * 1024]
    assert "Mất kết nối" in _rows(chromium)[0]["status"]

    chromium.reload()
    network["up"] = True
    sent_before_reload = len(patches)
    chromium.set_files("#files", [video])
    chromium.evaluate("document.querySelector('#start').click()")
    row = wait_for(lambda: next((r for r in _rows(chromium) if r["state"] in DONE_STATES), None), timeout_s=60,
                   what="the resumed video to be received")
    assert row["name"] == video.name and "Video" in row["meta"]
    # The reloaded page did not start over: its first chunk went to the offset the server already held.
    assert patches[sent_before_reload]["offset"] == 16 * 1024 * 1024
    assert manifests.get(EVENT_ID, POINT, sha256)["size"] == video.stat().st_size
    assert chromium.exceptions == []


def test_an_answer_lost_after_the_last_chunk_still_ends_with_the_file_received_once(chromium, gateway, manifests,
                                                                                  tmp_path):
    video = tmp_path / "clip-ngan.mp4"
    video.write_bytes(os.urandom(10 * 1024 * 1024))  # two chunks: 8 MB, then the last 2 MB
    sha256 = hashlib.sha256(video.read_bytes()).hexdigest()
    answered_requests: list[tuple[str, str | None, int]] = []

    def answer_lost_once(request, answered):
        if answered is None:
            return None
        answered_requests.append((request["method"], request["headers"].get("Upload-Offset"), answered))
        if request["method"] == "PATCH" and request["headers"]["Upload-Offset"] == str(8 * 1024 * 1024):
            return ("fail", "ConnectionReset")  # the server stored the file; its answer never reached the phone
        return None

    chromium.intercept("*/api/uploads/*", answer_lost_once, stages=("Response",))
    chromium.open(f"{gateway.url}/u/{gateway.token(POINT)}")
    chromium.set_files("#files", [video])
    chromium.evaluate("document.querySelector('#start').click()")
    row = wait_for(lambda: next((r for r in _rows(chromium) if r["state"] in DONE_STATES), None), timeout_s=60,
                   what="the file to show as received")

    # The page asked the server where the session stood and took the stored result: no byte was sent twice.
    patches = [(offset, status) for method, offset, status in answered_requests if method == "PATCH"]
    assert patches == [("0", 200), (str(8 * 1024 * 1024), 200)]
    assert ("GET", None, 200) in answered_requests[answered_requests.index(("PATCH", str(8 * 1024 * 1024), 200)):]
    assert "Trùng" not in row["name"] and row["status"].startswith("Đã nhận")
    assert len(manifests.get(EVENT_ID, POINT, sha256)["receipts"]) == 1


def test_the_page_shows_processing_results_and_keeps_them_after_a_reload(chromium, gateway, artifacts_dir,
                                                                        tmp_path):
    import media
    from media.errors import DecompressionBombError

    good, held = jpeg_bytes(), jpeg_bytes()
    # what the server says of a too-big photo: the toolkit's one Vietnamese message, shown as it is
    bomb_message = str(media.team_message(DecompressionBombError(
        "anh-bi-giu.jpg", "too many pixels", facts={"width": 12000, "height": 7500, "limit_mp": 64})))
    (tmp_path / "anh-tot.jpg").write_bytes(good)
    (tmp_path / "anh-bi-giu.jpg").write_bytes(held)
    verdicts = {
        hashlib.sha256(good).hexdigest(): {"status": "processed", "kind": "photo", "reason": None,
                                           "reason_code": None, "renditions": {"web": "w.jpg", "thumb": "t.jpg"}},
        hashlib.sha256(held).hexdigest(): {"status": "quarantined", "kind": "photo", "reason_code": "decompression_bomb",
                                           "reason": f"anh-bi-giu.jpg: {bomb_message}", "renditions": {}},
    }

    def ingest_verdicts(request, answered):
        # The ingest DAG's outcome, answered in the gateway's place so the page's reaction is what is tested.
        found = re.search(r"/api/uploads/([0-9a-f]{64})$", request["url"])
        if request["method"] == "GET" and found and found.group(1) in verdicts:
            return ("fulfill", 200, verdicts[found.group(1)])
        return None

    chromium.intercept("*/api/uploads/*", ingest_verdicts)
    chromium.open(f"{gateway.url}/u/{gateway.token(POINT)}")
    chromium.set_files("#files", [tmp_path / "anh-tot.jpg", tmp_path / "anh-bi-giu.jpg"])
    chromium.evaluate("document.querySelector('#start').click()")

    def final_states():
        rows = {r["name"]: r for r in _rows(chromium)}
        done = {r["state"] for r in rows.values()} <= {"processed", "quarantined"} and len(rows) == 2
        return rows if done else None

    rows = wait_for(final_states, timeout_s=60, what="the processing results to show")
    assert rows["anh-tot.jpg"]["state"] == "processed" and "xử lý xong" in rows["anh-tot.jpg"]["status"]
    assert rows["anh-bi-giu.jpg"]["state"] == "quarantined"
    assert rows["anh-bi-giu.jpg"]["status"] == f"Đã nhận nhưng bị giữ lại để kiểm tra: {bomb_message}"
    chromium.screenshot(artifacts_dir / "upload-page-processing.png")

    chromium.reload()  # the team checks back later: the page remembers what it sent and how it ended
    restored = {r["name"]: r for r in _rows(chromium)}
    assert {n: r["state"] for n, r in restored.items()} == {"anh-tot.jpg": "processed",
                                                           "anh-bi-giu.jpg": "quarantined"}
    assert "đã gửi trước đó" in restored["anh-tot.jpg"]["meta"]
    assert chromium.exceptions == []


def test_point_and_event_names_are_escaped_in_the_page(event):
    hostile = '</script><script>alert("x")</script><b>Tam Đảo</b>'
    points = tuple(replace(p, name=hostile) if p.id == POINT else p for p in event.points)
    tampered = replace(event, points=points, short_title='<i>Lễ ra quân</i> & "BHXH"')
    html = render_upload_page(PointIdentity(EVENT_ID, POINT, None), tampered, "token-<x>")

    assert "<b>Tam Đảo</b>" not in html and '<script>alert("x")' not in html and "<i>Lễ ra quân</i>" not in html
    assert "Đội tuyên truyền lưu động &lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)" in html
    assert "&lt;i&gt;Lễ ra quân&lt;/i&gt; &amp; &quot;BHXH&quot;" in html
    # The JSON island for the script holds the same name, with no "<" that could end the <script> element.
    config = html.split('<script type="application/json" id="bc-config">', 1)[1].split("</script>", 1)[0]
    assert "<" not in config and json.loads(config)["team"] == f"Đội tuyên truyền lưu động {hostile}"
    assert html.count("<script") == 2  # the JSON island and our one nonce'd script
