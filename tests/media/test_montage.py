"""The recap montage (`media.montage`): made to its length budget for 8 and 64 points, each clip from its own point
(a per-point sync marker) at the time it was chosen, the moments chosen by the signal, the mosaic with one tile per
live point, lower thirds with their Vietnamese text, loudness-normalised 48 kHz audio."""
from __future__ import annotations

import shutil
import subprocess

import pytest

import media
from devstack.synthetic import find_sync_marker, synthetic_clip
from media.clips import joinable_signature
from media.montage import (LOUDNORM, GopScores, MontageClip, build_montage, cut_highlight, grid, loudness,
                           lower_third_gop, plan_montage, score_gops)

NAMES = ["Trung ương", "Hà Nội", "Đà Nẵng", "Cần Thơ", "Thừa Thiên Huế", "Bắc Kạn", "Đắk Lắk", "Vĩnh Phúc"]
GROUPS = ["Điểm cầu Trung ương", "Miền Bắc", "Miền Trung - Tây Nguyên", "Miền Nam"]
LOGO = "config/brand/logo-bhxh-vinhphuc.png"


def marker_of(index: int) -> float:
    """Each point's beep+flash: inside its second GOP, 0.1 s apart, so a frame time tells the point."""
    return 2.3 + 0.1 * index


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    out = tmp_path_factory.mktemp("montage")
    clips, stills = [], []
    for i, name in enumerate(NAMES):
        clip = synthetic_clip(out / f"p{i}.mp4", width=426, height=240, duration=6, label=name, marker_at=marker_of(i))
        clips.append(clip)
        stills.append(media.poster_frame(clip, out / f"still{i}.png", at=0))
    return out, clips, stills


def material(clips, names=NAMES, signed=False):
    """Each clip scored; `signed`: with its signature too, as the highlight task hands it over (no probe again)."""
    groups = [GROUPS[0]] + [GROUPS[1 + i % 3] for i in range(len(clips) - 1)]
    return [MontageClip(f"p{i}", names[i % len(names)], groups[i], clip, score_gops(clip), 0 if i == 0 else 1,
                        joinable_signature(media.probe(clip)) if signed else None) for i, clip in enumerate(clips)]


@pytest.fixture(scope="module")
def montage8(points):
    out, clips, stills = points
    result = build_montage(material(clips, signed=True), out / "recap8.mp4", budget_s=24, groups=GROUPS, logo=LOGO,
                           mosaic_stills=[(f"p{i}", s) for i, s in enumerate(stills[:7])],
                           mosaic_title="7 điểm cầu đồng loạt ra quân", title="Thử",
                           outro_lines=["Chính sách BHXH - Điểm tựa an sinh", "Hãy tham gia BHXH"])
    artifacts = media_artifacts()
    head = next(s for p, s in zip(result.parts, result.part_starts) if p.kind == "lower_third")  # the mosaic is 2 parts
    for name, at in (("mosaic", 1.0), ("first-lower-third", head + 0.5), ("outro", result.duration - 1)):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(result.path), "-frames:v", "1",
                        str(artifacts / f"recap8-{name}.png")], check=True)
    return result, clips, stills


def media_artifacts():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "test-artifacts" / "recap"
    path.mkdir(parents=True, exist_ok=True)
    return path


def frame(path, at, tmp_path, name):
    from PIL import Image

    png = tmp_path / f"{name}.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(path), "-frames:v", "1", str(png)],
                   check=True)
    return Image.open(png).convert("RGB")


def difference(a, b, box=None) -> float:
    from PIL import ImageChops, ImageStat

    if box:
        a, b = a.crop(box), b.crop(box)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def test_the_moment_is_chosen_by_the_signal_not_the_first_seconds(points):
    _, clips, _ = points
    scores = score_gops(clips[3])
    assert scores.starts == pytest.approx([0, 2, 4], abs=0.01)
    first, _ = scores.best_window(1)
    assert first == 1  # the only sound (the beep) is in the second GOP
    assert scores.loudness_db[1] > scores.loudness_db[0] + 20


