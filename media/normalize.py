"""One ffmpeg pass from anything with a picture to the house profile: rotation, portrait (pad or crop), mono or
missing audio, VFR→CFR, with `-progress` callbacks. Also the cheap remux for files that already conform."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ffmpeg

from media.errors import FFmpegError, NoVideoError, UnsupportedCodecError
from media.probe import Deviation, MediaInfo, conformance, probe
from media.profile import HOUSE, MAX_HEIGHT, HouseProfile
from media.run import ProgressCallback, run_ffmpeg

PortraitMode = Literal["pad", "crop"]
# Output is judged by its duration, not ffmpeg's exit code: allow a frame plus container rounding.
DURATION_TOLERANCE_S = 0.25


@dataclass(frozen=True)
class NormalizeResult:
    path: Path
    source: MediaInfo
    output: MediaInfo
    fixed: list[Deviation]
    elapsed_s: float


def target_profile(info: MediaInfo, portrait: PortraitMode = "pad", base: HouseProfile = HOUSE) -> HouseProfile:
    """House profile at the largest 16:9 frame the source fills (≤1080p): a 1080p source keeps 1080p, a 240p
    rehearsal stream stays small, a portrait clip is pillarboxed at its own height (or cropped, if configured)."""
    require_decodable(info)
    width, height = info.video.display_size
    frame_height = min(MAX_HEIGHT, width * 9 // 16 if portrait == "crop" and height > width else height)
    return base.for_size(frame_height * 16 / 9, frame_height)


def _fit(video, info: MediaInfo, profile: HouseProfile, portrait: PortraitMode):
    width, height = info.video.display_size
    if portrait == "crop" and height > width:
        # Fill the frame and keep its centre: the configured alternative to pillarboxing a phone clip.
        video = video.filter("scale", profile.width, profile.height, force_original_aspect_ratio="increase")
        video = video.filter("crop", profile.width, profile.height)
    else:
        video = video.filter("scale", profile.width, profile.height, force_original_aspect_ratio="decrease",
                             force_divisible_by=2)
        video = video.filter("pad", profile.width, profile.height, "(ow-iw)/2", "(oh-ih)/2", color="black")
    return (video.filter("setsar", 1).filter("fps", profile.fps)  # fps also turns VFR into CFR
            .filter("format", profile.pix_fmt))


def transcode(src: str | os.PathLike, dst: str | os.PathLike, info: MediaInfo, profile: HouseProfile, *,
              start: float | None = None, duration: float | None = None, portrait: PortraitMode = "pad",
              loudnorm: bool = False, video_filters=None, on_progress: ProgressCallback | None = None,
              timeout: float | None = None) -> float:
    """Encode `src` (optionally [start, start+duration), frame-exact) to `profile`; returns the expected duration.

    `video_filters(stream) -> stream` may add overlays after the frame is fitted (lower thirds, logos)."""
    require_decodable(info)
    expected = duration if duration is not None else max(0.0, info.duration - (start or 0.0))
    input_opts = {}
    if start:
        input_opts["ss"] = f"{start:.6f}"  # as an input option with re-encoding, ffmpeg decodes to the exact frame
    if duration is not None:
        input_opts["t"] = f"{duration:.6f}"
    source = ffmpeg.input(str(src), **input_opts)
    video = _fit(source.video, info, profile, portrait)
    if video_filters is not None:
        video = video_filters(video)
    if info.audio is not None:
        audio = source.audio
        if loudnorm:
            audio = audio.filter("loudnorm", I=-16, TP=-1.5, LRA=11)  # -ar below keeps it from emitting 192 kHz
        # async=1 stretches audio onto its timestamps: phone clips with VFR video often have audio gaps too.
        audio = audio.filter("aresample", profile.sample_rate, **{"async": 1})
    else:
        # Meta requires an audio track and concat needs one in every part: generate exactly as much silence.
        audio = (ffmpeg.input(f"anullsrc=r={profile.sample_rate}:cl=stereo", f="lavfi")
                 .filter("atrim", duration=f"{expected:.6f}"))
    out = ffmpeg.output(video, audio, str(dst), **profile.video_args(), **profile.audio_args(), **profile.mp4_args(),
                        map_metadata=-1, fps_mode="cfr")  # -1: a phone's GPS location must not travel on
    if timeout is None:
        timeout = 120 + 10 * expected  # ~0.1× realtime would be pathological even on 2 busy cores
    run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout, path=src,
               expected_duration_s=expected, on_progress=on_progress)
    return expected


def require_decodable(info: MediaInfo) -> None:
    """Refuse before encoding what has no picture, or a picture in a codec ffmpeg does not know (probe says
    'unknown' for a fourcc it cannot map; the encode would fail with "Decoder (codec none) not found")."""
    if info.video is None:
        raise NoVideoError(info.path, "there is no video stream", hint="upload a video, not audio only")
    if info.video.codec in ("", "unknown", "none"):
        tag = info.video.codec_tag
        raise UnsupportedCodecError(info.path, f"the video codec {tag or '(unnamed)'!r} is not one ffmpeg can decode",
                                    hint="export the video as MP4 (H.264) and upload it again",
                                    facts={"codec": tag})


def check_duration(src: str | os.PathLike, output: MediaInfo, expected: float,
                   tolerance: float = DURATION_TOLERANCE_S, *, lasts: float | None = None) -> None:
    """`output` (or `lasts`, a stream's own duration) must last `expected` seconds, within `tolerance`."""
    lasts = output.duration if lasts is None else lasts
    if abs(lasts - expected) > tolerance:
        # Typically a file cut short after its index was written: the index promises more than the data holds.
        raise FFmpegError(src, f"the output lasts {lasts:.3f} s instead of {expected:.3f} s", reason="short_output",
                          facts={"expected_s": f"{expected:.1f}", "got_s": f"{lasts:.1f}"})


def normalize(src: str | os.PathLike, dst: str | os.PathLike, profile: HouseProfile | None = None, *,
              portrait: PortraitMode = "pad", loudnorm: bool = False, on_progress: ProgressCallback | None = None,
              timeout: float | None = None, source_info: MediaInfo | None = None) -> NormalizeResult:
    """Re-encode `src` once to the house profile (at the source's own 16:9 frame size unless `profile` is given).

    `source_info`: the caller's probe of `src`, to save probing it again."""
    started = time.monotonic()
    info = source_info or probe(src)
    profile = profile or target_profile(info, portrait)
    expected = transcode(src, dst, info, profile, portrait=portrait, loudnorm=loudnorm, on_progress=on_progress,
                         timeout=timeout)
    output = probe(dst)
    check_duration(src, output, expected)
    if output.video and output.video.duration and info.video.duration:
        # The picture too: without source audio the generated silence alone would make up the length.
        check_duration(src, output, min(expected, info.video.duration), lasts=output.video.duration)
    return NormalizeResult(path=Path(dst), source=info, output=output, fixed=conformance(info, profile),
                           elapsed_s=time.monotonic() - started)


def remux(src: str | os.PathLike, dst: str | os.PathLike, *, timeout: float = 600,
          profile: HouseProfile = HOUSE, on_progress: ProgressCallback | None = None,
          source_info: MediaInfo | None = None) -> Path:
    """Stream-copy into an indexed MP4 (`+faststart`, house timescale): for recordings that already conform."""
    info = source_info or probe(src)
    out = ffmpeg.output(ffmpeg.input(str(src)), str(dst), c="copy", map_metadata=-1, **profile.mp4_args())
    run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout, path=src,
               expected_duration_s=info.duration or None, on_progress=on_progress)
    check_duration(src, probe(dst), info.duration, tolerance=max(DURATION_TOLERANCE_S, 0.01 * info.duration))
    return Path(dst)
