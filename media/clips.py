"""Cut [start, end) by stream copy from the keyframe when the input conforms (exact re-encode otherwise), join
conformant parts with the concat demuxer (no re-encode), and join nginx-rtmp FLV segments into one MP4."""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import ffmpeg

from media.errors import ClipRangeError, NoVideoError, NotConformantError, NotMediaError
from media.normalize import DURATION_TOLERANCE_S, check_duration, target_profile, transcode
from media.probe import MediaInfo, conformance, frame_rate, probe
from media.profile import HOUSE, HouseProfile
from media.run import ProgressCallback, run_capture, run_ffmpeg

PathTaken = Literal["copy", "reencode"]
AAC_FRAME = 1024


@dataclass(frozen=True)
class ClipResult:
    path: Path
    start: float  # where the clip really starts in the source: the keyframe at or before the asked start on copy
    end: float
    duration: float  # measured on the output
    path_taken: PathTaken
    reason: str  # why that path was taken
    output: MediaInfo | None = field(default=None, repr=False, compare=False)  # the output, as probed


def cut(src: str | os.PathLike, dst: str | os.PathLike, start: float, end: float, *, exact: bool = False,
        profile: HouseProfile | None = None, on_progress: ProgressCallback | None = None,
        timeout: float | None = None, source: MediaInfo | None = None, keyframe: float | None = None) -> ClipResult:
    """Cut [start, end) of `src`. A conformant input is stream-copied from the keyframe at or before `start` (the
    clip may begin up to one GOP early); `exact=True` or a non-conformant input re-encodes exactly [start, end).
    A caller that already has `src` probed (`source`) and knows that keyframe (`keyframe`) spares those two reads."""
    info = source or probe(src)
    if info.video is None:
        raise NoVideoError(src, "there is no video stream to cut", hint="upload a video, not audio only")
    if start < 0 or end <= start:
        raise ClipRangeError(src, f"the range [{start:.3f}, {end:.3f}) is empty or negative", reason="empty_range")
    frame = 1 / (info.video.fps or HOUSE.fps)
    if end > info.duration + frame:
        raise ClipRangeError(src, f"the range [{start:.3f}, {end:.3f}) ends after the file ({info.duration:.3f} s)",
                             hint="cut within the recording or shorten the clip")
    end = min(end, info.duration)
    deviations = conformance(info)
    if deviations:
        keyframe = None
    elif keyframe is None:
        keyframe = _keyframe_at_or_before(src, start)
    on_keyframe = keyframe is not None and start - keyframe < frame / 2
    if keyframe is not None and (not exact or on_keyframe):
        source = ffmpeg.input(str(src), ss=f"{keyframe:.6f}")
        out = ffmpeg.output(source.video, source.audio, str(dst), c="copy", t=f"{end - keyframe:.6f}",
                            map_metadata=-1, **HOUSE.mp4_args())
        run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), path=src,
                   timeout=timeout or 120 + (end - keyframe), expected_duration_s=end - keyframe,
                   on_progress=on_progress)
        output = probe(dst)
        check_duration(src, output, end - keyframe, tolerance=DURATION_TOLERANCE_S + frame)
        reason = "conformant input, cut on a keyframe" if on_keyframe else \
            f"conformant input, start moved {start - keyframe:.3f} s back to the keyframe"
        return ClipResult(Path(dst), keyframe, end, output.duration, "copy", reason, output)
    target = profile or target_profile(info)
    expected = transcode(src, dst, info, target, start=start, duration=end - start, on_progress=on_progress,
                         timeout=timeout)
    output = probe(dst)
    check_duration(src, output, expected)
    if deviations:
        reason = "; ".join(str(d) for d in deviations)
    else:
        reason = "exact cut asked off a keyframe" if keyframe is not None else "no keyframe found before the start"
    return ClipResult(Path(dst), start, end, output.duration, "reencode", reason, output)


