"""The recap: intro card + per point (title card + clip) + outro, joined by stream copy into one MP4 with a chapter
per point; clips that do not match are re-encoded once. Plus the 9:16 mobile variant.

Cards are encoded with the clips' exact codec parameters and cached by content hash: each is its own first frame
followed by a shared run of skipped frames (see `cards.render_card_hold`). Each card's silence is lengthened or
shortened by whole AAC frames so the sound of the next clip starts with its picture."""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

import ffmpeg

from media.cards import CARD_FRAMES, CardHold, CardStyle, CardText, card_key, render_card_hold, render_card_stills
from media.clips import AAC_FRAME, Chapter, concat, picture_duration, stream_signature
from media.normalize import check_duration, target_profile, transcode
from media.probe import MediaInfo, conformance, probe
from media.profile import HOUSE, HouseProfile
from media.run import ProgressCallback, run_ffmpeg

PartKind = Literal["intro", "card", "clip", "outro"]
# Cards per ffmpeg run: amortises start-up while keeping a run's encoders (one per card) small in memory.
_CARDS_PER_RUN = 8


@dataclass(frozen=True)
class RecapItem:
    point: str  # the point's display name, e.g. "Tỉnh Vĩnh Phúc"
    clip: Path
    caption: str = ""  # the card's small line, e.g. "08:00 · 15/06/2020"


@dataclass(frozen=True)
class RecapPart:
    kind: PartKind
    point: str | None
    path: Path
    path_taken: Literal["copy", "reencode", "rendered", "cached"]
    reason: str = ""


@dataclass(frozen=True)
class RecapResult:
    path: Path
    duration: float
    expected_duration: float
    profile: HouseProfile
    parts: list[RecapPart]
    chapters: list[Chapter]
    av_drift_s: float  # the largest audio/video offset any clip starts with
    elapsed_s: float
    deviations: list[str] = field(default_factory=list)  # of the output; [] = conformant

    @property
    def copied(self) -> int:
        return sum(1 for p in self.parts if p.kind == "clip" and p.path_taken == "copy")

    @property
    def reencoded(self) -> int:
        return sum(1 for p in self.parts if p.kind == "clip" and p.path_taken == "reencode")


