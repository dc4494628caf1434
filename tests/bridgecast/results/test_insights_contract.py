"""Graph API insights (facebook-graph.md §I) against the fanpage sandbox: the client reads the reach of a post, a
video and the live video; the sandbox answers in Graph's shape and with Graph's errors (no metric, a retired metric,
a missing permission, a range over 90 days), and its made-up figures are deterministic and grow, then level off."""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from bridgecast.channels.base import MediaFile, Publication, RejectedInput
from bridgecast.channels.insights import page_daily, post_reach, reach_of, video_reach
from devstack.sandboxes.fanpage import DEFAULT_PERMISSIONS


@pytest.fixture
def sandbox(fanpage_sandbox):
    yield fanpage_sandbox
    fanpage_sandbox.admin("POST", "clock", {"offset_s": 0})
    fanpage_sandbox.admin("POST", "knobs", {"permissions": list(DEFAULT_PERMISSIONS)})


@pytest.fixture
def channel(sandbox, tmp_path):
    return sandbox.channel(tmp_path)


def photo(tmp_path, name="anh.jpg") -> MediaFile:
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", (64, 48), (30, 120, 200)).save(path, "JPEG")
    return MediaFile.from_path(path, "image/jpeg", "Đội Vĩnh Yên")


def published_post(channel, tmp_path, text: str) -> str:
    pub = Publication("insights-test", f"test/{text}", "post", f"Kết quả {text}", "Người dân tham gia BHXH tự nguyện.",
                      media=(photo(tmp_path),))
    return channel.publish(pub).remote_id


def test_post_insights_have_graphs_shape_and_consistent_figures(sandbox, channel, tmp_path):
    post_id = published_post(channel, tmp_path, "shape")
    status, body = sandbox.graph(f"{post_id}/insights", metric="post_media_view,post_total_media_view_unique,"
                                 "post_clicks,post_reactions_by_type_total", period="lifetime")
    assert status == 200
    assert [e["name"] for e in body["data"]] == ["post_media_view", "post_total_media_view_unique", "post_clicks",
                                                 "post_reactions_by_type_total"]
    for entry in body["data"]:
        assert entry["period"] == "lifetime" and entry["id"] == f"{post_id}/insights/{entry['name']}/lifetime"
        assert entry["title"] and "Sandbox figure" in entry["description"]
        assert len(entry["values"]) == 1 and entry["values"][0]["end_time"].endswith("+0000")
    assert isinstance(body["data"][3]["values"][0]["value"], dict)  # reactions by type: a map

    reach = post_reach(channel.client, post_id)
    assert reach.kind == "post" and reach.note is None
    assert reach.views > 0 and 0 < reach.viewers <= reach.views
    assert 0 <= reach.clicks <= reach.viewers and 0 <= reach.reactions <= reach.viewers
    assert post_reach(channel.client, post_id) == reach  # the same hour, the same figures


def test_reach_grows_over_the_first_day_then_levels_off(sandbox, channel, tmp_path):
    post_id = published_post(channel, tmp_path, "growth")
    first = post_reach(channel.client, post_id).views
    sandbox.admin("POST", "clock", {"advance_s": 12 * 3600})
    later = post_reach(channel.client, post_id).views
    sandbox.admin("POST", "clock", {"advance_s": 5 * 86400})
    settled = post_reach(channel.client, post_id).views
    sandbox.admin("POST", "clock", {"advance_s": 86400})
    assert first < later < settled == post_reach(channel.client, post_id).views


def test_a_scheduled_post_has_no_reach_yet(sandbox, channel, tmp_path):
    pub = Publication("insights-test", "test/scheduled", "post", "Bài hẹn giờ", "Sẽ đăng sau.",
                      publish_at=datetime.now(timezone.utc) + timedelta(days=2))
    post_id = channel.publish(pub).remote_id
    reach = post_reach(channel.client, post_id)
    assert (reach.views, reach.viewers, reach.clicks, reach.reactions) == (0, 0, 0, 0)


def test_video_insights_of_an_uploaded_video(sandbox, channel, tmp_path):
    path = tmp_path / "recap.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15:d=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True,
                   timeout=60)
    video_id = channel.publish(Publication("insights-test", "test/video", "video", "Video tổng hợp", "Lễ ra quân",
                                           video=MediaFile.from_path(path, "video/mp4"))).remote_id
    status, body = sandbox.graph(f"{video_id}/video_insights", metric="total_video_views,total_video_views_unique")
    assert status == 200 and all("end_time" not in e["values"][0] for e in body["data"])  # lifetime: no end_time
    reach = video_reach(channel.client, video_id)
    assert reach.views > 0 and 0 < reach.viewers <= reach.views and reach.avg_watch_s > 0