def _video_packets(src: str | os.PathLike, *, timeout: float = 60,
                   interval: str | None = None) -> list[tuple[str, bool]]:
    """(pts_time as ffprobe prints it, keyframe?) of each video packet of `src` (within ffprobe's `interval`, e.g.
    "12.000%22.100"), in file (decode) order: one listing, no decoding."""
    window = ["-read_intervals", interval] if interval else []
    done = run_capture(["ffprobe", "-v", "error", "-select_streams", "v:0", *window,
                        "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", str(src)],
                       timeout=timeout, path=src)
    packets = []
    for line in done.stdout.decode("ascii", "replace").splitlines():
        pts, _, flags = line.partition(",")
        packets.append((pts, "K" in flags))
    return packets


def _keyframe_at_or_before(src: str | os.PathLike, start: float) -> float | None:
    window_start = max(0.0, start - 10)
    keyframes, later = [], []
    for pts, key in _video_packets(src, interval=f"{window_start:.3f}%{start + _FIRST_KEYFRAME_SLACK_S:.3f}"):
        if key and pts not in ("", "N/A"):
            (keyframes if float(pts) <= start + 1e-3 else later).append(float(pts))
    if not keyframes and later and start <= _FIRST_KEYFRAME_SLACK_S:
        # A file's first picture is often a few ms after 0 (a joined FLV's B-frame delay): a cut "from the start"
        # begins on that first keyframe instead of re-encoding the whole clip.
        return min(later)
    return max(keyframes) if keyframes else None


_FIRST_KEYFRAME_SLACK_S = 0.1


def gop_packets(src: str | os.PathLike, *, timeout: float = 60) -> list[tuple[float, int]]:
    """(keyframe time, picture packets up to the next keyframe) for every GOP of `src`, in file (decode) order.
    A live recording's GOP does not hold GOP-length-many pictures (frames dropped under load), so a copy of whole
    GOPs is counted from the file, never from times (one ffprobe listing: no decoding)."""
    gops: list[tuple[float, int]] = []
    for pts, key in _video_packets(src, timeout=timeout):
        if key and pts not in ("", "N/A"):
            gops.append((float(pts), 1))
        elif gops and pts:
            gops[-1] = (gops[-1][0], gops[-1][1] + 1)
    return gops


@dataclass(frozen=True)
class Chapter:
    title: str
    start: float
    end: float


@dataclass(frozen=True)
class ConcatResult:
    path: Path
    duration: float
    expected_duration: float
    part_starts: list[float]  # where each part's picture starts in the output
    part_drift_s: list[float]  # audio minus video offset each part starts with (positive: sound late)
    output: MediaInfo
    dropped_audio_packets: int = 0
    chapters: list[Chapter] = field(default_factory=list)

    @property
    def max_drift_s(self) -> float:
        return max((abs(d) for d in self.part_drift_s), default=0.0)


def stream_signature(info: MediaInfo) -> dict[str, object]:
    """What must be identical across parts for `-c copy` joining: codec parameters, timebases and the SPS/PPS and
    AAC config bytes (an MP4 keeps one avcC for the whole track)."""
    v, a = info.video, info.audio
    # fps rounded: a recording remuxed from FLV (1 ms clock) averages 29.99 fps and still joins 30 fps cards.
    return {"video": v and (v.codec, v.profile, v.level, v.width, v.height, v.pix_fmt, round(v.fps or 0),
                            v.time_base, v.sar, v.extradata_hash),
            "audio": a and (a.codec, a.profile, a.sample_rate, a.channels, a.time_base, a.extradata_hash)}


def joinable_signature(info: MediaInfo) -> dict | None:
    """A conformant clip's `stream_signature` in plain values (lists, not tuples: it travels in XComs), for a later
    join to check without probing the clip again; None when the clip does not conform (it must be probed then)."""
    return None if conformance(info) else json.loads(json.dumps(stream_signature(info)))