def test_a_cut_s_scores_are_the_source_s_gops_on_the_cut_s_clock(points, tmp_path):
    _, clips, _ = points
    source = score_gops(clips[3])
    clip = media.cut(clips[3], tmp_path / "cut.mp4", 2.0, 6.0)  # the last two GOPs, by copy
    derived, rescored = source.between(clip.start, clip.end, clip.duration), score_gops(clip.path)
    assert derived.starts == pytest.approx([0, 2], abs=0.01) and rescored.starts == pytest.approx([0, 2], abs=0.01)
    assert derived.end == pytest.approx(rescored.end, abs=0.01)
    assert derived.loudness_db == pytest.approx(rescored.loudness_db, abs=1.0)
    assert derived.motion[0] == pytest.approx(rescored.motion[0], abs=0.5)  # the last GOP has no next keyframe
    assert derived.best_window(1) == (0, pytest.approx(rescored.best_window(1)[1], abs=0.05))


def test_scoring_a_window_reads_from_its_keyframe_and_keeps_the_recording_s_clock(tmp_path):
    # A point's recording starts at preflight, long before the moments searched: only the window is read, and its
    # GOPs score as they do when the whole recording is scored (the beep's GOP included).
    recording = synthetic_clip(tmp_path / "rec.mp4", width=426, height=240, duration=30, label="Hà Nội",
                               marker_at=17.5)
    info = media.probe(recording)
    whole, window = score_gops(recording, source=info), score_gops(recording, since=13.0, until=25.0, source=info)
    assert window.starts == pytest.approx([12, 14, 16, 18, 20, 22], abs=0.01) and window.end == 25.0
    first = whole.starts.index(window.starts[0])
    assert window.loudness_db == pytest.approx(whole.loudness_db[first:first + 6], abs=0.5)
    assert window.loudness_db[2] > -50 > max(window.loudness_db[:2] + window.loudness_db[3:])  # the beep, alone
    assert window.motion[:5] == pytest.approx(whole.motion[first:first + 5], abs=0.01)


def test_a_highlight_is_the_window_s_best_moment_cut_from_the_recording_itself(tmp_path):
    # A 12 s recording, its beep in the fourth GOP; the window [3, 9) starts mid-GOP: the search begins at the
    # keyframe before it (2 s), the whole 2-GOP moment holding the beep is copied (not [6, 9), cut short by the
    # window's end), the still is that first keyframe.
    recording = synthetic_clip(tmp_path / "rec.mp4", width=426, height=240, duration=12, label="Hà Nội",
                               marker_at=6.5)
    made = cut_highlight(media.probe(recording), tmp_path / "highlight.mp4", tmp_path / "t0.jpg", window=(3.0, 9.0),
                         length_s=4.0)
    assert made.window_start == pytest.approx(2.0, abs=0.01)
    assert made.clip.path_taken == "copy" and made.clip.start == pytest.approx(4.0, abs=0.01)
    assert made.clip.end == pytest.approx(8.0, abs=0.01) and made.clip.duration == pytest.approx(4.0, abs=0.2)
    _, beep = find_sync_marker(made.clip.path, 0, made.clip.duration)
    assert beep == pytest.approx(6.5 - made.clip.start, abs=0.05)  # the beep is in the moment, at its time
    # the montage's numbers are the clip's own GOPs, on its clock (the copy may end on a lone frame of the next
    # GOP, which rescoring it counts and the montage never uses)
    rescored = score_gops(made.clip.path)
    assert made.scores.starts == pytest.approx([0, 2], abs=0.01) == rescored.starts[:2]
    assert made.scores.loudness_db == pytest.approx(rescored.loudness_db[:2], abs=1.0)
    assert made.scores.frames == [60, 60]  # its GOPs' pictures counted on the file, for the montage's copy
    still = frame(recording, 2.0, tmp_path, "at-2s")
    from PIL import Image
    assert difference(Image.open(made.still).convert("RGB").resize(still.size), still) < 8


def test_recap_of_8_points_meets_its_budget_is_conformant_and_loudness_normalised(montage8):
    result, _, _ = montage8
    assert abs(result.duration - 24) <= 0.05 * 24
    info = media.probe(result.path)
    assert media.conformance(info) == [] and info.audio.sample_rate == 48000
    integrated, peak = loudness(result.path)  # at the target, unless the true-peak ceiling held the gain back
    print(f"recap8 loudness: {integrated:.1f} LUFS, true peak {peak:.1f} dBTP")
    assert abs(integrated - LOUDNORM["I"]) <= 1.0 or (integrated < LOUDNORM["I"] and peak >= LOUDNORM["TP"] - 0.6)
    assert peak <= LOUDNORM["TP"] + 0.6
    kinds = [p.kind for p in result.parts]
    assert kinds[0] == "mosaic" and kinds[-1] == "outro" and "copy" in kinds
    assert result.copied_s > 0 and result.reencoded_s < result.duration
    groups = [p.clip.group for p in result.plan.clips]
    assert groups == sorted(groups, key=GROUPS.index)  # grouped: central, then the regions in order
    assert groups[0] == GROUPS[0]


