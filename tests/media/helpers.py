"""Helpers shared by the media tests (kept out of conftest.py, which pytest imports on its own terms)."""
from __future__ import annotations

import subprocess

SMALL = {"width": 426, "height": 240}


def lavfi(*args: str, timeout: float = 60) -> None:
    """Run an ad-hoc ffmpeg for fixtures the toolkit itself would never produce (broken or odd files)."""
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=timeout)


def has_encoder(name: str) -> bool:
    listed = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    return any(line.split()[1:2] == [name] for line in listed.splitlines() if line.startswith(" "))


def phone_clip(dst, *, codec: str = "h264", rotate: int = 0, vfr: bool = False, seconds: float = 3.0,
               size: tuple[int, int] = (480, 270), fps: int = 30, seed: int = 0, faststart: bool = False):
    """A clip as a phone writes it, generated with ffmpeg: H.264 or HEVC (tagged `hvc1`, as iPhones do), the
    sensor's landscape frames with the turn in the display matrix (`rotate`), mono 44.1 kHz AAC, and optionally a
    variable frame rate (frames dropped unevenly, timestamps kept). MP4 or MOV by `dst`'s suffix; `seed` makes the
    bytes unique (an upload test must not hit the duplicate check)."""
    from pathlib import Path

    dst = Path(dst)
    width, height = size
    video = f"testsrc2=size={width}x{height}:rate={fps},noise=alls=6:allf=t:all_seed={seed}"
    if vfr:  # every frame for a second, then irregular gaps: what a phone does when the light drops
        video += ",select='lt(t,1)+not(mod(n,3))+eq(mod(n,7),2)'"
    encoder = (["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1"]
               if codec == "hevc" else ["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main"])
    encoded = dst.with_name(f"{dst.stem}.encoded{dst.suffix}")
    lavfi("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", "sine=frequency=523:sample_rate=44100", "-t", str(seconds),
          *encoder, "-pix_fmt", "yuv420p", *(["-fps_mode", "vfr"] if vfr else []),
          "-c:a", "aac", "-ac", "1", "-ar", "44100", str(encoded))
    # The rotation goes in by remuxing: ffmpeg 5.1 writes the `rotate` tag of a copied stream as a display matrix.
    lavfi("-i", str(encoded), "-c", "copy", *(["-metadata:s:v", f"rotate={rotate}"] if rotate else []),
          *(["-movflags", "+faststart"] if faststart else []), str(dst))
    encoded.unlink()
    return dst


def with_fourcc(src, dst, fourcc: bytes):
    """`src` with its video sample entry renamed to `fourcc`: a codec ffmpeg has never heard of."""
    from pathlib import Path

    data = Path(src).read_bytes()
    at = data.index(b"avc1", data.index(b"stsd"))
    Path(dst).write_bytes(data[:at] + fourcc + data[at + 4:])
    return Path(dst)
