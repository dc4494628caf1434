"""Generated test media (lavfi testsrc2 + tone, labelled with drawtext) for tests, benchmarks and the launch
rehearsal, which pre-encodes one cheap low-resolution stream per point and pushes it with `-c copy`."""
from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

import ffmpeg

from media.cards import check_glyphs, resolve_font
from media.profile import HOUSE, HouseProfile
from media.run import run_capture, run_ffmpeg

# Rehearsal streams: 64 of them must fit through one 2-core box and nginx at once.
REHEARSAL_SIZE = (426, 240)
MARKER_LENGTH_S = 0.2


def synthetic_clip(dst: str | os.PathLike, *, width: int = 640, height: int = 360, duration: float = 4.0,
                   fps: float = 30, label: str | None = None, audio_channels: int = 2, sample_rate: int = 48000,
                   marker_at: float | None = None, vfr: bool = False, rotate: int = 0, noise: bool = False,
                   profile: HouseProfile | None = None, timeout: float = 300) -> Path:
    """Encode a test clip in the house profile at width×height (H.264 High, 2 s GOP, AAC) unless told otherwise.

    `audio_channels=0` leaves audio out; `marker_at=t` makes the picture flash white and the otherwise silent audio
    beep at t (for A/V sync measurements); `vfr` makes the frame rate jump from `fps` to fps/2 halfway (a phone
    clip); `rotate` stores a rotation in the metadata instead of turning the pixels."""
    dst = Path(dst)
    if profile is None or profile.size != (width, height):
        profile = (profile or HOUSE).for_size(width, height)
    with tempfile.TemporaryDirectory(prefix="synthetic-", dir=dst.parent) as tmp:
        video = ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}", f="lavfi", t=duration).video
        if noise:
            video = video.filter("noise", alls=12, allf="t")  # testsrc2 alone is unrealistically cheap to encode
        if label:
            label = unicodedata.normalize("NFC", label)
            font = resolve_font(bold=True)
            check_glyphs(font, label)
            textfile = Path(tmp) / "label.txt"
            textfile.write_text(label, encoding="utf-8")
            video = video.drawtext(textfile=str(textfile), expansion="none", fontfile=str(font),
                                   fontsize=max(10, height // 8), fontcolor="white", box=1, boxcolor="black@0.6",
                                   x="(w-text_w)/2", y="h-text_h*2")
        if marker_at is not None:
            video = video.drawbox(0, 0, "iw", "ih", color="white", t="fill",
                                  enable=f"between(t,{marker_at},{marker_at + MARKER_LENGTH_S})")
        if vfr:
            half = duration / 2
            # Frame n at n/fps for the first half, then every second frame kept at the same clock: fps/2.
            video = video.filter("select", f"lt(t,{half})+not(mod(n,2))").filter("setpts", "PTS-STARTPTS")
        streams = [video]
        if audio_channels:
            layout = "stereo" if audio_channels == 2 else "mono"
            audio = ffmpeg.input(f"sine=frequency=1000:sample_rate={sample_rate}", f="lavfi", t=duration).audio
            if marker_at is not None:
                audio = audio.filter("volume", 0, enable=f"not(between(t,{marker_at},{marker_at + MARKER_LENGTH_S}))")
            streams.append(audio.filter("aformat", channel_layouts=layout))
        video_args = profile.video_args()
        if fps != profile.fps:
            video_args["g"] = video_args["keyint_min"] = int(round(fps * profile.gop_seconds))
        opts = {**video_args, **(profile.audio_args() if audio_channels else {}), **profile.mp4_args()}
        if audio_channels:
            opts.update(ar=sample_rate, ac=audio_channels)
        if vfr:
            opts["fps_mode"] = "vfr"
        encoded = Path(tmp) / f"encoded{dst.suffix}" if rotate else dst
        out = ffmpeg.output(*streams, str(encoded), **opts)
        run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout, path=dst)
        if rotate:
            # ffmpeg 5.1 turns the `rotate` tag into a display matrix only when stream-copying.
            tagged = ffmpeg.output(ffmpeg.input(str(encoded)), str(dst), c="copy",
                                   **{"metadata:s:v:0": f"rotate={rotate}"})
            run_ffmpeg(ffmpeg.compile(tagged, overwrite_output=True), timeout=timeout, path=dst)
    return dst


