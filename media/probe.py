"""Typed ffprobe results and the house-profile conformance check (a list of named deviations, empty = conformant).

Reads only headers plus the packet index of the first seconds, so probing a 2 GB recording stays cheap."""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass

from media.errors import EmptyFileError, MissingMoovError, NotMediaError
from media.profile import HOUSE, MAX_HEIGHT, MAX_WIDTH, HouseProfile
from media.run import run_capture
from media.sniff import read_head, what_it_is

PROBE_TIMEOUT_S = 60.0
# Keyframe spacing and frame-rate regularity are judged on the packets of the first seconds only.
PACKET_SAMPLE_S = 20
LIVE_PACKET_SAMPLE_S = 5
# Share of frame intervals allowed to stray >25 % from the median before a stream counts as VFR: a live stream
# dropping the odd frame stays CFR, a phone clip alternating rates does not.
VFR_OUTLIER_SHARE = 0.05


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    profile: str | None
    level: int | None
    width: int
    height: int
    pix_fmt: str | None
    fps: float | None
    vfr: bool
    keyframe_interval_s: float | None
    rotation: int
    sar: str | None
    time_base: str
    duration: float | None
    frames: int | None
    start_pts: float | None
    extradata_hash: str | None
    codec_tag: str = ""  # the container's fourcc ('avc1', 'hvc1'…): names a codec ffmpeg does not know

    @property
    def display_size(self) -> tuple[int, int]:
        """Size as shown, after the rotation players apply."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    profile: str | None
    sample_rate: int
    channels: int
    channel_layout: str | None
    duration: float | None
    packets: int | None
    start_pts: float | None
    time_base: str
    extradata_hash: str | None


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str
    duration: float
    start_time: float
    size_bytes: int | None
    bit_rate: int | None
    video: VideoInfo | None
    audio: AudioInfo | None

    @property
    def width(self) -> int | None:
        return self.video.display_size[0] if self.video else None

    @property
    def height(self) -> int | None:
        return self.video.display_size[1] if self.video else None


@dataclass(frozen=True)
class Deviation:
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def probe(path: str | os.PathLike, *, timeout: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """Probe a file or URL. Raises EmptyFileError, MissingMoovError or NotMediaError for what is not media."""
    source = str(path)
    is_local = "://" not in source
    if is_local and os.path.getsize(source) == 0:
        raise EmptyFileError(source, "the file is empty (0 bytes)", hint="the upload or recording did not arrive")
    # One ffprobe for headers and the packet index of the first seconds: process start-up is most of its cost.
    # A live URL gets a shorter sample (it plays in real time) and a read timeout (a stalled RTMP read never ends).
    sample_s = PACKET_SAMPLE_S if is_local else LIVE_PACKET_SAMPLE_S
    network = [] if is_local else ["-rw_timeout", "5000000"]
    done = run_capture(["ffprobe", "-v", "error", "-print_format", "json", "-show_data_hash", "CRC32",
                        "-read_intervals", f"%+{sample_s}", "-show_entries",
                        "format:stream:stream_side_data:stream_disposition:packet=stream_index,pts_time,flags",
                        *network, source], timeout=timeout, path=source)
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        if "moov atom not found" in stderr and _starts_like_mp4(source):
            raise MissingMoovError(source, "the MP4 has no index (moov atom not found): it was cut short",
                                   hint="upload the file again; a recording must be finalised before upload")
        raise NotMediaError(source, f"ffprobe cannot read it as audio/video ({_last_line(stderr)})",
                            hint="check that this is a video or audio file", facts={"what": _what_it_is(source)})
    data = json.loads(done.stdout or b"{}")
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    video_stream = next((s for s in streams if s.get("codec_type") == "video"
                         and not s.get("disposition", {}).get("attached_pic")), None)
    audio_stream = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video_stream is None and audio_stream is None:
        raise NotMediaError(source, "no audio or video stream found", hint="check that this is a video file")
    packets = _packets_by_stream(data.get("packets", []))
    video = _video_info(video_stream, packets.get(video_stream["index"], [])) if video_stream else None
    audio = _audio_info(audio_stream, packets.get(audio_stream["index"], [])) if audio_stream else None
    duration = _float(fmt.get("duration")) or max((v.duration or 0.0 for v in (video, audio) if v), default=0.0)
    return MediaInfo(path=source, container=fmt.get("format_name", ""), duration=duration,
                     start_time=_float(fmt.get("start_time")) or 0.0,
                     size_bytes=os.path.getsize(source) if is_local else None,
                     bit_rate=_int(fmt.get("bit_rate")), video=video, audio=audio)


def _what_it_is(source: str) -> str:
    return "" if "://" in source else what_it_is(read_head(source))


def _starts_like_mp4(source: str) -> bool:
    """An MP4 cut short still starts with its boxes; an HTML page named .mp4 makes ffprobe say "moov" too."""
    if "://" in source:
        return True
    with open(source, "rb") as fh:
        head = fh.read(8)
    return head[4:8] in (b"ftyp", b"mdat", b"free", b"wide", b"skip")


def _packets_by_stream(packets: list[dict]) -> dict[int, list[tuple[float, bool]]]:
    by_stream: dict[int, list[tuple[float, bool]]] = {}
    for packet in packets:
        pts = _float(packet.get("pts_time"))
        if pts is not None:
            by_stream.setdefault(int(packet["stream_index"]), []).append((pts, "K" in packet.get("flags", "")))
    return by_stream


def frame_rate(stream: dict, pts: list[float]) -> tuple[float | None, bool]:
    """(frames per second, variable?) of a video stream from ffprobe's rates and its sorted packet times: the
    declared rate unless the packets show a variable rate (or none is declared), then the measured one."""
    intervals = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    vfr = False
    if len(intervals) >= 10:
        median = statistics.median(intervals)
        strays = sum(1 for d in intervals if abs(d - median) > 0.25 * median)
        vfr = strays / len(intervals) > VFR_OUTLIER_SHARE
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    if intervals and (fps is None or vfr):
        fps = len(intervals) / (pts[-1] - pts[0]) if pts[-1] > pts[0] else fps
    return fps, vfr


def _video_info(stream: dict, packets: list[tuple[float, bool]]) -> VideoInfo:
    pts = sorted(t for t, _ in packets)
    keyframes = sorted(t for t, key in packets if key)
    gaps = [b - a for a, b in zip(keyframes, keyframes[1:])]
    fps, vfr = frame_rate(stream, pts)
    return VideoInfo(
        codec=stream.get("codec_name", ""), profile=stream.get("profile"),
        level=stream.get("level") if isinstance(stream.get("level"), int) and stream["level"] > 0 else None,
        width=int(stream.get("width", 0)), height=int(stream.get("height", 0)), pix_fmt=stream.get("pix_fmt"),
        fps=round(fps, 3) if fps else None, vfr=vfr, keyframe_interval_s=round(max(gaps), 3) if gaps else None,
        rotation=_rotation(stream), sar=stream.get("sample_aspect_ratio"), time_base=stream.get("time_base", ""),
        duration=_float(stream.get("duration")), frames=_int(stream.get("nb_frames")),
        start_pts=pts[0] if pts else None, extradata_hash=stream.get("extradata_hash"),
        codec_tag=_printable_tag(stream.get("codec_tag_string", "")))


def _audio_info(stream: dict, packets: list[tuple[float, bool]]) -> AudioInfo:
    return AudioInfo(codec=stream.get("codec_name", ""), profile=stream.get("profile"),
                     sample_rate=int(stream.get("sample_rate", 0)), channels=int(stream.get("channels", 0)),
                     channel_layout=stream.get("channel_layout"), duration=_float(stream.get("duration")),
                     packets=_int(stream.get("nb_frames")), start_pts=min((t for t, _ in packets), default=None),
                     time_base=stream.get("time_base", ""), extradata_hash=stream.get("extradata_hash"))


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    rotate = stream.get("tags", {}).get("rotate")
    return (-int(rotate)) % 360 if rotate else 0


def conformance(info: MediaInfo, profile: HouseProfile = HOUSE) -> list[Deviation]:
    """Everything that keeps `info` off the stream-copy fast path, by name; [] means conformant."""
    found: list[Deviation] = []

    def deviate(code: str, detail: str) -> None:
        found.append(Deviation(code, detail))

    video, audio = info.video, info.audio
    if video is None:
        deviate("no_video", "there is no video stream")
    else:
        if video.codec != "h264":
            deviate("video_codec", f"{video.codec}, expected h264")
        elif (video.profile or "").lower() != profile.h264_profile:
            deviate("h264_profile", f"{video.profile}, expected {profile.h264_profile.title()}")
        if video.codec == "h264" and (video.level is None or video.level > profile.level_idc):
            deviate("h264_level", f"{video.level}, expected ≤ {profile.level_idc}")
        if video.pix_fmt != profile.pix_fmt:
            deviate("pix_fmt", f"{video.pix_fmt}, expected {profile.pix_fmt}")
        width, height = video.display_size
        if width > MAX_WIDTH or height > MAX_HEIGHT:
            deviate("too_large", f"{width}x{height}, expected at most {MAX_WIDTH}x{MAX_HEIGHT}")
        if height > width:
            deviate("portrait", f"{width}x{height} is portrait, the house profile is landscape 16:9")
        if video.width % 2 or video.height % 2:
            deviate("odd_size", f"{video.width}x{video.height} has an odd dimension")
        if video.rotation:
            deviate("rotation", f"rotated {video.rotation}° by metadata; frames must be stored upright")
        if video.sar not in (None, "1:1", "0:1", "N/A"):
            deviate("sar", f"pixel aspect {video.sar}, expected square pixels")
        if video.vfr:
            deviate("vfr", "variable frame rate")
        if video.fps is None or abs(video.fps - profile.fps) > 0.5:
            deviate("fps", f"{video.fps} fps, expected {profile.fps}")
        if video.keyframe_interval_s is not None and video.keyframe_interval_s > profile.gop_seconds + 0.1:
            deviate("keyframe_interval", f"{video.keyframe_interval_s} s between keyframes, expected "
                                         f"{profile.gop_seconds} s")
    if audio is None:
        deviate("no_audio", "there is no audio stream (Meta requires audio and video)")
    else:
        if audio.codec != "aac" or (audio.profile or "LC") != "LC":
            deviate("audio_codec", f"{audio.codec} {audio.profile or ''}".strip() + ", expected AAC-LC")
        if audio.sample_rate != profile.sample_rate:
            deviate("sample_rate", f"{audio.sample_rate} Hz, expected {profile.sample_rate}")
        if audio.channels != profile.channels:
            deviate("channels", f"{audio.channels} channel(s), expected {profile.channels}")
    return found


def is_conformant(info: MediaInfo, profile: HouseProfile = HOUSE) -> bool:
    return not conformance(info, profile)


def _rate(text: str | None) -> float | None:
    if not text or "/" not in text:
        return None
    num, den = text.split("/")
    return float(num) / float(den) if float(den) and float(num) else None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _printable_tag(tag: str) -> str:
    # ffprobe prints an unprintable fourcc as "[0][0][0][0]"; such a tag names nothing.
    return "" if not tag or "[" in tag else tag.strip()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no details"
