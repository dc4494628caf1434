"""RTMP relay (program feed → fanpage RTMPS): the ffmpeg command (`-c copy` when the feed conforms, house-profile
transcode otherwise) and a supervisor that restarts it with exponential back-off and reports health.

A relay is judged by the media it moved, not by ffmpeg's exit code: with `-rw_timeout` ffmpeg exits 0 about ten
seconds after its source went away (media-notes §2)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal

import ffmpeg

from media.profile import HOUSE, HouseProfile
from media.redact import redact, url_secrets
from media.run import FFmpegProcess, Progress

RelayState = Literal["idle", "running", "backoff", "stopped"]


def build_relay_argv(input_url: str, output_url: str, transcode: bool, profile: HouseProfile = HOUSE, *,
                     rw_timeout_s: float = 5.0) -> list[str]:
    """ffmpeg argv for a live relay. Never `-timeout` on rtmp input (it means *listen*), never `-re` on live input."""
    input_opts: dict[str, object] = {"rw_timeout": int(rw_timeout_s * 1_000_000)}
    if input_url.startswith(("http://", "https://")):
        # These reconnect options exist for HTTP(S) only; RTMP pulls rely on the supervisor's restarts instead.
        input_opts.update(reconnect=1, reconnect_streamed=1, reconnect_on_network_error=1, reconnect_delay_max=5)
    source = ffmpeg.input(input_url, **input_opts)
    if transcode:
        codec_opts = {**profile.video_args(), "tune": "zerolatency", **profile.audio_args()}
        video = (source.video.filter("scale", profile.width, profile.height, force_original_aspect_ratio="decrease",
                                     force_divisible_by=2)
                 .filter("pad", profile.width, profile.height, "(ow-iw)/2", "(oh-ih)/2")
                 .filter("fps", profile.fps))
        audio = source.audio.filter("aresample", profile.sample_rate, **{"async": 1})
    else:
        codec_opts = {"c": "copy"}  # the FLV muxer's default video codec is flv1: copy or name libx264, always
        video, audio = source.video, source.audio
    out = ffmpeg.output(video, audio, output_url, f="flv", flvflags="no_duration_filesize", **codec_opts)
    return ffmpeg.compile(out)


def build_slate_argv(slate_path: str, output_url: str) -> list[str]:
    """ffmpeg argv that sends a pre-rendered, house-profile slate (a short MP4 card) to the live output, looped in
    real time by stream copy: the fallback while the program feed is missing (no encode: ~0 CPU)."""
    source = ffmpeg.input(str(slate_path), re=None, stream_loop=-1)
    out = ffmpeg.output(source.video, source.audio, output_url, f="flv", flvflags="no_duration_filesize", c="copy")
    return ffmpeg.compile(out)


@dataclass(frozen=True)
class RelayHealth:
    state: RelayState
    restarts: int
    bitrate_kbps: float | None
    fps: float | None  # encoded frames per second: a transcoding relay only (ffmpeg counts none when copying)
    speed: float | None  # media seconds relayed per wall second: ~1.0 when healthy
    run_out_time_s: float  # media relayed by the current (or last) ffmpeg run
    total_out_time_s: float  # by all runs
    uptime_s: float
    last_exit_code: int | None
    last_error: str | None
    pid: int | None


class RelaySupervisor:
    """Keeps one relay ffmpeg running until `stop()`: restarts it with exponential back-off (reset once a run has
    relayed `healthy_after_s` of media), and reports bitrate, fps, speed, restarts and the last error."""

    def __init__(self, input_url: str, output_url: str, *, transcode: bool = False, profile: HouseProfile = HOUSE,
                 rw_timeout_s: float = 5.0, backoff_initial_s: float = 1.0, backoff_max_s: float = 30.0,
                 healthy_after_s: float = 30.0, on_event: Callable[[str], None] | None = None,
                 argv: list[str] | None = None):
        # `argv`: another sender to the same output under the same supervision (the slate: build_slate_argv)
        self.argv = argv or build_relay_argv(input_url, output_url, transcode, profile, rw_timeout_s=rw_timeout_s)
        # ffmpeg names its output URL when it fails, and that URL carries the fanpage's stream key: everything the
        # supervisor reports (last_error, events, repr) goes through `_redact` with the URL's secret parts.
        self._secrets = url_secrets(output_url)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.healthy_after_s = healthy_after_s
        # Events name no URL: the output URL carries the fanpage's stream key.
        self.on_event = on_event or (lambda message: None)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: FFmpegProcess | None = None
        self._state: RelayState = "idle"
        self._restarts = 0
        self._progress: Progress | None = None
        self._done_out_time_s = 0.0
        self._last_exit_code: int | None = None
        self._last_error: str | None = None
        self._started_at: float | None = None

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def __repr__(self) -> str:
        return f"RelaySupervisor(state={self._state!r}, restarts={self._restarts})"  # never the argv: it has the key

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the relay is already started")
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._supervise, name="relay-supervisor", daemon=True)
        self._thread.start()

    def stop(self, grace_s: float = 5.0) -> RelayHealth:
        """Stop for good: SIGTERM to ffmpeg (it finalises the output), SIGKILL after `grace_s`."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None:
            process.stop(grace_s)
        if self._thread is not None:
            self._thread.join(timeout=grace_s + 5)
        with self._lock:
            self._state = "stopped"
        return self.health()

    def health(self) -> RelayHealth:
        with self._lock:
            progress = self._progress
            run_out = progress.out_time_s if progress else 0.0
            return RelayHealth(
                state=self._state, restarts=self._restarts,
                bitrate_kbps=progress.bitrate_kbps if progress and self._state == "running" else None,
                fps=progress.fps if progress and progress.fps and self._state == "running" else None,
                speed=progress.speed if progress and self._state == "running" else None,
                run_out_time_s=run_out, total_out_time_s=self._done_out_time_s + run_out,
                uptime_s=time.monotonic() - self._started_at if self._started_at else 0.0,
                last_exit_code=self._last_exit_code, last_error=self._last_error,
                pid=self._process.pid if self._process and self._state == "running" else None)

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._progress = progress

    def _supervise(self) -> None:
        backoff = self.backoff_initial_s
        first = True
        while not self._stopping.is_set():
            with self._lock:
                if not first:
                    self._restarts += 1
                self._progress = None
                self._process = FFmpegProcess(self.argv, on_progress=self._on_progress)
                self._state = "running"
                process = self._process
            self.on_event("relay started" if first else f"relay restarted (restart #{self._restarts})")
            first = False
            returncode = process.wait(None)
            relayed = process.last_progress.out_time_s if process.last_progress else 0.0
            with self._lock:
                self._last_exit_code = returncode
                self._done_out_time_s += relayed
                self._progress = None
                self._process = None
                if self._stopping.is_set():
                    break
                tail = self._redact(process.stderr_tail()).splitlines()
                self._last_error = (f"ffmpeg exited with code {returncode} after relaying {relayed:.1f} s"
                                    + (f": {tail[-1]}" if tail else ""))
                self._state = "backoff"
            self.on_event(self._last_error)
            backoff = self.backoff_initial_s if relayed >= self.healthy_after_s else backoff
            if self._stopping.wait(backoff):
                break
            backoff = min(self.backoff_max_s, backoff * 2)
        with self._lock:
            self._state = "stopped"