def picture_duration(info: MediaInfo) -> float:
    """How long the picture lasts: frame count over rate (exact for CFR), else the stream's stated duration."""
    video = info.video
    return video.frames / video.fps if video.frames and video.fps else (video.duration or info.duration)


@dataclass(frozen=True)
class Timeline:
    directives: list[float]  # concat `duration` per part: its picture length (so the video stays CFR)
    starts: list[float]  # where each part's picture starts in the output
    drifts: list[float]  # audio minus video offset each part starts with (positive: sound late)
    dropped_packets: list[int]  # audio packet indices (over the whole join) left out


def plan_timeline(parts: Sequence[MediaInfo], *, drop_out_of_picture_audio: bool = True) -> Timeline:
    """Lay parts end to end with contiguous audio (setts=N*1024) and drop out-of-picture audio to stay in sync.

    Audio is rewritten to back-to-back AAC frames so that players that play samples continuously and players that
    follow timestamps agree. But each part brings audio that lies outside its picture (the encoder's priming
    frame, a copy-cut's pre-roll, a tail frame): left in, it would push every later part's sound later, ~30 ms
    per part. Where the sound runs late by more than half a frame, such out-of-picture frames are dropped: the
    previous part's tail first, then this part's lead-in. (Sound running early can only be fixed by adding
    silence: the recap does that with its cards.)"""
    leads = [p.video.start_pts - p.start_time for p in parts]
    frame = [AAC_FRAME / p.audio.sample_rate for p in parts]
    pictures = [picture_duration(p) for p in parts]
    head_spare = [max(0, math.ceil((p.video.start_pts - p.audio.start_pts) / f - 1e-6)) for p, f in zip(parts, frame)]
    # The last frame may still hold a few ms of in-picture sound; losing them at a joint beats a slipping sync.
    tail_spare = [max(0, math.ceil((p.audio.start_pts + (p.audio.packets or 0) * f - p.video.start_pts - pic) / f
                                   - 1e-6)) for p, f, pic in zip(parts, frame, pictures)]
    head_drop = [0] * len(parts)
    tail_drop = [0] * len(parts)
    directives, starts, drifts = [], [], []
    video_pos = parts[0].video.start_pts - parts[0].audio.start_pts  # the first part's sync holds, as ffmpeg keeps it
    audio_pos = 0.0
    for index, part in enumerate(parts):
        drift = audio_pos - video_pos - part.audio.start_pts + part.video.start_pts
        if index and drop_out_of_picture_audio:
            previous = index - 1
            while drift > frame[index] / 2 and tail_drop[previous] < tail_spare[previous]:
                tail_drop[previous] += 1
                audio_pos -= frame[previous]
                drift -= frame[previous]
            while drift > frame[index] / 2 and head_drop[index] < head_spare[index]:
                head_drop[index] += 1
                drift -= frame[index]
        starts.append(video_pos)
        drifts.append(drift)
        next_lead = leads[index + 1] if index + 1 < len(parts) else 0.0
        directives.append(pictures[index] + leads[index] - next_lead)
        video_pos += pictures[index]
        audio_pos += ((part.audio.packets or 0) - head_drop[index]) * frame[index]
    dropped, first = [], 0
    for part, head, tail in zip(parts, head_drop, tail_drop):
        count = part.audio.packets or 0
        dropped += list(range(first, first + head)) + list(range(first + count - tail, first + count))
        first += count
    return Timeline(directives, starts, drifts, dropped)