def rehearsal_stream(dst: str | os.PathLike, label: str, *, duration: float = 60.0,
                     size: tuple[int, int] = REHEARSAL_SIZE) -> Path:
    """One point's rehearsal feed: encoded once, small, conformant (H.264 High/AAC 48 kHz stereo, 2 s GOP)."""
    return synthetic_clip(dst, width=size[0], height=size[1], duration=duration, label=label)


def publish_argv(src: str | os.PathLike, rtmp_url: str) -> list[str]:
    """ffmpeg argv that pushes a pre-encoded file to RTMP in real time, looping forever, without re-encoding."""
    stream = ffmpeg.input(str(src), re=None, stream_loop=-1)
    out = ffmpeg.output(stream, rtmp_url, c="copy", f="flv", flvflags="no_duration_filesize")
    return ffmpeg.compile(out)


_PTS_RE = re.compile(r"pts_time:([0-9.]+)")


def find_sync_marker(path: str | os.PathLike, start: float, window: float, *, timeout: float = 120) -> tuple[float, float]:
    """(flash time, beep time) in seconds of `path`, searched in [start, start+window): their difference is the
    A/V offset at that point of the file. Decodes only the window."""
    window_opts = ["-ss", f"{start:.3f}", "-t", f"{window:.3f}", "-i", str(path)]
    flash = run_capture(["ffmpeg", "-hide_banner", "-nostdin", "-copyts", *window_opts, "-map", "0:v:0", "-vf",
                         "signalstats,metadata=select:key=lavfi.signalstats.YAVG:value=200:function=greater,showinfo",
                         "-f", "null", "-"], timeout=timeout, path=path)
    beep = run_capture(["ffmpeg", "-hide_banner", "-nostdin", "-copyts", *window_opts, "-map", "0:a:0", "-af",
                        "astats=metadata=1:reset=1,ametadata=select:key=lavfi.astats.Overall.RMS_level:value=-40"
                        ":function=greater,ashowinfo", "-f", "null", "-"], timeout=timeout, path=path)
    flashes = _PTS_RE.findall(flash.stderr.decode("utf-8", "replace"))
    beeps = _PTS_RE.findall(beep.stderr.decode("utf-8", "replace"))
    if not flashes or not beeps:
        raise ValueError(f"{path}: no sync marker between {start:.2f} s and {start + window:.2f} s")
    return float(flashes[0]), float(beeps[0])


def field_photo(dst: str | os.PathLike, label: str, *, size: tuple[int, int] = (2000, 1500),
                gps: tuple[float, float] = (21.3089, 105.6046), seed: int = 0) -> Path:
    """A phone-like JPEG from a field team: a labelled picture with camera EXIF and a GPS position (which the
    pipeline must strip). `seed` varies the picture so every photo has its own content hash."""
    from PIL import Image, ImageDraw, ImageFont

    dst = Path(dst)
    hue = (seed * 47) % 255
    image = Image.new("RGB", size, (hue, 90, 255 - hue))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(resolve_font()), size[1] // 12)
    text = unicodedata.normalize("NFC", label)
    check_glyphs(resolve_font(), text)
    draw.rectangle((0, size[1] * 2 // 3, size[0], size[1]), fill=(0, 0, 0))
    draw.text((size[0] // 20, size[1] * 2 // 3 + size[1] // 20), f"{text} · #{seed}", font=font, fill=(255, 255, 255))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "PhoneMaker", "Field Phone"
    position = exif.get_ifd(0x8825)

    def dms(value: float) -> tuple[float, float, float]:
        degrees, rest = int(value), (value - int(value)) * 60
        return float(degrees), float(int(rest)), round((rest - int(rest)) * 60, 2)

    position.update({1: "N", 2: dms(gps[0]), 3: "E", 4: dms(gps[1])})
    image.save(dst, "JPEG", quality=88, exif=exif)
    return dst
