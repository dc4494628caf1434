"""What a post is, whichever way it was planned (a calendar file or the staff form), and how it becomes one
`Publication` per channel. No I/O here: the planner compares payloads with the ledger without touching a channel."""
from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from bridgecast.text import ascii_name, fold_ascii

LOCAL_TZ = "Asia/Ho_Chi_Minh"
POST_CHANNELS = ("portal", "fanpage")
CHANNEL_LABELS = {"portal": "Cổng thông tin điện tử", "fanpage": "Fanpage"}
KIND_BY_CHANNEL = {"portal": "article", "fanpage": "post"}


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(timezone.utc)


def parse_utc(iso: str) -> datetime:
    return utc(datetime.fromisoformat(iso))


def local_text(moment: datetime, tz: str = LOCAL_TZ, *, zone: bool = True) -> str:
    """How staff read a time: `08:00 23/05/2020 (giờ Việt Nam)` — always in the event's zone, never UTC."""
    shown = moment.astimezone(ZoneInfo(tz))
    if not zone:
        return f"{shown:%H:%M %d/%m/%Y}"
    return f"{shown:%H:%M %d/%m/%Y}" + (" (giờ Việt Nam)" if tz == LOCAL_TZ else f" ({tz})")


# Mid-sentence forms, as a Vietnamese text writes them: «thứ Bảy 23/05/2020», «Chủ Nhật 24/05/2020».
WEEKDAYS_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ Nhật")


def time_in_words(moment: datetime, tz: str = LOCAL_TZ) -> str:
    """The one wording of a publish time wherever staff read it back (preview, approval request, outcome):
    `08:00 thứ Bảy 23/05/2020, giờ Việt Nam` — the weekday and the zone in words, so a time that slipped by hours
    or a day does not pass unnoticed."""
    shown = moment.astimezone(ZoneInfo(tz))
    zone = "giờ Việt Nam" if tz == LOCAL_TZ else f"giờ {tz}"
    return f"{shown:%H:%M} {WEEKDAYS_VI[shown.weekday()]} {shown:%d/%m/%Y}, {zone}"


def ascii_slug(text: str, limit: int = 48) -> str:
    """`Lễ ra quân` → `le-ra-quan`: readable keys and file names (đ is not decomposed by NFKD)."""
    return ascii_name(fold_ascii(text).lower(), "", keep="a-z0-9")[:limit].strip("-") or "bai-dang"


def form_key(title: str, publish_at: datetime, tz: str = LOCAL_TZ) -> str:
    """The publication key of a form post: the same title at the same minute is the same post (submitting it again
    updates it, never posts it twice); the digest keeps two long titles that share a prefix apart."""
    clean = unicodedata.normalize("NFC", title).strip().casefold()
    digest = hashlib.sha256(clean.encode()).hexdigest()[:8]
    stamp = publish_at.astimezone(ZoneInfo(tz)).strftime("%Y%m%d-%H%M")
    return f"form/{ascii_slug(title, 40)}-{digest}-{stamp}"


@dataclass(frozen=True)
class MediaSpec:
    """Explicit object keys, or a selector resolved when the post goes out (`newest` photos of `points`)."""

    keys: tuple[str, ...] = ()
    points: tuple[str, ...] = ()
    newest: int = 0  # > 0 means "selector"
    rendition: str = "web"

    @property
    def is_selector(self) -> bool:
        return self.newest > 0

    @property
    def empty(self) -> bool:
        return not self.keys and not self.is_selector

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        if self.keys:
            return f"{len(self.keys)} ảnh chọn sẵn"
        if self.is_selector:
            where = ", ".join(self.points) if self.points else "mọi điểm"
            return f"{self.newest} ảnh mới nhất của {where} (chọn lúc đăng)"
        return "không có ảnh"

    def to_json(self) -> dict:
        return {"keys": list(self.keys), "points": list(self.points), "newest": self.newest,
                "rendition": self.rendition}

    @classmethod
    def from_json(cls, data: dict | None) -> "MediaSpec":
        data = data or {}
        return cls(tuple(data.get("keys") or ()), tuple(data.get("points") or ()), int(data.get("newest") or 0),
                    data.get("rendition") or "web")


