"""Portal channel contract: every test runs against the portal sandbox AND a real WordPress 6.1."""
from __future__ import annotations

import dataclasses
import html
import json
import tracemalloc
import uuid
from datetime import datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from bridgecast.channels.base import AuthError, NotFound, Publication, RejectedInput, Transient
from bridgecast.channels.portal import PortalChannel

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def article(event_id: str, key: str = "launch/article", **fields) -> Publication:
    token = fields.pop("token", uuid.uuid4().hex[:8])
    defaults = dict(event_id=event_id, key=key, kind="article",
                    title=f"Lễ ra mắt điểm cầu Vĩnh Phúc {token}",
                    body="Sáng nay, 64 điểm cầu cùng tham gia.\n\nNgười dân đến rất đông.\nKhông khí sôi nổi.",
                    excerpt="Tóm tắt buổi lễ ra mắt.", categories=("Sự kiện",), tags=("Vĩnh Phúc", "BHXH"))
    defaults.update(fields)
    return Publication(**defaults)


def test_media_upload_returns_a_downloadable_attachment(portal, photos):
    photo = photos[0]
    item = portal.client.upload(photo, slug=f"bc-media-{photo.sha256[:20]}", title=photo.caption,
                                caption=photo.caption, alt_text=photo.caption)
    assert item["id"] > 0 and item["mime_type"] == "image/jpeg"
    assert item["caption"]["raw"] == "Điểm cầu Hà Nội" and item["alt_text"] == "Điểm cầu Hà Nội"
    served = requests.get(item["source_url"], timeout=10)
    assert served.status_code == 200 and served.content == open(photo.path, "rb").read()


def test_article_has_featured_image_gallery_terms_and_excerpt(portal, photos, event_id):
    pub = article(event_id, media=tuple(photos))
    ref = portal.publish(pub)
    post = portal.client.get_post(int(ref.remote_id))
    media_ids = ref.extra["media_ids"]
    assert len(media_ids) == 3 and post["featured_media"] == media_ids[0]
    content = post["content"]["raw"]
    assert "<!-- wp:gallery" in content
    assert all(f'"id":{mid}' in content and f"wp-image-{mid}" in content for mid in media_ids)
    assert "Điểm cầu Vĩnh Phúc" in content and "Người dân đến rất đông.<br>Không khí sôi nổi." in content
    assert post["status"] == "publish" and post["title"]["raw"] == pub.title
    assert post["excerpt"]["raw"] == "Tóm tắt buổi lễ ra mắt."
    assert post["categories"] == portal.client.term_ids("categories", ["Sự kiện"])
    assert sorted(post["tags"]) == sorted(portal.client.term_ids("tags", ["Vĩnh Phúc", "BHXH"]))
    assert post["slug"] == pub.slug() and ref.url == post["link"]


def test_recap_video_is_uploaded_and_embedded(portal, recap_video, photos, event_id):
    pub = article(event_id, key="launch/recap", kind="video", media=(photos[0],), video=recap_video)
    ref = portal.publish(pub)
    post = portal.client.get_post(int(ref.remote_id))
    video_id = ref.extra["video_id"]
    assert video_id and video_id not in ref.extra["media_ids"]
    assert f'<!-- wp:video {{"id":{video_id}}} -->' in post["content"]["raw"]
    video_url = post["content"]["raw"].split('<video controls preload="metadata" src="')[1].split('"')[0]
    served = requests.get(video_url, timeout=10)
    assert served.status_code == 200 and served.content == open(recap_video.path, "rb").read()


