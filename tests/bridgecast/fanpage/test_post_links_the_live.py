"""`link: live`: the 08:00 «ĐANG TRỰC TIẾP» post links the launch's live video itself — its permalink, recorded in
the ledger when the live video is created before T0 — not the Page's front door."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from bridgecast.event import default_event_path, load_event
from bridgecast.launch import publications as launch_publications
from bridgecast.launch.live import LiveVideoChannel
from bridgecast.ledger import LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY, publish_once
from bridgecast.posts.content import LIVE_LINK, PostContent, live_video_url, publication
from bridgecast.posts.planner import can_schedule_on_fanpage
from bridgecast.posts.publishing import _live_url


@pytest.fixture
def event():
    base = load_event(default_event_path())
    return dataclasses.replace(base, id=f"live-link-{uuid.uuid4().hex[:8]}",
                               start=datetime.now(timezone.utc) + timedelta(hours=1))


def on_air_post(event) -> PostContent:
    return PostContent(key="calendar/dang-truc-tiep", label="dang-truc-tiep", channels=("fanpage",),
                       title="ĐANG TRỰC TIẾP: Lễ ra quân", body="Lễ ra quân đang diễn ra tại 64 điểm cầu.",
                       publish_at=event.start, link=LIVE_LINK)


def test_the_on_air_post_links_the_live_video_recorded_at_its_creation(event, fanpage, sandbox, ledger):
    made = publish_once(ledger, LiveVideoChannel(fanpage), launch_publications.live_video(event))
    row = ledger.get(event.id, LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY)
    assert row.url and row.url == fanpage.live_status(made.ref.remote_id)["permalink_url"]

    content = on_air_post(event)
    url = _live_url(ledger, event, content, wait_s=0)
    assert url == row.url
    posted = publish_once(ledger, fanpage, publication(event, content, "fanpage", [], live_url=url))
    assert sandbox.graph(posted.ref.remote_id, fields="link")["link"] == row.url  # what viewers click


def test_without_a_live_video_nothing_is_posted_and_the_reason_is_given(event, ledger):
    with pytest.raises(RuntimeError, match="link: live"):
        _live_url(ledger, event, on_air_post(event), wait_s=0)
    assert live_video_url(ledger.rows(event.id)) is None


def test_a_live_linked_post_is_never_handed_to_facebook_ahead_of_time(event):
    content = on_air_post(event)
    assert not can_schedule_on_fanpage(content, event.start - timedelta(hours=2))  # the live does not exist yet
    assert can_schedule_on_fanpage(dataclasses.replace(content, link=None), event.start - timedelta(hours=2))