def test_a_clip_whose_signature_differs_from_the_others_is_refused_before_anything_renders(points, tmp_path):
    import dataclasses

    _, clips, stills = points
    signed = material(clips, signed=True)
    central = signed[0].signature  # the central point leads: the others' clips are checked against its own
    other = {**central, "video": [*central["video"][:3], 640, 360, *central["video"][5:]]}
    signed = [signed[0]] + [dataclasses.replace(m, signature=other) for m in signed[1:]]
    with pytest.raises(media.NotConformantError) as caught:
        build_montage(signed, tmp_path / "recap.mp4", budget_s=24, groups=GROUPS, title="Thử",
                      mosaic_stills=[("p0", stills[0])], mosaic_title="1 điểm cầu", outro_lines=["Kết"])
    assert "p0.mp4" not in str(caught.value) and "codec parameters" in str(caught.value)
    assert not list(tmp_path.glob("montage-*")) and not (tmp_path / "recap.mp4").exists()


def test_only_the_clips_the_montage_shows_are_fetched(points, tmp_path):
    import shutil

    _, clips, stills = points
    originals = {f"p{i}": clip for i, clip in enumerate(clips)}
    wanted = [MontageClip(m.point, m.name, m.group, tmp_path / f"{m.point}.mp4", m.scores, m.rank)
              for m in material(clips)]  # not there yet: as in the recap task, before any download
    fetched = []

    def fetch(m):
        fetched.append(m.point)
        shutil.copy(originals[m.point], m.clip)

    result = build_montage(wanted, tmp_path / "recap.mp4", budget_s=16, groups=GROUPS, fetch=fetch,
                           mosaic_stills=[(f"p{i}", s) for i, s in enumerate(stills)], mosaic_title="8 điểm cầu",
                           title="Thử", outro_lines=["Hãy tham gia BHXH"])
    shown = [p.clip.point for p in result.plan.clips]
    assert sorted(fetched) == sorted(shown) and len(shown) < len(wanted) and result.plan.left_out
    assert all(not (tmp_path / f"{point}.mp4").exists() for point in result.plan.left_out)


def test_every_clip_comes_from_its_point_at_the_moment_chosen(montage8):
    result, clips, _ = montage8
    shown = {p.clip.point for p in result.plan.clips}
    for point in shown:
        parts = [(p, s) for p, s in zip(result.parts, result.part_starts) if p.point == point]
        marker = marker_of(int(point[1:]))
        part, start = next((p, s) for p, s in parts if p.source_start <= marker < p.source_end)  # its beep is in
        flash, beep = find_sync_marker(result.path, start, part.source_end - part.source_start)
        assert flash - start == pytest.approx(marker - part.source_start, abs=0.04)  # this point's, not another's
        assert abs(beep - flash) < 0.06
        assert parts[0][0].kind == "lower_third"  # the point's first GOP carries its name


def test_the_mosaic_shows_one_tile_per_live_point(montage8, tmp_path):
    from PIL import Image

    result, _, stills = montage8
    shown = frame(result.path, 1.0, tmp_path, "mosaic")
    assert len(result.mosaic_boxes) == len(result.mosaic_points) == 7
    for point, box in zip(result.mosaic_points, result.mosaic_boxes):
        own = Image.open(stills[int(point[1:])]).convert("RGB").resize((box[2] - box[0] - 1, box[3] - box[1] - 1))
        tile = shown.crop((box[0] + 1, box[1] + 1, box[2], box[3]))
        assert difference(tile, own) < 12, point
    left, top, right, bottom = result.mosaic_boxes[-1]
    background = shown.crop((right + 2, top, min(shown.size[0], right + 40), bottom))  # no 8th tile
    assert background.size[0] == 0 or difference(background, Image.new("RGB", background.size, (11, 61, 145))) < 12
    assert difference(shown, Image.new("RGB", shown.size, (11, 61, 145)), (0, 0, shown.size[0], top - 2)) > 3