def test_team_videos_are_embedded_captioned_beside_the_recap_and_the_photo_stays_featured(portal, recap_video, photos,
                                                                                         event_id, media_dir):
    from dataclasses import replace

    from tests.bridgecast.channels.conftest import make_video

    team = replace(make_video(media_dir / f"team-{event_id}.mp4", seconds=1.0), caption="Video của Thành phố Vĩnh Yên")
    pub = article(event_id, key="launch/with-team-video", media=(photos[0], team), video=recap_video)
    ref = portal.publish(pub)
    post = portal.client.get_post(int(ref.remote_id))
    content = post["content"]["raw"]
    roles = [(m["role"], m["mime_type"].split("/")[0]) for m in ref.extra["media"]]
    assert roles == [("media", "image"), ("media", "video"), ("main_video", "video")]
    assert content.count("<!-- wp:video") == 2 and "Video của Thành phố Vĩnh Yên</figcaption>" in content
    assert post["featured_media"] == ref.extra["media"][0]["id"]  # the photo, never a video
    for item in ref.extra["media"]:  # every file at its public address, as the press kit links it
        assert requests.get(item["url"], timeout=10).status_code == 200


def test_scheduled_post_lands_at_0800_local_as_0100_utc(portal_backend, portal, event_id):
    day = (datetime.now(HCM) + timedelta(days=30)).date()
    publish_at = datetime.combine(day, dtime(8, 0), tzinfo=HCM)
    ref = portal.publish(article(event_id, publish_at=publish_at))
    post = portal.client.get_post(int(ref.remote_id))
    assert post["status"] == "future" and ref.extra["scheduled"] is True
    assert post["date_gmt"] == f"{day.isoformat()}T01:00:00"
    assert post["date"] == f"{day.isoformat()}T08:00:00"  # the site's own clock is Asia/Ho_Chi_Minh too
    anonymous = requests.get(f"{portal_backend.base_url}/wp-json/wp/v2/posts", params={"slug": ref.extra["slug"]},
                             timeout=10)
    assert anonymous.status_code == 200 and anonymous.json() == []  # readers do not see it before 08:00


def test_publish_at_already_due_publishes_now(portal, event_id):
    ref = portal.publish(article(event_id, publish_at=datetime.now(timezone.utc) - timedelta(minutes=5)))
    post = portal.client.get_post(int(ref.remote_id))
    assert post["status"] == "publish"
    published = datetime.fromisoformat(post["date_gmt"]).replace(tzinfo=timezone.utc)
    assert abs(published - datetime.now(timezone.utc)) < timedelta(minutes=2)


def test_publish_now_releases_a_scheduled_post_without_wp_cron(portal, event_id):
    ref = portal.publish(article(event_id, publish_at=datetime.now(timezone.utc) + timedelta(days=2)))
    released = portal.publish_now(ref)
    post = portal.client.get_post(int(ref.remote_id))
    assert released.remote_id == ref.remote_id and post["status"] == "publish"


def test_unscheduling_a_post_publishes_it_now(portal, event_id):
    scheduled = article(event_id, publish_at=datetime.now(timezone.utc) + timedelta(days=3))
    ref = portal.publish(scheduled)
    updated = portal.update(ref, article(event_id, title=scheduled.title, publish_at=None))
    post = portal.client.get_post(int(ref.remote_id))
    assert updated.remote_id == ref.remote_id and post["status"] == "publish"


def test_update_changes_the_published_post_in_place(portal, photos, event_id):
    first = article(event_id, media=(photos[0],))
    ref = portal.publish(first)
    second = article(event_id, title=first.title + " (cập nhật)", body="Nội dung mới.", media=tuple(photos[1:]),
                     tags=("Hà Nội",))
    updated = portal.update(ref, second)
    post = portal.client.get_post(int(ref.remote_id))
    assert updated.remote_id == ref.remote_id
    assert post["title"]["raw"].endswith("(cập nhật)") and "Nội dung mới." in post["content"]["raw"]
    assert post["featured_media"] == updated.extra["media_ids"][0] != ref.extra["media_ids"][0]
    assert post["tags"] == portal.client.term_ids("tags", ["Hà Nội"])
    assert post["slug"] == first.slug() and post["status"] == "publish"


