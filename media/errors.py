"""Typed errors of the media toolkit: each names the file, a short machine `reason` code and what to do about it.

Also the one place that turns a failure into words: `classify_ffmpeg` reads ffmpeg's stderr for the common causes
(truncated file, missing moov, no video stream, unknown codec, a full disk), and `team_message` says in Vietnamese
what went wrong and what the field team can do about it, keyed by `reason`. The English message (`str(exc)`,
with ffmpeg's stderr tail) stays the operators' technical detail."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass


class MediaError(Exception):
    """Base of every toolkit error. `reason` is stable (for quarantine records and metrics); the message is for people."""

    reason = "invalid_media"

    def __init__(self, path: str | os.PathLike, detail: str, *, reason: str | None = None, hint: str = "",
                 facts: dict | None = None):
        self.path = str(path)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        self.hint = hint
        self.facts = dict(facts or {})  # values the team message may quote (a codec name, a size, a limit)
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


class UnsupportedCodecError(MediaError):
    """The container is readable but its video is in a codec this ffmpeg cannot decode."""

    reason = "unsupported_codec"


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
                 argv: list[str] | None = None, facts: dict | None = None):
        self.stderr_tail = stderr_tail
        self.argv = argv or []
        tail = f"\n--- ffmpeg said ---\n{stderr_tail}" if stderr_tail else ""
        super().__init__(path, detail + tail, reason=reason, facts=facts)


class FFmpegTimeout(FFmpegError):
    reason = "timeout"


# --- what ffmpeg's stderr says went wrong ---------------------------------------------------------------------
# First match wins: specific causes before the generic "the data is bad" ones.
_FFMPEG_SIGNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("host_failure", ("No space left on device", "Cannot allocate memory", "Permission denied",
                      "No such file or directory", "Disk quota exceeded")),
    ("no_moov", ("moov atom not found",)),
    ("unsupported_codec", ("not found for input stream", "Unsupported codec", "unknown codec",
                           "Codec not currently supported", "is not supported by this decoder")),
    ("no_video", ("matches no streams", "does not contain any stream")),
    ("truncated", ("partial file", "Invalid NAL unit size", "error reading header", "End of file",
                   "Invalid data found when processing input", "corrupt", "Error while decoding",
                   "Truncat", "Packet mismatch", "invalid frame")),
)
# Failures of this machine, not of the file: the asset is not quarantined, the task fails and is retried.
HOST_REASONS = frozenset({"host_failure"})


def classify_ffmpeg(stderr: str) -> str | None:
    """The `reason` ffmpeg's stderr points to, or None when it says nothing we recognise."""
    for reason, signs in _FFMPEG_SIGNS:
        if any(sign in stderr for sign in signs):
            return reason
    return None


def ffmpeg_failure(path: str | os.PathLike, returncode: int, stderr_tail: str, argv: list[str]) -> FFmpegError:
    """The error for an ffmpeg run that exited non-zero, typed by what its stderr says."""
    reason = classify_ffmpeg(stderr_tail) or FFmpegError.reason
    return FFmpegError(path, f"ffmpeg exited with code {returncode}", reason=reason, stderr_tail=stderr_tail,
                       argv=argv, facts={"ffmpeg_said": last_words(stderr_tail)})


def last_words(stderr: str) -> str:
    """ffmpeg's last meaningful line, without addresses and directories (it may end up in a team's message)."""
    noise = ("frame=", "size=", "video:", "Stream #", "Stream mapping")  # statistics, not a cause
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.strip().startswith(noise)]
    if not lines:
        return ""
    line = re.sub(r"\[[\w,]+ @ 0x[0-9a-f]+\]\s*", "", lines[-1])
    return re.sub(r"(?:/[^/\s:]+)+/([^/\s:]+)", r"\1", line)[:160]


def blames_input(exc: MediaError) -> bool:
    """True when the file is at fault (quarantine it), False when the machine is (fail and retry)."""
    return exc.reason not in HOST_REASONS


# --- what a field team reads --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeamMessage:
    problem: str  # what is wrong, in the team's words
    action: str  # what to do about it

    def __str__(self) -> str:
        return f"{self.problem} — {self.action}"


