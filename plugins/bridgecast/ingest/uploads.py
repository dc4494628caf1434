"""Multipart uploads, streamed: each file part goes straight to one spool file, bytes counted as they arrive.

The caller has already checked the token and the declared `Content-Length` (nothing of the body is read for an
anonymous or oversized request); here a body that sends more than it may is cut off at the limit, and writes go
to a worker thread so the event loop keeps answering. Also what a file *is*: judged by its content first
(`kinds.detect`), by its name and declared type only when the content is not recognisable.
"""
from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

from bridgecast.ingest.kinds import detect

MIB = 1024 * 1024
ENVELOPE_BYTES = MIB  # multipart boundaries and part headers on top of the files themselves
FLUSH_BYTES = MIB  # bytes buffered per part before a write in a worker thread
MAX_PARTS = 200
MAX_FIELD_BYTES = 64 * 1024  # a non-file field (the page sends none; old clients a `token`, which is ignored)

# Names that say "photo" / "video" (the content still decides; these only keep a file from a refusal up front).
PHOTO_EXT = {"jpg", "jpeg", "png", "webp", "heic", "heif", "avif", "gif", "tif", "tiff", "bmp"}
MEDIA_EXT = PHOTO_EXT | {"mp4", "mov", "m4v", "mkv", "flv", "ts", "mts", "m2ts", "3gp", "webm", "avi", "mpg", "mpeg"}
_VAGUE_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_MEDIA_TYPE = re.compile(r"^(image|video)/")


class UploadRefused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class SpooledPart:
    filename: str
    content_type: str
    path: Path
    size: int = 0
    head: bytes = b""  # the first bytes, for `classify`


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    spooled: SpooledPart | None = None
    buffer: bytearray = field(default_factory=bytearray)
    field_bytes: int = 0


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header((content_type or "").encode("latin-1", "replace"))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise UploadRefused(415, "send the files as multipart/form-data (field `files`)")
    return boundary


async def spool_multipart(stream, content_type: str | None, spool_dir: Path, *, file_limit: int,
                          body_limit: int) -> list[SpooledPart]:
    """Read the multipart `stream` (async iterator of bytes) into one spool file per file part.

    Raises UploadRefused(413) as soon as a file passes `file_limit` or the body `body_limit` (what was spooled is
    removed), UploadRefused(400) for a body that is not valid multipart."""
    parser_state = _MultipartState(boundary_of(content_type))
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > body_limit:
                raise UploadRefused(413, f"the request is over {body_limit // MIB} MB")
            parser_state.feed(chunk)
            await parser_state.drain(spool_dir, file_limit)
        parser_state.finish()
        await parser_state.drain(spool_dir, file_limit)
    except BaseException:
        await asyncio.to_thread(parser_state.discard)
        raise
    if not parser_state.parts:
        raise UploadRefused(400, "no file in the request: send each file in a `files` field with its filename")
    return parser_state.parts


