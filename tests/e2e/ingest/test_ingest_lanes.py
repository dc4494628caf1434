"""Photos never wait behind videos (issue 11): a team's long video is processed in its own lane
(`bridgecast_ingest_video`), so photos sent while it is in work are processed by `bridgecast_ingest` within seconds.
When one DAG, one run at a time, took every kind, they waited for the run holding the video to end."""
from __future__ import annotations

import hashlib
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from ingest_testkit import EVENT_ID, jpeg_bytes, wait_for

from bridgecast.ingest.assets import INGEST_LANES
from bridgecast.ingest.processing import LINGER_IDLE_S
from tests.media.helpers import lavfi

pytestmark = [pytest.mark.stack, pytest.mark.timeout(480)]

VIDEO_POINT, PHOTO_POINTS = "lap-thach", ("song-lo", "vinh-yen", "phuc-yen")
VIDEO_SECONDS = 120  # 1080p at 10 fps, normalised to 1080p30: 3600 frames to encode, ~27 s on the idle 2-core box
VIDEO_WORK_S = 20  # received → processed for the video: long enough that photos sent meanwhile would wait
PHOTO_WITHIN_S = 10  # received → processed for a photo sent while the video is in work (2–5 s measured, a run included)


def long_team_video(dst: Path) -> Path:
    """Two minutes of 1080p at 10 fps, 1 Mbit/s, mono 44.1 kHz audio: made in seconds and ~16 MB, but slow to
    process — the house profile is 30 fps, so normalising it encodes three times its frames at 1080p. A new comment
    tag makes its bytes new (the gateway takes a repeat as a duplicate)."""
    lavfi("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=10", "-f", "lavfi",
          "-i", "sine=frequency=440:sample_rate=44100", "-t", str(VIDEO_SECONDS), "-c:v", "libx264",
          "-preset", "ultrafast", "-profile:v", "main", "-b:v", "1M", "-pix_fmt", "yuv420p", "-c:a", "aac",
          "-ac", "1", "-metadata", f"comment={uuid.uuid4()}", str(dst), timeout=180)
    return dst


@pytest.fixture(scope="module")
def lanes(airflow_api):
    """Both ingest lanes switched on (they are created paused); restored after."""
    was_paused = {dag_id: airflow_api.wait_for_dag(dag_id, timeout_s=120)["is_paused"] for dag_id in INGEST_LANES}
    for dag_id in INGEST_LANES:
        airflow_api.set_paused(dag_id, False)
    yield airflow_api
    for dag_id, paused in was_paused.items():
        airflow_api.set_paused(dag_id, paused)


def _at(manifest: dict, status: str) -> datetime:
    return datetime.fromisoformat(next(h["at"] for h in manifest["history"] if h["status"] == status))


def test_photos_sent_while_a_long_team_video_is_processed_are_done_within_seconds_and_before_it(
        gateway, manifests, lanes, tmp_path):
    clip = long_team_video(tmp_path / "VID_20200615_0830.mp4")
    video = clip.read_bytes()
    video_sha, first = hashlib.sha256(video).hexdigest(), jpeg_bytes()

    def status(point: str, sha256: str) -> str | None:
        manifest = manifests.get(EVENT_ID, point, sha256)
        return manifest and manifest["status"]

    # The team sends its clip with a photo of the moment, in one upload as the upload page does.
    sent = gateway.upload_multipart(VIDEO_POINT, [("IMG_0830.jpg", first, "image/jpeg"),
                                                  (clip.name, video, "video/mp4")])
    assert sent.status_code == 200, sent.text
    assert [r["kind"] for r in sent.json()["results"]] == ["photo", "video"]
    wait_for(lambda: status(VIDEO_POINT, hashlib.sha256(first).hexdigest()) == "processed", timeout_s=120,
             what="the photo sent with the video to be processed")
    # A task staying on for new arrivals ends LINGER_IDLE_S after the last one: what is sent now needs a run.
    time.sleep(LINGER_IDLE_S + 2)
    assert status(VIDEO_POINT, video_sha) == "received", "the video was done before the photos went: make it longer"

    photos = []  # (point, sha256) sent while the video is in work, a second apart
    for n, point in enumerate(PHOTO_POINTS):
        data = jpeg_bytes(1600, 1200)
        answer = gateway.upload_multipart(point, [(f"IMG_09{n:02d}.jpg", data, "image/jpeg")])
        assert answer.status_code == 200, answer.text
        photos.append((point, hashlib.sha256(data).hexdigest()))
        time.sleep(1)

    final = ("processed", "quarantined")
    wait_for(lambda: all(status(p, s) in final for p, s in [*photos, (VIDEO_POINT, video_sha)]), timeout_s=300,
             interval_s=1, what="the photos and the video to be processed")
    video_manifest = manifests.get(EVENT_ID, VIDEO_POINT, video_sha)
    assert video_manifest["status"] == "processed", video_manifest.get("reason_detail")
    done = {s: manifests.get(EVENT_ID, p, s) for p, s in photos}
    assert {m["status"] for m in done.values()} == {"processed"}

    video_done = _at(video_manifest, "processed")
    video_work = (video_done - _at(video_manifest, "received")).total_seconds()
    latency = [(_at(m, "processed") - _at(m, "received")).total_seconds() for m in done.values()]
    ahead = [(video_done - _at(m, "processed")).total_seconds() for m in done.values()]
    print(f"\nFIGURE photo latency while a team video is processed: median {statistics.median(latency):.1f} s, "
          f"max {max(latency):.1f} s over {len(latency)} photos (received → processed); the video took "
          f"{video_work:.1f} s and was done {min(ahead):.1f} s after the last photo (negative: before it)",
          file=sys.stderr)
    assert min(ahead) > 0, f"photos waited for the video (it was done {[-a for a in ahead]} s before them)"
    assert max(latency) <= PHOTO_WITHIN_S, latency
    assert video_work >= VIDEO_WORK_S, "the video was not long enough to prove anything: make it longer"
