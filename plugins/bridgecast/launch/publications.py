"""Every publication of the launch, defined once: its ledger key, its channel, what kind of item it is, its title
and the texts the audience reads. Pure — no S3, no channel: the tasks fetch the media and hand these
`Publication`s to the ledger (`bridgecast.launch.publishing`); the summary and the rehearsal count by the same
definitions, so editing a title or adding a publication cannot silently break their counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from bridgecast.channels.base import MediaFile, Publication
from bridgecast.event import Event, Point
from bridgecast.ledger import LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY


@dataclass(frozen=True)
class LaunchPublication:
    name: str  # short and stable, for counts and reports: "<channel>:<name>"
    channel: str  # the event's channel it goes to: portal | fanpage | press
    key: str  # the ledger key, forever (a new key is a new publication)
    kind: str  # Publication.kind; "live" is the fanpage's live video
    title: Callable[[Event], str]
    max_photos: int = 0  # how many of the galleries' selected photos it carries
    max_videos: int = 0  # how many of the teams' videos it carries (besides the recap)

    @property
    def label(self) -> str:
        return f"{self.channel}:{self.name}"

    def publication(self, event: Event, **fields) -> Publication:
        return Publication(event_id=event.id, key=self.key, kind=self.kind, title=self.title(event), **fields)


def live_video_title(event: Event) -> str:
    return f"TRỰC TIẾP: {event.short_title}"


def article_title(event: Event) -> str:
    # No count in the title: it is fixed before the morning (the ledger's key and the channel count rely on it);
    # how many points really went live is told in the story, from what the monitor saw.
    return f"{event.short_title}: đồng loạt phát động tại các điểm cầu"


def photos_post_title(event: Event) -> str:
    return f"📸 {event.short_title}"


def recap_video_title(event: Event) -> str:
    return f"Video tổng hợp: {event.short_title}"


def recap_reel_title(event: Event) -> str:
    return f"Reel: {event.short_title}"  # not the recap video's title: a Reel must never be taken for it


def press_kit_title(event: Event) -> str:
    return f"[Thông cáo báo chí] {event.short_title}"


LIVE_VIDEO = LaunchPublication("live-video", LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY, "live", live_video_title)
PORTAL_ARTICLE = LaunchPublication("article", "portal", "launch/portal-article", "article", article_title,
                                   max_photos=12, max_videos=4)
FANPAGE_PHOTOS = LaunchPublication("photos-post", "fanpage", "launch/fanpage-photos", "post", photos_post_title,
                                   max_photos=10)  # the Graph API's multi-photo post cap
RECAP_VIDEO = LaunchPublication("recap-video", "fanpage", "launch/fanpage-recap-video", "video", recap_video_title)
PRESS_KIT = LaunchPublication("press-kit", "press", "launch/press-kit", "email", press_kit_title, max_photos=12)

# The 9:16 recap as a Reel, published by the vertical-recap task (beside the others, so not counted in ALL: the summary
# does not wait for it).
RECAP_REEL = LaunchPublication("recap-reel", "fanpage", "launch/fanpage-recap-reel", "reel", recap_reel_title)

ALL = (LIVE_VIDEO, PORTAL_ARTICLE, FANPAGE_PHOTOS, RECAP_VIDEO, PRESS_KIT)
GALLERY_SELECTION = max(d.max_photos for d in ALL)  # photos the galleries pick for the publications
VIDEO_SELECTION = max(d.max_videos for d in ALL)  # team videos they pick
FANPAGE_HASHTAGS = ("BHXHToànDân", "BHXHTựNguyện")


def expected(*, photos: bool) -> tuple[LaunchPublication, ...]:
    """What a launch publishes: all of it, but the photo post only when a team sent a usable photo."""
    return tuple(d for d in ALL if d is not FANPAGE_PHOTOS or photos)


# --- the texts ---------------------------------------------------------------------------------------------------
def live_description(event: Event) -> str:
    return f"{event.title}\n\nChủ đề: {event.theme}\n" + "\n".join(f"• {m}" for m in event.messages)


def story(event: Event, *, points_live: list[str], teams_with_photos: list[str], photos_processed: int,
          recap_points: int = 0, started_at: datetime | None = None) -> str:
    """The news story of the morning (portal article, recap video description, press kit). Every figure is what
    happened: `started_at` when it went live (T0 as steered; the event's start by default), `points_live` the
    ids of the points the monitor saw live, `teams_with_photos` the teams that sent a usable photo,
    `photos_processed` their photos — never the plan's counts."""
    start = (started_at or event.start).astimezone(event.tz)
    paras = [f"Sáng {start.strftime('%d/%m/%Y')}, lúc {start.strftime('%H:%M')}, {event.title} đã được phát động "
             f"{_where_live(event, points_live)}"
             + (f"; {recap_points} điểm cầu có hình ảnh trong video tổng hợp." if recap_points else "."),
             f"Chủ đề: {event.theme}.",
             "Thông điệp của chiến dịch:\n" + "\n".join(f"• {m}" for m in event.messages)]
    if teams_with_photos:
        paras.append(f"Tại {_team_provinces(event, teams_with_photos)}, {len(teams_with_photos)} đội tuyên truyền "
                     f"lưu động ở các huyện, thành phố đã ra quân và gửi về {photos_processed} ảnh hoạt động.")
    return "\n\n".join(paras)


def _where_live(event: Event, points_live: list[str]) -> str:
    live = [p for p in event.connection_points if p.id in set(points_live)]
    central = any(p.kind == "central" for p in live)
    others = len(live) - central
    if not live:
        return "tại điểm cầu trung ương"  # the ceremony happened; no point was seen live (said in the summary)
    if central and others:
        return f"đồng loạt tại điểm cầu trung ương và {others} điểm cầu các tỉnh, thành phố"
    if central:
        return "tại điểm cầu trung ương"
    return f"đồng loạt tại {others} điểm cầu các tỉnh, thành phố"


def _team_provinces(event: Event, team_ids: list[str] | None = None) -> str:
    wanted = set(team_ids) if team_ids is not None else {t.id for t in event.teams}
    parents = dict.fromkeys(t.parent for t in event.teams if t.parent and t.id in wanted)  # in the event's order, once each
    return ", ".join(_province_label(event.point(pid)) for pid in parents) or "các địa phương"


def _province_label(point: Point) -> str:
    return f"{'thành phố' if point.city else 'tỉnh'} {point.name}"


def photos_post_body(event: Event) -> str:
    return f"{event.theme}\n\n" + " ".join(f"#{t}" for t in FANPAGE_HASHTAGS)


def recap_caption(event: Event) -> str:
    return f"Video tổng hợp — {event.short_title}"


def photo_link_label(number: int, point_name: str) -> str:
    return f"Ảnh {number} — {point_name}"


def team_video_caption(point_name: str) -> str:
    return f"Video của {point_name}"


# --- the publications, from media already on the task's disk ----------------------------------------------------
def live_video(event: Event) -> Publication:
    """The fanpage live video, planned to start at T0."""
    return LIVE_VIDEO.publication(event, body=live_description(event), publish_at=event.start)


def portal_article(event: Event, text: str, photos: tuple[MediaFile, ...], video: MediaFile | None,
                   team_videos: tuple[MediaFile, ...] = ()) -> Publication:
    """The article: the story, the recap (`video`), the teams' own videos, then the photo gallery."""
    portal = event.channels.portal
    return PORTAL_ARTICLE.publication(event, body=text, excerpt=event.theme, media=photos + team_videos, video=video,
                                      categories=portal.categories, tags=portal.tags)


def photos_post(event: Event, photos: tuple[MediaFile, ...]) -> Publication:
    return FANPAGE_PHOTOS.publication(event, body=photos_post_body(event), media=photos)


def recap_video(event: Event, text: str, video: MediaFile) -> Publication:
    return RECAP_VIDEO.publication(event, body=text, video=video)


def recap_reel(event: Event, video: MediaFile) -> Publication:
    body = f"{event.theme}\n\n{recap_caption(event)}\n" + " ".join(f"#{t}" for t in FANPAGE_HASHTAGS)
    return RECAP_REEL.publication(event, body=body, video=video)


def press_kit(event: Event, text: str, links: tuple[tuple[str, str], ...], article_url: str | None,
              attachments: tuple[MediaFile, ...] = ()) -> Publication:
    """The press kit email: the story, the portal article's link, (label, public url) links to the media and
    small files attached."""
    return PRESS_KIT.publication(event, body=text, link=article_url, links=links, media=attachments,
                                 recipients=tuple(o.email for o in event.channels.press.outlets))
