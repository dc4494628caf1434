"""The content calendar files: local times to UTC, and errors that name the file, the post and the field."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bridgecast.posts.calendar import CalendarError, load_calendar
from bridgecast.event import load_event

REPO = Path(__file__).resolve().parents[2]
EVENT = load_event(REPO / "config" / "event.yaml")
POINTS = {p.id for p in EVENT.points}


def test_the_2020_calendar_loads_and_0800_local_is_0100_utc():
    calendar = load_calendar(sorted((REPO / "config" / "posts").glob("*.yaml")), EVENT.id, POINTS)
    live_now = next(p for p in calendar.posts if p.id == "dang-truc-tiep")
    assert live_now.publish_at == datetime(2020, 5, 23, 1, 0, tzinfo=timezone.utc)
    assert live_now.publish_at_local.hour == 8
    assert live_now.channels == ("portal", "fanpage")
    assert live_now.link == "live"  # the live video itself, not the Page
    ids = [p.id for p in calendar.posts]
    assert ids.index("thong-bao-le-ra-quan") < ids.index("dang-truc-tiep")  # pre-announcement comes first
    photos = next(p for p in calendar.posts if p.id == "hinh-anh-doi-luu-dong")
    assert photos.media_selector.points == ("vinh-yen", "phuc-yen", "tam-dao")


def _write(tmp_path, body: str) -> Path:
    path = tmp_path / "posts.yaml"
    path.write_text("event: bhxh-vinhphuc-2020\ntimezone: Asia/Ho_Chi_Minh\nposts:\n" + body, encoding="utf-8")
    return path


GOOD = "  - {id: a-post, channels: both, title: Tiêu đề, body: Nội dung, publish_at: 2020-05-23 08:00}\n"
BROKEN = [
    ("  - {id: p1, channels: [tiktok], title: T, body: B, publish_at: 2020-05-23 08:00}\n", "post 'p1': channels",
     "unknown channel 'tiktok'"),
    ("  - {id: p2, channels: both, title: T, body: '  ', publish_at: 2020-05-23 08:00}\n", "post 'p2': body", "empty"),
    ("  - {id: p3, channels: both, title: T, body: B, publish_at: 2020-05-23}\n", "post 'p3': publish_at",
     "no time of day"),
    ("  - {id: p4, channels: both, title: T, body: B, publish_at: 2020-05-23 08:00, media: {point: nowhere}}\n",
     "post 'p4': media.point", "unknown point 'nowhere'"),
    ("  - {id: P 5, channels: both, title: T, body: B, publish_at: 2020-05-23 08:00}\n", "post 'P 5': id",
     "not a valid id"),
    ("  - {id: p6, channels: both, title: T, body: B, publish_at: 2020-05-23 08:00, colour: red}\n",
     "post 'p6': colour", "unknown field"),
    (GOOD + GOOD, "post 'a-post': id", "duplicate"),
]


@pytest.mark.parametrize("body,where,phrase", BROKEN, ids=[b[1] for b in BROKEN])
def test_bad_calendar_entries_name_file_post_and_field(tmp_path, body, where, phrase):
    path = _write(tmp_path, body)
    with pytest.raises(CalendarError) as err:
        load_calendar([path], EVENT.id, POINTS)
    assert any(p.startswith(f"{path}: {where}") and phrase in p for p in err.value.problems), err.value.problems


def test_other_events_calendars_are_ignored(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("event: another-event\nposts: []\n", encoding="utf-8")
    assert load_calendar([path], EVENT.id, POINTS).posts == ()


def test_publishing_limits_default_and_can_be_set_per_file_and_per_post(tmp_path):
    from datetime import timedelta

    path = tmp_path / "limits.yaml"
    path.write_text("event: bhxh-vinhphuc-2020\nmedia_wait_minutes: 10\nlate_limit_minutes: 45\nposts:\n" + GOOD +
                    "  - {id: b-post, channels: both, title: T, body: B, publish_at: 2020-05-23 09:00, "
                    "media_wait_minutes: 0.5}\n", encoding="utf-8")
    first, second = load_calendar([path], EVENT.id, POINTS).posts
    assert (first.media_wait, first.late_limit) == (timedelta(minutes=10), timedelta(minutes=45))
    assert second.media_wait == timedelta(seconds=30)
    default = load_calendar([_write(tmp_path, GOOD)], EVENT.id, POINTS).posts[0]
    assert (default.media_wait, default.late_limit) == (timedelta(minutes=30), timedelta(hours=2))


@pytest.mark.parametrize("text,where", [
    ("late_limit_minutes: -5\n", "late_limit_minutes: -5 must be a number of minutes"),
    ("media_wait_minutes: soon\n", "media_wait_minutes: 'soon' must be a number of minutes"),
])
def test_bad_publishing_limits_name_the_field(tmp_path, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(f"event: bhxh-vinhphuc-2020\n{text}posts:\n" + GOOD, encoding="utf-8")
    with pytest.raises(CalendarError) as err:
        load_calendar([path], EVENT.id, POINTS)
    assert any(p.startswith(f"{path}: {where}") for p in err.value.problems), err.value.problems
