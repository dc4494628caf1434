"""The launch DAG's task bodies. Each takes the run's plan (a small XCom) and talks to S3, the gateway, the
channels and the media toolkit; anything bigger than a few KB goes to S3 under `{event}/_launch/`."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bridgecast.event import Event
from bridgecast.launch.observe import IngestObserver
from bridgecast.launch.plan import plan_event
from bridgecast.timing import at, sleep_until
from bridgecast.objects import launch_key, processed_key
from bridgecast.storage import Storage, sha256_file

if TYPE_CHECKING:
    from bridgecast.channels.base import MediaFile

log = logging.getLogger(__name__)

LIVE_KEY = "launch/live-video"
FINISH_WAIT_S = 300  # how long a highlight waits for a point's last recording segment to reach S3


def _event(plan: dict) -> Event:
    return plan_event(plan)


def artifact_key(plan: dict, name: str) -> str:
    return launch_key(plan["event_id"], name)


def save_artifact(plan: dict, name: str, data) -> str:
    storage = Storage.from_connection()
    key = artifact_key(plan, name)
    if isinstance(data, str):
        storage.put_bytes(key, data.encode(), content_type="text/markdown; charset=utf-8")
    else:
        storage.put_json(key, data)
    return key


# --- preflight ---------------------------------------------------------------------------------------------
def check_channels(plan: dict) -> dict:
    from bridgecast.channels.factory import channels_for
    from bridgecast.launch.preflight import check_disk

    event = _event(plan)
    results = {}
    for name, channel in channels_for(event).items():
        try:
            report = channel.check()
            results[name] = {"ok": report.ok, "detail": report.detail}
        except Exception as exc:  # a preflight reports; it does not crash on what it is checking
            results[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    try:
        Storage.from_connection().check_writable()
        results["storage"] = {"ok": True, "detail": "S3 bucket writable (write, read back, delete)"}
    except Exception as exc:
        results["storage"] = {"ok": False, "detail": f"S3 not writable: {exc}"}
    try:
        ok = IngestObserver.from_connection().healthy()
        results["ingest"] = {"ok": ok, "detail": "ingest gateway answering" if ok else "ingest gateway unhealthy"}
    except Exception as exc:
        results["ingest"] = {"ok": False, "detail": f"ingest gateway unreachable: {exc}"}
    try:  # DAGs are created paused: a paused ingest DAG would sit on every photo sent during the event
        from bridgecast.airflow_api import AirflowAPI

        paused = AirflowAPI.from_connection().dag("bridgecast_ingest")["is_paused"]
        results["ingest_dag"] = {"ok": not paused, "detail": "bridgecast_ingest is PAUSED — unpause it in the "
                                 "Airflow UI, or photos are not processed" if paused else "bridgecast_ingest active"}
    except Exception as exc:
        results["ingest_dag"] = {"ok": False, "detail": f"cannot read the state of bridgecast_ingest: {exc}"}
    disks = check_disk([tempfile.gettempdir()])
    results["disk"] = {"ok": all(d["ok"] for d in disks.values()),
                       "detail": ", ".join(f"{p}: {d['free_gb']} GB free" for p, d in disks.items())}
    for name, result in results.items():
        (log.info if result["ok"] else log.error)("%s %s: %s", "OK" if result["ok"] else "PROBLEM", name,
                                                  result["detail"])
    return results


def report_preflight(plan: dict, points: list[dict], channels: dict) -> dict:
    from bridgecast.launch.preflight import go_no_go_table

    table, summary = go_no_go_table(plan, list(points or []), channels or {})
    print(table)
    summary["table_key"] = save_artifact(plan, "preflight.md", table)
    save_artifact(plan, "preflight.json", summary)
    for point in summary["no_go"]:
        log.error("ALERT: point %s is NO-GO at preflight; the event proceeds for the others", point)
    return {k: v for k, v in summary.items() if k != "points"}


# --- live setup, go-live, end --------------------------------------------------------------------------------
def create_live_video(plan: dict) -> dict:
    """The fanpage live video, created once (ledger) — a rerun returns the same live video."""
    from bridgecast.channels.factory import channels_for
    from bridgecast.ledger import Ledger, PUBLISHED

    event = _event(plan)
    fanpage = channels_for(event)["fanpage"]
    ledger = Ledger()
    row = ledger.get(event.id, "fanpage", LIVE_KEY)
    if row and row.status == PUBLISHED:
        return {"live_video_id": row.remote_id, "reused": True}
    title = f"TRỰC TIẾP: {event.short_title}"
    description = f"{event.title}\n\nChủ đề: {event.theme}\n" + "\n".join(f"• {m}" for m in event.messages)
    payload_hash = hashlib.sha256(f"{title}\n{description}\n{plan['t0']}".encode()).hexdigest()
    found = fanpage.find_live_video(title) if row else None  # an earlier attempt may have created it
    if found is None:
        ledger.mark_pending(event.id, "fanpage", LIVE_KEY, payload_hash=payload_hash)
        found = fanpage.create_live_video(title=title, description=description, start_at=at(plan["t0"]))
    ledger.mark_published(event.id, "fanpage", LIVE_KEY, found, payload_hash=payload_hash)
    log.info("fanpage live video %s created for %s", found.remote_id, plan["t0"])
    return {"live_video_id": found.remote_id, "reused": False}


def relay_program_feed(plan: dict, live: dict) -> dict:
    """Relay the program point's stream to the live video until the end; restarts with back-off on failure."""
    from media import RelaySupervisor

    from bridgecast.channels.factory import channels_for
    from bridgecast.connections import get_connection
    from bridgecast.launch.preflight import stream_deviations

    event = _event(plan)
    fanpage = channels_for(event)["fanpage"]
    observer = IngestObserver.from_connection()
    source = f"{get_connection('bridgecast_ingest').extra['rtmp_url']}/{plan['program_point']}"
    end = at(plan["end_at"])
    deadline = at(plan["t0"]) + timedelta(minutes=5)
    while plan["program_point"] not in observer.streams() and datetime.now(timezone.utc) < deadline:
        time.sleep(1)  # the program feed may start after live setup
    stat = observer.streams().get(plan["program_point"])
    transcode = bool(stat is None or stream_deviations(stat))
    target = fanpage.live_stream_url(live["live_video_id"])  # a secret (it carries the stream key): never logged
    relay = RelaySupervisor(source, target, transcode=transcode)
    relay.start()
    log.info("relaying %s to the fanpage live video (%s)", plan["program_point"], "transcode" if transcode else "copy")
    try:
        while datetime.now(timezone.utc) < end:
            time.sleep(10)
            health = relay.health()
            log.info("relay health: %s", health)
    finally:
        relay.stop()
    health = dataclasses.asdict(relay.health())
    return {"transcode": transcode, "health": {k: str(v) if k == "state" else v for k, v in health.items()}}


