"""A post's photos: listed from the processed renditions in S3, resolved when the post goes out, then frozen.

Frozen means: the first resolution is written to `{event}/_posts/{key}/media.json` (a conditional PUT, so
two channels publishing the same post at the same second agree on one set), and every later run — an edit, a
rerun, a cleared task — uses that record. "The 6 newest photos" therefore never changes under a published post
(the fanpage cannot swap a post's photos anyway).

The photo picker of the staff form is an Airflow Variable (`bridgecast_photo_picker`, JSON: keys and labels by
point and time), written by the `bridgecast_photo_picker` DAG whenever the ingest emits its processed-photos asset
(and every 30 minutes) and read by the form's DAG file at parse time. A Variable, not a file: the dag-processor
reads Variables through Airflow wherever it runs, while a file would exist only on the worker that wrote it.
"""
from __future__ import annotations

import json
import logging
import mimetypes
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from typing import TYPE_CHECKING

from bridgecast.objects import post_key, processed_key, processed_prefix
from bridgecast.posts.content import PostContent, local_text

if TYPE_CHECKING:  # boto3 is not imported at DAG parse time (the form's DAG file reads the picker from here)
    from bridgecast.storage import Storage

log = logging.getLogger(__name__)

PICKER_PER_POINT = 24  # newest photos per point offered by the form
PICKER_TOTAL = 400  # the whole list stays a small part of the serialized DAG


class MediaNotReady(Exception):
    """Some media of a due post are not in storage yet; the caller waits (up to the post's limit) and tries again."""

    def __init__(self, content: PostContent, missing: list[str]):
        self.missing = missing
        self.deadline = content.publish_at + content.media_wait  # the caller may move it
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5})" if len(missing) > 5 else "")
        super().__init__(f"'{content.label}': media not in storage yet: {shown}")


def record_key(event_id: str, pub_key: str) -> str:
    return post_key(event_id, pub_key, "media.json")


artefact_key = post_key


# --- listing ---------------------------------------------------------------------------------------------------
def list_photos(storage: Storage, event_id: str, point_ids, rendition: str = "web") -> list[dict]:
    """Processed photos of the points (`{event}/{point}/processed/{rendition}/…`), newest first."""
    photos = []
    for point in point_ids:
        for obj in storage.list_keys(processed_prefix(event_id, point, rendition)):
            modified = obj["LastModified"]
            photos.append({"key": obj["Key"], "point": point, "size": obj.get("Size", 0),
                           "modified": (modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc))
                           .astimezone(timezone.utc).isoformat()})
    return sorted(photos, key=lambda p: (p["modified"], p["key"]), reverse=True)


def point_names(event) -> dict[str, str]:
    return {p.id: p.display_name for p in event.points}


# --- the form's photo picker -----------------------------------------------------------------------------------
PICKER_VARIABLE = "bridgecast_photo_picker"
EMPTY_PICKER = {"keys": [], "labels": {}}


def photo_label(point_name: str, moment: datetime, tz: str) -> str:
    """«Vĩnh Tường — 08:12 23/05»: where and when (local time of arrival), as staff look for a photo."""
    return f"{point_name} — {local_text(moment, tz, zone=False)[:11]}"


def build_picker(event, photos: list[dict]) -> dict:
    """Choices grouped by point (in the event's order), newest first within a point, labelled for staff; two
    photos of the same point and minute are told apart by a number."""
    names = point_names(event)
    order = {p.id: i for i, p in enumerate(event.points)}
    by_point: dict[str, list[dict]] = {}
    for photo in photos:
        by_point.setdefault(photo["point"], []).append(photo)
    keys, labels, seen = [], {}, {}
    for point in sorted(by_point, key=lambda pid: order.get(pid, len(order))):
        for photo in by_point[point][:PICKER_PER_POINT]:
            if len(keys) >= PICKER_TOTAL:
                break
            label = photo_label(names.get(point, point), datetime.fromisoformat(photo["modified"]), event.timezone)
            seen[label] = seen.get(label, 0) + 1
            keys.append(photo["key"])
            labels[photo["key"]] = label if seen[label] == 1 else f"{label} ({seen[label]})"
    return {"event_id": event.id, "updated_at": datetime.now(timezone.utc).isoformat(), "keys": keys,
            "labels": labels, "points": {pid: len(v) for pid, v in by_point.items()}}


def same_choices(a: dict, b: dict) -> bool:
    return a.get("keys") == b.get("keys") and a.get("labels") == b.get("labels")


