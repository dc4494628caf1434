"""The recap video: chunked upload (start / transfer / finish) cut in the middle, then resumed from the saved
session and offset — by a caller's state file and through the ledger — and the Resumable Upload API of the sandbox."""
from __future__ import annotations

import hashlib
import json

import pytest
import requests

from bridgecast.channels.base import Publication, Transient
from bridgecast.ledger import UNKNOWN, publish_once


def transfer_fault(sandbox, fanpage, *, after_chunks: int) -> None:
    """Fail as many transfer calls as the retry policy attempts for one chunk, after `after_chunks` succeeded."""
    sandbox.fault(endpoint="videos", method="POST", params={"upload_phase": "transfer"}, skip=after_chunks,
                  count=fanpage.client.transport.retry.attempts, code=2)


def phases(calls: list[dict]) -> list[str]:
    return [c["params"].get("upload_phase") for c in calls if c["endpoint"] == "videos"]


def test_interrupted_upload_resumes_from_the_saved_offset_and_completes(fanpage, sandbox, recap_video, tmp_path):
    resume = tmp_path / "recap-upload.json"
    chunk = sandbox.knobs()["upload_chunk_bytes"]  # the server picks the offsets
    transfer_fault(sandbox, fanpage, after_chunks=2)
    with pytest.raises(Transient):
        fanpage.upload_video(recap_video, title="Tổng hợp", description="Lễ ra quân", resume=resume)
    saved = json.loads(resume.read_text())
    assert saved["start_offset"] == 2 * chunk and saved["sha256"] == recap_video.sha256

    seq = sandbox.last_seq()
    video_id = fanpage.upload_video(recap_video, title="Tổng hợp", description="Lễ ra quân", resume=resume)

    calls = [c for c in sandbox.requests_since(seq) if c["endpoint"] == "videos"]
    assert "start" not in phases(calls), "a resumed upload must not open a new session"
    assert calls[0]["params"]["start_offset"] == str(2 * chunk)
    assert phases(calls)[-1] == "finish" and video_id == saved["video_id"]
    assert not resume.exists()
    stored = sandbox.obj(video_id)
    assert stored["sha256"] == recap_video.sha256 and stored["state"] == "ready"
    served = requests.get(f"{sandbox.base_url}/_files/video/{video_id}", timeout=30).content
    assert hashlib.sha256(served).hexdigest() == recap_video.sha256


def test_video_publication_interrupted_then_rerun_resumes_through_the_ledger(fanpage, sandbox, ledger, recap_video,
                                                                            event_id, marker):
    pub = Publication(event_id, "launch/recap-video", "video", f"Video tổng hợp {marker}",
                      "Toàn cảnh lễ ra quân tại 64 điểm cầu.", video=recap_video)
    seq = sandbox.last_seq()
    transfer_fault(sandbox, fanpage, after_chunks=4)
    with pytest.raises(Transient):
        publish_once(ledger, fanpage, pub)
    assert ledger.get(event_id, "fanpage", pub.key).status == UNKNOWN

    outcome = publish_once(ledger, fanpage, pub)

    assert outcome.action == "created"
    assert phases(sandbox.requests_since(seq)).count("start") == 1
    assert sandbox.obj(outcome.ref.remote_id)["sha256"] == recap_video.sha256
    assert publish_once(ledger, fanpage, pub).action == "existing"
    listed = sandbox.graph(f"{sandbox.page_id}/videos", fields="id,title")["data"]
    assert [v["id"] for v in listed if v.get("title") == pub.title] == [outcome.ref.remote_id]


def test_a_finished_but_unrecorded_video_is_reconciled_by_title_and_description(fanpage, sandbox, ledger,
                                                                               recap_video, event_id, marker):
    pub = Publication(event_id, "launch/recap-video", "video", f"Video {marker}", "Mô tả", video=recap_video)
    video_id = fanpage.upload_video(recap_video, title=pub.title, description=pub.body)
    ledger.mark_pending(event_id, "fanpage", pub.key, pub.payload_hash())  # a run that died after the upload
    seq = sandbox.last_seq()
    outcome = publish_once(ledger, fanpage, pub)
    assert outcome.action == "reconciled" and outcome.ref.remote_id == video_id
    assert "start" not in phases(sandbox.requests_since(seq))