def test_live_video_reach_counts_viewers_only_while_live(sandbox, channel):
    live = channel.create_live_video("TRỰC TIẾP: Lễ ra quân (thử)", "Kiểm tra số liệu")
    assert reach_of(channel.client, "live", live.remote_id).watching_now == 0  # preview: nobody watches
    # A live is on air only while it receives a stream (as on Facebook): tell the sandbox a publisher connected,
    # through the ingest callback its nginx calls (this test has no nginx)
    secret = channel.live_stream_url(live.remote_id).rsplit("a=", 1)[1]
    requests.post(f"{sandbox.base_url}/_ingest/on_publish", data={"name": live.remote_id, "a": secret},
                  timeout=10).raise_for_status()
    channel.go_live(live.remote_id)
    during = reach_of(channel.client, "live", live.remote_id)
    assert during.kind == "live" and during.watching_now > 0 and during.views > 0 and during.note is None
    channel.end_live_video(live.remote_id)
    after = reach_of(channel.client, "live", live.remote_id)
    assert after.watching_now == 0 and after.views >= during.views


def test_no_metric_and_a_retired_metric_are_refused_as_graph_does(sandbox, channel, tmp_path):
    post_id = published_post(channel, tmp_path, "errors")
    status, body = sandbox.graph(f"{post_id}/insights")
    assert status == 400 and (body["error"]["code"], body["error"]["error_subcode"]) == (3001, 1504028)
    # post_impressions was retired on 2025-11-15 (→ post_media_view): one dead name fails the whole list
    status, body = sandbox.graph(f"{post_id}/insights", metric="post_media_view,post_impressions")
    assert status == 400 and body["error"]["code"] == 100
    assert body["error"]["message"] == "(#100) The value must be a valid insights metric"
    with pytest.raises(RejectedInput):
        channel.client.get(f"{post_id}/insights", {"metric": "post_impressions"})


def test_without_read_insights_the_reach_says_which_permission_is_missing(sandbox, channel, tmp_path):
    post_id = published_post(channel, tmp_path, "permission")
    sandbox.admin("POST", "knobs", {"permissions": [p for p in DEFAULT_PERMISSIONS if p != "read_insights"]})
    status, body = sandbox.graph(f"{post_id}/insights", metric="post_media_view")
    assert status == 403 and body["error"]["code"] == 10 and "read_insights" in body["error"]["message"]
    reach = reach_of(channel.client, "post", post_id)
    assert reach.views is None and "thiếu quyền read_insights" in reach.note


def test_a_deleted_post_has_a_note_instead_of_figures(sandbox, channel, tmp_path):
    post_id = published_post(channel, tmp_path, "deleted")
    channel.client.delete(post_id)
    reach = reach_of(channel.client, "post", post_id)
    assert reach.views is None and "không còn trên Trang" in reach.note


def test_page_insights_give_one_value_per_day_ending_at_pacific_midnight(sandbox, channel):
    now = datetime.now(timezone.utc)
    since = (now - timedelta(days=5)).replace(hour=7, minute=0, second=0, microsecond=0)
    days = page_daily(channel.client, sandbox.page_id, "page_media_view", since, now)
    assert [end for end, _ in days][0] == since + timedelta(days=1)  # the first end_time is since + 1 day
    assert len(days) in (5, 6) and all(end.hour == 7 for end, _ in days)
    assert all(isinstance(v, int) and v > 0 for _, v in days)
    status, week = sandbox.graph(f"{sandbox.page_id}/insights", metric="page_media_view", period="week",
                                 since=str(int((since - timedelta(days=7)).timestamp())),
                                 until=str(int(now.timestamp())))
    by_end = {datetime.strptime(v["end_time"], "%Y-%m-%dT%H:%M:%S%z"): v["value"] for v in week["data"][0]["values"]}
    status, day = sandbox.graph(f"{sandbox.page_id}/insights", metric="page_media_view", period="day",
                                since=str(int((since - timedelta(days=7)).timestamp())),
                                until=str(int(now.timestamp())))
    daily = [v["value"] for v in day["data"][0]["values"]]
    last_full = list(by_end.values())[7]
    assert last_full == sum(daily[1:8])  # a week's value is the sum of its 7 days


def test_page_insights_refuse_more_than_90_days_and_a_period_a_metric_does_not_have(sandbox):
    now = datetime.now(timezone.utc)
    status, body = sandbox.graph(f"{sandbox.page_id}/insights", metric="page_media_view",
                                 since=str(int((now - timedelta(days=91)).timestamp())),
                                 until=str(int(now.timestamp())))
    assert status == 400 and body["error"]["code"] == 100 and "90 days" in body["error"]["message"]
    status, body = sandbox.graph(f"{sandbox.page_id}/insights", metric="page_media_view", period="lifetime")
    assert status == 400 and body["error"]["code"] == 100
