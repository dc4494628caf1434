"""The house profile (DESIGN.md; Meta's live encoder recommendations) and the ffmpeg options that produce it.

Every encode in the toolkit takes its x264/AAC options from here, so two encodes of the same size share the same
SPS/PPS and AAC config: that is what lets cards, normalised clips and recordings be joined with `-c copy`."""
from __future__ import annotations

from dataclasses import dataclass, replace

# Meta's live recommendations per frame height (kb/s): 1080p30 3000–6000, 720p30 1500–4000, 480p 600–2000,
# 360p 400–1000; we take a middle value, and something proportionate below 360p for rehearsal streams.
_BITRATE_BY_HEIGHT = ((1080, 4500), (720, 3000), (480, 1200), (360, 700), (0, 400))

MAX_WIDTH, MAX_HEIGHT = 1920, 1080


@dataclass(frozen=True)
class HouseProfile:
    width: int = 1280
    height: int = 720
    fps: int = 30
    gop_seconds: int = 2
    h264_profile: str = "high"
    h264_level: str = "4.1"
    video_bitrate_k: int = 3000
    pix_fmt: str = "yuv420p"
    sample_rate: int = 48000
    channels: int = 2
    audio_bitrate_k: int = 128
    preset: str = "veryfast"
    # One MP4 video timescale everywhere: the concat demuxer copies timestamps, and mixed timescales
    # produced non-monotonic DTS when joining parts; 90 kHz is a multiple of both 30 fps and FLV's 1 kHz clock.
    video_timescale: int = 90000

    @property
    def gop_frames(self) -> int:
        return self.fps * self.gop_seconds

    @property
    def level_idc(self) -> int:
        major, _, minor = self.h264_level.partition(".")
        return int(major) * 10 + int(minor or 0)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def for_size(self, width: int, height: int) -> HouseProfile:
        """The same profile at another frame size (even dimensions, ≤1080p) with a bitrate fitting that size."""
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        scale = min(1.0, MAX_WIDTH / max(width, height), MAX_HEIGHT / min(width, height))
        width, height = _even(width * scale), _even(height * scale)
        short_edge = min(width, height)
        bitrate = next(k for min_h, k in _BITRATE_BY_HEIGHT if short_edge >= min_h)
        return replace(self, width=width, height=height, video_bitrate_k=bitrate)

    def video_args(self) -> dict[str, object]:
        """ffmpeg-python output options for H.264 in this profile (fixed GOP, no scene-cut keyframes, capped rate)."""
        return {
            "c:v": "libx264", "preset": self.preset, "profile:v": self.h264_profile, "level:v": self.h264_level,
            "pix_fmt": self.pix_fmt, "g": self.gop_frames, "keyint_min": self.gop_frames, "sc_threshold": 0,
            # ABR, not CRF: x264 writes pic_init_qp=26 for ABR, so the PPS does not depend on a quality setting.
            "b:v": f"{self.video_bitrate_k}k", "maxrate": f"{self.video_bitrate_k}k",
            "bufsize": f"{2 * self.video_bitrate_k}k",
        }

    def audio_args(self) -> dict[str, object]:
        return {"c:a": "aac", "b:a": f"{self.audio_bitrate_k}k", "ar": self.sample_rate, "ac": self.channels}

    def mp4_args(self) -> dict[str, object]:
        return {"movflags": "+faststart", "video_track_timescale": self.video_timescale}


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


HOUSE = HouseProfile()
