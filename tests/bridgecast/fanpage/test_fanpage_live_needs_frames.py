"""As on Facebook, a live video is on air only once stream data arrives: LIVE_NOW without frames leaves it off the
Page (its pre-live status, no ingest health); the frames arriving put it on air, with a measured bitrate in
`ingest_streams{stream_health}` (graph §L)."""
from __future__ import annotations

STREAM_TIMEOUT_S = 30


def master_health(fanpage, live_id: str) -> dict | None:
    item = fanpage.client.get(live_id, {"fields": "status,ingest_streams{stream_id,is_master,stream_health}"})
    streams = item.get("ingest_streams") or []
    return next((s for s in streams if s.get("is_master")), {}).get("stream_health")


def test_live_now_without_frames_is_not_broadcast_until_the_stream_arrives(fanpage, rtmp_ingest, marker, wait,
                                                                           stream):
    live = fanpage.create_live_video(f"TRỰC TIẾP: chờ tín hiệu {marker}", "")
    assert fanpage.go_live(live.remote_id) == "UNPUBLISHED"  # asked to go live, but nothing arrives
    assert master_health(fanpage, live.remote_id) is None
    assert rtmp_ingest.obj(live.remote_id)["broadcast_start_time"] is None

    publisher = stream(live.secure_stream_url, seconds=6)
    wait(lambda: fanpage.live_status(live.remote_id)["status"] == "LIVE", timeout_s=STREAM_TIMEOUT_S,
         what="the live to go on air when frames arrive")
    wait(lambda: (master_health(fanpage, live.remote_id) or {}).get("video_bitrate", 0) > 0,
         timeout_s=STREAM_TIMEOUT_S, what="a measured bitrate in the ingest health")
    assert rtmp_ingest.obj(live.remote_id)["broadcast_start_time"] is not None
    publisher.wait(timeout=STREAM_TIMEOUT_S)
    wait(lambda: master_health(fanpage, live.remote_id) is None, timeout_s=STREAM_TIMEOUT_S,
         what="no ingest health once the stream stops")
