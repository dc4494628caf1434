"""Resumable uploads (tus-style): a field team on a shaky 4G link continues a big video where it broke off.

A session is created for (point, file fingerprint); chunks are appended at the offset the server reports;
the spool lives on the gateway's own disk under var/ and survives a gateway restart. The same fingerprint
resumes the same session, so a reloaded page or a new browser tab continues instead of starting over.

Disk and loop hygiene: every file operation runs in a worker thread (the gateway's event loop keeps answering
while a chunk is fsynced), and sessions untouched for `DEFAULT_TTL_S` are swept with their bytes.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

CHUNK_SIZE = 8 * 1024 * 1024  # what the page sends per request; the server accepts any size
FLUSH_BYTES = 1024 * 1024  # bytes gathered from the socket before one write in a worker thread
DEFAULT_TTL_S = 24 * 3600  # an upload nobody touched for a day is abandoned (its page was closed for good)
SESSION_ID = re.compile(r"[0-9a-f]{32}")


class OffsetMismatch(Exception):
    def __init__(self, expected: int):
        super().__init__(f"chunk offset does not match; continue from byte {expected}")
        self.expected = expected


class TooManyBytes(ValueError):
    """More bytes than the session declared."""


@dataclass
class UploadSession:
    id: str
    event_id: str
    point_id: str
    filename: str
    size: int
    content_type: str
    created_at: str
    offset: int = 0
    result: dict | None = None  # filled once the file is complete and received
    checked_content: bool = False  # the first bytes were judged (a file that named no type is judged by them)

    @property
    def complete(self) -> bool:
        return self.offset >= self.size

    @classmethod
    def from_json(cls, data: dict) -> "UploadSession":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class SessionStore:
    def __init__(self, spool: str | os.PathLike):
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, session_id: str) -> asyncio.Lock:
        """One writer per session (two tabs resuming the same file must not interleave chunks)."""
        return self._locks.setdefault(session_id, asyncio.Lock())

    def _meta(self, session_id: str) -> Path:
        return self.spool / f"{session_id}.json"

    def data_path(self, session_id: str) -> Path:
        return self.spool / f"{session_id}.part"

    def open(self, *, event_id: str, point_id: str, filename: str, size: int, content_type: str,
             fingerprint: str) -> UploadSession:
        """Create a session, or return the unfinished one for the same file of the same point."""
        session_id = hashlib.sha256(f"{event_id}\0{point_id}\0{filename}\0{size}\0{fingerprint}".encode(
            "utf-8", "surrogatepass")).hexdigest()[:32]
        existing = self.get(session_id)
        if existing is not None and existing.result is None and self.data_path(session_id).exists():
            existing.offset = self.data_path(session_id).stat().st_size
            self._write(existing)
            return existing
        session = UploadSession(session_id, event_id, point_id, filename, size, content_type,
                                datetime.now(timezone.utc).isoformat())
        self.data_path(session_id).write_bytes(b"")
        self._write(session)
        return session

    def get(self, session_id: str) -> UploadSession | None:
        if not SESSION_ID.fullmatch(session_id or ""):
            return None
        try:
            return UploadSession.from_json(json.loads(self._meta(session_id).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def offset_of(self, session: UploadSession) -> int:
        data = self.data_path(session.id)
        return data.stat().st_size if data.exists() else session.offset

    def head(self, session: UploadSession, n: int = 512) -> bytes:
        with open(self.data_path(session.id), "rb") as fh:
            return fh.read(n)

    async def append(self, session: UploadSession, offset: int, chunks, *,
                     declared_length: int | None = None) -> UploadSession:
        """Append the async stream `chunks` at `offset` (must equal what we have). Caller holds the lock.

        A request that announces more bytes than the session has left is refused before any is read. Bytes are
        fsynced per request, so what the server acknowledged survives a crash of the gateway; bytes of a request
        cut off half way are kept too (the client continues from the offset the server reports)."""
        path = self.data_path(session.id)
        have = await asyncio.to_thread(lambda: path.stat().st_size)
        if offset != have:
            raise OffsetMismatch(have)
        if declared_length is not None and have + declared_length > session.size:
            raise TooManyBytes(f"more bytes than the declared size {session.size}")
        fh = await asyncio.to_thread(open, path, "ab")
        written, buffer = have, bytearray()
        try:
            async for chunk in chunks:
                if written + len(buffer) + len(chunk) > session.size:
                    raise TooManyBytes(f"more bytes than the declared size {session.size}")
                buffer += chunk
                if len(buffer) >= FLUSH_BYTES:
                    await asyncio.to_thread(fh.write, bytes(buffer))
                    written, buffer = written + len(buffer), bytearray()
        finally:
            tail, buffer = bytes(buffer), bytearray()
            await asyncio.to_thread(_write_and_close, fh, tail)
            written += len(tail)
        session.offset = written
        await asyncio.to_thread(self._write, session)
        return session

    def finish(self, session: UploadSession, result: dict) -> None:
        session.result = result
        self._write(session)
        self.data_path(session.id).unlink(missing_ok=True)

    def discard(self, session: UploadSession) -> None:
        self.data_path(session.id).unlink(missing_ok=True)
        self._meta(session.id).unlink(missing_ok=True)
        self._locks.pop(session.id, None)

    def save(self, session: UploadSession) -> None:
        self._write(session)

    def sweep(self, max_age_s: float = DEFAULT_TTL_S, now: float | None = None) -> list[str]:
        """Remove sessions (and their bytes) nobody has touched for `max_age_s`; returns their ids.

        One pass over the spool, a stat per file: finished sessions stay (their result answers a repeated
        request) for a day, so on the event day the spool holds thousands of them."""
        now = time.time() if now is None else now
        touched: dict[str, float] = {}  # session id → the last time its meta or bytes changed
        metas: set[str] = set()
        leftovers: list[tuple[str, float]] = []  # .tmp files of a crashed write
        with os.scandir(self.spool) as entries:
            for entry in entries:
                stem, dot, suffix = entry.name.rpartition(".")
                if not dot or suffix not in ("json", "part", "tmp"):
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except OSError:
                    continue
                if suffix == "tmp":
                    leftovers.append((entry.path, mtime))
                    continue
                touched[stem] = max(mtime, touched.get(stem, mtime))
                if suffix == "json":
                    metas.add(stem)
        removed = []
        for session_id, mtime in touched.items():
            if now - mtime > max_age_s:  # bytes without a meta file too (a crash half way through a discard)
                self.data_path(session_id).unlink(missing_ok=True)
                if session_id in metas:
                    self._meta(session_id).unlink(missing_ok=True)
                    removed.append(session_id)
                self._locks.pop(session_id, None)
        for path, mtime in leftovers:
            if now - mtime > max_age_s:
                Path(path).unlink(missing_ok=True)
        return removed

    def _write(self, session: UploadSession) -> None:
        tmp = self._meta(session.id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(session), ensure_ascii=False))
        os.replace(tmp, self._meta(session.id))


def _write_and_close(fh, tail: bytes) -> None:
    try:
        if tail:
            fh.write(tail)
        fh.flush()
        os.fsync(fh.fileno())
    finally:
        fh.close()
