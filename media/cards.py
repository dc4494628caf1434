"""Fonts, glyph coverage and title cards: drawtext from an NFC textfile (expansion=none) in the house profile.

Coverage is checked against the font's cmap (via fontconfig's charset) before rendering, because drawtext silently
draws a box or nothing for a character the font lacks."""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ffmpeg

from media.errors import FFmpegError, MissingGlyphError
from media.normalize import check_duration, target_profile, transcode
from media.probe import probe
from media.profile import HOUSE, HouseProfile
from media.run import ProgressCallback, run_capture, run_ffmpeg

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEFAULT_BOLD_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CARD_FRAMES = 60  # one GOP of the house profile: 2 s
# An all-skip P/B frame of a still card is ~40 bytes whatever the picture; anything bigger carries real coding.
_SKIP_FRAME_MAX_BYTES = 200
CARD_TIMEOUT_S = 60.0
# x264 options that change only the encoder's effort, never the SPS/PPS (profile, level, refs, B-frames, CABAC,
# 8x8 transform and weighted prediction stay as in the house encode): a still card encodes in about two thirds of
# the time and still joins clips of the same size with `-c copy` (the tests compare extradata hashes). One thread:
# a recap renders cards in parallel processes, one per core.
_STILL_X264_PARAMS = ("rc-lookahead=0:mbtree=0:me=dia:subme=0:trellis=0:partitions=none:mixed-refs=0:aq-mode=0:"
                      "chroma-me=0:sync-lookahead=0:b-adapt=0:threads=1")
_NON_PRINTING = {"\n", "\r", "\t", " "}


def resolve_font(font: str | os.PathLike | None = None, *, bold: bool = False) -> Path:
    """A font file: a path as given, a family name through fontconfig (`fc-match`), or DejaVu Sans by default."""
    if font is None:
        return Path(DEFAULT_BOLD_FONT if bold else DEFAULT_FONT)
    if os.path.sep in str(font) or os.path.exists(font):
        path = Path(font)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: font file not found")
        return path
    pattern = f"{font}:bold" if bold else str(font)
    done = run_capture(["fc-match", "--format=%{file}", pattern], timeout=10, path=str(font))
    match = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not match:
        raise FileNotFoundError(f"{font}: fontconfig found no font for this family")
    return Path(match)


@functools.lru_cache(maxsize=64)
def font_charset(font: Path) -> tuple[tuple[int, int], ...]:
    """Code point ranges the font's cmap maps, as fontconfig reads them (`fc-query %{charset}`)."""
    done = run_capture(["fc-query", "--format=%{charset}", str(font)], timeout=10, path=font)
    if done.returncode != 0:
        raise FileNotFoundError(f"{font}: fontconfig cannot read this font")
    ranges = []
    for token in done.stdout.decode("ascii", "replace").split():
        first, _, last = token.partition("-")
        ranges.append((int(first, 16), int(last or first, 16)))
    return tuple(ranges)


def check_glyphs(font: str | os.PathLike, text: str) -> None:
    """Raise MissingGlyphError unless the font has a glyph for every visible character of `text` (taken as NFC)."""
    ranges = font_charset(Path(font))
    missing = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in _NON_PRINTING or ch in missing:
            continue
        if not any(first <= ord(ch) <= last for first, last in ranges):
            missing.append(ch)
    if missing:
        raise MissingGlyphError(font, "".join(missing), text)


@dataclass(frozen=True)
class CardText:
    """What a card says: a big title, an optional subtitle (point name) and a small line (time, place)."""

    title: str
    subtitle: str = ""
    footer: str = ""

    def lines(self) -> list[tuple[str, str, float, float]]:
        """(text, role, font size as a share of the frame height, vertical centre as a share of the height)."""
        rows = [(self.title, "title", 0.085, 0.40 if self.subtitle else 0.47),
                (self.subtitle, "subtitle", 0.065, 0.56), (self.footer, "footer", 0.045, 0.80)]
        return [(unicodedata.normalize("NFC", text), role, size, y) for text, role, size, y in rows if text.strip()]


@dataclass(frozen=True)
class CardStyle:
    background: str = "0x0b3d91"
    color: str = "white"
    font: str | None = None  # a path or a fontconfig family; None = DejaVu Sans


