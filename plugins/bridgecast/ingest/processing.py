"""Process raw assets announced by the gateway: validate with the media toolkit, derive renditions, or quarantine.

Idempotent per asset: a manifest already `processed` or `quarantined` is left alone, so reruns and duplicate
asset events cost one S3 read each. Each asset is downloaded once (a photo into memory, a video into its own
scratch folder's `source/`; derivatives in `derived/`), hashed never (the gateway's SHA-256 names it), and each
rendition uploaded once; everything that must outlive the task is in S3. A file at fault is quarantined with a
reason the team can act on (Vietnamese, from media.team_message) and the technical detail for operators
(`reason_detail`), and never fails the batch. A failure that is not the file's — S3 unreachable, throttling or
5xx, a connection reset, this machine — fails the batch (`IngestRetry`) once the rest is done, so Airflow retries
it; the first such failure stops the batch taking more work, since the next items would wait out the same outage.
What still slips through (retries exhausted, an event no run took) is re-offered by `stuck_manifests` (the
sweep). Long steps log throttled progress lines. Airflow-free except `linger_feed`, which reads the task context
the DAG hands it.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridgecast.event import MediaSettings
from bridgecast.ingest.assets import assets_in
from bridgecast.manifest import PROCESSED, QUARANTINED, RECEIVED, ManifestStore
from bridgecast.objects import is_manifest_key, manifest_prefix, processed_key, quarantine_key
from bridgecast.storage import Storage, is_transient

log = logging.getLogger(__name__)

# Photos per mapped task. A task costs seconds of start-up (interpreter, DAG parse, clients) whatever it does,
# so a burst is cut into at most PHOTO_SPREAD batches (enough to keep a small deployment's task slots busy)
# until batches reach PHOTO_CHUNK_MAX; a quiet moment's few photos go in one batch.
PHOTO_CHUNK_MIN, PHOTO_CHUNK_MAX, PHOTO_SPREAD = 16, 64, 4
PHOTO_WORKERS = 3  # threads per task (see process_batch)
RECORDING_CHUNK = 16  # recording segments per task (see plan_batches)
# A run's first task stays on for new arrivals (see process_batch and _linger): it polls every LINGER_POLL_S
# while fewer than LINGER_BACKLOG assets wait in it, ends when none came for LINGER_IDLE_S, and never stays
# longer than LINGER_MAX_S.
LINGER_POLL_S, LINGER_IDLE_S, LINGER_MAX_S, LINGER_BACKLOG = 1.0, 5.0, 300.0, 4 * PHOTO_WORKERS
EVENT_FIELDS = ("event", "point", "kind", "key", "sha256")  # what the gateway announces of every asset
# S3 transfers above this log their progress (a 12 MP photo is ~4 MB; a minute of phone video ~100 MB).
PROGRESS_MIN_BYTES = 32 * 1024 * 1024


class IngestRetry(RuntimeError):
    """Some assets of the batch hit a failure that is not theirs (storage down, this machine): retry the task."""


class RawObjectMissing(Exception):
    """The manifest names a raw object that is not in storage (deleted by hand, a lost bucket): the file's fault."""

    reason = "raw_missing"
    team_message = "Tệp gốc không còn trong kho lưu trữ — hãy gửi lại tệp gốc từ máy"


def photo_chunk(count: int) -> int:
    return min(PHOTO_CHUNK_MAX, max(PHOTO_CHUNK_MIN, math.ceil(count / PHOTO_SPREAD)))


def announced(events: list[dict]) -> list[dict]:
    """The assets a run's asset events announce (one or several per event, see assets_in), each once, in arrival
    order (trimmed to EVENT_FIELDS)."""
    seen, unique = set(), []
    for item in (item for extra in events for item in assets_in(extra)):
        if not all(item.get(f) for f in EVENT_FIELDS):
            log.warning("ignoring an asset event without %s (not from the gateway?): %s", "/".join(EVENT_FIELDS), item)
            continue
        if item["sha256"] not in seen:  # the same asset announced twice (outbox redelivery, a late event)
            seen.add(item["sha256"])
            unique.append({f: item[f] for f in EVENT_FIELDS})
    return unique


