"""After the end: per point a highlight (its best moment) cut from its recording, the recap montage (and its 9:16
Reel), the photo and video galleries. The choices (which segments, which window, which photos, in what order) are pure functions; the tasks
around them move the media between S3 and the media toolkit. Anything bigger than a few KB goes to S3."""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bridgecast.launch import publications as defs
from bridgecast.launch.observe import IngestObserver
from bridgecast.launch.plan import LaunchPlan, save_artifact
from bridgecast.objects import processed_key

if TYPE_CHECKING:  # annotations only: the storage client is imported when a task runs
    from bridgecast.event import Event
    from bridgecast.storage import Storage

log = logging.getLogger(__name__)

FINISH_WAIT_S = 300  # how long a highlight waits for a point's last recording segment to reach S3
# Highlights run as this many mapped tasks at most, each doing its points in turn: an Airflow task's start costs
# 1.5-3 CPU-s here, so 64 tasks of one point each spent as much CPU starting as cutting on 2 cores.
HIGHLIGHT_BATCHES = 8
GALLERY_DRAIN_S = 240  # how long the galleries wait for photos and team videos the ingest lanes still process


# --- choosing (pure) -------------------------------------------------------------------------------------------
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


def clip_window(offset_s: float, length_s: float, available_s: float) -> tuple[float, float]:
    """(start, end) in the joined recording; a point that streamed less than the window gives its last seconds."""
    if offset_s + length_s > available_s:
        offset_s = max(0.0, available_s - length_s)
    return offset_s, min(offset_s + length_s, available_s)


def recap_order(plan: LaunchPlan, highlights: list[dict | None]) -> list[dict]:
    """The highlights in the event's point order; points without one are left out."""
    by_point = {h["point"]: h for h in highlights or [] if h}
    return [by_point[p.id] for p in plan.points if p.id in by_point]


def tally_galleries(photos: list[dict], names: dict[str, str]) -> dict[str, dict]:
    """Per point: photos received / processed / quarantined, the processed ones (oldest first) and the rejects."""
    per_point: dict[str, dict] = {}
    for m in photos:
        entry = per_point.setdefault(m["point_id"], {"name": names.get(m["point_id"], m["point_id"]), "received": 0,
                                                     "processed": 0, "quarantined": 0, "photos": [], "rejected": []})
        entry["received"] += 1
        if m["status"] == "processed":
            entry["processed"] += 1
            entry["photos"].append({"sha256": m["sha256"], "web": m["renditions"].get("web"),
                                    "thumb": m["renditions"].get("thumb"), "received_at": m["received_at"],
                                    "original_name": m.get("original_name")})
        elif m["status"] == "quarantined":
            entry["quarantined"] += 1
            entry["rejected"].append({"original_name": m.get("original_name"), "reason": m.get("reason")})
    for entry in per_point.values():
        entry["photos"].sort(key=lambda p: p["received_at"])
    return per_point


def tally_team_videos(videos: list[dict], names: dict[str, str]) -> dict[str, dict]:
    """Per point: team videos received / processed / quarantined and the processed ones (oldest first) — the
    same shape as the photo galleries, so one round-robin picks both."""
    per_point: dict[str, dict] = {}
    for m in videos:
        entry = per_point.setdefault(m["point_id"], {"name": names.get(m["point_id"], m["point_id"]), "received": 0,
                                                     "processed": 0, "quarantined": 0, "photos": []})
        entry["received"] += 1
        if m["status"] == "processed":
            entry["processed"] += 1
            entry["photos"].append({"sha256": m["sha256"], "video": m["renditions"].get("video"),
                                    "poster": m["renditions"].get("poster"), "received_at": m["received_at"],
                                    "original_name": m.get("original_name"),
                                    "duration": (m.get("media") or {}).get("processed", {}).get("duration")})
        elif m["status"] == "quarantined":
            entry["quarantined"] += 1
    for entry in per_point.values():
        entry["photos"].sort(key=lambda p: p["received_at"])
    return per_point


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


# --- highlights ------------------------------------------------------------------------------------------------
T0_GRACE_S = 120  # a point streaming by T0 + this counts as live at T0 (its tile is in the recap's mosaic)


