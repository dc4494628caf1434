"""Resumable uploads (tus-style): a field team on a shaky 4G link continues a big video where it broke off.

A session is created for (point, file fingerprint); chunks are appended at the offset the server reports;
the spool lives on the gateway's own disk under var/ and survives a gateway restart. The same fingerprint
resumes the same session, so a reloaded page or a new browser tab continues instead of starting over.
"""
from __future__ import annotations

import hashlib
import json
import os
import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

CHUNK_SIZE = 8 * 1024 * 1024  # what the page sends per request; the server accepts any size


class OffsetMismatch(Exception):
    def __init__(self, expected: int):
        super().__init__(f"chunk offset does not match; continue from byte {expected}")
        self.expected = expected


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

    @property
    def complete(self) -> bool:
        return self.offset >= self.size


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
        session_id = hashlib.sha256(f"{event_id}\0{point_id}\0{filename}\0{size}\0{fingerprint}".encode()
                                    ).hexdigest()[:32]
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
        try:
            return UploadSession(**json.loads(self._meta(session_id).read_text()))
        except (FileNotFoundError, ValueError):
            return None

    async def append(self, session: UploadSession, offset: int, chunks) -> UploadSession:
        """Append the async stream `chunks` at `offset` (must equal what we have). Caller holds the lock.

        Bytes are fsynced per request, so what the server acknowledged survives a crash of the gateway."""
        path = self.data_path(session.id)
        have = path.stat().st_size
        if offset != have:
            raise OffsetMismatch(have)
        written = have
        with open(path, "ab") as fh:
            async for chunk in chunks:
                if written + len(chunk) > session.size:
                    raise ValueError(f"more bytes than the declared size {session.size}")
                fh.write(chunk)
                written += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        session.offset = written
        self._write(session)
        return session

    def finish(self, session: UploadSession, result: dict) -> None:
        session.result = result
        self._write(session)
        self.data_path(session.id).unlink(missing_ok=True)

    def _write(self, session: UploadSession) -> None:
        tmp = self._meta(session.id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(session), ensure_ascii=False))
        os.replace(tmp, self._meta(session.id))