def go_live(plan: dict, live: dict) -> dict:
    """Sleep precisely to T0, then go live; the call's actual time is the figure the rehearsal reports."""
    from bridgecast.channels.factory import channels_for

    fanpage = channels_for(_event(plan))["fanpage"]
    t0 = at(plan["t0"])
    late_wake = sleep_until(t0)
    called_at = datetime.now(timezone.utc)
    status = fanpage.go_live(live["live_video_id"])
    result = {"t0": t0.isoformat(), "called_at": called_at.isoformat(),
              "delta_s": round((called_at - t0).total_seconds(), 3), "woke_late_s": round(late_wake, 3),
              "status": status}
    save_artifact(plan, "go-live.json", result)
    log.info("GO LIVE called at %s (T0 %+.3fs): %s", called_at.isoformat(), result["delta_s"], status)
    return result


def monitor_points(plan: dict) -> dict:
    from bridgecast.launch.monitor import monitor_points as watch

    sleep_until(at(plan["t0"]))
    final = watch(plan, IngestObserver.from_connection(), lambda state: save_artifact(plan, "monitor.json", state))
    return {pid: {k: v for k, v in p.items() if k != "events"} for pid, p in final["points"].items()}


def end_live_video(plan: dict, live: dict | None) -> dict:
    from bridgecast.channels.factory import channels_for

    if not live:
        return {"ended": False, "reason": "no live video was created"}
    status = channels_for(_event(plan))["fanpage"].end_live_video(live["live_video_id"])
    return {"ended": True, "status": status}


