"""Reach of what we published on the Page, read from Graph API insights (facebook-graph.md §I).

  post   GET /{post-id}/insights?metric=post_media_view,post_total_media_view_unique,post_clicks,
                                        post_reactions_by_type_total            (lifetime)
  video  GET /{video-id}/video_insights?metric=total_video_views,total_video_views_unique,
                                              total_video_avg_time_watched      (lifetime, no end_time)
  live   GET /{live-id}?fields=live_views,total_views,video — then the video's video_insights
  Page   GET /{page-id}/insights?metric=…&period=day&since&until                (daily values)

Calls go through the fanpage channel's Graph client, its public `get` only (token, retries and error mapping stay
there). A figure Facebook does not give (no `read_insights`, a deleted post, a retired metric) becomes a `Reach`
with a Vietnamese `note` saying why, never an exception: the report shows what it can.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Protocol

from bridgecast.channels.base import ChannelError, NotFound, PermissionMissing, RejectedInput

log = logging.getLogger(__name__)

POST_METRICS = ("post_media_view", "post_total_media_view_unique", "post_clicks", "post_reactions_by_type_total")
VIDEO_METRICS = ("total_video_views", "total_video_views_unique", "total_video_avg_time_watched")
NO_DATA = "Facebook chưa có số liệu cho mục này (bài quá mới, hoặc token thiếu quyền read_insights)."


class GraphReader(Protocol):
    def get(self, path: str, params: dict | None = None) -> dict: ...


@dataclass(frozen=True)
class Reach:
    kind: str  # post | video | live
    object_id: str
    views: int | None = None  # post: media views; video/live: video views (3 s or to the end)
    viewers: int | None = None  # unique people
    clicks: int | None = None
    reactions: int | None = None
    avg_watch_s: float | None = None
    watching_now: int | None = None  # a live video while it is live
    note: str | None = None  # why a figure is missing

    def to_json(self) -> dict:
        return asdict(self)


def metric_values(payload: dict) -> dict:
    """metric name → its latest value, from an insights answer (`data[].values[-1].value`)."""
    out = {}
    for entry in (payload or {}).get("data") or []:
        values = entry.get("values") or []
        if entry.get("name") and values:
            out[entry["name"]] = values[-1].get("value")
    return out


def _int(value) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, dict):  # a breakdown such as reactions by type
        return sum(v for v in value.values() if isinstance(v, (int, float)))
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def post_reach(graph: GraphReader, post_id: str) -> Reach:
    values = metric_values(graph.get(f"{post_id}/insights", {"metric": ",".join(POST_METRICS), "period": "lifetime"}))
    if not values:
        return Reach("post", post_id, note=NO_DATA)
    return Reach("post", post_id, views=_int(values.get("post_media_view")),
                 viewers=_int(values.get("post_total_media_view_unique")), clicks=_int(values.get("post_clicks")),
                 reactions=_int(values.get("post_reactions_by_type_total")))


def video_reach(graph: GraphReader, video_id: str, kind: str = "video") -> Reach:
    values = metric_values(graph.get(f"{video_id}/video_insights", {"metric": ",".join(VIDEO_METRICS),
                                                                    "period": "lifetime"}))
    if not values:
        return Reach(kind, video_id, note=NO_DATA)
    avg_ms = _int(values.get("total_video_avg_time_watched"))
    return Reach(kind, video_id, views=_int(values.get("total_video_views")),
                 viewers=_int(values.get("total_video_views_unique")),
                 avg_watch_s=round(avg_ms / 1000, 1) if avg_ms is not None else None)


def live_reach(graph: GraphReader, live_id: str) -> Reach:
    """A live video: viewers now and total views from the node; viewers and watch time from its video."""
    node = graph.get(live_id, {"fields": "live_views,total_views,video{id}"})
    video_id = (node.get("video") or {}).get("id")
    total = _int(node.get("total_views"))
    found = video_reach(graph, str(video_id), kind="live") if video_id else Reach("live", live_id, note=NO_DATA)
    return Reach("live", live_id, views=total if total is not None else found.views, viewers=found.viewers,
                 avg_watch_s=found.avg_watch_s, watching_now=_int(node.get("live_views")),
                 note=None if total is not None or found.views is not None else found.note)


def page_daily(graph: GraphReader, page_id: str, metric: str, since: datetime, until: datetime) -> list[tuple]:
    """(end_time, value) per day of a Page metric between two moments (at most 90 days apart)."""
    payload = graph.get(f"{page_id}/insights", {"metric": metric, "period": "day",
                                                "since": str(int(since.timestamp())),
                                                "until": str(int(until.timestamp()))})
    for entry in payload.get("data") or []:
        if entry.get("name") == metric:
            return [(datetime.strptime(v["end_time"], "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc), v.get("value"))
                    for v in entry.get("values") or [] if v.get("end_time")]
    return []


READERS = {"post": post_reach, "video": video_reach, "live": live_reach}


def reach_of(graph: GraphReader, kind: str, object_id: str) -> Reach:
    """The reach of one published item, or a Reach whose note says why Facebook gave none."""
    try:
        return READERS[kind](graph, object_id)
    except PermissionMissing as exc:
        missing = exc.permission or "read_insights"
        return Reach(kind, object_id, note=f"Token của Trang thiếu quyền {missing}: cấp quyền cho ứng dụng, tạo lại "
                                           "token của Trang rồi chạy lại báo cáo.")
    except NotFound:
        return Reach(kind, object_id, note="Bài/video không còn trên Trang (đã bị xoá?).")
    except RejectedInput as exc:
        log.warning("insights of %s %s refused: %s", kind, object_id, exc.operator_message)
        return Reach(kind, object_id, note="Facebook không nhận tên chỉ số (metric) — có thể chỉ số đã bị bỏ ở "
                                           "phiên bản Graph API đang dùng; xem channels.fanpage.graph_version.")
    except ChannelError as exc:
        log.warning("insights of %s %s unavailable: %s", kind, object_id, exc.operator_message)
        return Reach(kind, object_id, note=f"Không đọc được số liệu lúc này ({type(exc).__name__}); chạy lại báo "
                                           "cáo sau.")


def graph_for(event) -> tuple[GraphReader, str]:
    """(the Graph client of the event's fanpage channel, the Page id); credentials from its Airflow Connection."""
    from bridgecast.channels.fanpage import FanpageChannel

    cfg = event.channels.fanpage
    channel = FanpageChannel.from_connection(cfg.connection_id, graph_version=cfg.graph_version)
    return channel.client, channel.page_id
