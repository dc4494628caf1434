"""The recap as a montage made to a length budget: an opening mosaic of the points live at T0, the best moments of
each point (grouped, with a Vietnamese lower third), an outro with the campaign message; loudness normalised.

Cost model (media-notes §3): stream copy is ~free, decoding keyframes only is ~100× realtime, re-encoding 720p is
~2× realtime. So the montage is cut on keyframes (2 s GOP) and only what must change is re-encoded:
- the mosaic and the outro: stills (Pillow) encoded once each, with the clips' exact codec parameters;
- each point's first GOP, which carries its lower third (drawbox + drawtext + logo) — re-encoded frame-exact;
- the rest of each point's moment is stream-copied, whole GOPs, every point's in one ffmpeg (`clips.copy_gops`);
- the sound is made apart from the pictures, once, for the whole montage (`montage_sound`): the moments' own sound
  at one loudness gain (EBU R128, measured on those moments before anything renders), silence under the stills,
  each piece exactly as long as its pictures' span; the join lays the video-only parts end to end by their spans
  beside that one track (`clips.join_pictures`), so the sync holds by construction.
The moments are chosen by a measurable signal per GOP (`score_gops`): the picture change between consecutive
keyframes (keyframe-only decode) plus the audio level (RMS) of the GOP."""
from __future__ import annotations

import concurrent.futures
import json
import math
import os
import struct
import subprocess
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import ffmpeg

from media.cards import CardStyle, check_glyphs, fit_line, resolve_font
from media.clips import (Chapter, ClipResult, copy_gops, cut, gop_packets, join_pictures, joinable_signature,
                         stream_signature)
from media.errors import FFmpegError, NotConformantError
from media.frames import poster_frame
from media.probe import MediaInfo, conformance, probe
from media.profile import HOUSE, HouseProfile
from media.run import ProgressCallback, run_ffmpeg

# x264 options that change only the encoder's effort, never the SPS/PPS (see cards._STILL_X264_PARAMS): a re-encoded
# GOP still joins the copied ones. One thread per encode: the montage runs one encode per core.
# subme=0 (full-pixel motion only): -15 % CPU on a noisy 720p GOP for -0.4 dB PSNR (40.6 → 40.3), same headers.
FAST_X264_PARAMS = ("rc-lookahead=0:mbtree=0:me=dia:subme=0:psy=0:trellis=0:partitions=none:mixed-refs=0:aq-mode=0:"
                    "chroma-me=0:sync-lookahead=0:b-adapt=0:threads=1")
_SCORE_SIZE = (32, 18)  # keyframes are compared at this size: enough for "something moved", cheap in Python
SILENCE_DB = -90.0
LOUDNORM = {"I": -16, "TP": -1.5}  # EBU R128 for a social-media programme: LUFS, dBTP


# --- the signal ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GopScores:
    """Per GOP of a clip (from one keyframe to the next): where it starts, picture change and audio level."""

    starts: list[float]  # keyframe times (s) in the clip; GOP i is [starts[i], starts[i+1] or end)
    end: float
    motion: list[float]  # mean absolute luma difference to the next keyframe, 0..255
    loudness_db: list[float]  # RMS level of the GOP's audio, dBFS
    # picture packets per GOP, when counted on the file itself (`with_packets`): a GOP copied whole from a live
    # recording holds what the source kept, not GOP-length-many pictures
    frames: list[int] | None = None

    @property
    def scores(self) -> list[float]:
        """One number per GOP: motion (0..1 after /32, saturating) + audio level (0..1 over -60..0 dBFS)."""
        return [min(1.0, m / 32) + min(1.0, max(0.0, (db + 60) / 60)) for m, db in zip(self.motion, self.loudness_db)]

    def full_gops(self, gop_s: float) -> int:
        """How many GOPs from the first last a whole GOP: a recording's last one is often a ragged end (a partial
        GOP, a frame short) whose copy does not probe as constant-rate, so it cannot be joined by copy."""
        if len(self.starts) > 1 and self.end - self.starts[-1] < 0.9 * gop_s:
            return len(self.starts) - 1
        return len(self.starts)

    def best_window(self, gops: int, within: int | None = None) -> tuple[int, float]:
        """(first GOP, summed score) of the best run of `gops` consecutive GOPs among the first `within` (all by
        default); the earliest on a tie."""
        scores = self.scores[:within]
        gops = max(1, min(gops, len(scores)))
        sums = [sum(scores[i:i + gops]) for i in range(len(scores) - gops + 1)]
        best = max(range(len(sums)), key=lambda i: (sums[i], -i))
        return best, sums[best]

    def between(self, start: float, end: float, duration: float) -> GopScores:
        """The GOPs of a copy-cut [start, end) of this clip (`start` a keyframe), on the cut's own clock (it lasts
        `duration`): the same numbers as scoring the cut again, without decoding it again."""
        kept = [i for i, t in enumerate(self.starts) if start - 1e-3 <= t < end - 1e-3]
        if not kept:
            raise ValueError(f"no GOP starts in [{start:.3f}, {end:.3f})")
        return GopScores([round(self.starts[i] - start, 6) for i in kept], duration,
                         [self.motion[i] for i in kept], [self.loudness_db[i] for i in kept],
                         [self.frames[i] for i in kept] if self.frames else None)

    def with_packets(self, gops: Sequence[tuple[float, int]]) -> GopScores:
        """These scores with the file's own GOPs (`clips.gop_packets`): their keyframe times, exact on the file's
        clock, and their picture counts. A copy-cut may end on a lone keyframe of the next GOP, which is not
        scored and is left out. Unchanged when the file's keyframes are not these GOPs'."""
        matched = [next((gop for gop in gops if abs(gop[0] - start) <= 0.02), None) for start in self.starts]
        if None in matched:
            return self
        return replace(self, starts=[t for t, _ in matched], frames=[n for _, n in matched])

    def to_dict(self) -> dict:
        return {"starts": self.starts, "end": self.end, "motion": self.motion, "loudness_db": self.loudness_db,
                "frames": self.frames}

    @classmethod
    def from_dict(cls, raw: dict) -> GopScores:
        return cls(list(raw["starts"]), raw["end"], list(raw["motion"]), list(raw["loudness_db"]),
                   list(raw["frames"]) if raw.get("frames") else None)