def concat(parts: Sequence[str | os.PathLike | MediaInfo], dst: str | os.PathLike, *,
           chapters: Sequence[str | None] | None = None, title: str | None = None, timeout: float | None = None,
           on_progress: ProgressCallback | None = None, drop_out_of_picture_audio: bool = True) -> ConcatResult:
    """Join parts with identical codec parameters by stream copy (concat demuxer), with chapters and a title.

    `chapters[i]` names a chapter starting at part i (None continues the current one). Raises NotConformantError
    naming the first part that does not conform or does not match part 0. `drop_out_of_picture_audio=False` keeps
    every audio packet: for callers that placed the sound themselves (the recap's cards)."""
    infos = [p if isinstance(p, MediaInfo) else probe(p) for p in parts]
    if not infos:
        raise ValueError("concat needs at least one part")
    reference = stream_signature(infos[0])
    for info in infos:
        deviations = conformance(info)
        if deviations:
            raise NotConformantError(info.path, "cannot be joined without re-encoding: " +
                                     "; ".join(str(d) for d in deviations), hint="normalise it first")
        signature = stream_signature(info)
        if signature != reference:
            differs = [k for k in reference if signature[k] != reference[k]]
            raise NotConformantError(info.path, f"its {' and '.join(differs)} parameters differ from "
                                     f"{infos[0].path} ({signature} vs {reference})", hint="normalise it first")
    timeline = plan_timeline(infos, drop_out_of_picture_audio=drop_out_of_picture_audio)
    directives, starts = timeline.directives, timeline.starts
    expected = sum(directives)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="concat-", dir=dst.parent) as tmp:
        listing = Path(tmp) / "parts.txt"
        listing.write_text("".join(f"file '{_quote(os.path.abspath(i.path))}'\nduration {d:.6f}\n"
                                   for i, d in zip(infos, directives)), encoding="utf-8")
        chapter_list = _chapters(chapters, starts, starts[0] + expected) if chapters else []
        metadata = Path(tmp) / "metadata.txt"
        metadata.write_text(_ffmetadata(title, chapter_list), encoding="utf-8")
        # A plain argv: ffmpeg-python drops inputs that feed no mapped stream, and the metadata input feeds none.
        argv = ["ffmpeg", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-f", "ffmetadata",
                "-i", str(metadata), "-map", "0:v:0", "-map", "0:a:0", "-map_metadata", "1", "-map_chapters", "1",
                "-c", "copy", "-bsf:a", _audio_bsf(timeline.dropped_packets),
                "-movflags", "+faststart", "-video_track_timescale", str(HOUSE.video_timescale), str(dst)]
        run_ffmpeg(argv, timeout=timeout or 120 + expected / 20, path=dst, expected_duration_s=expected,
                   on_progress=on_progress)
    output = probe(dst)
    check_duration(dst, output, starts[0] + expected, tolerance=DURATION_TOLERANCE_S + 0.05)
    return ConcatResult(path=dst, duration=output.duration, output=output, expected_duration=expected, part_starts=starts,
                        part_drift_s=[round(d, 4) for d in timeline.drifts],
                        dropped_audio_packets=len(timeline.dropped_packets), chapters=chapter_list)


def copy_gops(cuts: Sequence[tuple[str | os.PathLike, float, int, str | os.PathLike]], *,
              timeout: float | None = None) -> None:
    """Whole GOPs by stream copy, pictures only, many cuts in one ffmpeg: each (src, keyframe, frames, dst) is the
    `frames` pictures from the keyframe at `keyframe` on. A closed GOP's pictures all come before the next keyframe
    in decode order, so the first `frames` packets are exactly those pictures: no lone frame of the next GOP, and
    the part is as long as asked. One process for every cut: starting one costs more than copying 2 s of 720p."""
    if not cuts:
        return
    argv = ["ffmpeg", "-y", "-nostdin"]
    for src, keyframe, _, _ in cuts:
        argv += ["-ss", f"{keyframe:.6f}", "-i", str(src)]
    for index, (_, _, frames, dst) in enumerate(cuts):
        argv += ["-map", f"{index}:v:0", "-c", "copy", "-frames:v", str(frames), "-map_metadata", "-1",
                 "-video_track_timescale", str(HOUSE.video_timescale), str(dst)]
    seconds = sum(frames for _, _, frames, _ in cuts) / HOUSE.fps
    run_ffmpeg(argv, timeout=timeout or 120 + seconds, path=cuts[0][0])