@dataclass(frozen=True)
class PostContent:
    key: str  # the ledger's publication key, stable forever
    label: str  # what staff call it: the calendar id, or the title
    channels: tuple[str, ...]
    title: str
    body: str
    publish_at: datetime  # UTC
    excerpt: str = ""
    link: str | None = None
    media: MediaSpec = field(default_factory=MediaSpec)
    media_wait: timedelta = timedelta(minutes=30)
    late_limit: timedelta | None = None
    approval_required: bool = False
    timezone: str = LOCAL_TZ

    @property
    def publish_at_text(self) -> str:
        return local_text(self.publish_at, self.timezone)

    @property
    def publish_at_words(self) -> str:
        return time_in_words(self.publish_at, self.timezone)

    def to_json(self) -> dict:
        return {"key": self.key, "label": self.label, "channels": list(self.channels), "title": self.title,
                "body": self.body, "publish_at": self.publish_at.isoformat(), "excerpt": self.excerpt,
                "link": self.link, "media": self.media.to_json(), "media_wait_s": self.media_wait.total_seconds(),
                "late_limit_s": self.late_limit.total_seconds() if self.late_limit is not None else None,
                "approval_required": self.approval_required, "timezone": self.timezone}

    @classmethod
    def from_json(cls, data: dict) -> "PostContent":
        late = data.get("late_limit_s")
        return cls(key=data["key"], label=data["label"], channels=tuple(data["channels"]), title=data["title"],
                   body=data["body"], publish_at=parse_utc(data["publish_at"]), excerpt=data.get("excerpt") or "",
                   link=data.get("link"), media=MediaSpec.from_json(data.get("media")),
                   media_wait=timedelta(seconds=float(data.get("media_wait_s") or 0)),
                   late_limit=timedelta(seconds=float(late)) if late is not None else None,
                   approval_required=bool(data.get("approval_required")), timezone=data.get("timezone") or LOCAL_TZ)


def from_planned(post) -> PostContent:
    """A calendar entry (`bridgecast.posts.calendar.PlannedPost`) as post content."""
    selector = post.media_selector
    media = MediaSpec(keys=tuple(post.media_keys)) if post.media_keys else (
        MediaSpec(points=tuple(selector.points), newest=selector.newest, rendition=selector.rendition)
        if selector else MediaSpec())
    return PostContent(key=post.publication_key, label=post.id, channels=tuple(post.channels), title=post.title,
                       body=post.body, publish_at=utc(post.publish_at), excerpt=post.excerpt, link=post.link,
                       media=media, media_wait=post.media_wait, late_limit=post.late_limit,
                       approval_required=post.approval_required, timezone=post.timezone)


def media_file(entry: dict, path: str = ""):
    """A frozen media entry (key, sha256, filename, content_type, caption) as the channels' MediaFile. Without a
    path it still hashes like the real file: payload hashes use the content digest, never the path."""
    from bridgecast.channels.base import MediaFile

    return MediaFile(path=path, filename=entry["filename"], content_type=entry["content_type"],
                     sha256=entry["sha256"], caption=entry.get("caption", ""))


# `link: live` (calendar or form): the post links the launch's live video — its permalink, recorded in the ledger when
# the live video is created (before T0), so an 08:00 post points viewers at the broadcast, not at the Page.
LIVE_LINK = "live"


def live_video_url(rows) -> str | None:
    """The launch's live video permalink from the event's ledger rows (None before it exists)."""
    from bridgecast.ledger import LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY, PUBLISHED

    return next((r.url for r in rows if (r.channel, r.pub_key) == (LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY)
                 and r.status == PUBLISHED and r.url), None)


def publication(event, content: PostContent, channel: str, media: list[dict], paths: dict[str, str] | None = None,
                *, live_url: str | None = None):
    """The one Publication of `content` on `channel`: the same inputs always give the same payload hash. A
    `link: live` post links `live_url` (no link while the live video does not exist yet)."""
    from bridgecast.channels.base import Publication

    paths = paths or {}
    portal = event.channels.portal
    link = live_url if content.link == LIVE_LINK else content.link
    return Publication(
        event_id=event.id, key=content.key, kind=KIND_BY_CHANNEL[channel], title=content.title, body=content.body,
        excerpt=content.excerpt if channel == "portal" else "", link=link, publish_at=content.publish_at,
        media=tuple(media_file(m, paths.get(m["key"], "")) for m in media),
        categories=tuple(portal.categories) if channel == "portal" else (),
        tags=tuple(portal.tags) if channel == "portal" else ())
