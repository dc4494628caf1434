"""The recap as a Reel (Graph `video_reels`, facebook-graph.md §R) against the sandbox: start → bytes to the rupload
URL with `Authorization: OAuth`, `offset` and `file_size` → finish PUBLISHED → status polled; once through the ledger;
a video off the Reel spec is refused with the reason; finishing before the bytes arrive is Graph's error 6000."""
from __future__ import annotations

import hashlib

import pytest
import requests

from bridgecast.channels.base import ChannelError, MediaFile, Publication, RejectedInput
from bridgecast.channels.reels import ReelChannel
from bridgecast.ledger import publish_once
from devstack.synthetic import synthetic_clip


@pytest.fixture(scope="module")
def reel_clip(tmp_path_factory) -> MediaFile:
    path = synthetic_clip(tmp_path_factory.mktemp("reel") / "reel.mp4", width=540, height=960, duration=3.2)
    return MediaFile.from_path(path, "video/mp4")


@pytest.fixture
def reels(fanpage) -> ReelChannel:
    return ReelChannel(fanpage, poll_every_s=0.05, sleep=lambda _s: None)


def test_reel_is_uploaded_to_the_rupload_url_published_and_polled_once_through_the_ledger(
        reels, sandbox, ledger, reel_clip, event_id, marker):
    pub = Publication(event_id, "launch/fanpage-recap-reel", "reel", f"Reel {marker}", "Lễ ra quân · #BHXHToànDân",
                      video=reel_clip)
    seq = sandbox.last_seq()
    outcome = publish_once(ledger, reels, pub)
    assert outcome.action == "created"
    calls = sandbox.requests_since(seq)
    reel_calls = [(c["endpoint"], c["params"].get("upload_phase")) for c in calls
                  if c["endpoint"] in ("video_reels", "rupload")]
    assert reel_calls == [("video_reels", "start"), ("rupload", None), ("video_reels", "finish")]
    upload = next(c for c in calls if c["endpoint"] == "rupload")
    assert upload["auth"] == "header" and upload["status"] == 200
    finish = next(c for c in calls if c["params"].get("upload_phase") == "finish")
    assert finish["params"]["video_state"] == "PUBLISHED"
    assert any(c["endpoint"] == "node" and c["params"].get("fields") == "status" for c in calls)

    reel_id = outcome.ref.remote_id
    stored = sandbox.obj(reel_id)
    assert stored["reel"] and stored["state"] == "ready" and stored["published"]
    assert stored["sha256"] == reel_clip.sha256
    served = requests.get(f"{sandbox.base_url}/_files/video/{reel_id}", timeout=30).content
    assert hashlib.sha256(served).hexdigest() == reel_clip.sha256
    status = sandbox.graph(reel_id, fields="status")["status"]
    assert status["publishing_phase"]["status"] == "complete" and status["video_status"] == "ready"
    listed = sandbox.graph(f"{sandbox.page_id}/video_reels", fields="id,title,description")["data"]
    assert [r["id"] for r in listed if r.get("title") == pub.title] == [reel_id]

    again = publish_once(ledger, reels, pub)
    assert again.action != "created" and again.ref.remote_id == reel_id
    listed = sandbox.graph(f"{sandbox.page_id}/video_reels", fields="id,title")["data"]
    assert len([r for r in listed if r.get("title") == pub.title]) == 1


def test_a_landscape_video_is_refused_as_a_reel_with_the_reason(reels, tmp_path, marker):
    landscape = synthetic_clip(tmp_path / "wide.mp4", width=426, height=240, duration=3.2)
    with pytest.raises(RejectedInput) as caught:
        video_id = reels.upload_reel(landscape, title=f"Reel {marker}", description="sai khổ")
        reels.wait_published(video_id)
    assert "9:16" in str(caught.value) and "540x960" in str(caught.value)


def test_finishing_a_reel_before_its_bytes_arrive_is_graph_error_6000(reels, fanpage):
    started = fanpage.client.post(f"{fanpage.page_id}/video_reels", {"upload_phase": "start"})
    assert started["upload_url"].endswith(f"/video-upload/v25.0/{started['video_id']}")
    with pytest.raises(ChannelError) as caught:
        fanpage.client.post(f"{fanpage.page_id}/video_reels", {"upload_phase": "finish",
                                                               "video_id": started["video_id"],
                                                               "video_state": "PUBLISHED"})
    assert "6000" in str(caught.value) or "Missing" in str(caught.value)


def test_the_page_token_is_never_sent_to_an_upload_host_graph_did_not_come_from(reels, tmp_path):
    with pytest.raises(ChannelError) as caught:
        reels._send_bytes("https://uploads.example.net/video-upload/v25.0/1", tmp_path, 1)
    assert "refusing" in str(caught.value)
