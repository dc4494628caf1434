"""The staff's calendar page: what goes out when, per channel, as a week (from Monday) or a month, always in the
event's time (giờ Việt Nam).

The posts come from the posts feature — `bridgecast.posts.agenda.read_agenda`, handed to `create_app` by the
plugin, since features never import each other. Here: which days a request may ask for, and the answer around the
posts (the event, today in the event's zone, the days asked for).
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

MAX_DAYS = 42  # a month view: the six weeks from the Monday on or before the 1st
STATIC_FILES = {"calendar.js": "text/javascript; charset=utf-8", "calendar.css": "text/css; charset=utf-8",
                "calendar.svg": "image/svg+xml"}


class RangeError(ValueError):
    """A range the page never asks for; the message says what is accepted."""


def week_of(day: date) -> tuple[date, date]:
    """The Monday-to-Sunday week of `day` (weeks start on Monday in Vietnam)."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def parse_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """`from` and `to` as YYYY-MM-DD, both included; neither: the week of `today`; one: that day alone."""
    if not start and not end:
        return week_of(today)
    try:
        first, last = date.fromisoformat(start or end), date.fromisoformat(end or start)
    except ValueError:
        raise RangeError(f"ngày phải có dạng YYYY-MM-DD, ví dụ 2020-05-23 (from={start!r}, to={end!r})") from None
    if last < first:
        raise RangeError(f"ngày cuối ({last:%d/%m/%Y}) trước ngày đầu ({first:%d/%m/%Y})")
    if (last - first).days + 1 > MAX_DAYS:
        raise RangeError(f"mỗi lần xem tối đa {MAX_DAYS} ngày (một tháng cùng các tuần bao quanh)")
    return first, last


def answer(read, session, event, start: date, end: date, *, storage, ledger, cache,
           now: datetime | None = None) -> dict:
    """The page's JSON for [start, end]: `read` (the posts feature's `read_agenda`) gives the posts, their state
    words and any source it could not read; around them the event, `today` and every day of the range."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    posts = read(session, event, storage=storage, ledger=ledger, start=start, end=end, now=now, cache=cache)
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return {"event": {"id": event.id, "title": event.short_title, "timezone": event.timezone},
            "from": start.isoformat(), "to": end.isoformat(), "days": days,
            "today": now.astimezone(event.tz).date().isoformat(), "now": now.isoformat(), **posts,
            "served_in_ms": round((time.monotonic() - started) * 1000, 1)}
