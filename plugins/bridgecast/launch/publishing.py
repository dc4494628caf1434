"""The launch's publications through the ledger (exactly once, safe to clear and rerun), and the wrap-up's three
publishing tasks: they fetch the recap and the selected photos from S3 and publish what `publications` defines.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from bridgecast.channels.base import Channel, MediaFile, Publication
from bridgecast.event import Event
from bridgecast.launch import publications as defs
from bridgecast.launch.plan import LaunchPlan
from bridgecast.storage import Storage

log = logging.getLogger(__name__)


def channel(event: Event, name: str) -> Channel:
    """One of the event's channels (`portal`, `fanpage`, `press`), built alone from its Airflow Connection: a
    broken Connection of another channel does not stop this one."""
    from bridgecast.channels.factory import channel_for

    return channel_for(event, name)


def publish(target: Channel, pub: Publication) -> dict:
    """`pub` on `target` through the ledger; what happened, as a small XCom."""
    from bridgecast.ledger import Ledger, publish_once

    ledger = Ledger()
    try:
        outcome = publish_once(ledger, target, pub)
    except Exception as exc:  # failed or of unknown outcome: staff are told once (the task's retries say no more)
        _tell_failure(ledger, target, pub, exc)
        raise
    ref = outcome.ref
    log.info("%s %s: %s (%s)", target.name, pub.key, outcome.action, ref.url if ref else "-")
    return {"channel": target.name, "key": pub.key, "action": outcome.action,
            "remote_id": ref.remote_id if ref else None, "url": ref.url if ref else None,
            "media": (ref.extra or {}).get("media", []) if ref else []}


def _tell_failure(ledger, target: Channel, pub: Publication, exc: Exception) -> None:
    from bridgecast.launch import incidents

    try:
        row = next((r for r in ledger.rows(pub.event_id) if r.channel == target.name and r.pub_key == pub.key), None)
        status = row.status if row and row.status in ("failed", "unknown") else "failed"
        from bridgecast.run_event import load_run_event, run_event_key

        event = load_run_event(run_event_key(pub.event_id))
    except Exception:  # the ledger or S3 unreadable: still tell, without the staff list's event copy
        log.exception("could not read the ledger row of %s", pub.key)
        return
    incidents.publication_problem(pub.event_id, event, target.name, pub.key, status, f"{type(exc).__name__}: {exc}")


# --- the wrap-up's publishing tasks ---------------------------------------------------------------------------
def publish_portal_article(plan_xcom: dict, recap: dict | None, galleries: dict | None) -> dict:
    plan = LaunchPlan.from_xcom(plan_xcom)
    event, storage = plan.load_event(), Storage.from_connection()
    with tempfile.TemporaryDirectory(prefix="bridgecast-portal-") as tmp:
        photos = _photos(storage, _selection(galleries), Path(tmp), defs.PORTAL_ARTICLE.max_photos)
        video = _recap_file(storage, recap, Path(tmp), caption=defs.recap_caption(event)) if recap else None
        team_videos = _team_videos(storage, (galleries or {}).get("video_selection", []), Path(tmp),
                                   defs.PORTAL_ARTICLE.max_videos)
        pub = defs.portal_article(event, _story(plan, event, recap, galleries), photos, video, team_videos)
        return publish(channel(event, defs.PORTAL_ARTICLE.channel), pub)


def publish_fanpage_post(plan_xcom: dict, recap: dict | None, galleries: dict | None) -> list[dict]:
    """Two items on the Page: a multi-photo post (when teams sent photos) and the recap video (resumable upload)."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    event, storage = plan.load_event(), Storage.from_connection()
    made = []
    with tempfile.TemporaryDirectory(prefix="bridgecast-fanpage-") as tmp:
        photos = _photos(storage, _selection(galleries), Path(tmp), defs.FANPAGE_PHOTOS.max_photos)
        if photos:
            made.append(publish(channel(event, defs.FANPAGE_PHOTOS.channel), defs.photos_post(event, photos)))
        if recap:
            pub = defs.recap_video(event, _story(plan, event, recap, galleries), _recap_file(storage, recap, Path(tmp)))
            made.append(publish(channel(event, defs.RECAP_VIDEO.channel), pub))
    return made


def publish_reel(event: Event, path: Path) -> dict:
    """The 9:16 recap as a Reel on the fanpage (`channels.reels`), once through the ledger."""
    from bridgecast.channels.reels import ReelChannel

    reels = ReelChannel(channel(event, defs.RECAP_REEL.channel))
    return publish(reels, defs.recap_reel(event, MediaFile.from_path(path, "video/mp4")))


