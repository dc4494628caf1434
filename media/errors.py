"""Typed errors of the media toolkit: each names the file, a short machine `reason` code and what to do about it."""
from __future__ import annotations

import os


class MediaError(Exception):
    """Base of every toolkit error. `reason` is stable (for quarantine records and metrics); the message is for people."""

    reason = "invalid_media"

    def __init__(self, path: str | os.PathLike, detail: str, *, reason: str | None = None, hint: str = ""):
        self.path = str(path)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        self.hint = hint
        message = f"{self.path}: {detail} [{self.reason}]"
        super().__init__(f"{message} — {hint}" if hint else message)

    def __reduce__(self):
        # Errors travel back from photo worker processes; the default pickling would call __init__(message).
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[MediaError], args: tuple, state: dict) -> MediaError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class EmptyFileError(MediaError):
    reason = "empty_file"


class NotAnImageError(MediaError):
    reason = "not_an_image"


class TruncatedFileError(MediaError):
    reason = "truncated"


class DecompressionBombError(MediaError):
    reason = "decompression_bomb"


class NotMediaError(MediaError):
    """ffprobe cannot read it as audio/video at all."""

    reason = "not_media"


class MissingMoovError(TruncatedFileError):
    """An MP4/MOV whose index (moov atom) is missing: typically an upload cut short."""

    reason = "no_moov"


class NoVideoError(MediaError):
    reason = "no_video"


class ClipRangeError(MediaError):
    reason = "range_beyond_duration"


class NotConformantError(MediaError):
    """A stream-copy operation was asked for parts that do not share the same codec parameters."""

    reason = "not_conformant"


class MissingGlyphError(MediaError):
    reason = "missing_glyph"

    def __init__(self, path: str | os.PathLike, missing: str, text: str):
        self.missing = missing
        codepoints = ", ".join(f"{ch!r} U+{ord(ch):04X}" for ch in missing)
        super().__init__(path, f"the font has no glyph for {codepoints} (needed by {text!r})",
                         hint="choose a font that covers Vietnamese, e.g. DejaVu Sans or Noto Sans")


class FFmpegError(MediaError):
    """ffmpeg/ffprobe failed, timed out or produced an output that does not hold what was asked."""

    reason = "ffmpeg_failed"

    def __init__(self, path: str | os.PathLike, detail: str, *, reason: str | None = None, stderr_tail: str = "",
                 argv: list[str] | None = None):
        self.stderr_tail = stderr_tail
        self.argv = argv or []
        tail = f"\n--- ffmpeg said ---\n{stderr_tail}" if stderr_tail else ""
        super().__init__(path, detail + tail, reason=reason)


class FFmpegTimeout(FFmpegError):
    reason = "timeout"
