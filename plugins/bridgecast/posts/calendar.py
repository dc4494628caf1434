"""The content calendar: planned posts as YAML files (`config/posts/*.yaml`), validated with precise messages.

Staff write local times (the file's time zone, Asia/Ho_Chi_Minh by default); everything is held in UTC.
Media are explicit S3 keys or a selector ("the 6 newest processed photos of point X") resolved at publish time.
Two publishing limits can be set per file (and `media_wait_minutes` per post): how long a due post waits for its
media before failing, and how late a post may still go out (a pre-announcement is wrong a day later).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bridgecast.event import StrictYAMLLoader
from bridgecast.text import nfc

CHANNEL_NAMES = ("portal", "fanpage")
_POST_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_POST_FIELDS = ("id", "channels", "title", "body", "publish_at", "media", "link", "approval_required", "excerpt",
                "media_wait_minutes")
_FILE_FIELDS = ("event", "timezone", "media_wait_minutes", "late_limit_minutes", "posts")
DEFAULT_MEDIA_WAIT = timedelta(minutes=30)
DEFAULT_LATE_LIMIT = timedelta(hours=2)
_SELECTOR_FIELDS = ("point", "points", "newest", "rendition")


class CalendarError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class MediaSelector:
    """Pick processed photos at publish time: the `newest` ones of `points` (all points when empty)."""

    points: tuple[str, ...] = ()
    newest: int = 6
    rendition: str = "web"


@dataclass(frozen=True)
class PlannedPost:
    id: str
    source: str
    channels: tuple[str, ...]
    title: str
    body: str
    publish_at: datetime  # aware, UTC
    media_keys: tuple[str, ...] = ()
    media_selector: MediaSelector | None = None
    link: str | None = None
    approval_required: bool = False
    excerpt: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    media_wait: timedelta = DEFAULT_MEDIA_WAIT  # a due post waits this long for its media, then fails
    late_limit: timedelta = DEFAULT_LATE_LIMIT  # never published more than this after its time (reported missed)

    @property
    def publication_key(self) -> str:
        return f"calendar/{self.id}"

    @property
    def publish_at_local(self) -> datetime:
        return self.publish_at.astimezone(ZoneInfo(self.timezone))


@dataclass(frozen=True)
class Calendar:
    event_id: str
    timezone: str
    posts: tuple[PlannedPost, ...] = field(default_factory=tuple)

    def due(self, now: datetime) -> list[PlannedPost]:
        return [p for p in self.posts if p.publish_at <= now]


def load_calendar(paths: list[str | Path], event_id: str, known_points: set[str] | None = None) -> Calendar:
    """Load every calendar file for `event_id`; raise CalendarError listing every problem in every file."""
    problems: list[str] = []
    posts: list[PlannedPost] = []
    tz_name = "Asia/Ho_Chi_Minh"
    for path in sorted(Path(p) for p in paths):
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictYAMLLoader)
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        if not isinstance(raw, dict):
            problems.append(f"{path}: must be a mapping with `event`, `timezone` and `posts`")
            continue
        if raw.get("event") != event_id:
            continue  # another event's calendar
        file_posts, file_problems = _parse_file(raw, str(path), known_points)
        posts += file_posts
        problems += file_problems
        tz_name = raw.get("timezone", tz_name)
    seen: dict[str, str] = {}
    for post in posts:
        if post.id in seen:
            problems.append(f"{post.source}: post '{post.id}': id: duplicate (also in {seen[post.id]}) — ids must be "
                            "unique, they are how a post is recognised when edited")
        seen.setdefault(post.id, post.source)
    if problems:
        raise CalendarError(problems)
    return Calendar(event_id, tz_name, tuple(sorted(posts, key=lambda p: (p.publish_at, p.id))))


def _parse_file(raw: dict, source: str, known_points: set[str] | None) -> tuple[list[PlannedPost], list[str]]:
    problems: list[str] = []
    tz_name = raw.get("timezone", "Asia/Ho_Chi_Minh")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return [], [f"{source}: timezone: unknown time zone {tz_name!r} — use e.g. 'Asia/Ho_Chi_Minh'"]
    unknown = set(raw) - set(_FILE_FIELDS)
    problems += [f"{source}: {k}: unknown field; allowed: {', '.join(_FILE_FIELDS)}" for k in sorted(unknown)]
    limits = {}
    for fld, default in (("media_wait_minutes", DEFAULT_MEDIA_WAIT), ("late_limit_minutes", DEFAULT_LATE_LIMIT)):
        limits[fld] = _minutes(raw.get(fld), default,
                               lambda problem, f=fld: problems.append(f"{source}: {f}: {problem}"))
    entries = raw.get("posts")
    if not isinstance(entries, list):
        return [], problems + [f"{source}: posts: missing — give a list of posts"]
    posts = []
    for i, entry in enumerate(entries):
        post, post_problems = _parse_post(entry, i, source, tz, tz_name, known_points, limits)
        problems += post_problems
        if post:
            posts.append(post)
    return posts, problems


def _parse_post(entry, index: int, source: str, tz: ZoneInfo, tz_name: str, known_points: set[str] | None,
                limits: dict | None = None) -> tuple[PlannedPost | None, list[str]]:
    limits = limits or {"media_wait_minutes": DEFAULT_MEDIA_WAIT, "late_limit_minutes": DEFAULT_LATE_LIMIT}
    if not isinstance(entry, dict):
        return None, [f"{source}: posts[{index}]: must be a mapping of fields"]
    label = f"post '{entry.get('id')}'" if entry.get("id") else f"posts[{index}]"
    problems: list[str] = []

    def bad(fld: str, problem: str) -> None:
        problems.append(f"{source}: {label}: {fld}: {problem}")

    for key in entry:
        if key not in _POST_FIELDS:
            bad(str(key), f"unknown field; allowed: {', '.join(_POST_FIELDS)}")
    post_id = entry.get("id")
    if not isinstance(post_id, str) or not _POST_ID_RE.match(post_id):
        bad("id", f"{post_id!r} is not a valid id — lowercase ASCII words joined by hyphens, e.g. 'live-now'")
    channels = entry.get("channels")
    if isinstance(channels, str):
        channels = ["portal", "fanpage"] if channels == "both" else [channels]
    if not isinstance(channels, list) or not channels:
        bad("channels", "missing — list portal and/or fanpage (or write `both`)")
        channels = []
    for ch in channels:
        if ch not in CHANNEL_NAMES:
            bad("channels", f"unknown channel {ch!r} — use portal, fanpage or both")
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip():
        bad("title", "missing — give the post's title")
    body = entry.get("body")
    if not isinstance(body, str) or not body.strip():
        bad("body", "empty — write the post's text")
    publish_at = _publish_at(entry.get("publish_at"), tz, bad)
    keys, selector = _media(entry.get("media"), bad, known_points)
    link = entry.get("link")
    if link is not None and link != "live" and not (isinstance(link, str) and re.match(r"^https?://\S+$", link)):
        bad("link", f"{link!r} is not an http(s) URL (or `live`: the launch's live video)")
    approval = entry.get("approval_required", False)
    if not isinstance(approval, bool):
        bad("approval_required", "must be true or false")
    media_wait = _minutes(entry.get("media_wait_minutes"), limits["media_wait_minutes"],
                          lambda problem: bad("media_wait_minutes", problem))
    if problems:
        return None, problems
    return PlannedPost(id=post_id, source=source, channels=tuple(dict.fromkeys(channels)), title=nfc(title.strip()),
                       body=nfc(body.strip()), publish_at=publish_at, media_keys=keys, media_selector=selector,
                       link=link, approval_required=approval, excerpt=nfc(str(entry.get("excerpt") or "")),
                       timezone=tz_name, media_wait=media_wait, late_limit=limits["late_limit_minutes"]), []


def _minutes(value, default: timedelta, bad) -> timedelta:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 7 * 24 * 60:
        bad(f"{value!r} must be a number of minutes from 0 to 10080 (7 days)")
        return default
    return timedelta(minutes=value)


def _publish_at(value, tz: ZoneInfo, bad) -> datetime | None:
    if value is None:
        bad("publish_at", "missing — give the local date and time, e.g. 2020-05-23 08:00")
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        bad("publish_at", f"{value} has no time of day — write e.g. '{value} 08:00'")
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            bad("publish_at", f"{value!r} is not a date-time — write e.g. 2020-05-23 08:00")
            return None
    if not isinstance(value, datetime):
        bad("publish_at", f"{value!r} is not a date-time")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)  # staff write local time; the file names the zone
    return value.astimezone(timezone.utc)


def _media(value, bad, known_points: set[str] | None) -> tuple[tuple[str, ...], MediaSelector | None]:
    if value is None:
        return (), None
    if isinstance(value, list):
        if not all(isinstance(k, str) and k.strip() for k in value):
            bad("media", "explicit media must be a list of S3 keys")
            return (), None
        return tuple(value), None
    if not isinstance(value, dict):
        bad("media", "give a list of S3 keys or a selector {point, newest}")
        return (), None
    for key in value:
        if key not in _SELECTOR_FIELDS:
            bad(f"media.{key}", f"unknown selector field; allowed: {', '.join(_SELECTOR_FIELDS)}")
    points = value.get("points") or ([value["point"]] if value.get("point") else [])
    if known_points is not None:
        for point in points:
            if point not in known_points:
                bad("media.point", f"unknown point {point!r} — use a point id of the event")
    newest = value.get("newest", 6)
    if not isinstance(newest, int) or not 1 <= newest <= 10:
        bad("media.newest", f"{newest!r} must be a whole number from 1 to 10 (a fanpage post holds at most 10)")
        newest = 6
    rendition = value.get("rendition", "web")
    if rendition not in ("web", "thumb"):
        bad("media.rendition", f"{rendition!r} must be web or thumb")
    return (), MediaSelector(tuple(points), newest, rendition)