def send_press_kit(plan_xcom: dict, recap: dict | None, galleries: dict | None, article: dict | None) -> dict:
    """The press kit email: the story, the portal article's link, links to the recap video and the photos as the
    portal serves them (public addresses — never presigned S3 links, which carry the storage's key id and internal
    address), and the poster and contact sheet attached (small), so a newsroom has pictures even if the portal
    article could not be published."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    event, storage = plan.load_event(), Storage.from_connection()
    links = press_links(_selection(galleries), (article or {}).get("media") or [],
                        (galleries or {}).get("video_selection", []))
    with tempfile.TemporaryDirectory(prefix="bridgecast-press-") as tmp:
        attached = []
        for name, caption in (("poster_key", "Ảnh đại diện video tổng hợp"),
                              ("contact_sheet_key", "Ảnh tổng hợp các khung hình của video (contact sheet)")):
            if recap and recap.get(name):
                path = storage.download_file(recap[name], Path(tmp) / Path(recap[name]).name)
                attached.append(MediaFile.from_path(path, "image/jpeg", caption))
        pub = defs.press_kit(event, _story(plan, event, recap, galleries), links, (article or {}).get("url"),
                             tuple(attached))
        return publish(channel(event, defs.PRESS_KIT.channel), pub)


def press_links(selection: list[dict], portal_media: list[dict],
                videos: list[dict] = ()) -> tuple[tuple[str, str], ...]:
    """(label, public url) of the article's files on the portal: the recap video, the teams' videos, then the
    photos — in the article's order (the galleries' selections, as published)."""
    recap = [m["url"] for m in portal_media if m.get("role") == "main_video"]
    team = [m["url"] for m in portal_media if m.get("role") == "media" and _is_video(m)]
    photos = [m["url"] for m in portal_media if m.get("role") == "media" and not _is_video(m)]
    links = [("Video tổng hợp (MP4)", url) for url in recap[:1]]
    links += [(defs.team_video_caption(v["name"]) + " (MP4)", url) for v, url in zip(videos, team)]
    links += [(defs.photo_link_label(i, photo["name"]), url)
              for i, (photo, url) in enumerate(zip(selection[:defs.PRESS_KIT.max_photos], photos), 1)]
    return tuple(links)


def _is_video(media: dict) -> bool:
    return str(media.get("mime_type", "")).startswith("video/")


def _story(plan: LaunchPlan, event: Event, recap: dict | None, galleries: dict | None) -> str:
    """The story from what happened: when it went live (T0 as in force: postponed or brought forward from the
    board), the points the monitor saw live (its state in S3), the teams whose photos were processed, and their
    photos."""
    teams = {t.id for t in event.teams}
    sent = {pid: p["processed"] for pid, p in (galleries or {}).get("points", {}).items()
            if pid in teams and p.get("processed")}
    return defs.story(event, points_live=points_seen_live(event.id), teams_with_photos=list(sent),
                      photos_processed=sum(sent.values()), recap_points=(recap or {}).get("points", 0),
                      started_at=plan.refreshed().t0)


def points_seen_live(event_id: str) -> list[str]:
    """The points the monitor saw live (`monitor.json`); none when the monitor never ran."""
    from bridgecast.objects import launch_key

    storage = Storage.from_connection()
    key = launch_key(event_id, "monitor.json")
    if not storage.exists(key):
        return []
    return [pid for pid, p in storage.get_json(key).get("points", {}).items() if p.get("live_detected_at")]


def _selection(galleries: dict | None) -> list[dict]:
    return (galleries or {}).get("selection", [])


def _recap_file(storage: Storage, recap: dict, tmp: Path, caption: str = "") -> MediaFile:
    return MediaFile.from_path(storage.download_file(recap["recap_key"], tmp / "recap.mp4"), "video/mp4", caption)


def _team_videos(storage: Storage, selection: list[dict], tmp: Path, limit: int) -> tuple[MediaFile, ...]:
    return tuple(MediaFile.from_path(storage.download_file(v["video"], tmp / f"team-{i:02d}-{v['sha256'][:12]}.mp4"),
                                     "video/mp4", defs.team_video_caption(v["name"]))
                 for i, v in enumerate(selection[:limit]) if v.get("video"))


def _photos(storage: Storage, selection: list[dict], tmp: Path, limit: int) -> tuple[MediaFile, ...]:
    return tuple(MediaFile.from_path(storage.download_file(p["web"], tmp / f"photo-{i:02d}-{p['sha256'][:12]}.jpg"),
                                     "image/jpeg", p["name"]) for i, p in enumerate(selection[:limit]))
