"""Progress of a long step as a few log lines: percent, speed and ETA, throttled so a task log stays readable.

One `ProgressLog` per step. Feed it ffmpeg's `Progress` blocks (`.ffmpeg`, a `run_ffmpeg` on_progress callback) or
byte counts (`.transferred`, a boto3 transfer `Callback`). A line is written when another `every_percent` is done
or `heartbeat_s` passed without one, never two within `min_gap_s`; the end is always written. So a 15 s encode
logs ~3 lines and a 20-minute one ~20, instead of ffmpeg's two blocks a second."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from media.run import Progress

EVERY_PERCENT = 10.0
MIN_GAP_S = 5.0
HEARTBEAT_S = 60.0  # a line even without 10 % more: a slow step, or one whose length is unknown, shows it is alive
MB = 1e6


class ProgressLog:
    def __init__(self, log: logging.Logger, what: str, *, total_bytes: int | None = None,
                 every_percent: float = EVERY_PERCENT, min_gap_s: float = MIN_GAP_S, heartbeat_s: float = HEARTBEAT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.log, self.what = log, what
        self.total_bytes = total_bytes
        self.every_percent, self.min_gap_s, self.heartbeat_s = every_percent, min_gap_s, heartbeat_s
        self.clock = clock
        self.started = self._last_at = clock()
        self._last_percent = 0.0
        self._bytes = 0
        self._ended = False
        self._lock = threading.Lock()  # boto3 calls back from its transfer threads
        self.lines = 0

    # --- feeds ------------------------------------------------------------------------------------------
    def ffmpeg(self, progress: Progress) -> None:
        """`on_progress` for run_ffmpeg (and everything in media that passes it on)."""
        if progress.done:
            self.finish()
            return
        eta = None
        if progress.speed and progress.percent is not None and progress.percent > 0:
            total_s = progress.out_time_s * 100.0 / progress.percent
            eta = max(0.0, total_s - progress.out_time_s) / progress.speed
        done = f"{progress.out_time_s:.0f} s" + (f" of {progress.out_time_s * 100 / progress.percent:.0f} s"
                                                  if progress.percent else "")
        speed = f"{progress.speed:.1f}× realtime" if progress.speed else "speed unknown"
        self._maybe(progress.percent, done, speed, eta)

    def transferred(self, chunk_bytes: int) -> None:
        """A boto3 `Callback`: called with the bytes moved since its last call."""
        with self._lock:
            self._bytes += chunk_bytes
            moved = self._bytes
        elapsed = max(1e-6, self.clock() - self.started)
        rate = moved / elapsed
        percent = 100.0 * moved / self.total_bytes if self.total_bytes else None
        if self.total_bytes and moved >= self.total_bytes:
            self.finish()
            return
        eta = (self.total_bytes - moved) / rate if self.total_bytes and rate > 0 else None
        done = f"{moved / MB:.0f}" + (f" of {self.total_bytes / MB:.0f}" if self.total_bytes else "") + " MB"
        self._maybe(percent, done, f"{rate / MB:.1f} MB/s", eta)

    def finish(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        elapsed = self.clock() - self.started
        extra = f", {self.total_bytes / MB / max(elapsed, 1e-6):.1f} MB/s" if self.total_bytes else ""
        self._write("%s: done in %.1f s%s", self.what, elapsed, extra)

    # --- throttle ---------------------------------------------------------------------------------------
    def _maybe(self, percent: float | None, done: str, speed: str, eta: float | None) -> None:
        with self._lock:
            if self._ended:
                return
            now = self.clock()
            since = now - self._last_at
            advanced = percent is not None and percent - self._last_percent >= self.every_percent
            if since < self.min_gap_s or not (advanced or since >= self.heartbeat_s):
                return
            self._last_at = now
            if percent is not None:
                self._last_percent = percent
        share = f"{percent:.0f}% " if percent is not None else ""
        eta_text = f", ETA {eta:.0f} s" if eta is not None else ""
        self._write("%s: %s(%s), %s%s", self.what, share, done, speed, eta_text)

    def _write(self, message: str, *args) -> None:
        self.lines += 1
        self.log.info(message, *args)
