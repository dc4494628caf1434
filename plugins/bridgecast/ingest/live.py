"""Who is live, since when, and which recording segments are safely in S3.

nginx-rtmp tells us through its callbacks: publish (a point went live), publish_done (it stopped) and one
record_done per closed recording segment — the last one may arrive *after* publish_done, so a point only
counts as finished once no segment of it is left on the ingest disk. State is journalled to a JSON file, so
a gateway restart keeps it and segments left behind by a crash are picked up again.

Whose a recording is follows from nginx's own facts, never from who published last: the stream name plus the
nginx client id of the publish session (record_done carries both), or, for a file found on disk, the stream
name plus the session that was live when the file was opened (its name holds the unix time).
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import stat
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

from bridgecast.ingest.keys import PointIdentity

if TYPE_CHECKING:  # the receiver pulls in S3; the gateway's callback side starts before it (restart time)
    from bridgecast.ingest.receiver import Receiver

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class PointLive:
    event_id: str
    point_id: str
    publishing: bool = False
    first_live_at: str | None = None  # first accepted publish: "went live"
    live_since: str | None = None  # current publish session
    last_done_at: str | None = None
    sessions: int = 0  # publishes accepted; > 1 means reconnects
    segments: list[dict] = field(default_factory=list)  # stored segments, in order
    addr: str | None = None
    clientid: str | None = None  # nginx's id of the current (or last) publish session
    key_fingerprint: str | None = None  # which stream key that session proved (not the key itself)
    history: list[dict] = field(default_factory=list)  # recent sessions: {clientid, start, end} (epoch seconds)


class LiveState:
    def __init__(self, journal: str | os.PathLike, recordings_dir: str | os.PathLike):
        self.journal = Path(journal)
        self.recordings_dir = Path(recordings_dir)
        self._lock = threading.Lock()
        self.points: dict[str, PointLive] = {}
        if self.journal.exists():
            for key, value in json.loads(self.journal.read_text()).items():
                self.points[key] = PointLive(**value)

    @staticmethod
    def _key(event_id: str, point_id: str) -> str:
        return f"{event_id}/{point_id}"

    def _save(self) -> None:
        tmp = self.journal.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in self.points.items()}, ensure_ascii=False))
        os.replace(tmp, self.journal)

    def _point(self, who: PointIdentity) -> PointLive:
        key = self._key(who.event_id, who.point_id)
        if key not in self.points:
            self.points[key] = PointLive(who.event_id, who.point_id)
        return self.points[key]

    def published(self, who: PointIdentity, addr: str | None, clientid: str | None = None,
                  key_fingerprint: str | None = None) -> None:
        with self._lock:
            p = self._point(who)
            now = _now()
            p.publishing, p.live_since, p.addr = True, now, addr
            p.first_live_at = p.first_live_at or now
            p.sessions += 1
            p.clientid, p.key_fingerprint = clientid, key_fingerprint
            p.history = [*p.history, {"clientid": clientid, "start": time.time(), "end": None}][-HISTORY:]
            self._save()

    def publish_done(self, stream: str, clientid: str | None) -> PointIdentity | None:
        """The session `clientid` of stream `stream` ended. Only that session: a second publisher that nginx
        refused ("already publishing") also sends publish_done, and must not end the live one's."""
        with self._lock:
            p = next((p for p in self.points.values()
                      if p.point_id == stream and p.publishing and p.clientid == clientid), None)
            if p is None:
                return None
            p.publishing, p.last_done_at = False, _now()
            if p.history and p.history[-1]["clientid"] == clientid:
                p.history[-1]["end"] = time.time()
            self._save()
            return PointIdentity(p.event_id, p.point_id, None)

    def owner_of_recording(self, stream: str, clientid: str | None) -> PointIdentity | None:
        """Whose recording nginx just closed: the point of that stream whose publish session had this client id
        (the latest such session, should nginx have restarted and reused the id)."""
        if not clientid:
            return None
        with self._lock:
            matches = [(s["start"], p) for p in self.points.values() if p.point_id == stream
                       for s in p.history if s["clientid"] == clientid]
        if not matches:
            return None
        p = max(matches, key=lambda m: m[0])[1]
        return PointIdentity(p.event_id, p.point_id, None)

    def owner_of_file(self, stream: str, opened_at: float) -> PointIdentity | None:
        """Whose segment a file left on disk is: the point of that stream whose session was live when nginx
        opened it (slack for clocks and the callback's latency)."""
        with self._lock:
            matches = [(s["start"], p) for p in self.points.values() if p.point_id == stream
                       for s in p.history
                       if s["start"] - OPEN_SLACK_S <= opened_at <= (s["end"] or time.time()) + OPEN_SLACK_S]
        if not matches:
            return None
        p = max(matches, key=lambda m: m[0])[1]
        return PointIdentity(p.event_id, p.point_id, None)

    def live_sessions(self) -> list[PointLive]:
        """Copies of the points live right now (for the revoked-key check)."""
        with self._lock:
            return [PointLive(**asdict(p)) for p in self.points.values() if p.publishing]

    def segment_stored(self, who: PointIdentity, segment: dict) -> None:
        with self._lock:
            self._point(who).segments.append(segment)
            self._save()

    def local_segments(self, point_id: str) -> list[Path]:
        return sorted(p for p in self.recordings_dir.glob(f"{point_id}-*.flv") if segment_belongs_to(p, point_id))

    def snapshot(self, event_id: str | None = None) -> list[dict]:
        with self._lock:
            points = [p for p in self.points.values() if event_id in (None, p.event_id)]
            out = []
            for p in points:
                local = self.local_segments(p.point_id)
                recording_bytes = sum(f.stat().st_size for f in local if f.exists())
                out.append({**asdict(p), "segments_pending": len(local), "recording_bytes": recording_bytes,
                            "finished": bool(p.last_done_at) and not p.publishing and not local})
        return out