def join_pictures(parts: Sequence[tuple[str | os.PathLike, int, float]], sound: str | os.PathLike,
                  dst: str | os.PathLike, *, chapters: Sequence[str | None] | None = None,
                  title: str | None = None, timeout: float | None = None,
                  on_progress: ProgressCallback | None = None) -> ConcatResult:
    """Join picture-only parts — (file, frames, seconds), identical codec parameters — end to end by stream copy,
    with one finished sound track (`sound`, laid out on the same seconds) beside them, chapters and a title.

    The recap's way: each part's place is its span (a copied GOP run lasts from its keyframe to the next, however
    many pictures a live source kept in it), and the sound was laid out on the same spans, so the sync holds by
    construction — there is no per-part audio to align at the joints, nothing to drop, no part to probe. The output
    is checked for the pictures (every part's `frames`) and the length asked."""
    if not parts:
        raise ValueError("join_pictures needs at least one part")
    starts = [sum(seconds for _, _, seconds in parts[:i]) for i in range(len(parts))]
    total = sum(frames for _, frames, _ in parts)
    expected = sum(seconds for _, _, seconds in parts)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="join-", dir=dst.parent) as tmp:
        listing = Path(tmp) / "parts.txt"
        listing.write_text("".join(f"file '{_quote(os.path.abspath(path))}'\nduration {seconds:.6f}\n"
                                   for path, _, seconds in parts), encoding="utf-8")
        chapter_list = _chapters(chapters, starts, expected) if chapters else []
        metadata = Path(tmp) / "metadata.txt"
        metadata.write_text(_ffmetadata(title, chapter_list), encoding="utf-8")
        argv = ["ffmpeg", "-y", "-nostdin", "-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(sound),
                "-f", "ffmetadata", "-i", str(metadata), "-map", "0:v:0", "-map", "1:a:0", "-map_metadata", "2",
                "-map_chapters", "2", "-c", "copy", "-movflags", "+faststart",
                "-video_track_timescale", str(HOUSE.video_timescale), str(dst)]
        run_ffmpeg(argv, timeout=timeout or 120 + expected / 20, path=dst, expected_duration_s=expected,
                   on_progress=on_progress)
    output = probe(dst)
    if output.video is None or output.audio is None or (output.video.frames or total) != total:
        frames = output.video.frames if output.video else 0
        raise NotConformantError(dst, f"the joined pictures hold {frames} frames, {total} were laid out",
                                 hint="a part holds other pictures than counted: count a copied part's packets "
                                      "(clips.gop_packets)")
    check_duration(dst, output, expected, tolerance=DURATION_TOLERANCE_S + 0.05)
    return ConcatResult(path=dst, duration=output.duration, output=output, expected_duration=expected,
                        part_starts=starts, part_drift_s=[0.0] * len(parts), chapters=chapter_list)


def _audio_bsf(dropped: list[int]) -> str:
    """noise=drop leaves out the planned packets (n counts packets entering it), setts lays the rest end to end.

    ffmpeg's expression parser refuses very long expressions (a 64-point montage drops ~100 packets), so runs of
    consecutive packets become one `between()` and the terms are split over several noise filters, the highest
    packets first: dropping them does not renumber the lower packets the next filter looks at."""
    contiguous = f"setts=ts=N*{AAC_FRAME}:duration={AAC_FRAME}"
    if not dropped:
        return contiguous
    runs: list[list[int]] = []
    for n in sorted(set(dropped)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    terms = [f"eq(n\\,{a})" if a == b else f"between(n\\,{a}\\,{b})" for a, b in reversed(runs)]
    filters = ["noise=drop=" + "+".join(terms[i:i + _DROP_TERMS]) for i in range(0, len(terms), _DROP_TERMS)]
    return ",".join(filters) + "," + contiguous


_DROP_TERMS = 12  # terms per noise filter: well inside what the expression parser takes


def _chapters(names: Sequence[str | None], starts: list[float], end: float) -> list[Chapter]:
    marks = [(name, start) for name, start in zip(names, starts) if name]
    return [Chapter(name, start, marks[i + 1][1] if i + 1 < len(marks) else end)
            for i, (name, start) in enumerate(marks)]


def _ffmetadata(title: str | None, chapters: list[Chapter]) -> str:
    lines = [";FFMETADATA1"]
    if title:
        lines.append(f"title={_escape(title)}")
    for chapter in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(chapter.start * 1000)}",
                  f"END={round(chapter.end * 1000)}", f"title={_escape(chapter.title)}"]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    for ch in "\\=;#\n":
        text = text.replace(ch, "\\" + ch)
    return text