_RESEND = "hãy gửi lại tệp gốc từ máy"
_EXPORT_MP4 = "hãy xuất lại video sang MP4 (H.264) rồi gửi lại"
_ASK_ORGANISERS = "nếu vẫn lỗi, báo ban tổ chức"
# reason → (problem, the problem when the facts it quotes are missing, action). `{name}` placeholders are filled
# from the error's facts; an empty second text means the problem quotes no facts.
_TEAM_MESSAGES: dict[str, tuple[str, str, str]] = {
    "invalid_media": ("Tệp ảnh/video không hợp lệ", "", _RESEND),
    "empty_file": ("Tệp trống (0 byte), tải lên chưa thành công", "", "hãy gửi lại tệp"),
    "not_an_image": ("Tệp không phải là ảnh{what}", "Tệp không phải là ảnh",
                     "hãy gửi chính tệp ảnh chụp từ máy (JPEG, PNG hoặc HEIC)"),
    "corrupt": ("Ảnh bị hỏng, không đọc được", "", "hãy gửi lại ảnh gốc từ máy"),
    "unsupported_format": ("Ảnh dạng {format} chưa được hỗ trợ", "Định dạng ảnh này chưa được hỗ trợ",
                           "hãy chuyển ảnh sang JPEG rồi gửi lại"),
    "truncated": ("Tệp bị hỏng hoặc tải lên chưa hết", "", _RESEND),
    "decompression_bomb": ("Ảnh quá lớn: {width}×{height} điểm ảnh, vượt giới hạn {limit_mp} megapixel",
                           "Ảnh quá lớn để xử lý an toàn", "hãy thu nhỏ ảnh (ví dụ 12 megapixel) rồi gửi lại"),
    "not_media": ("Tệp không phải là video: không đọc được hình hay tiếng{what}", "Tệp không phải là video",
                  "hãy gửi chính tệp video quay từ máy (MP4 hoặc MOV)"),
    "no_moov": ("Tệp video bị hỏng hoặc tải lên chưa hết (thiếu phần 'moov')", "",
                "hãy quay/xuất lại và gửi lại"),
    "no_video": ("Tệp chỉ có tiếng, không có hình", "", "hãy gửi tệp video có hình"),
    "unsupported_codec": ("Video được nén bằng chuẩn '{codec}' mà hệ thống không đọc được",
                          "Video được nén bằng chuẩn mà hệ thống không đọc được",
                          f"{_EXPORT_MP4}; trên iPhone chọn Cài đặt › Camera › Định dạng › Tương thích nhất"),
    "short_output": ("Video bị cắt ngắn: tệp ghi {expected_s} giây nhưng chỉ đọc được {got_s} giây",
                     "Video bị cắt ngắn (tải lên chưa hết hoặc tệp hỏng)", _RESEND),
    "timeout": ("Xử lý video quá lâu nên đã bị dừng", "", f"hãy gửi bản ngắn hơn hoặc nhẹ hơn; {_ASK_ORGANISERS}"),
    "ffmpeg_failed": ("Không xử lý được video (ffmpeg báo: {ffmpeg_said})", "Không xử lý được video",
                      f"{_EXPORT_MP4}; {_ASK_ORGANISERS}"),
}
# Facts that describe what a non-media file really is (see NotAnImageError/NotMediaError raisers).
_WHAT_IT_IS = {"html": " (đây là một trang web, ví dụ trang đăng nhập được lưu nhầm)",
               "json": " (đây là dữ liệu JSON)"}


def team_message(exc: MediaError) -> TeamMessage:
    """What a field team reads about a rejected file, in Vietnamese: the problem and what to do."""
    entry = _TEAM_MESSAGES.get(exc.reason)
    if entry is None:  # toolkit-internal reasons (missing_glyph, not_conformant…): nothing the team can fix
        return TeamMessage(f"Không xử lý được tệp (mã lỗi {exc.reason})", "hãy báo ban tổ chức")
    template, fallback, action = entry
    facts = {**exc.facts, "what": _WHAT_IT_IS.get(exc.facts.get("what", ""), "")}
    if all(facts.get(name) not in (None, "") for name in _placeholders(template) if name != "what"):
        return TeamMessage(template.format_map(facts), action)
    return TeamMessage(fallback or template, action)


def _placeholders(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)
