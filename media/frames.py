"""Stills from video: a poster frame and a contact sheet, both from keyframe-only decoding (cheap on long files)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import ffmpeg

from media.errors import FFmpegError, NoVideoError
from media.probe import MediaInfo, probe
from media.run import run_ffmpeg

STILL_TIMEOUT_S = 120.0


def poster_frame(src: str | os.PathLike, dst: str | os.PathLike, *, at: float | None = None, width: int = 1280,
                 quality: int = 3, source: MediaInfo | None = None) -> Path:
    """A JPEG (or PNG, by suffix) of the keyframe at or after `at` (default: 10 % in, past any title card).
    `source`: `src` already probed."""
    info = source or probe(src)
    if info.video is None:
        raise NoVideoError(src, "there is no video stream to take a poster from", hint="upload a video")
    at = min(info.duration * 0.1 if at is None else at, max(0.0, info.duration - 0.1))
    stream = ffmpeg.input(str(src), ss=f"{at:.3f}").video.filter("scale", f"min({width},iw)", -2)
    out = ffmpeg.output(stream, str(dst), vframes=1, **{"q:v": quality}, map_metadata=-1)
    run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=STILL_TIMEOUT_S, path=src)
    _check_written(src, dst)
    return Path(dst)


def contact_sheet(src: str | os.PathLike, dst: str | os.PathLike, *, columns: int = 4, rows: int = 4,
                  tile_width: int = 320) -> Path:
    """columns×rows keyframes spread evenly over the whole video, tiled into one image."""
    info = probe(src)
    if info.video is None:
        raise NoVideoError(src, "there is no video stream to make a contact sheet from", hint="upload a video")
    gop = info.video.keyframe_interval_s or 2.0
    keyframes = max(1, int(info.duration / gop))
    every = max(1, math.ceil(keyframes / (columns * rows)))
    # skip_frame=nokey: only keyframes are decoded (~100× realtime per core), then every Nth is kept.
    stream = (ffmpeg.input(str(src), skip_frame="nokey").video
              .filter("select", f"not(mod(n,{every}))").filter("scale", tile_width, -2)
              .filter("tile", f"{columns}x{rows}"))
    out = ffmpeg.output(stream, str(dst), vframes=1, fps_mode="vfr", **{"q:v": 3}, map_metadata=-1)
    run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=STILL_TIMEOUT_S + info.duration / 50, path=src)
    _check_written(src, dst)
    return Path(dst)


def _check_written(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    if not os.path.exists(dst) or os.path.getsize(dst) == 0:
        raise FFmpegError(src, f"ffmpeg wrote no image to {dst}", reason="short_output")
