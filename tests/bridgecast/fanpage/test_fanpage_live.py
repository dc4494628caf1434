"""The live video: create (preview or scheduled), a real ffmpeg stream through nginx-rtmp to the URL Graph returned,
go live, end, the recording as VOD, and the stream checked against Meta's encoder recommendations."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from bridgecast.channels.base import RejectedInput

STREAM_TIMEOUT_S = 30


def recorded_and_probed(sandbox, live_id):
    live = sandbox.obj(live_id)
    return live if live["recordings"] and all(r["probed"] for r in live["recordings"]) else None


def test_preview_live_receives_the_stream_goes_live_and_ends_as_a_vod(fanpage, rtmp_ingest, marker, wait, stream,
                                                                      secret, no_secret):
    sandbox = rtmp_ingest
    seq = sandbox.last_seq()
    live = fanpage.create_live_video(f"TRỰC TIẾP: Lễ ra quân {marker}", "Chương trình tại 64 điểm cầu")
    created = next(c for c in sandbox.requests_since(seq) if c["endpoint"] == "live_videos")
    assert created["params"]["status"] == "UNPUBLISHED" and created["params"]["published"] == "false"
    assert live.secure_stream_url.startswith(f"{sandbox.rtmp_base}/{live.remote_id}?s_bl=1&a=")
    stream_key = secret(live.secure_stream_url.split("a=", 1)[1])
    no_secret(repr(live), "the LiveVideo repr")
    assert fanpage.live_stream_url(live.remote_id) == live.secure_stream_url

    publisher = stream(live.secure_stream_url, seconds=5)
    wait(lambda: fanpage.live_status(live.remote_id)["receiving"], timeout_s=STREAM_TIMEOUT_S,
         what="the sandbox to receive the stream")
    assert fanpage.live_status(live.remote_id)["status"] == "UNPUBLISHED"  # preview: data arrives, nobody sees it
    assert fanpage.go_live(live.remote_id) == "LIVE"
    assert publisher.wait(timeout=STREAM_TIMEOUT_S) == 0, publisher.stderr.read()

    assert fanpage.end_live_video(live.remote_id) in ("LIVE_STOPPED", "VOD")
    wait(lambda: recorded_and_probed(sandbox, live.remote_id), timeout_s=STREAM_TIMEOUT_S,
         what="the recording to be registered and probed")
    status = fanpage.live_status(live.remote_id)
    assert status["status"] == "VOD" and status["receiving"] is False
    assert fanpage.live_errors(live.remote_id) == []

    recording = requests.get(f"{sandbox.base_url}/_files/live/{live.remote_id}/0", timeout=10)
    assert recording.status_code == 200 and recording.content[:3] == b"FLV"
    page = requests.get(sandbox.base_url + "/", timeout=10).text
    assert f"TRỰC TIẾP: Lễ ra quân {marker}" in page and f"/_files/live/{live.remote_id}/0" in page
    assert stream_key not in page


def test_scheduled_live_goes_live_by_itself_at_its_start_when_receiving(fanpage, rtmp_ingest, marker, wait, stream,
                                                                        secret):
    sandbox = rtmp_ingest
    start_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    seq = sandbox.last_seq()
    live = fanpage.create_live_video(f"Hẹn giờ {marker}", start_at=start_at)
    secret(live.secure_stream_url.split("a=", 1)[1])
    created = next(c for c in sandbox.requests_since(seq) if c["endpoint"] == "live_videos")
    assert created["params"]["status"] == "SCHEDULED_UNPUBLISHED"
    assert json.loads(created["params"]["event_params"]) == {"start_time": int(start_at.timestamp())}
    assert "planned_start_time" not in created["params"]

    publisher = stream(live.secure_stream_url, seconds=5)
    wait(lambda: fanpage.live_status(live.remote_id)["receiving"], timeout_s=STREAM_TIMEOUT_S,
         what="the sandbox to receive the stream")
    assert fanpage.live_status(live.remote_id)["status"] == "SCHEDULED_UNPUBLISHED"
    sandbox.advance_clock(2 * 3600 + 1)
    wait(lambda: fanpage.live_status(live.remote_id)["status"] == "LIVE", timeout_s=5,
         what="the scheduled live to start at its start time")
    assert publisher.wait(timeout=STREAM_TIMEOUT_S) == 0
    assert fanpage.end_live_video(live.remote_id) in ("LIVE_STOPPED", "VOD")


def test_non_conformant_stream_is_reported_in_the_live_errors(fanpage, rtmp_ingest, marker, wait, stream, secret):
    sandbox = rtmp_ingest
    live = fanpage.create_live_video(f"Sai cấu hình {marker}")
    secret(live.secure_stream_url.split("a=", 1)[1])
    publisher = stream(live.secure_stream_url, seconds=5, conformant=False)
    assert publisher.wait(timeout=STREAM_TIMEOUT_S) == 0
    wait(lambda: recorded_and_probed(sandbox, live.remote_id), timeout_s=STREAM_TIMEOUT_S,
         what="the recording to be probed")
    errors = {e["error_type"]: e["error_message"] for e in fanpage.live_errors(live.remote_id)}
    assert {"AUDIO_CHANNELS", "AUDIO_SAMPLE_RATE", "KEYFRAME_INTERVAL"} <= set(errors)
    assert "stereo" in errors["AUDIO_CHANNELS"] and "22050" in errors["AUDIO_SAMPLE_RATE"]
    assert "4 s" in errors["KEYFRAME_INTERVAL"]


def test_publisher_with_a_wrong_stream_key_is_refused(fanpage, rtmp_ingest, marker, secret):
    live = fanpage.create_live_video(f"Khoá sai {marker}")
    secret(live.secure_stream_url.split("a=", 1)[1])
    wrong = live.secure_stream_url.split("a=", 1)[0] + "a=not-the-key"
    publisher = subprocess.run(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", wrong], capture_output=True, timeout=STREAM_TIMEOUT_S)
    assert publisher.returncode != 0
    assert fanpage.live_status(live.remote_id)["receiving"] is False
    assert rtmp_ingest.obj(live.remote_id)["recordings"] == []


def test_live_more_than_7_days_ahead_is_refused_before_any_call(fanpage, sandbox, marker):
    seq = sandbox.last_seq()
    with pytest.raises(RejectedInput) as caught:
        fanpage.create_live_video(f"Quá xa {marker}", start_at=datetime.now(timezone.utc) + timedelta(days=8))
    assert caught.value.param == "start_at" and "7 days" in caught.value.operator_message
    assert sandbox.requests_since(seq) == []


def test_an_open_live_video_is_found_again_by_title_until_it_ends(fanpage, sandbox, marker, secret):
    live = fanpage.create_live_video(f"Tìm lại {marker}", start_at=datetime.now(timezone.utc) + timedelta(hours=1))
    secret(live.secure_stream_url.split("a=", 1)[1])
    found = fanpage.find_live_video(f"Tìm lại {marker}")
    assert found is not None and found.remote_id == live.remote_id and found.secure_stream_url == ""
    fanpage.cancel_live_video(live.remote_id)
    assert fanpage.live_status(live.remote_id)["status"] == "SCHEDULED_CANCELED"
    assert fanpage.find_live_video(f"Tìm lại {marker}") is None