def test_find_reconciles_by_slug_and_forgets_trashed_posts(portal, event_id):
    pub = article(event_id)
    assert portal.find(pub) is None
    ref = portal.publish(pub)
    found = portal.find(pub)
    assert found is not None and found.remote_id == ref.remote_id
    assert portal.find(article(event_id, key="launch/other")) is None
    portal.delete(ref)
    portal.delete(ref)  # deleting twice is not an error: cancel must be idempotent
    assert portal.find(pub) is None


def test_media_already_uploaded_is_reused_not_uploaded_again(portal, photos, event_id):
    first = portal.publish(article(event_id, key="a/one", media=tuple(photos)))
    second = portal.publish(article(event_id, key="a/two", media=tuple(reversed(photos))))
    assert sorted(first.extra["media_ids"]) == sorted(second.extra["media_ids"])


def test_terms_resolve_by_name_to_the_same_ids(portal):
    name = f"Tỉnh Phú Thọ {uuid.uuid4().hex[:6]}"
    first = portal.client.term_ids("tags", [name, name.upper()])
    again = portal.client.term_ids("tags", [name])
    assert len(first) == 1 and first == again


def test_wrong_app_password_raises_auth_error_naming_the_connection(portal_backend, event_id, no_secret):
    channel = PortalChannel(portal_backend.base_url, portal_backend.user, "wrong pass word 0000 1111")
    with pytest.raises(AuthError) as caught:
        channel.publish(article(event_id))
    assert caught.value.status == 401 and "bridgecast_portal" in caught.value.operator_message
    health = channel.check()
    assert health.ok is False and "Application Password" in health.detail and "bridgecast_portal" in health.detail
    no_secret(str(caught.value) + repr(caught.value) + health.detail, "an AuthError")


def test_invalid_parameters_are_rejected_naming_the_parameter(portal):
    cases = {"status": {"status": "tomorrow"}, "featured_media": {"featured_media": "abc"},
             "date_gmt": {"date_gmt": "08:00 sáng mai"}, "tags": {"tags": ["Vĩnh Phúc"]}}
    for param, fields in cases.items():
        with pytest.raises(RejectedInput) as caught:
            portal.client.create_post({"title": "không hợp lệ", **fields})
        assert caught.value.param == param and caught.value.code == "rest_invalid_param"
        assert param in caught.value.operator_message


def test_forbidden_file_type_is_rejected_input(portal, media_dir):
    path = media_dir / f"tool-{uuid.uuid4().hex[:6]}.exe"
    path.write_bytes(b"MZ" + b"\0" * 64)
    from bridgecast.channels.base import MediaFile

    with pytest.raises(RejectedInput) as caught:
        portal.client.upload(MediaFile(str(path), path.name, "application/x-msdownload", "0" * 64))
    assert caught.value.param == "file" and caught.value.code == "rest_upload_sideload_error"


def test_unknown_post_is_not_found(portal):
    with pytest.raises(NotFound):
        portal.client.get_post(987654321)


def test_check_reports_the_capabilities_we_need(portal):
    health = portal.check()
    assert health.ok, health.detail
    assert {"upload_files", "publish_posts", "edit_published_posts"} <= set(health.permissions)


def test_from_connection_uses_the_airflow_connection(portal_backend, monkeypatch, event_id):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_PORTAL", json.dumps({
        "conn_type": "http", "host": portal_backend.base_url, "login": portal_backend.user,
        "password": portal_backend.app_password}))
    channel = PortalChannel.from_connection()
    assert channel.check().ok
    transport = channel.client.transport
    shown = repr(channel) + repr(channel.client) + repr(transport) + repr(transport.session.auth)
    assert portal_backend.app_password not in shown