def plan_batches(items: list[dict], chunk: int | None = None) -> list[list[dict]]:
    """Group assets into task-sized batches: photos in chunks, each team video alone, recording segments in runs of
    RECORDING_CHUNK — in that order, which is the order a lane works its batches in.

    Photos are dealt out in turn (1st to batch 0, 2nd to batch 1, …): batches run side by side and each works
    oldest first, so the run as a whole finishes photos roughly in the order they arrived. A team video (minutes of
    transcoding, and the galleries wait for it) goes before the recording segments that closed with it: the
    segments of every point close together (nginx's `record_interval`) and are remuxed in well under a second each,
    so one task per segment would spend ~1.5 CPU-s of task start-up on 0.15 of work — 64 of them, queued one at a
    time in the video lane, held a team video 4 minutes behind them in the rehearsal."""
    photos = [i for i in items if i["kind"] == "photo"]
    videos = [[i] for i in items if i["kind"] not in ("photo", "recording")]
    recordings = [i for i in items if i["kind"] == "recording"]
    count = math.ceil(len(photos) / (chunk or photo_chunk(len(photos))))
    return ([photos[k::count] for k in range(count)] + videos
            + [recordings[k:k + RECORDING_CHUNK] for k in range(0, len(recordings), RECORDING_CHUNK)])


def still_to_do(items: list[dict], storage: Storage, workers: int = 16) -> list[dict]:
    """The items whose manifest is not processed or quarantined yet (a missing manifest counts as to do).

    A run also takes events announced after it was triggered (see the DAG), so the next run is handed many
    assets that are already done; dropping them here saves a task start-up per batch of them."""
    manifests = ManifestStore(storage)

    def done(item: dict) -> bool:
        manifest = manifests.get(item["event"], item["point"], item["sha256"])
        return manifest is not None and manifest["status"] in (PROCESSED, QUARANTINED)

    with ThreadPoolExecutor(workers) as pool:
        finished = list(pool.map(done, items))
    return [item for item, skip in zip(items, finished) if not skip]


def stuck_manifests(storage: Storage, event_id: str, older_than: timedelta, now: datetime | None = None,
                    workers: int = 16) -> list[dict]:
    """The assets of `event_id` still `received` (never processed nor quarantined) whose manifest nobody wrote for
    `older_than`, as asset-event extras (EVENT_FIELDS) to announce again. Re-offering is safe: processed keys
    are content-addressed, written if absent, and the manifest moves to a final state once (conditional PUT)."""
    now = now or datetime.now(timezone.utc)
    old = [o["Key"] for o in storage.list_keys(manifest_prefix(event_id))
           if is_manifest_key(o["Key"]) and now - o["LastModified"] >= older_than]

    def waiting(key: str) -> dict | None:
        manifest = storage.get_json(key)
        if manifest.get("status") != RECEIVED:
            return None
        return {"event": manifest["event_id"], "point": manifest["point_id"], "kind": manifest["kind"],
                "key": manifest["key"], "sha256": manifest["sha256"]}

    with ThreadPoolExecutor(workers) as pool:
        return [item for item in pool.map(waiting, old) if item]


def batch_label(batch: list[dict]) -> str:
    """How a mapped task shows in the UI: `12 photo · tam-dao` or `16 photo · 5 points`."""
    kinds = sorted({i["kind"] for i in batch})
    points = sorted({i["point"] for i in batch})
    where = points[0] if len(points) == 1 else f"{len(points)} points"
    return f"{len(batch)} {'/'.join(kinds)} · {where}"


class EventFeed:
    """Assets announced after `since`, for a task that stays on to take new arrivals (see process_batch).

    `fetch(since_iso)` returns (timestamp, extra) pairs of the raw assets' events at or after `since`; each
    call asks only from the newest event seen (minus a margin, as events commit slightly out of timestamp
    order), and `skip` holds what must not be handed out (already taken, or another batch's)."""

    MARGIN = timedelta(seconds=5)

    def __init__(self, fetch: Callable[[str], list[tuple[datetime, dict]]], since: datetime, skip: set[str]):
        self.fetch, self.since, self.skip = fetch, since, set(skip)

    def __call__(self) -> list[dict]:
        pairs = self.fetch(self.since.isoformat())
        if pairs:
            self.since = max(self.since, max(ts for ts, _ in pairs) - self.MARGIN)
        fresh = [item for item in announced([extra for _, extra in pairs]) if item["sha256"] not in self.skip]
        self.skip.update(item["sha256"] for item in fresh)
        return fresh