def test_resumable_upload_api_reports_the_offset_to_resume_from(sandbox, recap_video):
    """The sandbox's /{app-id}/uploads + /upload:<session> flow, as Meta documents it (the channel itself uses the
    Page-token chunked protocol, since this API wants a user token)."""
    auth = {"Authorization": f"OAuth {sandbox.token}"}
    data = open(recap_video.path, "rb").read()
    start = requests.post(f"{sandbox.base_url}/v25.0/1000000000000001/uploads", headers=auth, timeout=10,
                          params={"file_name": "recap.mp4", "file_length": len(data), "file_type": "video/mp4"})
    session = start.json()["id"]
    assert session.startswith("upload:")
    half = len(data) // 2
    first = requests.post(f"{sandbox.base_url}/v25.0/{session}", data=data[:half], timeout=30,
                          headers={**auth, "file_offset": "0"})
    assert first.status_code == 200
    offset = requests.get(f"{sandbox.base_url}/v25.0/{session}", headers=auth, timeout=10).json()["file_offset"]
    assert offset == half
    stale = requests.post(f"{sandbox.base_url}/v25.0/{session}", data=data[:10], timeout=10,
                          headers={**auth, "file_offset": "0"})
    assert stale.status_code == 400 and stale.json()["error"]["code"] == 100
    rest = requests.post(f"{sandbox.base_url}/v25.0/{session}", data=data[offset:], timeout=30,
                         headers={**auth, "file_offset": str(offset)})
    handle = rest.json()["h"]
    video = requests.post(f"{sandbox.base_url}/v25.0/{sandbox.page_id}/videos", headers=auth, timeout=30,
                          data={"title": "Qua Upload API", "fbuploader_video_file_chunk": handle}).json()
    assert sandbox.obj(video["id"])["sha256"] == recap_video.sha256


def test_an_upload_cut_on_one_worker_resumes_on_another_from_the_shared_database(sandbox, ledger, recap_video,
                                                                                event_id, marker, monkeypatch,
                                                                                tmp_path):
    """No resume file on a worker's disk: the session id and offset live in the ledger's database, so the retry
    continues the upload wherever Celery runs it."""
    monkeypatch.setenv("BRIDGECAST_LEDGER_URL", str(ledger.engine.url))
    worker_a, worker_b = sandbox.channel(sleep=lambda _s: None), sandbox.channel(sleep=lambda _s: None)
    assert worker_a.resume_dir is None
    pub = Publication(event_id, "launch/recap-video", "video", f"Video tổng hợp {marker}", "Toàn cảnh.",
                      video=recap_video)
    chunk = sandbox.knobs()["upload_chunk_bytes"]
    transfer_fault(sandbox, worker_a, after_chunks=3)
    with pytest.raises(Transient):
        publish_once(ledger, worker_a, pub)
    from sqlalchemy import select

    from bridgecast.ledger import upload_sessions

    with ledger.engine.connect() as conn:
        [name] = conn.execute(select(upload_sessions.c.name)).scalars().all()
    saved = ledger.upload_session(name).load()
    assert saved["start_offset"] == 3 * chunk and saved["sha256"] == recap_video.sha256
    assert not any(tmp_path.rglob("*.json"))

    seq = sandbox.last_seq()
    outcome = publish_once(ledger, worker_b, pub)

    assert outcome.action == "created" and "start" not in phases(sandbox.requests_since(seq))
    assert sandbox.obj(outcome.ref.remote_id)["sha256"] == recap_video.sha256
    assert ledger.upload_session(name).load() is None  # finished: the session is gone


def test_without_a_shared_ledger_url_a_celery_worker_refuses_to_publish(monkeypatch):
    from bridgecast.ledger import default_url

    monkeypatch.delenv("BRIDGECAST_LEDGER_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with pytest.raises(RuntimeError, match="BRIDGECAST_LEDGER_URL"):
        default_url()
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert default_url().startswith("sqlite:///")