def build_recap(items: Sequence[RecapItem | tuple[str, str | os.PathLike]], dst: str | os.PathLike, *, theme: str,
                intro: CardText | None = None, outro: CardText | None = None, style: CardStyle = CardStyle(),
                profile: HouseProfile | None = None, cache_dir: str | os.PathLike | None = None,
                workers: int | None = None, on_progress: ProgressCallback | None = None) -> RecapResult:
    """Build the recap MP4 at `dst`. `profile` defaults to the house profile at the clips' most common size.

    `cache_dir` keeps rendered cards and re-encoded clips between runs (content-addressed), so a rerun only
    redoes what changed."""
    started = time.monotonic()
    items = [i if isinstance(i, RecapItem) else RecapItem(i[0], Path(i[1])) for i in items]
    if not items:
        raise ValueError("a recap needs at least one (point, clip)")
    dst = Path(dst)
    workers = workers or os.cpu_count() or 2
    intro = intro or CardText(theme)
    outro = outro or CardText(theme, footer="Hết")
    with tempfile.TemporaryDirectory(prefix="recap-", dir=dst.parent) as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        cache = Path(cache_dir) if cache_dir else Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        clips = list(pool.map(lambda item: probe(item.clip), items))
        profile = profile or _common_profile(clips)
        hold = _hold(cache, style, profile)
        hold_info = probe(hold.path)
        # The intro card is the reference: a clip joins by copy only if its stream signature equals the cards'.
        cards = _Cards(cache, style, profile, hold)
        [(intro_path, intro_taken)] = cards.make([(intro, _default_packets(hold_info))])
        reference = probe(intro_path)
        wanted = stream_signature(reference)

        def fit(info: MediaInfo) -> tuple[MediaInfo, str, str]:
            deviations = conformance(info)
            if not deviations and stream_signature(info) == wanted:
                return info, "copy", "matches the recap's codec parameters"
            reason = "; ".join(str(d) for d in deviations) or "codec parameters differ from the recap's"
            return probe(_reencoded(cache, info, profile)), "reencode", reason

        fitted = list(pool.map(fit, clips))
        card_packets = _card_plan(reference, hold_info, [info for info, _, _ in fitted])
        wanted_cards = [(CardText(theme, item.point, item.caption), packets)
                        for item, packets in zip(items, card_packets)] + [(outro, _default_packets(hold_info))]
        batches = [wanted_cards[i:i + _CARDS_PER_RUN] for i in range(0, len(wanted_cards), _CARDS_PER_RUN)]
        *point_cards, (outro_path, outro_taken) = [card for batch in pool.map(cards.make, batches) for card in batch]

        parts: list[RecapPart] = [RecapPart("intro", None, intro_path, intro_taken)]
        infos: list[MediaInfo] = [reference, hold_info]
        chapters: list[str | None] = [intro.title, None]
        for item, (card_path, card_taken), packets, (info, taken, reason) in zip(items, point_cards, card_packets,
                                                                                 fitted):
            parts += [RecapPart("card", item.point, card_path, card_taken),
                      RecapPart("clip", item.point, Path(info.path), taken, reason)]
            infos += [_as_card(reference, card_path, packets), hold_info, info]
            chapters += [item.point, None, None]
        parts.append(RecapPart("outro", None, outro_path, outro_taken))
        infos += [_as_card(reference, outro_path, _default_packets(hold_info)), hold_info]
        chapters += [outro.footer or outro.title, None]
        clip_paths = {info.path for info, _, _ in fitted}
        joined = concat(infos, dst, chapters=chapters, title=theme, on_progress=on_progress,
                        drop_out_of_picture_audio=False)  # the cards' silence already puts each clip's sound in place
    clip_drifts = [abs(d) for d, info in zip(joined.part_drift_s, infos) if info.path in clip_paths]
    return RecapResult(path=dst, duration=joined.duration, expected_duration=joined.expected_duration,
                       profile=profile, parts=parts, chapters=joined.chapters, av_drift_s=max(clip_drifts),
                       elapsed_s=time.monotonic() - started, deviations=[str(d) for d in conformance(joined.output)])


def _common_profile(clips: list[MediaInfo]) -> HouseProfile:
    """The house profile at the frame size most clips already have (conformant ones count first)."""
    sizes = collections.Counter(HOUSE.for_size(*c.video.display_size).size for c in clips
                                if c.video is not None and not conformance(c))
    if not sizes:
        sizes = collections.Counter(target_profile(c).size for c in clips if c.video is not None)
    if not sizes:
        return HOUSE
    (width, height), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0][1]))
    return HOUSE.for_size(width, height)


def _card_plan(reference: MediaInfo, hold: MediaInfo, clips: list[MediaInfo]) -> list[int]:
    """AAC packets of silence in each card's first part, so the clip after it starts with its sound on its picture.

    Mirrors `clips.plan_timeline`: audio packets are laid back to back, pictures by their frame count; a card is its
    first frame plus the hold's frames and packets."""
    rate = reference.audio.sample_rate
    card_picture = CARD_FRAMES / reference.video.fps
    audio_pos = (_default_packets(hold) + hold.audio.packets) * AAC_FRAME / rate  # the intro
    video_pos = reference.video.start_pts - reference.audio.start_pts + card_picture
    plan = []
    for clip in clips:
        video_pos += card_picture
        # The clip's sound belongs `audio.start_pts - video.start_pts` after its picture starts.
        wanted_audio_end = video_pos + clip.audio.start_pts - clip.video.start_pts
        packets = round((wanted_audio_end - audio_pos) * rate / AAC_FRAME) - hold.audio.packets
        packets = max(2, packets)  # a still carries its priming frame and at least one more
        plan.append(packets)
        audio_pos += (packets + hold.audio.packets + clip.audio.packets) * AAC_FRAME / rate
        video_pos += picture_duration(clip)
    return plan


def _default_packets(hold: MediaInfo) -> int:
    """Silence for a card with no clip to line up (intro, outro): as long as its picture, less the hold's."""
    rate = hold.audio.sample_rate
    return max(2, round(CARD_FRAMES / hold.video.fps * rate / AAC_FRAME) - hold.audio.packets)