def add_lower_third(src: str | os.PathLike, dst: str | os.PathLike, text: str, *, logo: str | os.PathLike | None = None,
                    profile: HouseProfile | None = None, style: CardStyle = CardStyle(),
                    on_progress: ProgressCallback | None = None, timeout: float | None = None) -> Path:
    """Re-encode `src` to the house profile with a lower third (a band with `text`) and an optional logo PNG
    top-right: the overlay counterpart of a title card, e.g. the point's name over its highlight."""
    text = unicodedata.normalize("NFC", text)
    font = resolve_font(style.font, bold=True)
    check_glyphs(font, text)
    info = probe(src)
    profile = profile or target_profile(info)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="overlay-", dir=dst.parent) as tmp:
        textfile = Path(tmp) / "lower_third.txt"
        textfile.write_text(text, encoding="utf-8")
        band = round(profile.height * 0.14)

        def overlay(video):
            video = video.drawbox(0, f"ih-{band}-ih/20", "iw", band, color=f"{style.background}@0.8", t="fill")
            video = video.drawtext(textfile=str(textfile), expansion="none", fontfile=str(font),
                                   fontsize=round(band * 0.5), fontcolor=style.color, x="w/20",
                                   y=f"h-{band}-h/20+({band}-text_h)/2")
            if logo is not None:
                mark = ffmpeg.input(str(logo)).filter("scale", -1, band)
                video = ffmpeg.overlay(video, mark, x="W-w-W/40", y="H/20")
            return video

        expected = transcode(src, dst, info, profile, video_filters=overlay, on_progress=on_progress,
                             timeout=timeout)
    check_duration(src, probe(dst), expected)
    return dst


def fit_line(text: str, font: Path, px: int, max_width: int, *, min_px: int = 8) -> list[tuple[str, int]]:
    """Rows (text, font size) that fit `max_width`: as is; else split in two at the space nearest the middle;
    then shrunk until the widest row fits. A long theme on a small rehearsal frame must not run off the card."""
    from PIL import ImageFont

    def width(part: str, size: int) -> float:
        return ImageFont.truetype(str(font), size).getlength(part)

    if width(text, px) <= max_width:
        return [(text, px)]
    rows = [text]
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if spaces:
        cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
        rows = [text[:cut], text[cut + 1:]]
    size = px
    while size > min_px and max(width(r, size) for r in rows) > max_width:
        size -= 1
    return [(r, size) for r in rows]


def card_key(*parts: object) -> str:
    """Content hash of everything that changes a card's bytes: the cache key for rerun-friendly recaps."""
    blob = repr((parts, CARD_FRAMES, _STILL_X264_PARAMS)).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


def render_card(dst: str | os.PathLike, text: CardText, *, profile: HouseProfile = HOUSE, style: CardStyle = CardStyle(),
                audio_packets: int | None = None, timeout: float = CARD_TIMEOUT_S) -> Path:
    """Encode a still title card (one GOP: 60 frames, silent stereo AAC) with the exact codec parameters of
    `profile`, so it joins clips of the same size by stream copy. `audio_packets` sets the silence in AAC frames."""
    packets = audio_packets if audio_packets is not None else round(CARD_FRAMES / profile.fps * profile.sample_rate / 1024)
    return _encode_cards([(Path(dst), text, packets)], profile, style, frames=CARD_FRAMES, timeout=timeout)[0]


def render_card_stills(jobs: Sequence[tuple[str | os.PathLike, CardText, int]], *, profile: HouseProfile,
                       style: CardStyle, hold: CardHold, timeout: float = CARD_TIMEOUT_S) -> list[Path]:
    """Cards' first frames only (the IDR with the text), each with its AAC packets of silence, in one ffmpeg run;
    `hold` supplies the rest of each card. `jobs` are (destination, text, audio packets)."""
    return _encode_cards([(Path(dst), text, packets) for dst, text, packets in jobs], profile, style, frames=1,
                         timeout=timeout, extra={"bsf:v": hold.still_timing(profile)})


@dataclass(frozen=True)
class CardHold:
    path: Path
    b_delay_ticks: int  # how far a card's first frame's DTS precedes its PTS, in MP4 timescale ticks
    lead_ticks: int  # where the hold's first picture lies after the start of its file (the B-frame delay)

    def still_timing(self, profile: HouseProfile) -> str:
        """setts for a still so that the concat demuxer puts the hold's first picture exactly one frame after it.

        The concat demuxer places each file by its start time; the hold's pictures start `lead` after its file
        starts, so the still's picture is moved to half a frame less than that (its file must last a positive
        time) and its DTS to where the B-frame delay puts it."""
        lead = self.lead_ticks - profile.video_timescale // (2 * profile.fps)
        return f"setts=pts=PTS+{lead}:dts=DTS-{self.b_delay_ticks - lead}"


