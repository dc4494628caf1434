"""What the staff path tells people: the approval request's Markdown (time in words, thumbnails) and the notices
the notifiers subscribe to — the approvers, the subject and body in Vietnamese, the link to the request."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bridgecast.event import load_event
from bridgecast.posts import notices
from bridgecast.posts.content import MediaSpec, PostContent
from bridgecast.posts.preview import approval_markdown, approval_subject

REPO = Path(__file__).resolve().parents[2]
EVENT = load_event(REPO / "config" / "event.yaml")
AT = datetime(2026, 5, 23, 1, 0, tzinfo=timezone.utc)  # 08:00 on Saturday 23/05/2026 in Vietnam
LINK = "http://127.0.0.1:8080/dags/bridgecast_schedule_post/runs/r1/tasks/approve_post/required_actions"


def post(**changes) -> PostContent:
    fields = {"key": "form/ra-quan-0a1b2c3d-20260523-0800", "label": "Ra quân", "channels": ("portal", "fanpage"),
              "title": "Ra quân [Vĩnh Tường]", "body": "Đoạn một.\n\nĐoạn hai.", "publish_at": AT,
              "media": MediaSpec(keys=("e/vinh-tuong/processed/web/a.jpg",)), "approval_required": True}
    return PostContent(**{**fields, **changes})


@pytest.fixture
def heard():
    got = []
    notices.subscribe(got.append)
    yield got
    notices.unsubscribe(got.append)


def test_the_approval_request_reads_the_time_in_words_and_shows_thumbnails():
    photos = [{"key": "e/vinh-tuong/processed/web/a.jpg", "caption": "Huyện [Vĩnh] Tường",
               "thumb_url": "/bridgecast/api/media/e/vinh-tuong/processed/thumb/a.jpg"}]
    text = approval_markdown(EVENT, post(), photos, {"portal": "http://s3.example/portal.html"})
    assert text.splitlines()[0] == "- **Giờ đăng:** 08:00 thứ Bảy 23/05/2026, giờ Việt Nam (01:00 23/05/2026 UTC)"
    assert "- **Hạn duyệt:** trước 08:00 thứ Bảy 23/05/2026, giờ Việt Nam" in text
    # one image per photo, its alt text unable to break the Markdown
    assert "![Huyện Vĩnh Tường](/bridgecast/api/media/e/vinh-tuong/processed/thumb/a.jpg)" in text
    assert "[Xem trước bài trên cổng thông tin, có ảnh (HTML)](http://s3.example/portal.html)" in text
    assert approval_subject(post()) == "Duyệt bài «Ra quân [Vĩnh Tường]» — đăng 08:00 thứ Bảy 23/05/2026, giờ Việt Nam"


def test_an_approval_request_notifies_the_approvers_with_the_link_and_the_time_in_words(heard):
    notice = notices.approval_requested(post(), approvers=["approver", "truong-phong"], link=LINK, deadline=AT,
                                        run_id="r1", preview_links={"portal": "http://s3.example/portal.html"})
    assert heard == [notice]
    assert notice.kind == "approval_requested" and notice.to == ("approver", "truong-phong")
    assert notice.subject == "Cần duyệt: Ra quân [Vĩnh Tường] — đăng 08:00 thứ Bảy 23/05/2026, giờ Việt Nam"
    assert "Giờ đăng: 08:00 thứ Bảy 23/05/2026, giờ Việt Nam." in notice.body and LINK in notice.body
    assert notice.link == LINK and notice.facts["publish_at"] == "2026-05-23T01:00:00+00:00"


def test_a_failing_notifier_never_stops_the_approval(heard):
    def broken(notice):
        raise ConnectionError("mail server down")

    notices.subscribe(broken)
    try:
        notice = notices.outcome_reported(post(), outcome="published", outcome_text="ĐÃ ĐĂNG",
                                          lines=["Bài «Ra quân» — ĐÃ ĐĂNG"], run_id="r1", link="http://portal/1")
    finally:
        notices.unsubscribe(broken)
    assert heard == [notice] and notice.subject == "ĐÃ ĐĂNG: Ra quân [Vĩnh Tường] (08:00 thứ Bảy 23/05/2026, giờ " \
                                                   "Việt Nam)"
    assert notice.to_json()["to"] == []  # the staff who sent the post