def highlight_batches(points: list[dict], batches: int = HIGHLIGHT_BATCHES) -> list[list[dict]]:
    """The points as at most `batches` runs of consecutive points, in the event's order: one task each."""
    size = max(1, -(-len(points) // batches))
    return [points[i:i + size] for i in range(0, len(points), size)]


@dataclass(frozen=True)
class HighlightInputs:
    """What every point of a batch reads the same: the plan in force, the event, the gateway, the storage — read
    once per task (each costs a Connection lookup, an S3 read or a client: ~0.5 CPU-s a point on 2 cores)."""

    plan: LaunchPlan
    event: Event
    observer: IngestObserver
    storage: Storage

    @classmethod
    def load(cls, plan_xcom: dict) -> HighlightInputs:
        from bridgecast.storage import Storage

        plan = LaunchPlan.from_xcom(plan_xcom).in_force()  # T0 and the end as they were (steered from the board)
        return cls(plan, plan.load_event(), IngestObserver.from_connection(), Storage.from_connection())


def build_highlights(plan_xcom: dict, points: list[dict]) -> list[dict | None]:
    """`build_highlight` for each point of a batch in turn, the waits for their recordings under one deadline; a
    point that fails is logged and has no highlight (None), the others go on."""
    deadline = time.monotonic() + FINISH_WAIT_S
    inputs = HighlightInputs.load(plan_xcom)
    made = []
    for point in points:
        try:
            made.append(build_highlight(inputs, point, deadline=deadline))
        except Exception:  # noqa: BLE001 - one point's bad recording never costs the others their highlight
            log.exception("%s: no highlight (the other points of this task go on)", point["name"])
            made.append(None)
    return made


def build_highlight(inputs: HighlightInputs, point: dict, *, deadline: float | None = None) -> dict | None:
    """The point's highlight: its best `highlight.length_s` seconds (motion + audio level per GOP, see
    `media.montage.score_gops`) within the first `highlight.search_s` after `highlight.offset_s` from when it went
    live (never past the event's end), cut by stream copy from its recording segments in S3; plus a still of its
    first keyframe after T0 for the recap's mosaic. None when the point never went live."""
    plan, event = inputs.plan, inputs.event

    def window(seen: dict) -> tuple[datetime, datetime, float]:
        """(went live, search start, search seconds): from T0 or later for a late point, never past the end."""
        went_live = max(datetime.fromisoformat(seen["first_live_at"]), plan.t0)
        start = went_live + timedelta(seconds=event.highlight.offset_s)
        return went_live, start, max(event.highlight.length_s,
                                     min(event.highlight.search_s, (plan.end_at - start).total_seconds()))

    seen = _finished_recording(inputs.observer, plan.event_id, point,
                               covered_until=lambda seen: (w := window(seen))[1] + timedelta(seconds=w[2]),
                               deadline=deadline or time.monotonic() + FINISH_WAIT_S)
    if seen is None:
        return None
    first_live = datetime.fromisoformat(seen["first_live_at"])
    went_live, start, search_s = window(seen)
    chosen = segments_covering(seen["segments"], start, start + timedelta(seconds=search_s))
    if not chosen:
        log.warning("%s: no recording covers %s", point["name"], start.isoformat())
        return None
    cut = _cut_highlight(inputs.storage, plan, point, chosen, start, search_s, event.highlight.length_s)
    log.info("%s: highlight %.1fs at +%.1fs of %.0fs searched (score %.2f, %s), %d segment(s)", point["name"],
             cut["duration"], cut["moment_offset_s"], search_s, cut["score"], cut["path_taken"], len(chosen))
    return {"point": point["id"], "name": point["name"], "display_name": point.get("display_name") or point["name"],
            **cut, "segments": len(seen["segments"]), "went_live": went_live.isoformat(),
            "moment_at": (start + timedelta(seconds=cut["moment_offset_s"])).isoformat(),
            "live_at_t0": first_live <= plan.t0 + timedelta(seconds=T0_GRACE_S)}


def _finished_recording(observer: IngestObserver, event_id: str, point: dict, covered_until,
                        deadline: float) -> dict | None:
    """What the gateway saw of the point, once the recording covers the highlight's window — its last segment
    stored ("finished"), or a stored segment beginning after `covered_until(seen)` (segments are stored when they
    close, so the one holding the window's end is in; a point still streaming after an early end) — or after
    `deadline` (monotonic; FINISH_WAIT_S after the task began); None if it never went live. The last segment reaches
    S3 a little after the stream stops."""
    while True:
        seen = observer.live(event_id).get(point["id"])
        if seen is None or not seen.get("first_live_at"):
            log.warning("%s never went live: no highlight", point["name"])
            return None
        if seen["finished"] or any(segment_start(s) >= covered_until(seen) for s in seen.get("segments", [])):
            return seen
        if time.monotonic() > deadline:
            log.warning("%s: recording not finished by the highlights' deadline (%ss); using the segments stored "
                        "so far", point["name"], FINISH_WAIT_S)
            return seen
        time.sleep(2)


def _cut_highlight(storage: Storage, plan: LaunchPlan, point: dict, segments: list[dict], start: datetime,
                   search_s: float, length_s: float) -> dict:
    """Join the segments, keep the best `length_s` of the search window by copy (`media.montage.cut_highlight`)."""
    import media
    from media.clips import joinable_signature
    from media.montage import cut_highlight

    with tempfile.TemporaryDirectory(prefix="bridgecast-highlight-") as tmp:
        tmp = Path(tmp)
        local = [storage.download_file(s["key"], tmp / f"{i:03d}.flv") for i, s in enumerate(segments)]
        joined = media.join_segments(local, tmp / "joined.mp4")
        offset = max(0.0, (start - segment_start(segments[0])).total_seconds())
        # the still is the window's first keyframe: T0 or when the point came
        made = cut_highlight(joined, tmp / "highlight.mp4", tmp / "t0.jpg",
                             window=clip_window(offset, search_s, joined.duration), length_s=length_s)
        key = processed_key(plan.event_id, point["id"], "highlight", "highlight.mp4")
        still_key = processed_key(plan.event_id, point["id"], "highlight", "t0.jpg")
        storage.upload_file(made.clip.path, key, content_type="video/mp4", if_absent=False)
        storage.upload_file(made.still, still_key, content_type="image/jpeg", if_absent=False)
    # moment_offset_s: from `start`, where the kept moment begins (the window starts on the keyframe at/before it)
    return {"key": key, "t0_still_key": still_key, "duration": made.clip.duration, "path_taken": made.clip.path_taken,
            "moment_offset_s": round(made.moment - offset, 3), "score": round(made.score, 3),
            "scores": made.scores.to_dict(), "signature": joinable_signature(made.clip.output)}


# --- the recap ---------------------------------------------------------------------------------------------------
# Groups on screen, in this order. Regions from the GSO province code (vn-provinces.md: codes 01–37 are the
# northern provinces, Hà Nội … Ninh Bình; 38–68 the north-central, south-central coast and Central Highlands,
# Thanh Hóa … Lâm Đồng; 70–96 the south-east and the Mekong delta, Bình Phước … Cà Mau). The host province (whose
# district teams take part) has its own group, last, before the outro.
CENTRAL_GROUP = "Điểm cầu Trung ương"
REGIONS = ((37, "Miền Bắc"), (68, "Miền Trung - Tây Nguyên"), (96, "Miền Nam"))
OTHER_GROUP = "Các điểm cầu"


def host_provinces(event) -> set[str]:
    return {t.parent for t in event.teams if t.parent}


def host_group(event) -> str:
    hosts = [event.point(pid) for pid in dict.fromkeys(t.parent for t in event.teams if t.parent)]
    return "Tỉnh " + ", ".join(p.name for p in hosts) + " và các đội tuyên truyền" if hosts else "Tỉnh chủ trì"


def recap_group(event, point_id: str) -> str:
    """The point's group in the recap (pure): central, host province, or its region by GSO code."""
    point = event.point(point_id)
    if point.kind == "central":
        return CENTRAL_GROUP
    if point.id in host_provinces(event):
        return host_group(event)
    if point.code and point.code.isdigit():
        return next((name for last, name in REGIONS if int(point.code) <= last), OTHER_GROUP)
    return OTHER_GROUP


def recap_groups(event) -> list[str]:
    return [CENTRAL_GROUP, *(name for _, name in REGIONS), OTHER_GROUP, host_group(event)]


def recap_rank(event, point_id: str) -> int:
    """0: always in, with a longer moment (central, host province); 1: the others, best-scoring first."""
    group = recap_group(event, point_id)
    return 0 if group in (CENTRAL_GROUP, host_group(event)) else 1


def mosaic_title(live_count: int) -> str:
    return f"{live_count} điểm cầu đồng loạt ra quân"


def build_recap(plan_xcom: dict, highlights: list[list[dict | None]]) -> dict:
    """The recap montage to the event's length budget (`highlight.recap_s`): the mosaic of the points live at T0,
    each point's best moments grouped (central, regions, host province) with a Vietnamese lower third, the outro
    with the campaign's message, loudness normalised (`media.montage`). Plus a poster frame and a contact sheet."""
    import media
    from media.montage import GopScores, MontageClip, build_montage

    from bridgecast.storage import Storage, sha256_file

    plan = LaunchPlan.from_xcom(plan_xcom)
    event = plan.load_event()
    order = recap_order(plan, [h for batch in highlights or [] for h in batch or []])
    if not order:
        raise RuntimeError("no point has a highlight: nothing to put in the recap (see the build_highlights logs)")
    storage = Storage.from_connection()
    out = {}
    with tempfile.TemporaryDirectory(prefix="bridgecast-recap-") as tmp:
        tmp = Path(tmp)
        material = [MontageClip(h["point"], h["name"], recap_group(event, h["point"]),
                                tmp / f"{i:03d}-{h['point']}.mp4", GopScores.from_dict(h["scores"]),
                                recap_rank(event, h["point"]), h.get("signature")) for i, h in enumerate(order)]
        key_of = {h["point"]: h["key"] for h in order}
        live = [h for h in order if h.get("live_at_t0")] or order
        stills = [(h["point"], storage.download_file(h["t0_still_key"], tmp / f"t0-{h['point']}.jpg")) for h in live]
        # only the highlights the montage shows are downloaded (a third of them for 64 points)
        recap = build_montage(material, tmp / "recap.mp4", budget_s=event.highlight.recap_s, mosaic_stills=stills,
                              mosaic_title=mosaic_title(len(live)), outro_lines=[event.theme, *event.messages[-1:],
                                                                                 event.short_title],
                              title=event.short_title, logo=event.media.watermark_logo, groups=recap_groups(event),
                              fetch=lambda m: storage.download_file(key_of[m.point], m.clip))
        log.info("recap: %d of %d points, %.1fs (budget %.0fs), %.1fs re-encoded / %.1fs copied, built in %.1fs %s",
                 len(recap.plan.clips), len(order), recap.duration, recap.budget_s, recap.reencoded_s,
                 recap.copied_s, recap.elapsed_s, recap.timings)
        media.poster_frame(recap.path, tmp / "poster.jpg", at=0)  # the mosaic: every point live at T0
        media.contact_sheet(recap.path, tmp / "contact-sheet.jpg")
        files = {"recap": (recap.path, "video/mp4"), "poster": (tmp / "poster.jpg", "image/jpeg"),
                 "contact_sheet": (tmp / "contact-sheet.jpg", "image/jpeg")}
        for name, (path, ctype) in files.items():
            key = plan.artifact_key(Path(path).name)
            storage.upload_file(path, key, content_type=ctype, if_absent=False)
            out[f"{name}_key"] = key
        out.update({"points": len(recap.plan.clips), "live_at_t0": len(live), "duration": round(recap.duration, 2),
                    "budget_s": recap.budget_s, "reencoded_s": round(recap.reencoded_s, 2),
                    "copied_s": round(recap.copied_s, 2), "build_s": round(recap.elapsed_s, 2),
                    "left_out": recap.plan.left_out, "sha256": sha256_file(recap.path),
                    "chapters": len(recap.chapters)})
    return out


def build_vertical_recap(plan_xcom: dict, recap: dict) -> dict:
    """The 9:16 cut (Reel spec: ≥540×960, 3–90 s, H.264, AAC 48 kHz), published on the fanpage as a Reel through
    the ledger. A full re-encode, so it runs beside the other publishing, not before it."""
    import media

    from bridgecast.launch import publishing
    from bridgecast.storage import Storage

    plan = LaunchPlan.from_xcom(plan_xcom)
    event = plan.load_event()
    storage = Storage.from_connection()
    with tempfile.TemporaryDirectory(prefix="bridgecast-vertical-") as tmp:
        tmp = Path(tmp)
        src = storage.download_file(recap["recap_key"], tmp / "recap.mp4")
        t0 = time.monotonic()
        vertical = media.vertical_variant(src, tmp / "recap-9x16.mp4", width=REEL_WIDTH, max_seconds=REEL_MAX_S)
        key = plan.artifact_key("recap-9x16.mp4")
        storage.upload_file(tmp / "recap-9x16.mp4", key, content_type="video/mp4", if_absent=False)
        seconds = round(time.monotonic() - t0, 1)
        reel = publishing.publish_reel(event, vertical.path)
    return {"key": key, "width": vertical.width, "height": vertical.height, "duration": round(vertical.duration, 2),
            "seconds": seconds, "reel": reel}


REEL_WIDTH = 540  # the Reel minimum (540×960); a rehearsal's 240p feed is upscaled to it
REEL_MAX_S = 89.5  # the 90 s limit, less the few ms a container runs past its last frame


# --- galleries ---------------------------------------------------------------------------------------------------
def build_galleries(plan_xcom: dict) -> dict:
    """Per point (provinces and district teams): photos received / processed / quarantined and the processed
    renditions. Stored as galleries.json; the XCom keeps the counts and a selection for the publications."""
    from bridgecast.manifest import ManifestStore
    from bridgecast.storage import Storage

    plan = LaunchPlan.from_xcom(plan_xcom)
    names = {p.id: p.name for p in plan.load_event().points}
    manifests = ManifestStore(Storage.from_connection())
    deadline = time.monotonic() + GALLERY_DRAIN_S
    photos = _drained_manifests(manifests, plan.event_id, "photo", deadline)
    per_point = tally_galleries(photos, names)
    videos = tally_team_videos(_drained_manifests(manifests, plan.event_id, "video", deadline), names)
    key = save_artifact(plan, "galleries.json", per_point)
    save_artifact(plan, "team-videos.json", videos)
    return {"key": key, "points": {pid: {k: e[k] for k in ("name", "received", "processed", "quarantined")}
                                   for pid, e in per_point.items()},
            "selection": select_photos(per_point, defs.GALLERY_SELECTION),
            "videos": {pid: e["processed"] for pid, e in videos.items()},
            "video_selection": select_photos(videos, defs.VIDEO_SELECTION)}


def _drained_manifests(manifests, event_id: str, kind: str, deadline: float) -> list[dict]:
    """The event's manifests of `kind` once none is still `received` (the ingest is behind, e.g. busy with a long
    video): what was sent before the end belongs in the galleries. After the bounded wait (`deadline`, one for
    photos and videos), go with what is processed and say which are still pending — they stay in S3 and a rerun
    of this task picks them up."""
    while True:
        found = list(manifests.iter_manifests(event_id, kind=kind))
        pending = [m for m in found if m["status"] == "received"]
        if not pending:
            return found
        if time.monotonic() > deadline:
            log.warning("%d %s(s) still unprocessed after %ss, left out of the galleries (rerun this task to "
                        "add them): %s", len(pending), kind, GALLERY_DRAIN_S,
                        ", ".join(f"{m['point_id']}/{m.get('original_name')}" for m in pending[:20]))
            return found
        log.info("waiting for %d %s(s) still being processed", len(pending), kind)
        time.sleep(5)