def _as_card(reference: MediaInfo, path: Path, packets: int) -> MediaInfo:
    """A card's MediaInfo without probing it: cards are made identically, only the silence length differs."""
    return replace(reference, path=str(path), audio=replace(reference.audio, packets=packets))


class _Cards:
    """Card stills in the cache: a batch renders what is missing in one ffmpeg run."""

    def __init__(self, cache: Path, style: CardStyle, profile: HouseProfile, hold: CardHold):
        self.cache, self.style, self.profile, self.hold = cache, style, profile, hold

    def path(self, text: CardText, packets: int) -> Path:
        key = card_key("still", text, self.style, self.profile, packets, self.hold.still_timing(self.profile))
        return self.cache / f"card-{key}.mp4"

    def make(self, wanted: list[tuple[CardText, int]]) -> list[tuple[Path, Literal["rendered", "cached"]]]:
        missing = [(self.path(text, packets), text, packets) for text, packets in wanted
                   if not self.path(text, packets).exists()]
        if missing:
            render_card_stills(missing, profile=self.profile, style=self.style, hold=self.hold)
        rendered = {path for path, _, _ in missing}
        return [(self.path(text, packets), "rendered" if self.path(text, packets) in rendered else "cached")
                for text, packets in wanted]


def _hold(cache: Path, style: CardStyle, profile: HouseProfile) -> CardHold:
    path = cache / f"hold-{card_key('hold', style, profile)}.mp4"
    timing = path.with_suffix(".timing")  # what was measured when the hold was made
    if path.exists() and timing.exists():
        b_delay, lead = timing.read_text().split()
        return CardHold(path, b_delay_ticks=int(b_delay), lead_ticks=int(lead))
    hold = render_card_hold(path, profile=profile, style=style)
    timing.write_text(f"{hold.b_delay_ticks} {hold.lead_ticks}")
    return hold


def _reencoded(cache: Path, info: MediaInfo, profile: HouseProfile) -> Path:
    stat = os.stat(info.path)
    key = hashlib.sha256(repr((os.path.abspath(info.path), stat.st_size, stat.st_mtime_ns, profile)).encode())
    path = cache / f"clip-{key.hexdigest()[:24]}.mp4"
    if not path.exists():
        partial = path.with_suffix(".partial.mp4")
        expected = transcode(info.path, partial, info, profile)
        check_duration(info.path, probe(partial), expected)
        os.replace(partial, path)
    return path


def vertical_variant(src: str | os.PathLike, dst: str | os.PathLike, *, width: int = 720,
                     mode: Literal["pad", "crop"] = "pad", background: str = "black",
                     max_seconds: float | None = None, on_progress: ProgressCallback | None = None,
                     timeout: float | None = None) -> MediaInfo:
    """A 9:16 re-encode for mobile (a fanpage Reel): the 16:9 picture letterboxed on `background` (pad) or its
    centre (crop), at most `max_seconds` long. Chapters and title carry over from `src`. Encoded with the
    effort-only x264 options of the montage (same SPS/PPS as the house profile, ~2× cheaper)."""
    from media.montage import FAST_X264_PARAMS

    info = probe(src)
    duration = min(info.duration, max_seconds) if max_seconds else info.duration
    height = width * 16 // 9 // 2 * 2
    profile = HOUSE.for_size(width, height)
    stream = ffmpeg.input(str(src))
    if mode == "crop":
        video = stream.video.filter("crop", "ih*9/16", "ih").filter("scale", width, height)
    else:
        video = (stream.video.filter("scale", width, -2)
                 .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color=background))
    video = video.filter("setsar", 1).filter("fps", profile.fps).filter("format", profile.pix_fmt)
    limit = {"t": f"{duration:.3f}"} if duration < info.duration else {}
    out = ffmpeg.output(video, stream.audio, str(dst), **profile.video_args(), **profile.mp4_args(),
                        **{"c:a": "copy", "x264-params": FAST_X264_PARAMS.replace(":threads=1", "")}, **limit)
    run_ffmpeg(ffmpeg.compile(out, overwrite_output=True), timeout=timeout or 120 + 2 * duration, path=src,
               expected_duration_s=duration, on_progress=on_progress)
    output = probe(dst)
    check_duration(src, output, duration)
    return output