def test_big_uploads_stream_from_disk(portal_backend, media_dir, video_maker):
    """Raw below the threshold, multipart above it, and neither reads the file into memory."""
    channel = portal_backend.channel(multipart_threshold=16 * 1024 * 1024)
    small = video_maker(media_dir / f"raw-{uuid.uuid4().hex[:6]}.mp4", pad_bytes=8 * 1024 * 1024)
    big = video_maker(media_dir / f"multipart-{uuid.uuid4().hex[:6]}.mp4", pad_bytes=40 * 1024 * 1024)
    for media in (small, big):
        tracemalloc.start()
        try:
            item = channel.client.upload(media, slug=f"bc-media-{media.sha256[:20]}", title="video")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * 1024 * 1024, f"upload of {media.filename} held {peak} bytes in memory"
        served = requests.get(item["source_url"], timeout=30)
        assert len(served.content) == len(open(media.path, "rb").read())


def test_unreachable_portal_is_transient(event_id):
    from devstack.sandboxes.smtp import free_port

    channel = PortalChannel(f"http://127.0.0.1:{free_port()}", "bridgecast", "unused", read_attempts=2,
                            first_wait_s=0.01)
    with pytest.raises(Transient):
        channel.find(article(event_id))


HOSTILE_TITLE = '<script>alert(1)</script> Lễ ra quân & "BHXH"'


def reader_view(backend, post_id) -> str:
    """A page a reader's browser gets for the post, rendered by the site itself: WordPress's embed view (core's
    theme-compat template prints the_title() and the excerpt as a theme does; the test site has no theme), the
    sandbox's article page (which ignores `embed`)."""
    return f"{backend.base_url}/?p={post_id}&embed=true"


def _as_text(rendered: str) -> str:
    """What a reader sees of rendered HTML text (WordPress's texturize curls quotes)."""
    return html.unescape(rendered).replace("\u201c", '"').replace("\u201d", '"').replace("\u2033", '"')


def test_markup_in_titles_excerpts_and_captions_reaches_readers_as_text(portal_backend, portal, photos, event_id):
    token = uuid.uuid4().hex[:8]
    photo = dataclasses.replace(photos[0], caption='Ảnh <img src=x onerror="alert(2)"> điểm cầu')
    pub = article(event_id, title=f"{HOSTILE_TITLE} {token}", excerpt="Tóm tắt <b onclick=alert(3)>đậm</b>",
                  media=(photo,))
    ref = portal.publish(pub)

    post = requests.get(f"{portal_backend.base_url}/wp-json/wp/v2/posts/{ref.remote_id}", timeout=10).json()
    assert "<script" not in post["title"]["rendered"] and "<b " not in post["excerpt"]["rendered"]
    assert _as_text(post["title"]["rendered"]) == pub.title
    assert "Tóm tắt <b onclick=alert(3)>đậm</b>" in _as_text(post["excerpt"]["rendered"])
    assert "<img src=x" not in post["content"]["rendered"]
    media = requests.get(f"{portal_backend.base_url}/wp-json/wp/v2/media/{ref.extra['media_ids'][0]}",
                         timeout=10).json()
    assert "<img src=x" not in media["caption"]["rendered"] and "<img src=x" not in media["title"]["rendered"]
    page = requests.get(reader_view(portal_backend, ref.remote_id), timeout=10)
    assert page.status_code == 200 and token in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert 'onerror="alert(2)"' not in page.text and "<b onclick" not in page.text


def test_a_raw_title_is_stored_and_rendered_as_markup_as_wordpress_does(portal_backend, portal):
    """Why we escape: what the REST API is given is what readers get (an administrator has unfiltered_html). The
    sandbox must not be kinder than WordPress here, or it would hide the stored XSS."""
    token = uuid.uuid4().hex[:8]
    post = portal.client.create_post({"title": f"<em>Nghiêng</em> {token}", "status": "publish",
                                      "excerpt": "<em>tóm tắt</em>"})
    public = requests.get(f"{portal_backend.base_url}/wp-json/wp/v2/posts/{post['id']}", timeout=10).json()
    assert public["title"]["rendered"] == f"<em>Nghiêng</em> {token}"
    assert "<em>tóm tắt</em>" in public["excerpt"]["rendered"]
    assert f"<em>Nghiêng</em> {token}" in requests.get(reader_view(portal_backend, post["id"]), timeout=10).text
    portal.client.delete_post(post["id"])