def save_picker(picker: dict) -> bool:
    """Store the choices (task code); False when they did not change — the form's DAG then stays as it is."""
    from airflow.sdk import Variable

    stored = Variable.get(PICKER_VARIABLE, default=None)
    if stored is not None and same_choices(json.loads(stored), picker):
        return False
    Variable.set(PICKER_VARIABLE, json.dumps(picker, ensure_ascii=False),
                 description="Ảnh đã xử lý cho biểu mẫu «Lên lịch bài đăng»; DAG bridgecast_photo_picker ghi lại.")
    return True


def read_picker() -> dict:
    """The stored choices, or none yet (a fresh stack before the first refresh, or parsing with no Airflow behind
    it, as in the unit tests): the form then takes keys typed by hand and validation checks that they exist."""
    try:
        from airflow.sdk import Variable

        raw = Variable.get(PICKER_VARIABLE, default=None)
        picker = json.loads(raw) if raw else EMPTY_PICKER
    except Exception as exc:  # parsing must never fail because of the picker
        log.info("photo picker not available (%s): the form takes typed keys", exc)
        return dict(EMPTY_PICKER)
    return picker if isinstance(picker.get("keys"), list) and isinstance(picker.get("labels"), dict) else \
        dict(EMPTY_PICKER)


def thumbnail_key(key: str) -> str | None:
    """The `thumb` rendition of a processed `web` photo (same name, next folder); None for any other key."""
    parts = PurePosixPath(key).parts
    if len(parts) == 5 and parts[2] == "processed" and parts[3] == "web":
        return processed_key(parts[0], parts[1], "thumb", parts[4])
    return None


# --- resolution at publish time --------------------------------------------------------------------------------
def frozen_media(storage: Storage, event_id: str, pub_key: str) -> list[dict] | None:
    key = record_key(event_id, pub_key)
    if not storage.exists(key):
        return None
    return storage.get_json(key)["media"]


def _entry(event, key: str, path: Path) -> dict:
    from bridgecast.storage import sha256_file

    parts = PurePosixPath(key).parts
    point = parts[1] if len(parts) > 2 and parts[0] == event.id else ""
    name = PurePosixPath(key).name
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {"key": key, "sha256": sha256_file(path), "filename": f"{point}-{name}" if point else name,
            "content_type": content_type, "caption": point_names(event).get(point, "")}


def _wanted(storage: Storage, event, content: PostContent) -> list[str]:
    spec = content.media
    if spec.keys:
        missing = [k for k in spec.keys if not storage.exists(k)]
        if missing:
            raise MediaNotReady(content, missing)
        return list(spec.keys)
    points = spec.points or tuple(p.id for p in event.points)
    chosen = list_photos(storage, event.id, points, spec.rendition)[:spec.newest]
    if not chosen:
        raise MediaNotReady(content, [f"{spec.describe()}: chưa có ảnh đã xử lý / no processed photo yet"])
    return [p["key"] for p in reversed(chosen)]  # oldest first: the post reads in the order things happened


def resolve_media(storage: Storage, event, content: PostContent, workdir: Path) -> tuple[list[dict], dict[str, str]]:
    """(frozen entries, local paths) for the post; raises MediaNotReady when they are not all in storage yet."""
    if content.media.empty:
        return [], {}
    entries = frozen_media(storage, event.id, content.key)
    paths: dict[str, str] = {}
    if entries is None:
        for i, key in enumerate(_wanted(storage, event, content)):
            paths[key] = str(storage.download_file(key, workdir / f"{i:02d}-{PurePosixPath(key).name}"))
        entries = [_entry(event, key, Path(paths[key])) for key in paths]
        record = {"key": content.key, "spec": content.media.to_json(), "fingerprint": content.media.fingerprint(),
                  "resolved_at": datetime.now(timezone.utc).isoformat(), "media": entries}
        if not storage.put_json(record_key(event.id, content.key), record, if_absent=True).created:
            entries = frozen_media(storage, event.id, content.key)  # another task froze it first: use theirs
        log.info("'%s': media frozen: %s", content.label, ", ".join(e["key"] for e in entries))
    else:
        stored = storage.get_json(record_key(event.id, content.key))
        if stored.get("fingerprint") != content.media.fingerprint():
            log.warning("'%s': its media were changed in the calendar after they were first used; the published "
                        "post keeps its photos. To post other photos, remove the post and add one with a new id.",
                        content.label)
    for i, entry in enumerate(entries):
        if entry["key"] not in paths:
            paths[entry["key"]] = str(storage.download_file(
                entry["key"], workdir / f"{i:02d}-{PurePosixPath(entry['key']).name}"))
    return entries, paths
