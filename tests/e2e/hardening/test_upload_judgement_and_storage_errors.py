"""What an upload is and what happens when storage refuses it:

- a file is judged by its content first: a real JPEG that a phone sent as `IMG_0001` / application/octet-stream is
  taken as a photo; a text file sent the same way is refused (415), by multipart and by resumable session alike;
- S3 refusing for good (a wrong credential) is not answered "retry later": 502 with the S3 error named, and a
  session keeps its bytes; S3 unreachable is 503 + Retry-After;
- a multipart body without Content-Length that goes past the event's limit is cut off at it;
- abandoned resumable sessions are swept with their bytes;
- nginx's on_publish is answered at once while uploads keep the gateway's disk busy."""
from __future__ import annotations

import hashlib
import io
import json
import os
import statistics
import sys
import threading
import time
import uuid

import pytest
import requests
import yaml
from hardening_kit import EVENT_ID, MIB, REPO, spare_gateway

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

POINT = "tam-dao"


def _jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("RGB", (320, 240), os.urandom(320 * 240 * 3)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _session(url: str, headers: dict, filename: str, size: int, content_type: str) -> requests.Response:
    return requests.post(f"{url}/api/uploads/sessions", headers=headers, timeout=30, json={
        "filename": filename, "size": size, "content_type": content_type, "fingerprint": uuid.uuid4().hex})


def _patch(url: str, headers: dict, session_id: str, offset: int, data: bytes) -> requests.Response:
    return requests.patch(f"{url}/api/uploads/sessions/{session_id}", data=data, timeout=60,
                          headers={**headers, "Upload-Offset": str(offset),
                                   "Content-Type": "application/offset+octet-stream"})


def test_a_jpeg_without_extension_or_type_is_judged_by_its_content_and_accepted(kit):
    photo = _jpeg()
    sent = requests.post(f"{kit.gateway_url}/api/uploads", headers=kit.auth(POINT), timeout=60,
                         files=[("files", ("IMG_0001", photo, "application/octet-stream"))])
    assert sent.status_code == 200, sent.text
    result = sent.json()["results"][0]
    assert (result["kind"], result["sha256"]) == ("photo", hashlib.sha256(photo).hexdigest())
    assert result["key"].startswith(f"{EVENT_ID}/{POINT}/raw/photo/") and result["key"].endswith(".jpg")

    photo = _jpeg()
    opened = _session(kit.gateway_url, kit.auth(POINT), "IMG_0002", len(photo), "")
    assert opened.status_code == 201, opened.text
    done = _patch(kit.gateway_url, kit.auth(POINT), opened.json()["id"], 0, photo)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["kind"] == "photo" and done.json()["result"]["key"].endswith(".jpg")


def test_a_text_file_without_extension_is_refused_by_its_content(kit):
    text = ("Danh sách người tham gia — " + uuid.uuid4().hex + "\n").encode() * 40
    sent = requests.post(f"{kit.gateway_url}/api/uploads", headers=kit.auth(POINT), timeout=60,
                         files=[("files", ("danh-sach", text, "application/octet-stream"))])
    assert sent.status_code == 415, sent.text
    assert "chỉ nhận ảnh hoặc video" in sent.json()["results"][0]["error"]

    opened = _session(kit.gateway_url, kit.auth(POINT), "danh-sach", len(text), "")
    assert opened.status_code == 201, opened.text  # nothing says what it is yet
    refused = _patch(kit.gateway_url, kit.auth(POINT), opened.json()["id"], 0, text)
    assert refused.status_code == 415, refused.text
    gone = requests.get(f"{kit.gateway_url}/api/uploads/sessions/{opened.json()['id']}", headers=kit.auth(POINT),
                        timeout=10)
    assert gone.status_code == 404  # its bytes were not kept


def _conn_with(env: dict, **changes) -> str:
    conn = json.loads(env["AIRFLOW_CONN_BRIDGECAST_S3"])
    conn.update({k: v for k, v in changes.items() if k != "endpoint_url"})
    if "endpoint_url" in changes:
        conn["extra"] = {**conn["extra"], "endpoint_url": changes["endpoint_url"]}
    return json.dumps(conn)


def test_a_permanent_s3_refusal_is_a_clear_502_and_the_session_keeps_its_bytes(kit, stack, tmp_path):
    wrong_secret = {"AIRFLOW_CONN_BRIDGECAST_S3": _conn_with(stack.env, password="not-the-secret-key-0123456789")}
    with spare_gateway(stack, tmp_path, env_overrides=wrong_secret) as (url, var):
        photo = _jpeg()
        sent = requests.post(f"{url}/api/uploads", headers=kit.auth(POINT), timeout=120,
                             files=[("files", ("anh.jpg", photo, "image/jpeg"))])
        assert sent.status_code == 502, sent.text
        error = sent.json()["results"][0]["error"]
        assert "S3: SignatureDoesNotMatch" in error and "retry later" not in error

        photo = _jpeg()
        opened = _session(url, kit.auth(POINT), "anh-2.jpg", len(photo), "image/jpeg")
        refused = _patch(url, kit.auth(POINT), opened.json()["id"], 0, photo)
        assert refused.status_code == 502 and "Retry-After" not in refused.headers, refused.text
        assert "không mất gì" in refused.json()["detail"]
        kept = requests.get(f"{url}/api/uploads/sessions/{opened.json()['id']}", headers=kit.auth(POINT), timeout=10)
        assert kept.json()["offset"] == len(photo) and kept.json()["result"] is None
        spooled = var / "ingest" / "spool" / f"{opened.json()['id']}.part"
        assert spooled.read_bytes() == photo  # nothing lost: stored once the credential is fixed


def test_s3_unreachable_is_a_503_with_retry_after(kit, stack, tmp_path):
    unreachable = {"AIRFLOW_CONN_BRIDGECAST_S3": _conn_with(stack.env, endpoint_url="http://127.0.0.1:9")}
    with spare_gateway(stack, tmp_path, env_overrides=unreachable) as (url, _):
        sent = requests.post(f"{url}/api/uploads", headers=kit.auth(POINT), timeout=300,
                             files=[("files", ("anh.jpg", _jpeg(), "image/jpeg"))])
        assert sent.status_code == 503, sent.text
        assert "retry later" in sent.json()["results"][0]["error"]


def test_a_body_without_content_length_is_cut_off_at_the_event_limit(kit, stack, tmp_path):
    """A second gateway whose event allows 1 MB per file: a chunked multipart of 8 MB is refused once past it."""
    event = yaml.safe_load((REPO / "config" / "event.yaml").read_text(encoding="utf-8"))
    event.setdefault("media", {})["max_upload_mb"] = 1
    event_file = tmp_path / "small-event.yaml"
    event_file.write_text(yaml.safe_dump(event, allow_unicode=True), encoding="utf-8")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    keys = json.loads(kit.keys_file.read_text())
    (keys_dir / "small.json").write_text(json.dumps({**keys, "event_file": str(event_file)}))

    def body():
        yield (b"--cut\r\nContent-Disposition: form-data; name=\"files\"; filename=\"ca-buoi-le.mp4\"\r\n"
               b"Content-Type: video/mp4\r\n\r\n")
        for _ in range(8 * 16):
            yield b"\0" * (64 * 1024)
        yield b"\r\n--cut--\r\n"

    with spare_gateway(stack, tmp_path, env_overrides={}, keys_dir=keys_dir) as (url, var):
        answer = requests.post(f"{url}/api/uploads", data=body(), timeout=60,
                               headers={**kit.auth(POINT), "Content-Type": "multipart/form-data; boundary=cut"})
        assert answer.status_code == 413, answer.text
        assert "1 MB" in answer.json()["detail"]
        assert list((var / "ingest" / "incoming").iterdir()) == []  # what was spooled is gone


def test_an_abandoned_resumable_session_is_swept_with_its_bytes(kit, stack, tmp_path):
    # The gateway sweeps in the background (every 10 min by default); this one every half second.
    with spare_gateway(stack, tmp_path, env_overrides={}, args=("--session-sweep-every-s", "0.5")) as (url, var):
        opened = _session(url, kit.auth(POINT), "bo-do.mp4", 4 * MIB, "video/mp4").json()
        assert _patch(url, kit.auth(POINT), opened["id"], 0, os.urandom(MIB)).status_code == 200
        live = _session(url, kit.auth(POINT), "moi.mp4", MIB, "video/mp4").json()
        spool = var / "ingest" / "spool"
        files = [spool / f"{opened['id']}.json", spool / f"{opened['id']}.part"]
        two_days_ago = time.time() - 2 * 86400
        for path in files:
            os.utime(path, (two_days_ago, two_days_ago))
        deadline = time.monotonic() + 20
        while any(p.exists() for p in files) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(p.exists() for p in files)
        assert requests.get(f"{url}/api/uploads/sessions/{opened['id']}", headers=kit.auth(POINT),
                            timeout=10).status_code == 404
        assert (spool / f"{live['id']}.json").exists() and (spool / f"{live['id']}.part").exists()  # kept


def test_on_publish_is_answered_at_once_while_uploads_keep_the_disk_busy(kit):
    stop = threading.Event()
    chunk = os.urandom(8 * MIB)

    def uploader():
        while not stop.is_set():
            session = _session(kit.gateway_url, kit.auth(POINT), f"tai-{uuid.uuid4().hex}.mp4", 64 * MIB,
                               "video/mp4").json()
            offset = 0
            while offset < 64 * MIB and not stop.is_set():
                offset = _patch(kit.gateway_url, kit.auth(POINT), session["id"], offset, chunk).json()["offset"]

    workers = [threading.Thread(target=uploader, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(2)
    url = f"{kit.callbacks_url}/rtmp/{kit.callback_secret}/on_publish"
    form = {"app": "live", "flashver": "x", "swfurl": "", "tcurl": "x", "pageurl": "", "addr": "127.0.0.1",
            "clientid": "1", "call": "publish", "name": POINT, "type": "live", "key": "not-the-key-0123456789"}
    latencies = []
    try:
        for _ in range(40):
            started = time.monotonic()
            assert requests.post(url, data=form, timeout=10).status_code == 403
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    print(f"\non_publish under 4 parallel 8 MB-chunk uploads: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms", file=sys.stderr)
    assert max(latencies) < 1.0