def test_lower_third_shows_its_vietnamese_text(montage8, tmp_path):
    result, clips, _ = montage8
    part, start = next((p, s) for p, s in zip(result.parts, result.part_starts) if p.kind == "lower_third")
    index, profile = int(part.point[1:]), media.HOUSE.for_size(426, 240)
    references = {}
    for name in (NAMES[index], "Tỉnh Khác"):
        ref = lower_third_gop(clips[index], tmp_path / f"ref-{len(references)}.mp4", part.source_start,
                              part.source_end if part.source_end - part.source_start <= 2.01 else part.source_start + 2,
                              name=name, kicker=result.plan.clips[0].clip.group, logo=LOGO, profile=profile)
        references[name] = frame(ref, 0.3, tmp_path, f"ref-{len(references)}")
    shown = frame(result.path, start + 0.3, tmp_path, "shown")
    band = (0, 240 - 38 - 12, 426, 240 - 12)
    assert difference(shown, references[NAMES[index]], band) < 3
    assert difference(shown, references["Tỉnh Khác"], band) > difference(shown, references[NAMES[index]], band) + 2


def test_recap_of_64_points_meets_the_90_s_budget_with_a_64_tile_mosaic(points, tmp_path):
    out, clips, stills = points
    many = []
    for i in range(64):
        path = tmp_path / f"p{i:02d}.mp4"
        shutil.copyfile(clips[i % len(clips)], path)
        many.append(path)
    result = build_montage(material(many), tmp_path / "recap64.mp4", budget_s=90, groups=GROUPS, logo=LOGO,
                           mosaic_stills=[(f"p{i}", stills[i % len(stills)]) for i in range(64)],
                           mosaic_title="64 điểm cầu đồng loạt ra quân", title="Thử", outro_lines=["Hãy tham gia BHXH"])
    assert abs(result.duration - 90) <= 0.05 * 90
    assert len(result.mosaic_boxes) == 64 and len(set(result.mosaic_boxes)) == 64
    assert len(result.plan.clips) + len(result.plan.left_out) == 64
    assert result.plan.clips[0].clip.point == "p0" and result.plan.clips[0].gops == 3  # the central point leads
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "1", "-i", str(result.path), "-frames:v", "1",
                    str(media_artifacts() / "recap64-mosaic.png")], check=True)


def flat_scores(gops: int, end: float | None = None, loud_gop: int | None = None) -> GopScores:
    """`gops` GOPs of 2 s, all alike but `loud_gop`; the clip ends at `end` (default: after the last full GOP)."""
    return GopScores([2.0 * i for i in range(gops)], end if end is not None else 2.0 * gops, [0.0] * gops,
                     [0.0 if i == loud_gop else -40.0 for i in range(gops)])


def test_a_clip_s_ragged_last_gop_is_never_in_the_montage():
    """Seen in the 64-point rehearsal: highlights ending 0.93 s into a GOP; that GOP's copy probes at 27.8 fps
    (a frame short), cannot be joined by copy, and the recap failed when the plan chose it (the loudest)."""
    ragged = flat_scores(5, end=8.934, loud_gop=4)
    assert ragged.full_gops(2.0) == 4 and flat_scores(5).full_gops(2.0) == 5
    clips = [MontageClip(f"p{i}", "X", "Miền Bắc", None, ragged, 1) for i in range(3)]
    plan = plan_montage(clips, budget_s=40)  # room for every usable GOP
    assert all(p.end <= 8.0 + 1e-6 for p in plan.clips) and [p.gops for p in plan.clips] == [4, 4, 4]
    assert all(p.first_gop + p.gops == 4 for p in plan.clips)  # the best window still leans to the loud end


def test_plan_fills_the_budget_gop_by_gop_and_never_overruns():
    clips = [MontageClip(f"p{i}", "X", "Miền Bắc", None, flat_scores(5), 1) for i in range(10)]
    plan = plan_montage(clips, budget_s=48)  # 40 s between mosaic and outro: 2 GOPs for each of the 10
    assert plan.duration == pytest.approx(48, abs=0.01) and [p.gops for p in plan.clips] == [2] * 10
    plan = plan_montage(clips, budget_s=20)  # 12 s: 3 points, the rest left out (they are in the mosaic)
    assert plan.duration <= 20 + 1e-6 and len(plan.clips) == 3 and len(plan.left_out) == 7
    plan = plan_montage(clips, budget_s=120)  # more room than 2 GOPs each: a GOP more each, while there is more
    assert plan.duration <= 120 + 1e-6 and all(p.gops == 5 for p in plan.clips)
    assert grid(64, (1280, 720))[-1][3] < 720