class _MultipartState:
    """python-multipart's push parser, turned into a list of events the async side acts on between feeds."""

    def __init__(self, boundary: bytes):
        self.events: list[tuple] = []
        self.parts: list[SpooledPart] = []
        self._current: _Part | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._files: dict[int, object] = {}
        self._ended = False
        callbacks = {
            "on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
            "on_header_field": self._on_header_field, "on_header_value": self._on_header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished, "on_end": self._end,
        }
        self.parser = MultipartParser(boundary, callbacks)

    # --- parser callbacks (synchronous, inside feed) -----------------------------------------------------------
    def _part_begin(self):
        self.events.append(("begin",))

    def _part_data(self, data, start, end):
        self.events.append(("data", bytes(data[start:end])))

    def _part_end(self):
        self.events.append(("end",))

    def _on_header_field(self, data, start, end):
        self._header_field += data[start:end]

    def _on_header_value(self, data, start, end):
        self._header_value += data[start:end]

    def _header_end(self):
        self.events.append(("header", self._header_field.decode("latin-1").lower(),
                            self._header_value.decode("utf-8", "replace")))
        self._header_field, self._header_value = bytearray(), bytearray()

    def _headers_finished(self):
        self.events.append(("headers_done",))

    def _end(self):
        self._ended = True

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except Exception as exc:  # python-multipart raises its own errors for a broken body
            raise UploadRefused(400, f"the multipart body is malformed ({type(exc).__name__})") from None

    def finish(self) -> None:
        try:
            self.parser.finalize()
        except Exception:
            pass  # judged below: a body without its closing boundary was cut short
        if not self._ended:
            raise UploadRefused(400, "the multipart body ended before its closing boundary")

    # --- the async side: files, writes in worker threads -------------------------------------------------------
    async def drain(self, spool_dir: Path, file_limit: int) -> None:
        events, self.events = self.events, []
        for event in events:
            if event[0] == "begin":
                self._current = _Part()
            elif event[0] == "header":
                self._current.headers[event[1]] = event[2]
            elif event[0] == "headers_done":
                await self._open_part(spool_dir)
            elif event[0] == "data":
                await self._data(event[1], spool_dir, file_limit)
            elif event[0] == "end":
                await self._close_part()

    async def _open_part(self, spool_dir: Path) -> None:
        part = self._current
        part.name, part.filename = _disposition(part.headers.get("content-disposition", ""))
        if part.filename is None:
            return  # a plain form field
        if len(self.parts) >= MAX_PARTS:
            raise UploadRefused(413, f"at most {MAX_PARTS} files per request")
        fd, tmp = await asyncio.to_thread(tempfile.mkstemp, dir=spool_dir, prefix="upload-")
        self._files[id(part)] = os.fdopen(fd, "wb")
        part.spooled = SpooledPart(part.filename, part.headers.get("content-type", ""), Path(tmp))
        self.parts.append(part.spooled)

    async def _data(self, data: bytes, spool_dir: Path, file_limit: int) -> None:
        part = self._current
        if part.spooled is None:  # a plain form field: bounded, and ignored
            part.field_bytes += len(data)
            if part.field_bytes > MAX_FIELD_BYTES:
                raise UploadRefused(413, f"form field {part.name!r} is over {MAX_FIELD_BYTES} bytes")
            return
        spooled = part.spooled
        if spooled.size + len(data) > file_limit:
            raise UploadRefused(413, f"'{spooled.filename}' vượt quá giới hạn {file_limit // MIB} MB (file too large)")
        if len(spooled.head) < 512:
            spooled.head += data[:512 - len(spooled.head)]
        spooled.size += len(data)
        part.buffer += data
        if len(part.buffer) >= FLUSH_BYTES:
            await self._flush(part)

    async def _flush(self, part: _Part) -> None:
        if part.buffer:
            data, part.buffer = bytes(part.buffer), bytearray()
            await asyncio.to_thread(self._files[id(part)].write, data)

    async def _close_part(self) -> None:
        part, self._current = self._current, None
        if part is not None and part.spooled is not None:
            await self._flush(part)
            await asyncio.to_thread(self._files.pop(id(part)).close)

    def discard(self) -> None:
        for fh in self._files.values():
            fh.close()
        for spooled in self.parts:
            spooled.path.unlink(missing_ok=True)


def _disposition(value: str) -> tuple[str | None, str | None]:
    _, options = parse_options_header(value.encode("utf-8", "replace"))
    name = options.get(b"name")
    filename = options.get(b"filename")
    return (name.decode("utf-8", "replace") if name is not None else None,
            filename.decode("utf-8", "replace") if filename is not None else None)


# --- what a file is ----------------------------------------------------------------------------------------------
def _ext(filename: str) -> str:
    return Path(filename or "").suffix.lower().lstrip(".")


def refuse_if_clearly_not_media(filename: str, declared: str | None) -> None:
    """Before any byte: refuse only what says plainly it is something else (`.exe`, `text/plain`). A file that says
    nothing useful (no extension, application/octet-stream) is judged by its content once it arrives."""
    declared = (declared or "").lower().split(";")[0].strip()
    ext = _ext(filename)
    says_media = bool(_MEDIA_TYPE.match(declared)) or ext in MEDIA_EXT
    says_other = (declared not in _VAGUE_TYPES and not _MEDIA_TYPE.match(declared)) or (ext and ext not in MEDIA_EXT)
    if says_other and not says_media:
        raise UploadRefused(415, f"'{filename}': chỉ nhận ảnh hoặc video (only photos and videos are accepted)")


def classify(head: bytes, filename: str, declared: str | None) -> tuple[str, str, str]:
    """(kind, ext, content_type) by content first; then by what the sender declared; else UploadRefused(415).

    Unrecognised content declared as an image/video is still accepted: the ingest DAG inspects it properly and
    quarantines it with the reason, so the team sees why instead of a silent refusal."""
    detected = detect(head)
    if detected:
        return detected.kind, detected.ext, detected.content_type
    declared = (declared or "").lower().split(";")[0].strip()
    ext = _ext(filename)
    if not (_MEDIA_TYPE.match(declared) or ext in MEDIA_EXT):
        raise UploadRefused(415, f"'{filename}': chỉ nhận ảnh hoặc video (only photos and videos are accepted)")
    if declared.startswith("image/") or ext in PHOTO_EXT:
        return "photo", (ext or "bin"), declared or "application/octet-stream"
    return "video", (ext or "bin"), declared or "application/octet-stream"
