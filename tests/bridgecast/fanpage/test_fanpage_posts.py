"""Posts on the Page: photos, multi-photo posts, text/link posts, scheduling in Vietnam time, the scheduling window,
listing, cancelling and updating scheduled posts, and the preflight check."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from bridgecast.channels.base import Publication, RejectedInput
from bridgecast.channels.fanpage import FanpageChannel, post_message
from bridgecast.ledger import CANCELLED, cancel_once, publish_once

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def test_multi_photo_post_uploads_unpublished_photos_then_one_feed_post(fanpage, sandbox, photos, event_id,
                                                                        marker):
    pub = Publication(event_id, "gallery/opening", "post", f"Khai mạc {marker}",
                      "Ảnh từ các điểm cầu.\n\nCảm ơn mọi người đã tham gia.", media=tuple(photos))
    seq = sandbox.last_seq()
    ref = fanpage.publish(pub)

    calls = sandbox.requests_since(seq)
    photo_calls = [c for c in calls if c["endpoint"] == "photos"]
    assert len(photo_calls) == 3
    for call in photo_calls:
        assert call["method"] == "POST" and call["files"] == ["source"]
        assert call["params"]["published"] == "false" and "temporary" not in call["params"]
    feed_calls = [c for c in calls if c["endpoint"] == "feed"]
    assert len(feed_calls) == 1
    attached = [json.loads(feed_calls[0]["params"][f"attached_media[{i}]"])["media_fbid"] for i in range(3)]
    assert attached == ref.extra["media_ids"]

    post = sandbox.graph(ref.remote_id, fields="message,is_published,attachments")
    assert post["is_published"] is True
    assert post["message"] == f"Khai mạc {marker}\n\nẢnh từ các điểm cầu.\n\nCảm ơn mọi người đã tham gia."
    album = post["attachments"]["data"][0]["subattachments"]["data"]
    assert [a["target"]["id"] for a in album] == attached
    for photo_id, photo in zip(attached, photos):
        assert sandbox.obj(photo_id)["sha256"] == photo.sha256

    page = requests.get(sandbox.base_url + "/", timeout=10)
    assert page.headers["content-type"].startswith("text/html") and "charset=utf-8" in page.headers["content-type"]
    assert f"Khai mạc {marker}" in page.text
    assert all(f"/_files/photo/{photo_id}" in page.text for photo_id in attached)


def test_text_post_with_link_is_published_and_found_again(fanpage, sandbox, event_id, marker):
    pub = Publication(event_id, "news/link", "post", f"Tin mới {marker}", "Xem chi tiết trên cổng thông tin.",
                      link="https://bhxh-vinhphuc.example/tin-tuc/khai-mac")
    ref = fanpage.publish(pub)

    post = sandbox.graph(ref.remote_id, fields="message,link,is_published")
    assert post["link"] == "https://bhxh-vinhphuc.example/tin-tuc/khai-mac"
    assert post["message"] == post_message(pub) and post["is_published"] is True
    assert ref.url and ref.url.endswith(ref.remote_id)
    assert fanpage.find(pub).remote_id == ref.remote_id


def test_scheduled_post_at_0800_vietnam_time_goes_out_as_0100_utc_unix_seconds(fanpage, sandbox, photos, event_id,
                                                                              marker):
    day = (datetime.now(VN) + timedelta(days=3)).date()
    publish_at = datetime(day.year, day.month, day.day, 8, 0, tzinfo=VN)
    expected = int(datetime(day.year, day.month, day.day, 1, 0, tzinfo=timezone.utc).timestamp())
    pub = Publication(event_id, "calendar/pre-announce", "post", f"Sắp diễn ra {marker}", "Hẹn gặp lúc 8 giờ.",
                      media=tuple(photos[:2]), publish_at=publish_at)
    seq = sandbox.last_seq()
    ref = fanpage.publish(pub)

    calls = sandbox.requests_since(seq)
    assert all(c["params"].get("temporary") == "true" for c in calls if c["endpoint"] == "photos")
    feed = next(c for c in calls if c["endpoint"] == "feed")
    assert feed["params"]["published"] == "false"
    assert feed["params"]["scheduled_publish_time"] == str(expected)
    assert ref.extra["scheduled"] is True

    listed = {p["id"]: p for p in fanpage.scheduled_posts()}
    assert listed[ref.remote_id]["scheduled_publish_time"] == expected
    assert ref.remote_id not in {p["id"] for p in fanpage.recent_posts()}


@pytest.mark.parametrize("lead", [timedelta(minutes=5), timedelta(days=31)], ids=["5-minutes", "31-days"])
def test_publish_at_outside_the_window_is_refused_before_any_call(fanpage, sandbox, photos, event_id, marker, lead):
    pub = Publication(event_id, "calendar/bad-time", "post", f"Sai giờ {marker}", "Nội dung",
                      media=tuple(photos), publish_at=datetime.now(timezone.utc) + lead)
    seq = sandbox.last_seq()
    with pytest.raises(RejectedInput) as caught:
        fanpage.publish(pub)
    assert caught.value.param == "publish_at"
    assert "publish_at" in caught.value.operator_message
    assert "10 minutes" in caught.value.operator_message or "30 days" in caught.value.operator_message
    assert sandbox.requests_since(seq) == []


def test_photo_rules_are_checked_before_any_call(fanpage, sandbox, photos, event_id, tmp_path):
    pdf = tmp_path / "agenda.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    from bridgecast.channels.base import MediaFile

    not_a_photo = MediaFile(str(pdf), "agenda.pdf", "application/pdf", "0" * 64)
    seq = sandbox.last_seq()
    with pytest.raises(RejectedInput) as too_many:
        fanpage.publish(Publication(event_id, "gallery/big", "post", "Nhiều ảnh", "", media=tuple(photos * 4)))
    with pytest.raises(RejectedInput) as wrong_type:
        fanpage.publish(Publication(event_id, "gallery/pdf", "post", "Tài liệu", "", media=(not_a_photo,)))
    assert too_many.value.param == wrong_type.value.param == "media"
    assert "at most 10" in too_many.value.operator_message and "agenda.pdf" in wrong_type.value.operator_message
    assert sandbox.requests_since(seq) == []


def test_scheduled_posts_are_listed_cancelled_and_stay_cancelled(fanpage, sandbox, ledger, event_id, marker):
    pub = Publication(event_id, "calendar/withdrawn", "post", f"Sẽ huỷ {marker}", "Nội dung",
                      publish_at=datetime.now(timezone.utc) + timedelta(days=2))
    created = publish_once(ledger, fanpage, pub)
    assert created.ref.remote_id in {p["id"] for p in fanpage.scheduled_posts()}

    seq = sandbox.last_seq()
    cancelled = cancel_once(ledger, fanpage, pub)
    assert cancelled.row.status == CANCELLED
    assert [c["method"] for c in sandbox.requests_since(seq)] == ["DELETE"]
    assert created.ref.remote_id not in {p["id"] for p in fanpage.scheduled_posts()}
    assert publish_once(ledger, fanpage, pub).action == "cancelled"
    assert sandbox.posts_with(marker) == []


def test_changed_scheduled_post_is_updated_in_place_with_its_new_time(fanpage, sandbox, ledger, event_id, marker):
    first_time = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2)
    pub = Publication(event_id, "calendar/moved", "post", f"Lịch {marker}", "Bản đầu", publish_at=first_time)
    created = publish_once(ledger, fanpage, pub)

    moved = Publication(event_id, "calendar/moved", "post", f"Lịch {marker}", "Bản sửa",
                        publish_at=first_time + timedelta(hours=3))
    updated = publish_once(ledger, fanpage, moved)

    assert updated.action == "updated" and updated.ref.remote_id == created.ref.remote_id
    listed = {p["id"]: p for p in fanpage.scheduled_posts()}[created.ref.remote_id]
    assert listed["message"] == post_message(moved)
    assert listed["scheduled_publish_time"] == int((first_time + timedelta(hours=3)).timestamp())
    assert len(sandbox.posts_with(marker)) == 1


def test_scheduled_post_appears_on_the_page_when_its_time_comes(fanpage, sandbox, event_id, marker):
    post_id = fanpage.create_post(f"Đúng giờ {marker}", publish_at=datetime.now(timezone.utc) + timedelta(hours=1))
    assert post_id not in {p["id"] for p in fanpage.recent_posts()}
    sandbox.advance_clock(3600 + 5)
    published = sandbox.graph(post_id, fields="is_published")
    assert published["is_published"] is True
    assert post_id not in {p["id"] for p in fanpage.scheduled_posts()}


def test_check_reports_a_healthy_token_then_names_missing_permissions(fanpage, sandbox):
    healthy = fanpage.check()
    assert healthy.ok, healthy.detail
    assert {"pages_manage_posts", "pages_read_engagement"} <= set(healthy.permissions)

    sandbox.knobs(permissions=["pages_show_list", "pages_read_engagement"])
    lacking = fanpage.check()
    assert not lacking.ok
    assert lacking.missing_permissions == ("pages_manage_posts",)
    assert "pages_manage_posts" in lacking.detail and "bridgecast_fanpage" in lacking.detail


def test_check_reports_an_expired_token_without_raising(fanpage, sandbox):
    sandbox.knobs(expired=True)
    report = fanpage.check()
    assert not report.ok
    assert "expired" in report.detail and "bridgecast_fanpage" in report.detail


def test_channel_built_from_the_airflow_connection_publishes(sandbox, monkeypatch, marker):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_FANPAGE", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "password": sandbox.token,
        "extra": {"page_id": sandbox.page_id, "graph_version": "v26.0"}}))
    channel = FanpageChannel.from_connection("bridgecast_fanpage", graph_version="v25.0")
    seq = sandbox.last_seq()
    post_id = channel.create_post(f"Từ kết nối Airflow {marker}")
    assert sandbox.requests_since(seq)[0]["path"] == f"/v25.0/{sandbox.page_id}/feed"
    assert [p["id"] for p in sandbox.posts_with(marker)] == [post_id]
    assert FanpageChannel.from_connection("bridgecast_fanpage").client.version == "v26.0"