def _quote(path: str) -> str:
    return path.replace("'", "'\\''")


def join_segments(segments: Sequence[str | os.PathLike], dst: str | os.PathLike, *,
                  timeout: float | None = None) -> MediaInfo:
    """Join a stream's recorded FLV segments (nginx-rtmp `record_interval`) into one indexed MP4 by stream copy;
    returns the joined file, probed (`.path`).

    Segments of one stream carry on each other's audio, so only the pictures are laid end to end: each segment
    gets its measured picture span as concat `duration` (FLV's own duration counts the B-frame delay and would
    leave a gap at every joint)."""
    if not segments:
        raise ValueError("join_segments needs at least one segment")
    spans = [_segment_span(s) for s in segments]  # (container start, first picture, end of the last picture)
    leads = [first - start for start, first, _ in spans]
    directives = [(end - first) + leads[i] - (leads[i + 1] if i + 1 < len(spans) else 0.0)
                  for i, (_, first, end) in enumerate(spans)]
    expected = sum(end - first for _, first, end in spans)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="join-", dir=dst.parent) as tmp:
        listing = Path(tmp) / "segments.txt"
        listing.write_text("".join(f"file '{_quote(os.path.abspath(s))}'\nduration {d:.6f}\n"
                                   for s, d in zip(segments, directives)), encoding="utf-8")
        out = ffmpeg.output(ffmpeg.input(str(listing), f="concat", safe=0), str(dst), c="copy", map_metadata=-1,
                            **HOUSE.mp4_args())
        run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout or 120 + expected / 20, path=dst,
                   expected_duration_s=expected)
    output = probe(dst)
    check_duration(dst, output, expected, tolerance=DURATION_TOLERANCE_S + 0.05 * len(spans))
    return output


def _segment_span(segment: str | os.PathLike) -> tuple[float, float, float]:
    """(container start, first picture pts, end of the last picture) of a segment, by reading its video packets
    (FLV has no index) — in one ffprobe: a process start costs ~0.1 CPU-s here, as much as reading the packets."""
    done = run_capture(["ffprobe", "-v", "error", "-select_streams", "v:0", "-print_format", "json", "-show_entries",
                        "format=start_time:stream=avg_frame_rate,r_frame_rate:packet=pts_time", str(segment)],
                       timeout=120, path=segment)
    if done.returncode != 0:
        raise NotMediaError(str(segment), "ffprobe cannot read the recorded segment ("
                            + done.stderr.decode("utf-8", "replace").strip()[-200:] + ")",
                            hint="the recording is damaged; the point's other segments are still joined")
    data = json.loads(done.stdout or b"{}")
    if not data.get("streams"):
        raise NoVideoError(str(segment), "the segment has no video stream", hint="check the point's encoder")
    pts = sorted(float(p["pts_time"]) for p in data.get("packets", []) if p.get("pts_time") not in (None, "N/A"))
    if not pts:
        raise NoVideoError(str(segment), "the segment holds no video frames", hint="check the point's encoder")
    fps, _ = frame_rate(data["streams"][0], pts)
    start = float(data.get("format", {}).get("start_time") or 0.0)
    return start, pts[0], pts[-1] + 1 / (fps or HOUSE.fps)