def score_gops(src: str | os.PathLike, *, since: float | None = None, until: float | None = None,
               source: MediaInfo | None = None, timeout: float = 300) -> GopScores:
    """Score every GOP of `src` — or those from the keyframe at or before `since` to `until` — in one ffmpeg run:
    keyframes only are decoded (tiny grey frames to a pipe), the audio is decoded to 8 kHz mono samples for the RMS.
    No full video decode, and nothing before `since` is read: a point's recording starts at preflight, an hour
    before the moments searched. The times stay on `src`'s clock. `source`: `src` already probed."""
    info = source or probe(src)
    width, height = _SCORE_SIZE
    with tempfile.TemporaryDirectory(prefix="score-") as tmp:
        audio_raw = Path(tmp) / "audio.s16"
        # -ss seeks to the keyframe at or before `since` and -noaccurate_seek keeps it; -copyts keeps the clock;
        # the audio is padded from 0 (first_pts) so a sample's index is its time on that clock too
        seek = ["-ss", f"{since:.6f}", "-noaccurate_seek", "-copyts"] if since else []
        span = (until - (since or 0.0)) if until is not None else None
        argv = ["ffmpeg", "-v", "info", "-nostats", "-nostdin", "-skip_frame", "nokey", *seek,
                *(["-t", f"{span:.6f}"] if span is not None else []), "-i", str(src),
                "-map", "0:v:0", "-vf", f"scale={width}:{height},format=gray,showinfo", "-fps_mode", "passthrough",
                "-f", "rawvideo", "pipe:1"]
        if info.audio is not None:
            argv += ["-map", "0:a:0", "-ac", "1", "-af", "aresample=8000:first_pts=0" if seek else "aresample=8000",
                     "-f", "s16le", str(audio_raw)]
        done = subprocess.run(["ffmpeg", "-hide_banner", *argv[1:]], capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise FFmpegError(src, "ffmpeg could not read the clip to score it: "
                              + done.stderr.decode("utf-8", "replace")[-300:], reason="score_failed")
        samples = audio_raw.read_bytes() if info.audio is not None else b""
    frame = width * height
    frames = [done.stdout[i:i + frame] for i in range(0, len(done.stdout) - frame + 1, frame)]
    starts = [float(t) for t in _showinfo_times(done.stderr.decode("utf-8", "replace"))][:len(frames)]
    if not starts:
        raise FFmpegError(src, "no keyframe found to score", reason="no_keyframes")
    end = info.duration if until is None else min(info.duration, until)
    motion = [_mean_abs_diff(frames[i], frames[i + 1]) if i + 1 < len(frames) else
              (_mean_abs_diff(frames[i - 1], frames[i]) if i else 0.0) for i in range(len(starts))]
    loudness = [_rms_db(samples, s, starts[i + 1] if i + 1 < len(starts) else end) for i, s in enumerate(starts)]
    return GopScores(starts, end, motion, loudness)


def _showinfo_times(stderr: str) -> list[str]:
    return [part.split()[0] for part in stderr.split("pts_time:")[1:]]


def _mean_abs_diff(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / max(1, len(a))


def _rms_db(samples: bytes, start: float, end: float, rate: int = 8000) -> float:
    first, last = int(start * rate) * 2, int(end * rate) * 2
    chunk = samples[first:last - (last - first) % 2]
    if not chunk:
        return SILENCE_DB
    values = struct.unpack(f"<{len(chunk) // 2}h", chunk)
    mean_square = sum(v * v for v in values) / len(values)
    return max(SILENCE_DB, 10 * math.log10(mean_square / 32768 ** 2)) if mean_square else SILENCE_DB


# --- a point's highlight -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Highlight:
    """A point's best moment, copied from its recording, and what the montage needs of it."""

    clip: ClipResult  # on the recording's clock: clip.start is the moment's keyframe
    still: Path  # the search window's first keyframe (T0, or when the point came)
    window_start: float  # that keyframe, on the recording's clock
    score: float  # the moment's summed GOP scores
    scores: GopScores  # the clip's GOPs on its own clock

    @property
    def moment(self) -> float:
        return self.clip.start


def cut_highlight(recording: MediaInfo, dst: str | os.PathLike, still: str | os.PathLike, *,
                  window: tuple[float, float], length_s: float, still_width: int = 640) -> Highlight:
    """The best `length_s` (whole GOPs by `score_gops`) of the recording's search `window` (from the keyframe at or
    before its start), copied to `dst`, and a still of that first keyframe. The recording is read three times —
    keyframes and audio of the window only, one frame for the still, the moment's packets — never copied whole:
    every step of a point's wrap-up is a process start (~0.1 CPU-s here) and 64 points share two cores."""
    window_start, window_end = window
    scores = score_gops(recording.path, since=window_start, until=window_end, source=recording)
    first = max((i for i, t in enumerate(scores.starts) if t <= window_start + 1e-3), default=0)
    keyframe = scores.starts[first]
    searched = scores.between(keyframe, window_end, window_end - keyframe)
    # whole GOPs only while the window has enough: a moment cut short by the window's end is a shorter highlight
    best, score = searched.best_window(max(1, round(length_s / HOUSE.gop_seconds)),
                                       searched.full_gops(HOUSE.gop_seconds))
    moment = keyframe + searched.starts[best]
    poster_frame(recording.path, still, at=keyframe, width=still_width, source=recording)
    clip = cut(recording.path, dst, moment, min(window_end, moment + length_s), source=recording, keyframe=moment)
    # the clip's own GOPs counted here, where the points' wrap-ups run side by side, not in the montage's one task
    kept = scores.between(clip.start, clip.end, clip.duration).with_packets(gop_packets(clip.path))
    return Highlight(clip, Path(still), keyframe, score, kept)


# --- the plan (pure) -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MontageClip:
    """A point's material for the montage: its highlight file, scored per GOP."""

    point: str  # the point's id
    name: str  # what the lower third says, e.g. "Hà Nội"
    group: str  # the lower third's kicker and the order of the groups, e.g. "Miền Bắc"
    clip: Path
    scores: GopScores
    rank: int  # 0 = shown first when there is no room for everyone (central point, host province, …)
    # the clip's `clips.joinable_signature`, when its maker probed it (the highlight task): the montage then
    # checks it without probing the clip again (a process start, ~0.1 CPU-s, for each shown point)
    signature: dict | None = None


@dataclass(frozen=True)
class PlannedClip:
    clip: MontageClip
    first_gop: int
    gops: int

    @property
    def start(self) -> float:
        return self.clip.scores.starts[self.first_gop]

    @property
    def end(self) -> float:
        starts = self.clip.scores.starts
        last = self.first_gop + self.gops
        return starts[last] if last < len(starts) else self.clip.scores.end


@dataclass(frozen=True)
class MontagePlan:
    intro_s: float
    clips: list[PlannedClip]  # in screen order
    outro_s: float
    left_out: list[str]  # points with material but no room in the budget

    @property
    def duration(self) -> float:
        return self.intro_s + sum(p.end - p.start for p in self.clips) + self.outro_s


def plan_montage(material: Sequence[MontageClip], *, budget_s: float, intro_s: float = 4.0, outro_s: float = 4.0,
                 clip_gops: int = 2, lead_gops: int = 3, groups: Sequence[str] = ()) -> MontagePlan:
    """Which points, which GOPs, in what order, so the montage lasts `budget_s`.

    Every point gets `clip_gops` GOPs (the rank-0 points `lead_gops`) while the budget lasts, best-ranked and
    best-scoring first; left-over time goes GOP by GOP to the shown points with material left, in rank order; the
    mosaic absorbs the remainder below one GOP so the total meets the budget. Each point's window is its best run
    of GOPs by score. Screen order: by `groups` (then any other group), the event's order within a group."""
    if not material:
        raise ValueError("a montage needs at least one point with material")
    gop = material[0].scores.starts[1] - material[0].scores.starts[0] if len(material[0].scores.starts) > 1 else 2.0
    usable = {m.point: m.scores.full_gops(gop) for m in material}  # never a clip's ragged last GOP
    room = budget_s - intro_s - outro_s
    ranked = sorted(material, key=lambda m: (m.rank, -m.scores.best_window(clip_gops, usable[m.point])[1],
                                             material.index(m)))
    given: dict[str, int] = {}
    for m in ranked:
        wanted = min(lead_gops if m.rank == 0 else clip_gops, usable[m.point])
        if (sum(given.values()) + wanted) * gop > room + 1e-6:
            wanted = int((room + 1e-6) // gop) - sum(given.values())
            if wanted < 1:
                continue
        given[m.point] = wanted
    while True:  # spare room: one more GOP each, in rank order, to points that have more
        grew = False
        for m in ranked:
            if m.point in given and given[m.point] < usable[m.point] and (sum(given.values()) + 1) * gop <= room + 1e-6:
                given[m.point] += 1
                grew = True
        if not grew:
            break
    chosen = [PlannedClip(m, m.scores.best_window(given[m.point], usable[m.point])[0], given[m.point])
              for m in material if m.point in given]
    order = {g: i for i, g in enumerate(groups)}
    chosen.sort(key=lambda p: (order.get(p.clip.group, len(order)), material.index(p.clip)))
    used = sum(p.end - p.start for p in chosen)
    intro = max(intro_s, budget_s - outro_s - used) if used + intro_s + outro_s < budget_s else intro_s
    intro = min(intro, intro_s + gop)  # never a long mosaic to make up for missing material
    return MontagePlan(intro, chosen, outro_s, [m.point for m in material if m.point not in given])


# --- stills: mosaic and outro (Pillow) -----------------------------------------------------------------------------
def grid(count: int, size: tuple[int, int], *, top: float = 0.2) -> list[tuple[int, int, int, int]]:
    """Tile boxes (left, top, right, bottom) for `count` 16:9 tiles below a title band of `top` × height."""
    width, height = size
    area_top = round(height * top)

    def tile(columns: int) -> tuple[int, int]:
        rows = math.ceil(count / columns)
        tile_h = min((height - area_top) // rows, (width // columns) * 9 // 16)
        return tile_h * 16 // 9, tile_h

    columns = max(range(1, max(1, count) + 1), key=lambda c: (tile(c)[1], -c))  # the biggest tiles that fit
    tile_w, tile_h = tile(columns)
    left0 = (width - columns * tile_w) // 2
    return [(left0 + (i % columns) * tile_w, area_top + (i // columns) * tile_h,
             left0 + (i % columns + 1) * tile_w - 1, area_top + (i // columns + 1) * tile_h - 1) for i in range(count)]


def mosaic_image(stills: Sequence[str | os.PathLike], dst: str | os.PathLike, *, size: tuple[int, int], title: str,
                 logo: str | os.PathLike | None = None, style: CardStyle = CardStyle()) -> list[tuple[int, int, int, int]]:
    """The opening wall: one tile per still (a point live at T0) under `title`; returns the tile boxes."""
    from PIL import Image

    canvas = Image.new("RGB", size, _rgb(style.background))
    boxes = grid(len(stills), size)
    for still, (left, top, right, bottom) in zip(stills, boxes):
        with Image.open(still) as im:
            tile = im.convert("RGB").resize((right - left - 1, bottom - top - 1))
        canvas.paste(tile, (left + 1, top + 1))
    band = boxes[0][1] if boxes else size[1] // 5
    corner = _logo_box(canvas, logo, bottom=True)
    if corner and any(_overlap(corner, box) for box in boxes):
        # the grid's last row is full: the logo goes to the title band's right end, never over a point's tile
        scale = min(0.12, 0.8 * band / size[1])
        placed = _paste_logo(canvas, logo, scale=scale, top_px=max(0, (band - round(size[1] * scale)) // 2))
        _text_band(canvas, [(title, 0.085)], top=0.0, bottom=band, style=style,
                   max_width=placed[0] - size[0] // 40 if placed else None)
    else:
        _text_band(canvas, [(title, 0.085)], top=0.0, bottom=band, style=style)
        _paste_logo(canvas, logo, bottom=True)  # bottom-right, in the grid's empty corner
    canvas.save(dst)
    return boxes


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def outro_image(dst: str | os.PathLike, *, size: tuple[int, int], lines: Sequence[str],
                logo: str | os.PathLike | None = None, style: CardStyle = CardStyle()) -> Path:
    """The closing card: the campaign's message (first line big), the logo."""
    from PIL import Image

    canvas = Image.new("RGB", size, _rgb(style.background))
    rows = [(line, 0.08 if i == 0 else 0.05) for i, line in enumerate(lines) if line.strip()]
    _text_band(canvas, rows, top=0.15, bottom=0.9, style=style)
    _paste_logo(canvas, logo, scale=0.2)
    canvas.save(dst)
    return Path(dst)


def _text_band(canvas, rows: Sequence[tuple[str, float]], *, top: float, bottom: float, style: CardStyle,
               max_width: int | None = None) -> None:
    """Rows of NFC text between `top` and `bottom` (shares of the height, or pixels if > 1), centred on the width —
    or, with `max_width`, fitted to and centred on the band's first `max_width` pixels (beside a logo)."""
    from PIL import ImageDraw, ImageFont

    width, height = canvas.size
    y0 = top * height if top <= 1 else top
    y1 = bottom * height if bottom <= 1 else bottom
    font_path = resolve_font(style.font, bold=True)
    laid = []
    for text, share in rows:
        text = unicodedata.normalize("NFC", text)
        check_glyphs(font_path, text)
        laid += fit_line(text, font_path, max(8, round(height * share)), round((max_width or width) * 0.92))
    draw = ImageDraw.Draw(canvas)
    total = sum(px * 1.3 for _, px in laid)
    y = y0 + max(0.0, (y1 - y0 - total) / 2)
    for text, px in laid:
        font = ImageFont.truetype(str(font_path), px)
        draw.text((((max_width or width) - font.getlength(text)) / 2, y), text, font=font, fill=style.color)
        y += px * 1.3


def _logo_box(canvas, logo, *, scale: float = 0.12, bottom: bool = False,
              top_px: int | None = None) -> tuple[int, int, int, int] | None:
    """Where `_paste_logo` would put the logo (left, top, right, bottom); None without a logo."""
    if logo is None:
        return None
    from PIL import Image

    with Image.open(logo) as mark:
        h = max(8, round(canvas.size[1] * scale))
        w = max(1, round(mark.size[0] * h / mark.size[1]))
    if top_px is None:
        top_px = canvas.size[1] - h - canvas.size[1] // 25 if bottom else canvas.size[1] // 25
    left = canvas.size[0] - w - canvas.size[0] // 40
    return left, top_px, left + w, top_px + h


def _paste_logo(canvas, logo, *, scale: float = 0.12, bottom: bool = False,
                top_px: int | None = None) -> tuple[int, int, int, int] | None:
    box = _logo_box(canvas, logo, scale=scale, bottom=bottom, top_px=top_px)
    if box is None:
        return None
    from PIL import Image

    with Image.open(logo) as mark:
        mark = mark.convert("RGBA").resize((box[2] - box[0], box[3] - box[1]))
    canvas.paste(mark, box[:2], mark)
    return box


def _rgb(color: str) -> tuple[int, int, int] | str:
    if color.startswith("0x"):
        value = int(color, 16)
        return value >> 16 & 255, value >> 8 & 255, value & 255
    return color


def encode_still(image: str | os.PathLike, dst: str | os.PathLike, seconds: float, profile: HouseProfile, *,
                 timeout: float = 60) -> Path:
    """`image` held for `seconds` (whole frames), pictures only, in `profile`'s exact codec parameters (the
    montage's sound is laid out apart: `montage_sound`)."""
    frames = _frames(seconds, profile.fps)
    # Decoded, scaled and converted once, then the finished frame repeated: an image looped at the input is decoded
    # again for every frame (a 720p PNG: ~5 ms each, most of the encode's time).
    video = (ffmpeg.input(str(image), framerate=profile.fps).video
             .filter("scale", profile.width, profile.height).filter("setsar", 1).filter("format", profile.pix_fmt)
             .filter("loop", loop=frames - 1, size=1).filter("setpts", "N/FRAME_RATE/TB"))
    out = ffmpeg.output(video, str(dst), **profile.video_args(), **profile.mp4_args(),
                        **{"x264-params": FAST_X264_PARAMS})
    run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout, path=dst)
    return Path(dst)


# --- lower thirds over one GOP ----------------------------------------------------------------------------------------
def lower_third_gop(src: str | os.PathLike, dst: str | os.PathLike, start: float, end: float, *, name: str,
                    kicker: str = "", logo: str | os.PathLike | None = None, profile: HouseProfile,
                    style: CardStyle = CardStyle(), timeout: float = 120) -> Path:
    """[start, end) of `src` (one GOP) re-encoded frame-exact with a lower third: the kicker (group) small above
    the point's name, on a band, and the logo top-right. Pictures only: the montage lays out its sound apart."""
    font = resolve_font(style.font, bold=True)
    name, kicker = unicodedata.normalize("NFC", name), unicodedata.normalize("NFC", kicker)
    check_glyphs(font, name + kicker)
    frames = _frames(end - start, profile.fps)
    band = round(profile.height * 0.16)
    with tempfile.TemporaryDirectory(prefix="lower-third-", dir=Path(dst).parent) as tmp:
        source = ffmpeg.input(str(src), ss=f"{start:.6f}", t=f"{end - start:.6f}")
        # On the house frame grid first: the encoder's frame rate (and so the SPS's VUI timing) comes from the
        # filter graph, and a recording's guessed rate (FLV's 1 ms clock, jitter under load) is not always 30/1 —
        # a head whose SPS differs from the cards' cannot be joined by copy.
        video = (source.video.filter("fps", profile.fps)
                 .drawbox(0, f"ih-{band}-ih/20", "iw", band, color=f"{style.background}@0.85", t="fill"))
        rows = [(kicker, 0.28, 0.08), (name, 0.42, 0.42)] if kicker else [(name, 0.5, 0.25)]
        for index, (text, share, y) in enumerate(rows):
            textfile = Path(tmp) / f"row{index}.txt"
            [(fitted, px)] = fit_line(text, font, round(band * share), round(profile.width * 0.8))[:1] or [(text, 8)]
            textfile.write_text(fitted, encoding="utf-8")
            video = video.drawtext(textfile=str(textfile), expansion="none", fontfile=str(font), fontsize=px,
                                   fontcolor=style.color if index == len(rows) - 1 else "0xffd54f",
                                   x="w/20", y=f"h-{band}-h/20+{band}*{y}")
        if logo is not None:
            mark = ffmpeg.input(str(logo)).filter("scale", -1, band)
            video = ffmpeg.overlay(video, mark, x="W-w-W/40", y="H/20")
        # exactly `frames` pictures: a live GOP that kept fewer than its span's worth gets its last one held
        video = (video.filter("format", profile.pix_fmt).filter("tpad", stop_mode="clone", stop=2)
                 .filter("trim", end_frame=frames))
        out = ffmpeg.output(video, str(dst), **profile.video_args(), **profile.mp4_args(), map_metadata=-1,
                            **{"x264-params": FAST_X264_PARAMS})
        run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout, path=src)
    return Path(dst)


# --- the montage ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MontagePart:
    kind: str  # mosaic | lower_third | copy | outro
    point: str | None
    path: Path
    source_start: float = 0.0  # where the part starts in its point's clip
    source_end: float = 0.0
    frames: int = 0  # the pictures it holds (what the join checks)
    seconds: float = 0.0  # its span: the join lays the parts, and the sound, on these


@dataclass(frozen=True)
class MontageResult:
    path: Path
    duration: float
    budget_s: float
    plan: MontagePlan
    parts: list[MontagePart]
    part_starts: list[float]  # where each part starts in the output
    chapters: list[Chapter]
    mosaic_boxes: list[tuple[int, int, int, int]]
    mosaic_points: list[str]
    elapsed_s: float
    gain_db: float = 0.0  # the loudness gain the moments' sound got
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reencoded_s(self) -> float:
        return sum(b - a for p, a, b in zip(self.parts, self.part_starts, self.part_starts[1:] + [self.duration])
                   if p.kind != "copy")

    @property
    def copied_s(self) -> float:
        return self.duration - self.reencoded_s


def build_montage(material: Sequence[MontageClip], dst: str | os.PathLike, *, budget_s: float,
                  mosaic_stills: Sequence[tuple[str, str | os.PathLike]], mosaic_title: str,
                  outro_lines: Sequence[str], title: str, logo: str | os.PathLike | None = None,
                  groups: Sequence[str] = (), style: CardStyle = CardStyle(), clip_gops: int = 2, lead_gops: int = 3,
                  workers: int | None = None, on_progress: ProgressCallback | None = None,
                  fetch: Callable[[MontageClip], object] | None = None) -> MontageResult:
    """Plan (`plan_montage`), render what must be rendered in parallel (mosaic, outro, one lower-third GOP per
    point), copy the rest, lay out the sound, join by copy. `mosaic_stills` are (point id, image) of the points
    live at T0. The plan needs the scores only: `fetch(clip)`, if given, puts a shown clip's file at `clip.clip`
    before it is read (a download), and the others never are.

    Pictures and sound are made apart. Every picture part is video only and has its span on the montage's clock (a
    head is re-encoded to its GOP's span on the house frame grid, a tail copies whole GOPs, as many pictures as the
    live source kept in them), and one ffmpeg lays out the whole sound track on the same spans: each moment's own
    sound at the loudness gain, silence under the stills. So the sync holds by construction (no per-part audio to
    align or drop at the joints), the heads start at once instead of waiting for the gain, and the tails are one
    process instead of one each."""
    started, timings = time.monotonic(), {}
    dst = Path(dst)
    plan = plan_montage(material, budget_s=budget_s, clip_gops=clip_gops, lead_gops=lead_gops, groups=groups)
    shown = [planned.clip for planned in plan.clips]
    # one more than the cores: while a job waits (the sound for its gain) or this thread draws the stills, a core
    # would idle (measured: 10.3–10.4 s against 10.7–11.8 s for a 64-point montage on 2 cores)
    workers = workers or (os.cpu_count() or 2) + 1

    def read(m: MontageClip) -> tuple[dict | None, list[tuple[float, int]]]:
        if fetch is not None:
            fetch(m)
        # the highlight task counted its clip's GOPs (`cut_highlight`); other material is counted here
        gops = list(zip(m.scores.starts, m.scores.frames)) if m.scores.frames else gop_packets(m.clip)
        return m.signature or joinable_signature(probe(m.clip)), gops

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:  # only the clips the montage shows
        read_back = dict(zip((m.point for m in shown), pool.map(read, shown)))
    signatures = {point: signature for point, (signature, _) in read_back.items()}
    reference = signatures[shown[0].point]
    for m in shown:
        if signatures[m.point] is None or signatures[m.point] != reference:
            raise NotConformantError(m.clip, "the point's clip does not match the others' codec parameters",
                                     hint="normalise the highlights to the house profile first")
    profile = HOUSE.for_size(*reference["video"][3:5])  # (codec, profile, level, width, height, …)
    fps = profile.fps
    timings["plan"] = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="montage-", dir=dst.parent) as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        tmp = Path(tmp)
        gop = profile.gop_frames
        parts = _still_parts("mosaic", tmp / "mosaic.mp4", _frames(plan.intro_s, fps), gop, fps)
        chapter_names: list[str | None] = [mosaic_title] + [None] * (len(parts) - 1)
        tails: list[tuple[Path, float, int, Path]] = []
        for n, planned in enumerate(plan.clips):
            m, head_end = planned.clip, planned.clip.scores.starts[planned.first_gop + 1] \
                if planned.first_gop + 1 < len(planned.clip.scores.starts) else planned.end
            parts.append(MontagePart("lower_third", m.point, tmp / f"{n:03d}-head.mp4", planned.start, head_end,
                                     _frames(head_end - planned.start, fps), head_end - planned.start))
            chapter_names.append(m.name)
            if planned.gops > 1 and planned.end - head_end > 0.5 / fps:
                parts.append(MontagePart("copy", m.point, tmp / f"{n:03d}-tail.mp4", head_end, planned.end,
                                         _copied_frames(m.clip, read_back[m.point][1], head_end, planned.end),
                                         planned.end - head_end))
                tails.append((m.clip, head_end, parts[-1].frames, parts[-1].path))
                chapter_names.append(None)
        outro = _still_parts("outro", tmp / "outro.mp4", _frames(plan.outro_s, fps), gop, fps)
        parts += outro
        chapter_names += [outro_lines[0] if outro_lines else "Kết"] + [None] * (len(outro) - 1)
        clip_of = {m.point: m for m in shown}
        # What needs no picture first, so both cores work while this thread draws the stills: the loudness (the
        # sound waits for its gain) and the tails' copy.
        measured = pool.submit(programme_loudness, [(p.clip.clip, p.start, p.end) for p in plan.clips])
        jobs = [pool.submit(copy_gops, tails)]
        boxes = mosaic_image([s for _, s in mosaic_stills], tmp / "mosaic.png", size=profile.size,
                             title=mosaic_title, logo=logo, style=style)
        outro_image(tmp / "outro.png", size=profile.size, lines=outro_lines, logo=logo, style=style)
        jobs += [pool.submit(_probed, encode_still, tmp / f"{part.kind}.png", part.path, part.frames / fps, profile)
                 for part in (parts[0], outro[0])]
        sound = pool.submit(_montage_sound_at_gain, measured,
                            _sound_pieces(parts, {point: m.clip for point, m in clip_of.items()}, profile.sample_rate),
                            tmp / "sound.m4a", profile)
        for index, part in enumerate(p for p in parts if p.kind == "lower_third"):
            m = clip_of[part.point]
            # every head is the same encode: the first one's probe shows them all joinable
            jobs.append(pool.submit(_probed if index == 0 else _run, lower_third_gop, m.clip, part.path,
                                    part.source_start, part.source_end, name=m.name, kicker=m.group, logo=logo,
                                    profile=profile, style=style))
        for done in [job.result() for job in jobs]:
            if isinstance(done, MediaInfo):  # the stills and the first head: joinable with the copied pictures
                _check_joinable(done, reference)
        gain = sound.result()
        timings["render"] = time.monotonic() - started - timings["plan"]
        joined = join_pictures([(p.path, p.frames, p.seconds) for p in parts], tmp / "sound.m4a", dst,
                               chapters=chapter_names, title=title, on_progress=on_progress)
        timings["join"] = time.monotonic() - started - sum(timings.values())
    return MontageResult(path=dst, duration=joined.duration, budget_s=budget_s, plan=plan, parts=parts,
                         part_starts=list(joined.part_starts), chapters=joined.chapters, mosaic_boxes=boxes,
                         mosaic_points=[p for p, _ in mosaic_stills], elapsed_s=time.monotonic() - started,
                         gain_db=gain, timings={k: round(v, 2) for k, v in timings.items()})


def _frames(seconds: float, fps: int) -> int:
    return max(1, round(seconds * fps))


def _still_parts(kind: str, path: Path, frames: int, gop: int, fps: int) -> list[MontagePart]:
    """A still shown for whole GOPs is one GOP encoded once and joined as many times as it lasts (the GOPs are
    identical: an encode of the one does for all)."""
    if frames > gop and frames % gop == 0:
        return [MontagePart(kind, None, path, frames=gop, seconds=gop / fps)] * (frames // gop)
    return [MontagePart(kind, None, path, frames=frames, seconds=frames / fps)]


def _copied_frames(clip: Path, gops: Sequence[tuple[float, int]], start: float, end: float) -> int:
    """The pictures a copy of the clip's whole GOPs [start, end) holds, from its GOPs' counts (`gop_packets`)."""
    kept = [n for t, n in gops if start - 0.02 <= t < end - 0.02]
    if not kept or abs(next(t for t, _ in gops if start - 0.02 <= t) - start) > 0.02:
        raise NotConformantError(clip, f"no GOP of the clip starts at {start:.3f} s, where its moment goes on",
                                 hint="the clip's scores are not its own GOPs: score the clip itself")
    return sum(kept)


def _probed(render, *args, **kwargs) -> MediaInfo:
    return probe(render(*args, **kwargs))


def _run(render, *args, **kwargs) -> None:
    render(*args, **kwargs)


def _check_joinable(part: MediaInfo, reference: dict) -> None:
    """A rendered part's pictures must carry the clips' exact codec parameters (an MP4 keeps one avcC per track)."""
    ours, theirs = json.loads(json.dumps(stream_signature(part)["video"])), reference["video"]
    pictures_only = [d for d in conformance(part) if d.code != "no_audio"]  # the sound is laid out apart
    if pictures_only or ours != theirs:
        raise NotConformantError(part.path, f"its picture parameters {ours} differ from the clips' {theirs}",
                                 hint="the house profile's encode options changed: re-encode with profile.video_args")


def _sound_pieces(parts: Sequence[MontagePart], clip_of: dict[str, Path],
                  rate: int) -> list[tuple[Path | None, float, int]]:
    """The sound under each part — (clip, from, samples), None for silence — a point's head and tail as one piece.
    The samples are counted between the parts' places on the montage's clock (rounded there, not per part), so the
    sound stays where the pictures are however many parts there are."""
    pieces: list[tuple[Path | None, float, int]] = []
    place = 0.0
    for previous, part in zip([None, *parts], parts):
        samples = round((place + part.seconds) * rate) - round(place * rate)
        place += part.seconds
        if part.kind == "copy" and previous is not None and previous.point == part.point:
            clip, start, before = pieces.pop()
            pieces.append((clip, start, before + samples))
        else:
            pieces.append((clip_of[part.point], part.source_start, samples) if part.point else (None, 0.0, samples))
    return pieces


def _montage_sound_at_gain(measured: concurrent.futures.Future, pieces, dst: Path, profile: HouseProfile) -> float:
    gain = loudness_gain(*measured.result())
    montage_sound(pieces, dst, profile, gain_db=gain)
    return gain


def montage_sound(pieces: Sequence[tuple[str | os.PathLike | None, float, int]], dst: str | os.PathLike,
                  profile: HouseProfile, *, gain_db: float = 0.0, timeout: float | None = None) -> Path:
    """A montage's whole sound track, in one ffmpeg: each piece — (clip, from, samples) of a moment, or (None, 0,
    samples) of silence under a still — exactly that many samples long (padded with silence where a clip's sound
    ends early), end to end, `gain_db` louder, encoded once (AAC in `profile`). Only the clips' audio is read."""
    rate, argv, graph, inputs = profile.sample_rate, ["ffmpeg", "-y", "-nostdin"], [], 0
    layout = "stereo" if profile.channels == 2 else "mono"
    for n, (clip, start, samples) in enumerate(pieces):
        if clip is None:
            graph.append(f"anullsrc=r={rate}:cl={layout},atrim=end_sample={samples}[s{n}]")
            continue
        argv += ["-vn", "-ss", f"{start:.6f}", "-t", f"{samples / rate + 0.2:.6f}", "-i", str(clip)]
        # async=1:first_pts=0 — a clip whose sound starts after its picture gets silence first, not its sound early
        graph.append(f"[{inputs}:a:0]aresample={rate}:async=1:first_pts=0,aformat=channel_layouts={layout},"
                     f"apad=whole_len={samples},"
                     f"atrim=end_sample={samples},asetpts=N/SR/TB[s{n}]")
        inputs += 1
    graph.append("".join(f"[s{n}]" for n in range(len(pieces))) +
                 f"concat=n={len(pieces)}:v=0:a=1,volume={gain_db:.2f}dB[sound]")
    seconds = sum(samples for _, _, samples in pieces) / rate
    argv += ["-filter_complex", ";".join(graph), "-map", "[sound]", *_audio_argv(profile), "-map_metadata", "-1",
             "-movflags", "+faststart", str(dst)]
    run_ffmpeg(argv, timeout=timeout or 120 + seconds, path=dst, expected_duration_s=seconds)
    return Path(dst)


def _audio_argv(profile: HouseProfile) -> list[str]:
    return [arg for key, value in profile.audio_args().items() for arg in (f"-{key}", str(value))]


def loudness(src: str | os.PathLike, *, timeout: float = 300) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of `src`'s audio: EBU R128 (ffmpeg's ebur128), audio only."""
    return _ebur128(src, ["-vn", "-i", str(src)], "[0:a:0]anull", timeout=timeout)


def programme_loudness(moments: Sequence[tuple[str | os.PathLike, float, float]], *,
                       timeout: float = 300) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of the moments' sound — (clip, start, end) — one after another: the
    montage's sound before it is rendered. Its mosaic and outro are silent, and silence is below R128's absolute
    gate (-70 LUFS), so they would not count. One ffmpeg reads every moment's audio only."""
    inputs = [arg for clip, start, end in moments  # -vn: the pictures are not even opened for decoding
              for arg in ("-vn", "-ss", f"{start:.6f}", "-t", f"{end - start:.6f}", "-i", str(clip))]
    joined = "".join(f"[{i}:a:0]" for i in range(len(moments))) + f"concat=n={len(moments)}:v=0:a=1"
    return _ebur128(moments[0][0], inputs, joined, timeout=timeout)


def _ebur128(src: str | os.PathLike, inputs: list[str], graph: str, *, timeout: float) -> tuple[float, float]:
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-nostdin", *inputs, "-filter_complex",
                           f"{graph},ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    summary = done.stderr.decode("utf-8", "replace").rpartition("Summary:")[2]
    try:
        integrated = float(summary.split(" I:")[1].split()[0])
        peak = float(summary.split("Peak:")[1].split()[0])
    except (IndexError, ValueError):
        raise FFmpegError(src, "ffmpeg could not measure the loudness: " + summary[-300:],
                          reason="loudness_failed") from None
    return integrated, peak


def loudness_gain(integrated: float, peak: float) -> float:
    """The one linear gain (dB) that brings a programme to LOUDNORM["I"], lowered if it would push the true peak
    over LOUDNORM["TP"]: the programme keeps its dynamics (ffmpeg's one-pass loudnorm compresses them and
    resamples to 192 kHz inside). Silence is left alone."""
    return 0.0 if integrated <= -69 else round(min(LOUDNORM["I"] - integrated, LOUDNORM["TP"] - peak), 2)