def test_a_lower_third_from_a_source_at_another_frame_rate_still_joins_the_cards(points, tmp_path):
    """A recording's guessed rate (FLV's 1 ms clock, jitter on a loaded machine) is not always 30/1; the encoder's
    rate — and so the SPS — comes from the filter graph. Seen in CI: heads from such a recording could not be
    joined to the mosaic, and the rehearsal had no recap."""
    from media.clips import stream_signature
    from media.montage import encode_still
    from media.profile import HOUSE

    _, clips, stills = points
    ntsc = tmp_path / "ntsc.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clips[1]), "-r", "30000/1001", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "copy", str(ntsc)], check=True, timeout=60)
    assert media.probe(ntsc).video.fps < 29.98
    profile = HOUSE.for_size(426, 240)
    head = lower_third_gop(ntsc, tmp_path / "head.mp4", 2.0, 4.0, name="Hà Nội", kicker="Miền Bắc", logo=LOGO,
                           profile=profile)
    card = encode_still(stills[0], tmp_path / "card.mp4", 2.0, profile)
    assert stream_signature(media.probe(head))["video"] == stream_signature(media.probe(card))["video"]


@pytest.mark.parametrize("count", [8, 9, 64])
def test_the_logo_never_covers_a_point_s_tile(count, tmp_path):
    """With the grid's last row full, the logo moves to the title band (a 3×3 wall of 9 points lost its last
    point under it)."""
    from PIL import Image

    from media.montage import mosaic_image

    colour = (200, 30, 30)
    still = tmp_path / "still.png"
    Image.new("RGB", (426, 240), colour).save(still)
    boxes = mosaic_image([still] * count, tmp_path / "mosaic.png", size=(426, 240), logo=LOGO,
                         title=f"{count} điểm cầu đồng loạt ra quân")
    with Image.open(tmp_path / "mosaic.png") as wall:
        for left, top, right, bottom in boxes:  # every tile's inside is the still, untouched
            inside = wall.crop((left + 2, top + 2, right - 2, bottom - 2)).getcolors(maxcolors=4096)
            assert len(inside) == 1 and inside[0][1] == colour, (left, top)


def test_a_live_clip_that_dropped_frames_joins_in_sync_and_whole(points, tmp_path):
    """What a real RTMP recording holds: 2 s GOPs with fewer than 60 pictures (frames dropped under load). The
    montage lays each part on its span and counts the copied pictures from the file, so nothing is short, and the
    point's flash and beep stay together."""
    _, clips, stills = points
    dropped = tmp_path / "p1.mp4"
    profile = media.HOUSE.for_size(426, 240)
    video_args = [a for k, v in {**profile.video_args(), "g": 300}.items() for a in (f"-{k}", str(v))]
    # frames 63 (before the flash at 2.4 s) and 150 left out, as a loaded pusher does; keyframes stay on the 2 s grid
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clips[1]), "-map", "0:v", "-map", "0:a",
                    "-vf", "select='not(eq(n,63)+eq(n,150))'", "-fps_mode", "passthrough",
                    *video_args, "-force_key_frames", "expr:gte(t,n_forced*2)", "-c:a", "copy",
                    "-video_track_timescale", str(profile.video_timescale), str(dropped)], check=True)
    kept = dict(media.clips.gop_packets(dropped))
    assert list(kept.values()) == [60, 59, 59]
    result = build_montage(material([clips[0], dropped]), tmp_path / "recap.mp4", budget_s=16, groups=GROUPS,
                           clip_gops=2, lead_gops=1, mosaic_stills=[("p0", stills[0]), ("p1", stills[1])],
                           mosaic_title="2 điểm cầu", title="Thử", outro_lines=["Hãy tham gia BHXH"])
    output = media.probe(result.path)
    assert output.video.frames == sum(p.frames for p in result.parts)
    assert output.audio.duration == pytest.approx(output.video.duration, abs=0.05)
    assert result.duration == pytest.approx(sum(p.seconds for p in result.parts), abs=0.05)
    parts = [(p, s) for p, s in zip(result.parts, result.part_starts) if p.point == "p1"]
    [copied] = [p for p, _ in parts if p.kind == "copy"]
    assert copied.frames == next(n for t, n in kept.items() if abs(t - copied.source_start) < 0.01) < 60
    # the flash and beep in sync, in whichever part holds them (the copy, or the head re-encoded on the house grid)
    part, start = next((p, s) for p, s in parts if p.source_start <= marker_of(1) < p.source_end)
    flash, beep = find_sync_marker(result.path, start, part.source_end - part.source_start)
    assert flash - start == pytest.approx(marker_of(1) - part.source_start, abs=0.04)
    assert abs(beep - flash) < 0.06
