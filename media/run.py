"""Run ffmpeg/ffprobe argv under our own supervision: timeout, `-progress` callbacks, SIGTERM→SIGKILL, stderr tail.

ffmpeg-python builds the argv; its own `run()` has no timeout, and a stalled RTMP read would block a task forever."""
from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from media.errors import FFmpegTimeout, ffmpeg_failure
from media.redact import redact_urls

STDERR_TAIL_LINES = 40
# ffmpeg ignores a first SIGTERM while blocked in a network read (media-notes §2); give it this long, then KILL.
TERM_GRACE_S = 5.0
# `in_background`: how much nicer (lower CPU priority) background work's ffmpeg/ffprobe run than the rest.
BACKGROUND_NICENESS = 10
_this_thread = threading.local()


@dataclass(frozen=True)
class Progress:
    """One `-progress` block. `percent` is known only when the caller told the expected output duration."""

    out_time_s: float
    percent: float | None
    speed: float | None
    fps: float | None
    bitrate_kbps: float | None
    frame: int | None
    done: bool


@dataclass(frozen=True)
class RunResult:
    argv: list[str]
    returncode: int
    elapsed_s: float
    stderr_tail: str
    last_progress: Progress | None


ProgressCallback = Callable[[Progress], None]


@contextlib.contextmanager
def in_background(niceness: int = BACKGROUND_NICENESS):
    """Every ffmpeg/ffprobe this thread starts inside the block runs `niceness` nicer than usual: work nobody waits
    for (the archive remux of recording segments) yields the cores to work people wait for (the wrap-up's highlights
    and recap, team videos) and takes whatever CPU is left. Per thread: a task's other threads keep their priority."""
    previous = background_niceness()
    _this_thread.niceness = niceness
    try:
        yield
    finally:
        _this_thread.niceness = previous


def background_niceness() -> int:
    """The niceness `in_background` adds to what this thread starts now (0 outside the block)."""
    return getattr(_this_thread, "niceness", 0)


def _started(proc: subprocess.Popen) -> subprocess.Popen:
    """`proc`, lowered to this thread's background priority (raising one's own child's niceness needs no privilege;
    its first milliseconds run at the usual priority)."""
    niceness = background_niceness()
    if niceness:
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        except ProcessLookupError:  # already over
            pass
    return proc


def with_progress(argv: Sequence[str]) -> list[str]:
    """Insert `-progress pipe:1` (machine-readable progress on stdout) and silence the interactive stats/stdin."""
    argv = list(argv)
    return [argv[0], "-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1", *argv[1:]]


def parse_progress(fields: dict[str, str], expected_duration_s: float | None) -> Progress:
    out_us = _number(fields.get("out_time_us")) or _number(fields.get("out_time_ms"))  # both are µs in ffmpeg
    out_time_s = max(0.0, (out_us or 0.0) / 1e6)
    percent = None
    if expected_duration_s:
        percent = min(100.0, 100.0 * out_time_s / expected_duration_s)
    done = fields.get("progress") == "end"
    if done and expected_duration_s:
        percent = 100.0
    return Progress(out_time_s=out_time_s, percent=percent,
                    speed=_number(fields.get("speed", "").rstrip("x")),
                    fps=_number(fields.get("fps")),
                    bitrate_kbps=_number(fields.get("bitrate", "").replace("kbits/s", "")),
                    frame=int(fields["frame"]) if fields.get("frame", "").isdigit() else None,
                    done=done)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None


class FFmpegProcess:
    """A started ffmpeg with progress parsing and a bounded stderr tail; used by `run_ffmpeg` and the relay."""

    def __init__(self, argv: Sequence[str], *, expected_duration_s: float | None = None,
                 on_progress: ProgressCallback | None = None):
        self.argv = with_progress(argv)
        self.expected_duration_s = expected_duration_s
        self.on_progress = on_progress
        self.last_progress: Progress | None = None
        self.callback_error: Exception | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.started = time.monotonic()
        # A new session: our signals reach ffmpeg only, and a terminal's Ctrl-C does not reach it twice.
        self.proc = _started(subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, start_new_session=True))
        self._readers = [threading.Thread(target=self._read_progress, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self) -> str:
        return "\n".join(self._tail)

    def _read_progress(self) -> None:
        fields: dict[str, str] = {}
        for raw in self.proc.stdout:
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            fields[key] = value
            if key == "progress":  # the last line of each block
                self.last_progress = parse_progress(fields, self.expected_duration_s)
                if self.on_progress is not None and self.callback_error is None:
                    try:
                        self.on_progress(self.last_progress)
                    except Exception as exc:  # keep draining the pipe, or ffmpeg would block on a full one
                        self.callback_error = exc
                fields = {}

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._tail.append(line)

    def wait(self, timeout: float | None) -> int:
        returncode = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=2)
        return returncode

    def stop(self, grace_s: float = TERM_GRACE_S) -> int:
        """SIGTERM (ffmpeg finalises its output), then SIGKILL if it is stuck in a blocking read."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                return self.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        return self.wait(None)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass


def run_ffmpeg(argv: Sequence[str], *, timeout: float, path: str | os.PathLike, expected_duration_s: float | None = None,
               on_progress: ProgressCallback | None = None) -> RunResult:
    """Run to completion; raise FFmpegTimeout/FFmpegError naming `path` (the file the run is about) on failure."""
    process = FFmpegProcess(argv, expected_duration_s=expected_duration_s, on_progress=on_progress)
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.stop()
        raise FFmpegTimeout(redact_urls(str(path)), f"ffmpeg did not finish within {timeout:.0f} s and was stopped",
                            stderr_tail=redact_urls(process.stderr_tail()), argv=_redacted(process.argv)) from None
    except BaseException:
        process.stop()  # an interrupted caller must not leave an orphan encoder behind
        raise
    if returncode != 0:
        raise ffmpeg_failure(redact_urls(str(path)), returncode, redact_urls(process.stderr_tail()),
                             _redacted(process.argv))  # typed by ffmpeg's stderr
    if process.callback_error is not None:
        raise process.callback_error
    return RunResult(argv=process.argv, returncode=returncode, elapsed_s=time.monotonic() - process.started,
                     stderr_tail=process.stderr_tail(), last_progress=process.last_progress)


def run_capture(argv: Sequence[str], *, timeout: float, path: str | os.PathLike) -> subprocess.CompletedProcess:
    """Run a short command (ffprobe, fc-query) with a timeout and return its output; never raises on exit code."""
    with _started(subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise FFmpegTimeout(redact_urls(str(path)), f"{argv[0]} did not finish within {timeout:.0f} s",
                                argv=_redacted(argv)) from None
        except BaseException:
            proc.kill()  # as subprocess.run did: an interrupted caller leaves no ffprobe behind
            raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)


def _redacted(argv: Sequence[str]) -> list[str]:
    """An error's argv without stream keys: errors end up in task logs and XComs (ffmpeg names its URLs)."""
    return [redact_urls(str(arg)) for arg in argv]