class SegmentUploader:
    """Uploads closed recording segments in the background: nginx's callback must be answered at once."""

    def __init__(self, receiver: Receiver | None, live: LiveState, keep_local: bool = False):
        # Without a receiver yet (the gateway still connecting to S3), segments queue up until start().
        self.receiver, self.live, self.keep_local = receiver, live, keep_local
        self._queue: queue.Queue[tuple[Path, PointIdentity]] = queue.Queue()
        self._inflight: set[Path] = set()
        self._lock = threading.Lock()

    def submit(self, path: Path, who: PointIdentity) -> None:
        with self._lock:
            if path in self._inflight:
                return
            self._inflight.add(path)
        self._queue.put((path, who))

    def start(self, workers: int = 2) -> None:
        if self.receiver is None:
            raise RuntimeError("the segment uploader needs a receiver (S3) before it starts")
        for i in range(workers):
            threading.Thread(target=self._run, name=f"segment-upload-{i}", daemon=True).start()
        threading.Thread(target=self._sweep, name="segment-sweep", daemon=True).start()

    def _run(self) -> None:
        while True:
            path, who = self._queue.get()
            try:
                self._upload(path, who)
            except Exception:
                log.exception("segment %s not stored yet; the sweep will retry", path)
            finally:
                with self._lock:
                    self._inflight.discard(path)

    def _upload(self, path: Path, who: PointIdentity) -> None:
        if not path.exists():
            return
        if path.stat().st_size == 0:  # a publish that never sent data: nothing to keep
            path.unlink()
            return
        got = self.receiver.receive(path, who, kind="recording", ext="flv", content_type="video/x-flv",
                                    source="rtmp", original_name=path.name)
        self.live.segment_stored(who, {"key": got.key, "sha256": got.sha256, "size": got.size,
                                       "file": path.name, "stored_at": _now()})
        if not self.keep_local:
            path.unlink()

    def _sweep(self) -> None:
        """Pick up segments nginx closed while we were down (no callback will come for them)."""
        while True:
            time.sleep(15)
            cutoff = time.time() - 30
            for path in sorted(self.live.recordings_dir.glob("*.flv")):
                try:
                    if path.is_symlink() or not path.is_file():
                        continue  # nginx writes regular files; anything else was put there by someone else
                    if path.stat().st_mtime > cutoff or _is_being_written(path):
                        continue
                except OSError:
                    continue
                who = self._identity_for(path)
                if who:
                    self.submit(path, who)

    def _identity_for(self, path: Path) -> PointIdentity | None:
        # Stream names are point ids, which may themselves contain hyphens: match the longest known id.
        with self.live._lock:
            known = sorted({p.point_id for p in self.live.points.values()}, key=len, reverse=True)
        for pid in known:
            if segment_belongs_to(path, pid):
                opened_at = segment_opened_at(path, pid)
                return self.live.owner_of_file(pid, opened_at) if opened_at is not None else None
        return None


HISTORY = 20  # publish sessions remembered per point (reconnects of one morning)
OPEN_SLACK_S = 5.0


def segment_belongs_to(path: Path, point_id: str) -> bool:
    """nginx names segments `<stream>-<unix time>-<YYYYmmddTHHMMSS>.flv` (record_unique + strftime suffix)."""
    return re.fullmatch(rf"{re.escape(point_id)}(-\d+)?-\d{{8}}T\d{{6}}\.flv", path.name) is not None


class NotARecording(ValueError):
    """A path a callback (or the disk) offered as a recording that is not one of nginx's segments here."""


def recording_file(path_text: str, recordings_dir: Path, stream: str) -> Path:
    """The segment file `path_text` names, if and only if it is a regular file directly in `recordings_dir`
    (symlinks resolved and refused, no `..`) named as nginx names a segment of `stream`. Else NotARecording.

    The gateway uploads and then deletes what it is given: without this, a forged callback could make it read
    and delete any file the gateway can reach."""
    if not path_text or "\x00" in path_text:
        raise NotARecording("empty path")
    raw = Path(path_text)
    if not raw.is_absolute() or ".." in raw.parts:
        raise NotARecording("not an absolute path without '..'")
    root = Path(os.path.realpath(recordings_dir))
    if Path(os.path.realpath(raw.parent)) != root or os.path.realpath(raw) != str(root / raw.name):
        raise NotARecording(f"not directly in {root} (or a symlink)")
    try:
        mode = os.lstat(raw).st_mode
    except OSError:
        raise NotARecording("no such file") from None
    if not stat.S_ISREG(mode):
        raise NotARecording("not a regular file")
    if not segment_belongs_to(raw, stream):
        raise NotARecording(f"not named like a segment of stream {stream!r}")
    return root / raw.name


def segment_opened_at(path: Path, point_id: str) -> float | None:
    """The unix time nginx put in the segment's name when it opened it (`record_unique on`)."""
    match = re.fullmatch(rf"{re.escape(point_id)}-(\d+)-\d{{8}}T\d{{6}}\.flv", path.name)
    return float(match.group(1)) if match else None


def _is_being_written(path: Path) -> bool:
    """nginx holds an fcntl lock on the file it records into (`record_lock on`)."""
    import fcntl

    try:
        with open(path, "rb") as fh:
            fcntl.lockf(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.lockf(fh, fcntl.LOCK_UN)
    except OSError:
        return True
    return False