def linger_feed(ti, dag_run, inlet_events, assets) -> EventFeed | None:
    """The feed for the task that stays on: the first batch's, in a current run (a rerun of an old run only
    redoes its own batches). It leaves the run's other batches to their own tasks."""
    if ti.map_index != 0 or datetime.now(timezone.utc) - dag_run.run_after > timedelta(seconds=LINGER_MAX_S):
        return None
    planned = {item["sha256"] for batch in ti.xcom_pull(task_ids="collect_batches") or [] for item in batch}

    def fetch(since: str) -> list[tuple[datetime, dict]]:
        return [(e.timestamp, dict(e.extra)) for asset in assets for e in inlet_events[asset].after(since)]

    return EventFeed(fetch, dag_run.run_after, planned)


def process_batch(batch: list[dict], storage: Storage, policy: MediaSettings, *, feed: EventFeed | None = None,
                  workers: int = PHOTO_WORKERS) -> list[dict]:
    """Process a batch (oldest first) and, given a `feed`, keep taking new arrivals until none came for
    LINGER_IDLE_S. One bad asset never stops the others; results come in the order work was taken.

    Photos go through a few threads: S3 round trips overlap, and Pillow releases the GIL while it decodes,
    resizes and encodes, so one task uses the machine's cores without a process start-up per photo. Staying
    on for new arrivals turns a burst into a stream: a photo is picked up within a second of its asset event
    instead of waiting for the next run, which only starts once this one has ended (max_active_runs=1)."""
    from media.run import in_background

    manifests = ManifestStore(storage)
    numbers = itertools.count()
    failing = threading.Event()  # set by the first failure that is not a file's: take no more work
    with tempfile.TemporaryDirectory(prefix="bridgecast-ingest-") as tmp:
        def one(item: dict) -> dict:
            if failing.is_set():  # storage is down: this one would wait out the same timeouts; the retry takes it
                return {"key": item["key"], "status": "deferred"}
            t0 = time.monotonic()
            work = Path(tmp) / str(next(numbers))  # each asset its own directory: threads never share a file
            work.mkdir()
            try:
                # a recording segment's remux is the archive, which nobody waits for: it yields the CPU to the
                # wrap-up (whose highlights are cut from the raw segments) and to team videos
                with in_background() if item["kind"] == "recording" else contextlib.nullcontext():
                    outcome = _process_one(item, work, storage, manifests, policy)
            except Exception as exc:  # S3, the manifest store or this machine failing: the task fails after the
                failing.set()  # batch and is retried
                kind = "transient storage error" if is_transient(exc) else "failure"
                log.exception("processing %s failed (%s): the task is retried", item["key"], kind)
                outcome = {"key": item["key"], "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            finally:
                shutil.rmtree(work, ignore_errors=True)  # a lingering task takes many videos: free each one's disk
            outcome["seconds"] = round(time.monotonic() - t0, 3)
            log.info("%s → %s (%.2fs)", item["key"], outcome["status"], outcome["seconds"])
            if outcome["status"] == QUARANTINED and not outcome.get("skipped"):
                log.warning("quarantined %s [%s]: %s", item["key"], outcome["reason_code"], outcome["reason"])
            return outcome

        cpu0, wall0 = time.process_time(), time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            taken = [pool.submit(one, item) for item in batch]
            if feed is not None:
                _linger(pool, one, taken, feed, stop=failing)
            results = [f.result() for f in taken]
        # What the batch cost this process (all threads), for sizing: compare with bench/media_photos.py.
        cpu = time.process_time() - cpu0
        log.info("batch done: %d assets in %.1f s, %.2f CPU-s (%.3f per asset)", len(results),
                 time.monotonic() - wall0, cpu, cpu / max(1, len(results)))
        unfinished = [r for r in results if r["status"] in ("error", "deferred")]
        if unfinished:
            errors = sorted({r["error"] for r in unfinished if r.get("error")})
            raise IngestRetry(f"{len(unfinished)} of {len(results)} assets not processed yet (not their files' "
                              f"fault: {'; '.join(errors)[:500]}); the task is retried and skips what is done")
        return results


def _linger(pool: ThreadPoolExecutor, one, taken: list, feed: EventFeed,
            stop: threading.Event | None = None) -> None:
    """Feed new arrivals into `pool` whenever it has room (at most LINGER_BACKLOG waiting: the rest wait in
    Airflow, in arrival order). Ends when nothing came for LINGER_IDLE_S and all is done, or after
    LINGER_MAX_S, so that runs still turn over and a long burst is spread over a new run's parallel batches, or as
    soon as `stop` is set (storage is down: the task's retry takes the arrivals again)."""
    stop = stop or threading.Event()
    started = last_new = time.monotonic()
    while time.monotonic() - started < LINGER_MAX_S and not stop.is_set():
        backlog = sum(not f.done() for f in taken)
        if backlog == 0 and time.monotonic() - last_new > LINGER_IDLE_S:
            return
        if backlog > LINGER_BACKLOG:
            last_new = time.monotonic()  # not looking is not "nothing came": look again once there is room
        else:
            try:
                fresh = feed()
            except Exception as exc:  # Airflow's API restarting: later arrivals are the next run's, none lost
                log.warning("cannot ask Airflow for new arrivals (%s); leaving them to the next run", exc)
                return
            if fresh:
                log.info("taking %d new arrivals", len(fresh))
                taken.extend(pool.submit(one, item) for item in fresh)
                last_new = time.monotonic()
        time.sleep(LINGER_POLL_S)


def _process_one(item: dict, work: Path, storage: Storage, manifests: ManifestStore, policy: MediaSettings) -> dict:
    import media

    event_id, point_id, sha256 = item["event"], item["point"], item["sha256"]
    found = manifests.get_versioned(event_id, point_id, sha256)
    if found is None:  # not the gateway's (it writes the manifest before it announces): nothing to retry
        log.warning("no manifest for %s: an asset event the gateway did not send; ignored", item["key"])
        return {"key": item["key"], "status": "ignored", "reason": "no manifest"}
    manifest = found[0]
    if manifest["status"] in (PROCESSED, QUARANTINED):
        return {"key": item["key"], "status": manifest["status"], "skipped": True}

    # What was downloaded and what is derived from it live in separate folders, so no output name (a processed
    # `.mp4` of an uploaded `.mp4`) can ever be the input's: ffmpeg would be asked to write over what it reads.
    source_dir, derived = work / "source", work / "derived"
    source_dir.mkdir()
    derived.mkdir()
    src = source_dir / f"original{Path(item['key']).suffix.lower()}"
    try:
        photo = _download(storage, item, src, manifest.get("size"))
    except RawObjectMissing as exc:
        return _quarantine(item, exc, found, storage, manifests, src, work)
    try:
        if item["kind"] == "photo":
            renditions, info = _photo(src, photo, derived, storage, event_id, point_id, sha256, policy)
        else:
            renditions, info = _video(src, derived, storage, event_id, point_id, sha256, item["kind"], item["key"])
    except media.MediaError as exc:
        if not media.blames_input(exc):
            raise  # this machine failed (disk full…), not the file: the task fails and is retried
        return _quarantine(item, exc, found, storage, manifests, src, work)
    manifests.set_status(event_id, point_id, sha256, PROCESSED, base=found, renditions=renditions, media=info)
    return {"key": item["key"], "status": PROCESSED, "renditions": renditions}


def _download(storage: Storage, item: dict, dst: Path, size: int | None) -> bytes | None:
    """Fetch the raw object once. A photo (a few MB) is one GET without the multipart machinery's threads, and
    its bytes are returned (decoded from memory: writing them to `dst` and reading them back cost ~3 ms a photo);
    a video streams to `dst`, with progress lines when it is big enough to take a while. A raw object that is not
    there is RawObjectMissing (a permanent fault of this asset); storage being down is left to the caller."""
    from botocore.exceptions import ClientError

    try:
        if item["kind"] == "photo":
            return storage.get_bytes(item["key"])
        progress = _transfer_progress(f"downloading {item['key']}", size)
        storage.download_file(item["key"], dst, progress=progress.transferred if progress else None)
        return None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            raise RawObjectMissing(f"raw object {item['key']} is not in storage") from exc
        raise


def _quarantine(item: dict, exc, found: tuple[dict, str], storage: Storage, manifests: ManifestStore,
                src: Path, work: Path) -> dict:
    """Hold the asset back: the team reads why in their words; operators get the technical detail beside it."""
    event_id, point_id, sha256 = item["event"], item["point"], item["sha256"]
    reason = quarantine_reason(found[0].get("original_name") or Path(item["key"]).name, exc)
    # The toolkit's full message (ffmpeg's stderr tail included), naming the raw object, not our scratch files.
    detail = str(exc).replace(str(src), item["key"]).replace(str(work), "<scratch>")
    # The record first: whoever sees the manifest say "quarantined" finds the record beside it.
    storage.put_json(quarantine_key(event_id, point_id, sha256),
                     {"key": item["key"], "reason": reason, "reason_code": exc.reason, "detail": detail})
    manifests.set_status(event_id, point_id, sha256, QUARANTINED, base=found, reason=reason,
                         reason_code=exc.reason, reason_detail=detail)
    return {"key": item["key"], "status": QUARANTINED, "reason": reason, "reason_code": exc.reason}


def quarantine_reason(original_name: str, exc) -> str:
    """What the team reads on the upload page: their file's name, what is wrong and what to do, in Vietnamese
    (media.team_message: one table for every photo, video and ffmpeg failure)."""
    import media

    if isinstance(exc, RawObjectMissing):
        return f"{original_name}: {exc.team_message}"
    return f"{original_name}: {media.team_message(exc)}"


def _photo(src: Path, data: bytes, derived: Path, storage: Storage, event_id, point_id, sha256,
           policy: MediaSettings):
    import media

    # The gateway hashed the upload (the sha256 is the asset's name): no second hash of the same bytes here.
    result = media.process_photo(src, derived, media.PhotoPolicy(max_pixels=policy.max_photo_pixels,
                                                                 watermark_text=policy.watermark_text,
                                                                 watermark_logo=policy.watermark_logo),
                                 sha256=sha256, data=data)
    renditions = {}
    for name, path in result.renditions.items():
        key = processed_key(event_id, point_id, name, f"{sha256[:16]}.jpg")
        # Same bytes for the same photo and policy: an existing key (a rerun after a crash) is kept, not rewritten.
        storage.put_bytes(key, path.read_bytes(), content_type="image/jpeg", if_absent=True)
        renditions[name] = key
    return renditions, {"width": result.width, "height": result.height, "type": result.detected_type}


def _video(src: Path, derived: Path, storage: Storage, event_id, point_id, sha256, kind: str, raw_key: str):
    """Recordings and team videos become indexed MP4 in the house profile (stream copy when they conform), with a
    poster frame. Long steps log their progress (percent, speed, ETA) in the task log."""
    import media

    info = media.probe(src)
    house = derived / "house.mp4"
    output, path_taken, deviations = _to_house_profile(src, house, info, Path(raw_key).name)
    src.unlink()  # a phone video can be gigabytes: the scratch disk holds one copy at a time
    rendition = "recording" if kind == "recording" else "video"
    # Named after the raw key (`<received at>_<sha256[:12]>`): a point's segments list in the order they arrived.
    key = processed_key(event_id, point_id, rendition, f"{Path(raw_key).stem}.mp4")
    progress = _transfer_progress(f"uploading {key}", house.stat().st_size)
    storage.upload_file(house, key, content_type="video/mp4", if_absent=True,
                        progress=progress.transferred if progress else None)
    poster = derived / "poster.jpg"
    media.poster_frame(house, poster)
    poster_key = processed_key(event_id, point_id, "poster", f"{sha256[:16]}.jpg")
    storage.upload_file(poster, poster_key, content_type="image/jpeg", if_absent=True)
    facts = {"duration": info.duration, "width": info.width, "height": info.height, "path": path_taken,
             "deviations": [str(d) for d in deviations],
             "source": {"codec": info.video.codec, "rotation": info.video.rotation, "vfr": info.video.vfr},
             "processed": {"width": output.width, "height": output.height, "duration": output.duration}}
    return {rendition: key, "poster": poster_key}, facts


def _to_house_profile(src: Path, house: Path, info, name: str):
    """(output info, "normalized" | "remuxed", deviations): re-encode what deviates, stream-copy what conforms."""
    import media

    deviations = media.conformance(info)
    if deviations:
        step = media.ProgressLog(log, f"normalising {name} to the house profile ({len(deviations)} deviations)")
        output = media.normalize(src, house, on_progress=step.ffmpeg, source_info=info).output
    else:
        step = media.ProgressLog(log, f"remuxing {name} (already in the house profile)")
        output = media.probe(media.remux(src, house, on_progress=step.ffmpeg, source_info=info))
    step.finish()
    return output, "normalized" if deviations else "remuxed", deviations


def _transfer_progress(what: str, size: int | None):
    """A ProgressLog for an S3 transfer big enough to take a while; None (no lines) for small ones."""
    import media

    if not size or size < PROGRESS_MIN_BYTES:
        return None
    return media.ProgressLog(log, what, total_bytes=size)