def render_card_hold(dst: str | os.PathLike, *, profile: HouseProfile, style: CardStyle = CardStyle(),
                     timeout: float = CARD_TIMEOUT_S) -> CardHold:
    """Frames 2..60 of a card, shared by every card of that profile and background.

    A still card's frames after the first are P/B frames in which every macroblock is skipped: they copy the
    first frame whatever it shows. So they are encoded once, from a plain card, and follow each card's own first
    frame (`render_card_still`): a recap then encodes one frame per card instead of 60, the costliest part of a
    recap's run. Refused if the encoder did code anything in them (then they would not be content-free)."""
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="hold-", dir=dst.parent) as tmp:
        template = _encode_cards([(Path(tmp) / "template.mp4", CardText(" "), 2)], profile, style,
                                 frames=CARD_FRAMES, timeout=timeout)[0]
        packets = _video_packets(template)
        b_delay_ticks = round((packets[0][0] - packets[0][1]) * profile.video_timescale)
        coded = [size for _, _, size in packets[1:] if size > _SKIP_FRAME_MAX_BYTES]
        if coded:
            raise FFmpegError(dst, f"{len(coded)} frames of the plain card were coded, not skipped", reason="not_skip")
        partial = Path(tmp) / "hold.mp4"
        # Drop the first frame; no edit list, so the B-frames that now precede the first decoded frame are kept.
        out = ffmpeg.output(ffmpeg.input(str(template)), str(partial), c="copy", use_editlist=0,
                            **{"bsf:v": "noise=drop=eq(n\\,0)", "video_track_timescale": profile.video_timescale})
        run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout, path=dst)
        held = probe(partial)
        os.replace(partial, dst)
    lead_ticks = round((held.video.start_pts - held.start_time) * profile.video_timescale)
    return CardHold(dst, b_delay_ticks=b_delay_ticks, lead_ticks=lead_ticks)


def _video_packets(path: Path) -> list[tuple[float, float, int]]:
    """(pts, dts, size) of the video packets, in decoding order."""
    done = run_capture(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                        "packet=pts_time,dts_time,size", "-of", "csv=p=0", str(path)], timeout=30, path=path)
    rows = [line.split(",") for line in done.stdout.decode("ascii", "replace").split()]
    return [(float(pts), float(dts), int(size)) for pts, dts, size in rows]


def _encode_cards(jobs: Sequence[tuple[Path, CardText, int]], profile: HouseProfile, style: CardStyle, *,
                  frames: int, timeout: float, extra: dict[str, object] | None = None) -> list[Path]:
    """Encode cards (destination, text, AAC packets of silence) in one ffmpeg run: with one frame per card, process
    start-up would otherwise cost more than the encoding."""
    regular, bold = resolve_font(style.font), resolve_font(style.font, bold=True)
    for _, text, _ in jobs:
        for line, role, _, _ in text.lines():
            check_glyphs(bold if role == "title" else regular, line)
    first = Path(jobs[0][0])
    with tempfile.TemporaryDirectory(prefix="card-", dir=first.parent) as tmp:
        outputs, partials = [], []
        backgrounds = ffmpeg.input(f"color=c={style.background}:s={profile.width}x{profile.height}:r={profile.fps}"
                                   ":d=0.01", f="lavfi").video.split()
        silences = ffmpeg.input(f"anullsrc=r={profile.sample_rate}:cl=stereo", f="lavfi").audio.asplit()
        for number, (dst, text, audio_packets) in enumerate(jobs):
            video = backgrounds[number]
            for index, (line, role, size, y) in enumerate(text.lines()):
                font = bold if role == "title" else regular
                rows = fit_line(line, font, max(8, round(profile.height * size)), round(profile.width * 0.92))
                for row, (part, px) in enumerate(rows):
                    textfile = Path(tmp) / f"card{number}-line{index}-{row}.txt"
                    textfile.write_text(part, encoding="utf-8")
                    # A wrapped title grows upwards and a wrapped subtitle downwards, so they never meet.
                    shift = (row - (len(rows) - 1) if role == "title" else row) * 1.25 * px
                    video = video.drawtext(textfile=str(textfile), expansion="none", fontfile=str(font),
                                           fontsize=px, fontcolor=style.color,
                                           x="(w-text_w)/2", y=f"h*{y}-text_h/2+{shift:.1f}")
            video = video.filter("format", profile.pix_fmt)
            if frames > 1:
                # Draw once, then repeat the finished frame: drawtext and colour conversion run for 1 frame only.
                video = video.filter("loop", loop=frames - 1, size=1).filter("setpts", "N/FRAME_RATE/TB")
            # An AAC encode of S samples yields ceil(S/1024)+1 packets (one priming frame): packets-1 frames here.
            # No -frames:v: ending the output on the video count drops the audio still queued behind it.
            audio = silences[number].filter("atrim", end_sample=max(1, audio_packets - 1) * 1024)
            partials.append(Path(tmp) / f"card{number}{Path(dst).suffix or '.mp4'}")
            outputs.append(ffmpeg.output(video, audio, str(partials[-1]), **profile.video_args(),
                                         **profile.audio_args(), **profile.mp4_args(),
                                         **{"x264-params": _STILL_X264_PARAMS}, **(extra or {})))
        run_ffmpeg(ffmpeg.compile(ffmpeg.merge_outputs(*outputs), overwrite_output=True),
                   timeout=timeout * len(jobs), path=first)
        for partial, (dst, _, _) in zip(partials, jobs):
            if partial.stat().st_size == 0:
                raise FFmpegError(dst, "ffmpeg wrote an empty card", reason="short_output")
            os.replace(partial, dst)  # a card in the cache is either whole or absent
    return [Path(dst) for dst, _, _ in jobs]