# --- wrap-up ----------------------------------------------------------------------------------------------------
def build_highlight(point: dict, monitor: dict | None) -> dict | None:
    """The point's highlight: `highlight.length_s` seconds from `highlight.offset_s` after it went live (T0, or
    its first publish when it came late), cut from its recording segments in S3 (stream copy when possible)."""
    import media

    observer = IngestObserver.from_connection()
    event = plan_event(point)
    deadline = time.monotonic() + FINISH_WAIT_S
    while True:  # the last segment reaches S3 after publish_done; "finished" means it is stored
        seen = observer.live(point["event_id"]).get(point["id"])
        if seen is None or not seen.get("first_live_at"):
            log.warning("%s never went live: no highlight", point["name"])
            return None
        if seen["finished"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    if not seen["finished"]:
        log.warning("%s: recording not finished after %ss; using the segments stored so far", point["name"],
                    FINISH_WAIT_S)
    went_live = max(datetime.fromisoformat(seen["first_live_at"]), event.start)
    start = went_live + timedelta(seconds=event.highlight.offset_s)
    chosen = segments_covering(seen["segments"], start, start + timedelta(seconds=event.highlight.length_s))
    if not chosen:
        log.warning("%s: no recording covers %s", point["name"], start.isoformat())
        return None
    first_start = segment_start(chosen[0])
    offset = max(0.0, (start - first_start).total_seconds())
    storage = Storage.from_connection()
    with tempfile.TemporaryDirectory(prefix="bridgecast-highlight-") as tmp:
        tmp = Path(tmp)
        local = [storage.download_file(s["key"], tmp / f"{i:03d}.flv") for i, s in enumerate(chosen)]
        joined = media.join_segments(local, tmp / "joined.mp4")
        length = event.highlight.length_s
        available = media.probe(joined).duration
        if offset + length > available:  # a point that streamed less than the window: take its last seconds
            offset = max(0.0, available - length)
        clip = media.cut(joined, tmp / "highlight.mp4", offset, min(offset + length, available))
        key = processed_key(point["event_id"], point["id"], "highlight", "highlight.mp4")
        storage.upload_file(clip.path, key, content_type="video/mp4", if_absent=False)
    log.info("%s: highlight %.1fs from %s (%s), %d segment(s)", point["name"], clip.duration, start.isoformat(),
             clip.path_taken, len(chosen))
    return {"point": point["id"], "name": point["name"], "display_name": point.get("display_name") or point["name"],
            "key": key, "duration": clip.duration, "path_taken": clip.path_taken, "segments": len(seen["segments"]),
            "went_live": went_live.isoformat()}


def segment_start(segment: dict) -> datetime:
    """nginx names segments `<stream>-<unix time at open>-<stamp>.flv`: the second field is when it began."""
    unix = int(segment["file"].rsplit("-", 2)[-2])
    return datetime.fromtimestamp(unix, timezone.utc)


def segments_covering(segments: list[dict], start: datetime, end: datetime) -> list[dict]:
    """The stored segments overlapping [start, end), in order (a segment lasts until the next one begins); if
    the point was not streaming at `start` (dropped, came back later), the first segment after it."""
    ordered = sorted(segments, key=segment_start)
    starts = [segment_start(s) for s in ordered]
    overlapping = [seg for i, seg in enumerate(ordered)
                   if starts[i] < end and (i + 1 == len(ordered) or starts[i + 1] > start)]
    if overlapping:
        return overlapping
    later = [seg for seg, seg_start in zip(ordered, starts) if seg_start >= start]
    return later[:1]


# --- recap, galleries -----------------------------------------------------------------------------------------
def build_recap(plan: dict, highlights: list[dict | None]) -> dict:
    """Intro card, then per point (Vietnamese title card + highlight), outro — stream-copied; a 9:16 variant,
    a poster frame and a contact sheet. Points in the event's order; points without a highlight are skipped."""
    import media

    event = _event(plan)
    by_point = {h["point"]: h for h in highlights or [] if h}
    order = [p["id"] for p in plan["points"] if p["id"] in by_point]
    if not order:
        raise RuntimeError("no point has a highlight: nothing to put in the recap (see the build_highlight logs)")
    storage = Storage.from_connection()
    caption = event.start_local.strftime("%H:%M · %d/%m/%Y")
    out = {}
    with tempfile.TemporaryDirectory(prefix="bridgecast-recap-") as tmp:
        tmp = Path(tmp)
        items = [media.RecapItem(by_point[pid]["display_name"],
                                 storage.download_file(by_point[pid]["key"], tmp / f"{i:03d}-{pid}.mp4"), caption)
                 for i, pid in enumerate(order)]
        recap = media.build_recap(items, tmp / "recap.mp4", theme=event.theme,
                                  intro=media.CardText(event.short_title, event.theme, caption),
                                  outro=media.CardText(event.theme, event.short_title, "Hết"))
        log.info("recap: %d points, %.1fs, %d copied / %d re-encoded, %.1fs to build", len(items), recap.duration,
                 recap.copied, recap.reencoded, recap.elapsed_s)
        media.poster_frame(recap.path, tmp / "poster.jpg")
        media.contact_sheet(recap.path, tmp / "contact-sheet.jpg")
        files = {"recap": (recap.path, "video/mp4"), "poster": (tmp / "poster.jpg", "image/jpeg"),
                 "contact_sheet": (tmp / "contact-sheet.jpg", "image/jpeg")}
        for name, (path, ctype) in files.items():
            key = artifact_key(plan, Path(path).name)
            storage.upload_file(path, key, content_type=ctype, if_absent=False)
            out[f"{name}_key"] = key
        out.update({"points": len(items), "duration": round(recap.duration, 2), "copied": recap.copied,
                    "reencoded": recap.reencoded, "build_s": round(recap.elapsed_s, 2),
                    "sha256": sha256_file(recap.path), "chapters": len(recap.chapters)})
    return out


def build_vertical_recap(plan: dict, recap: dict) -> dict:
    """The 9:16 variant for mobile. A full re-encode, so it runs beside the publishing, not before it."""
    import media

    storage = Storage.from_connection()
    with tempfile.TemporaryDirectory(prefix="bridgecast-vertical-") as tmp:
        tmp = Path(tmp)
        src = storage.download_file(recap["recap_key"], tmp / "recap.mp4")
        width = min(720, (media.probe(src).width or 720) // 2 * 2)  # never upscale a small rehearsal feed
        t0 = time.monotonic()
        media.vertical_variant(src, tmp / "recap-9x16.mp4", width=width)
        key = artifact_key(plan, "recap-9x16.mp4")
        storage.upload_file(tmp / "recap-9x16.mp4", key, content_type="video/mp4", if_absent=False)
    return {"key": key, "width": width, "seconds": round(time.monotonic() - t0, 1)}


def build_galleries(plan: dict) -> dict:
    """Per point (provinces and district teams): photos received / processed / quarantined and the processed
    renditions. Stored as galleries.json; the XCom keeps the counts and a selection for the posts."""
    from bridgecast.manifest import ManifestStore

    event = _event(plan)
    manifests = ManifestStore(Storage.from_connection())
    photos = _drained_photo_manifests(manifests, plan["event_id"])
    per_point: dict[str, dict] = {}
    for m in photos:
        entry = per_point.setdefault(m["point_id"], {"received": 0, "processed": 0, "quarantined": 0, "photos": [],
                                                     "rejected": []})
        entry["received"] += 1
        if m["status"] == "processed":
            entry["processed"] += 1
            entry["photos"].append({"sha256": m["sha256"], "web": m["renditions"].get("web"),
                                    "thumb": m["renditions"].get("thumb"), "received_at": m["received_at"],
                                    "original_name": m.get("original_name")})
        elif m["status"] == "quarantined":
            entry["quarantined"] += 1
            entry["rejected"].append({"original_name": m.get("original_name"), "reason": m.get("reason")})
    for pid, entry in per_point.items():
        entry["name"] = event.point(pid).name if pid in {p.id for p in event.points} else pid
        entry["photos"].sort(key=lambda p: p["received_at"])
    key = save_artifact(plan, "galleries.json", per_point)
    return {"key": key, "points": {pid: {k: e[k] for k in ("name", "received", "processed", "quarantined")}
                                   for pid, e in per_point.items()},
            "selection": select_photos(per_point, PORTAL_GALLERY_SIZE)}


GALLERY_DRAIN_S = 240  # how long the galleries wait for photos still being processed by bridgecast_ingest


def _drained_photo_manifests(manifests, event_id: str) -> list[dict]:
    """The event's photo manifests once none is still `received` (the ingest DAG is behind, e.g. busy with
    recordings): photos sent before the end belong in the galleries. After the bounded wait, go with what is
    processed and say which are still pending — they stay in S3 and a rerun of this task picks them up."""
    deadline = time.monotonic() + GALLERY_DRAIN_S
    while True:
        photos = list(manifests.iter_manifests(event_id, kind="photo"))
        pending = [m for m in photos if m["status"] == "received"]
        if not pending:
            return photos
        if time.monotonic() > deadline:
            log.warning("%d photo(s) still unprocessed after %ss, left out of the galleries (rerun this task to "
                        "add them): %s", len(pending), GALLERY_DRAIN_S,
                        ", ".join(f"{m['point_id']}/{m.get('original_name')}" for m in pending[:20]))
            return photos
        log.info("waiting for %d photo(s) still being processed", len(pending))
        time.sleep(5)


PORTAL_GALLERY_SIZE = 12
FANPAGE_PHOTOS = 10  # Graph API multi-photo post cap used by the fanpage channel


def select_photos(per_point: dict[str, dict], limit: int) -> list[dict]:
    """Round-robin over points (earliest photo of each first) so one busy team does not fill the gallery."""
    queues = {pid: list(e["photos"]) for pid, e in sorted(per_point.items()) if e["photos"]}
    chosen = []
    while queues and len(chosen) < limit:
        for pid in list(queues):
            photo = queues[pid].pop(0)
            chosen.append({**photo, "point": pid, "name": per_point[pid]["name"]})
            if not queues[pid]:
                del queues[pid]
            if len(chosen) == limit:
                break
    return chosen


# --- publishing through the ledger ----------------------------------------------------------------------------
PORTAL_KEY, FANPAGE_PHOTOS_KEY, FANPAGE_VIDEO_KEY, PRESS_KEY = (
    "launch/portal-article", "launch/fanpage-photos", "launch/fanpage-recap-video", "launch/press-kit")


def _media_file(storage: Storage, key: str, dst: Path, content_type: str, caption: str = "") -> MediaFile:
    from bridgecast.channels.base import MediaFile

    return MediaFile.from_path(storage.download_file(key, dst), content_type, caption)


def _photos(storage: Storage, selection: list[dict], tmp: Path, limit: int) -> tuple:
    return tuple(_media_file(storage, p["web"], tmp / f"photo-{i:02d}-{p['sha256'][:12]}.jpg", "image/jpeg",
                             caption=p["name"]) for i, p in enumerate(selection[:limit]))


def _story(plan: dict, event: Event, recap: dict | None, galleries: dict | None) -> str:
    live = (recap or {}).get("points", 0)
    start = event.start_local
    paras = [
        f"Sáng {start.strftime('%d/%m/%Y')}, lúc {start.strftime('%H:%M')}, {event.title} đã được phát động "
        f"đồng loạt tại điểm cầu trung ương và {len(plan['points']) - 1} điểm cầu các tỉnh, thành phố"
        + (f"; {live} điểm cầu có hình ảnh trong video tổng hợp." if live else "."),
        f"Chủ đề: {event.theme}.",
        "Thông điệp của chiến dịch:\n" + "\n".join(f"• {m}" for m in event.messages),
    ]
    if plan.get("teams"):
        photos = sum(p["processed"] for p in (galleries or {}).get("points", {}).values())
        paras.append(f"Tại tỉnh Vĩnh Phúc, {len(plan['teams'])} đội tuyên truyền lưu động ở các huyện, thành phố "
                     f"đã đồng loạt ra quân" + (f"; {photos} ảnh hoạt động đã được gửi về." if photos else "."))
    return "\n\n".join(paras)


def _publish(plan: dict, channel_name: str, pub) -> dict:
    from bridgecast.channels.factory import channels_for
    from bridgecast.ledger import Ledger, publish_once

    channel = channels_for(_event(plan))[channel_name]
    outcome = publish_once(Ledger(), channel, pub)
    ref = outcome.ref
    log.info("%s %s: %s (%s)", channel_name, pub.key, outcome.action, ref.url if ref else "-")
    return {"channel": channel_name, "key": pub.key, "action": outcome.action,
            "remote_id": ref.remote_id if ref else None, "url": ref.url if ref else None}


def publish_portal_article(plan: dict, recap: dict | None, galleries: dict | None) -> dict:
    from bridgecast.channels.base import Publication

    event = _event(plan)
    storage = Storage.from_connection()
    with tempfile.TemporaryDirectory(prefix="bridgecast-portal-") as tmp:
        tmp = Path(tmp)
        photos = _photos(storage, (galleries or {}).get("selection", []), tmp, PORTAL_GALLERY_SIZE)
        video = _media_file(storage, recap["recap_key"], tmp / "recap.mp4", "video/mp4",
                            caption=f"Video tổng hợp — {event.short_title}") if recap else None
        pub = Publication(event_id=event.id, key=PORTAL_KEY, kind="article",
                          title=f"{event.short_title}: đồng loạt phát động tại {len(plan['points'])} điểm cầu",
                          body=_story(plan, event, recap, galleries), excerpt=event.theme, media=photos,
                          video=video, categories=event.channels.portal.categories, tags=event.channels.portal.tags)
        return _publish(plan, "portal", pub)


def publish_fanpage_post(plan: dict, recap: dict | None, galleries: dict | None) -> list[dict]:
    """Two items on the Page: a multi-photo post and the recap video (resumable upload)."""
    from bridgecast.channels.base import Publication

    event = _event(plan)
    storage = Storage.from_connection()
    made = []
    with tempfile.TemporaryDirectory(prefix="bridgecast-fanpage-") as tmp:
        tmp = Path(tmp)
        photos = _photos(storage, (galleries or {}).get("selection", []), tmp, FANPAGE_PHOTOS)
        if photos:
            made.append(_publish(plan, "fanpage", Publication(
                event_id=event.id, key=FANPAGE_PHOTOS_KEY, kind="post", title=f"📸 {event.short_title}",
                body=f"{event.theme}\n\n" + " ".join(f"#{t}" for t in ("BHXHToànDân", "BHXHTựNguyện")),
                media=photos)))
        if recap:
            video = _media_file(storage, recap["recap_key"], tmp / "recap.mp4", "video/mp4")
            made.append(_publish(plan, "fanpage", Publication(
                event_id=event.id, key=FANPAGE_VIDEO_KEY, kind="video",
                title=f"Video tổng hợp: {event.short_title}", body=_story(plan, event, recap, galleries),
                video=video)))
    return made


def send_press_kit(plan: dict, recap: dict | None, galleries: dict | None, article: dict | None) -> dict:
    """The press kit email: the story, a link to the portal article, presigned links to the recap and photos."""
    from bridgecast.channels.base import Publication

    event = _event(plan)
    storage = Storage.from_connection()
    links = []
    if recap:
        links += [("Video tổng hợp (MP4)", storage.presigned_url(recap["recap_key"])),
                  ("Ảnh đại diện video", storage.presigned_url(recap["poster_key"]))]
    for i, photo in enumerate((galleries or {}).get("selection", [])[:PORTAL_GALLERY_SIZE], 1):
        links.append((f"Ảnh {i} — {photo['name']}", storage.presigned_url(photo["web"])))
    pub = Publication(event_id=event.id, key=PRESS_KEY, kind="email",
                      title=f"[Thông cáo báo chí] {event.short_title}", body=_story(plan, event, recap, galleries),
                      link=(article or {}).get("url"), links=tuple(links),
                      recipients=tuple(o.email for o in event.channels.press.outlets))
    return _publish(plan, "press", pub)


# --- the summary -------------------------------------------------------------------------------------------------
EXPECTED_PUBLICATIONS = (("fanpage", LIVE_KEY), ("portal", PORTAL_KEY), ("fanpage", FANPAGE_PHOTOS_KEY),
                         ("fanpage", FANPAGE_VIDEO_KEY), ("press", PRESS_KEY))


def write_summary(plan: dict, preflight: dict | None, went_live: dict | None, monitor: dict | None,
                  recap: dict | None, galleries: dict | None) -> dict:
    """Per point: live-at, segments, photos; the go-live figure; every publication with its URL."""
    from bridgecast.ledger import Ledger

    live = IngestObserver.from_connection().live(plan["event_id"])
    photo_counts = (galleries or {}).get("points", {})
    no_go = set((preflight or {}).get("no_go", []))
    points = []
    for kind, p in [("point", p) for p in plan["points"]] + [("team", t) for t in plan["teams"]]:
        seen, mon, photos = live.get(p["id"], {}), (monitor or {}).get(p["id"], {}), photo_counts.get(p["id"], {})
        points.append({"id": p["id"], "name": p["name"], "kind": kind,
                       "preflight": ("no-go" if p["id"] in no_go else "go") if kind == "point" else "-",
                       "live_detected_at": mon.get("live_detected_at"),
                       "live_after_t0_s": mon.get("live_detected_after_t0_s"), "drops": mon.get("drops", 0),
                       "segments": len(seen.get("segments", [])),
                       "photos_received": photos.get("received", 0), "photos_processed": photos.get("processed", 0),
                       "photos_quarantined": photos.get("quarantined", 0)})
    rows = Ledger().rows(plan["event_id"])
    publications = [{"channel": r.channel, "key": r.pub_key, "status": r.status, "url": r.url,
                     "remote_id": r.remote_id, "attempts": r.attempts} for r in rows]
    made = {(r.channel, r.pub_key) for r in rows if r.status == "published"}
    expected = [e for e in EXPECTED_PUBLICATIONS  # no photo post is expected when no team sent a usable photo
                if e != ("fanpage", FANPAGE_PHOTOS_KEY) or (galleries or {}).get("selection")]
    summary = {
        "event_id": plan["event_id"], "title": plan["title"], "t0": plan["t0"],
        "go_live_delta_s": (went_live or {}).get("delta_s"),
        "points_live": sum(1 for p in points if p["live_detected_at"]), "points_total": len(plan["points"]),
        "preflight_no_go": sorted(no_go),
        "publications_expected": len(expected),
        "publications_made": len(made & set(expected)),
        "publications_missing": [f"{c}:{k}" for c, k in expected if (c, k) not in made],
        "recap": recap, "points": points, "publications": publications,
    }
    text = summary_markdown(summary)
    print(text)
    summary["markdown_key"] = save_artifact(plan, "summary.md", text)
    summary["json_key"] = save_artifact(plan, "summary.json", summary)
    return {k: v for k, v in summary.items() if k != "points"}


def summary_markdown(s: dict) -> str:
    lines = [f"# Tổng kết — {s['title']}", "", f"- T0: {s['t0']}",
             f"- Lệnh phát trực tiếp so với T0: {s['go_live_delta_s']} s",
             f"- Điểm cầu lên sóng: {s['points_live']}/{s['points_total']}",
             f"- Không đạt kiểm tra trước giờ G: {', '.join(s['preflight_no_go']) or 'không có'}",
             f"- Bài đăng: {s['publications_made']}/{s['publications_expected']}"
             + (f" (thiếu: {', '.join(s['publications_missing'])})" if s["publications_missing"] else ""), "",
             "| Điểm cầu | Kiểm tra | Lên sóng sau T0 (s) | Rớt | Đoạn ghi | Ảnh nhận/xử lý/cách ly |",
             "|---|---|---|---|---|---|"]
    for p in s["points"]:
        lines.append(f"| {p['name']} | {p['preflight']} | {p['live_after_t0_s'] if p['live_after_t0_s'] is not None else '-'}"
                     f" | {p['drops']} | {p['segments']} | {p['photos_received']}/{p['photos_processed']}/"
                     f"{p['photos_quarantined']} |")
    lines += ["", "| Kênh | Khoá | Trạng thái | Địa chỉ |", "|---|---|---|---|"]
    for pub in s["publications"]:
        lines.append(f"| {pub['channel']} | {pub['key']} | {pub['status']} | {pub['url'] or '-'} |")
    return "\n".join(lines)
