"""Cutting, joining and FLV segment joining: the stream-copy fast path and when it is (rightly) not taken."""
from __future__ import annotations

import json
import subprocess

import pytest

import media
from media.errors import ClipRangeError, NotConformantError, NoVideoError
from tests.media.helpers import lavfi


def chapters(path) -> list[tuple[str, float]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", str(path)],
                         capture_output=True, check=True).stdout
    return [(c["tags"]["title"], float(c["start_time"])) for c in json.loads(out)["chapters"]]


def test_cut_of_conformant_clip_copies_from_the_keyframe_before_start(conformant_clip, tmp_path):
    clip = media.cut(conformant_clip, tmp_path / "cut.mp4", 2.5, 4.0)
    assert clip.path_taken == "copy" and clip.start == pytest.approx(2.0, abs=0.01)
    assert clip.duration == pytest.approx(2.0, abs=0.1)
    assert media.probe(clip.path).video.extradata_hash == media.probe(conformant_clip).video.extradata_hash


def test_exact_cut_starting_on_a_keyframe_still_copies(conformant_clip, tmp_path):
    clip = media.cut(conformant_clip, tmp_path / "cut.mp4", 2.0, 3.0, exact=True)
    assert clip.path_taken == "copy" and clip.start == 2.0
    # Stream copy ends on packet order: B-frame reordering can carry up to two frames past the end.
    assert 30 <= media.probe(clip.path).video.frames <= 32


def test_exact_cut_off_keyframe_reencodes_exactly(conformant_clip, tmp_path):
    clip = media.cut(conformant_clip, tmp_path / "cut.mp4", 1.3, 2.8, exact=True)
    assert clip.path_taken == "reencode" and "keyframe" in clip.reason
    assert media.probe(clip.path).video.duration == pytest.approx(1.5, abs=0.04)
    assert media.conformance(media.probe(clip.path)) == []


def test_cut_of_non_conformant_clip_reencodes_and_says_why(clip_factory, tmp_path):
    clip = media.cut(clip_factory("mono44", audio_channels=1, sample_rate=44100), tmp_path / "cut.mp4", 0.5, 2.0)
    assert clip.path_taken == "reencode" and "channels" in clip.reason and "sample_rate" in clip.reason
    assert media.conformance(media.probe(clip.path)) == []


def test_clip_range_beyond_the_duration_is_refused(conformant_clip, tmp_path):
    with pytest.raises(ClipRangeError) as caught:
        media.cut(conformant_clip, tmp_path / "cut.mp4", 3.0, 9.0)
    assert caught.value.reason == "range_beyond_duration" and "conformant.mp4" in str(caught.value)
    with pytest.raises(ClipRangeError) as caught:
        media.cut(conformant_clip, tmp_path / "cut.mp4", 2.0, 2.0)
    assert caught.value.reason == "empty_range"


def test_cut_of_audio_only_file_is_refused(tmp_path):
    audio = tmp_path / "audio.m4a"
    lavfi("-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:a", "aac", str(audio))
    with pytest.raises(NoVideoError):
        media.cut(audio, tmp_path / "cut.mp4", 0, 1)


def test_concat_joins_by_copy_with_chapters_and_lasts_the_sum(conformant_clip, clip_factory, tmp_path):
    second = clip_factory("second", label="Điểm cầu 08")
    joined = media.concat([conformant_clip, second, conformant_clip], tmp_path / "joined.mp4",
                          chapters=["Một", "Hai", None], title="Tổng hợp")
    assert joined.duration == pytest.approx(4 + 3 + 4, abs=0.1)
    assert [name for name, _ in chapters(joined.path)] == ["Một", "Hai"]
    assert chapters(joined.path)[1][1] == pytest.approx(4.0, abs=0.05)
    output = media.probe(joined.path)
    assert media.conformance(output) == [] and output.video.frames == 330
    assert joined.max_drift_s <= 1024 / 48000 / 2 + 1e-3  # out-of-picture AAC frames dropped at the joints


def test_concat_refuses_a_part_with_other_codec_parameters(conformant_clip, clip_factory, tmp_path):
    larger = clip_factory("larger", width=640, height=360)
    with pytest.raises(NotConformantError) as caught:
        media.concat([conformant_clip, larger], tmp_path / "joined.mp4")
    assert "larger.mp4" in str(caught.value) and "video" in str(caught.value)


def test_concat_refuses_a_non_conformant_part(conformant_clip, clip_factory, tmp_path):
    with pytest.raises(NotConformantError) as caught:
        media.concat([conformant_clip, clip_factory("silent", audio_channels=0)], tmp_path / "joined.mp4")
    assert "silent.mp4" in str(caught.value) and "no_audio" in str(caught.value)


def test_join_segments_turns_flv_recording_chunks_into_one_mp4(conformant_clip, tmp_path):
    # What nginx-rtmp `record_interval` leaves: FLV chunks, each starting on a keyframe, unindexed.
    lavfi("-i", str(conformant_clip), "-c", "copy", "-f", "segment", "-segment_time", "2", "-segment_format", "flv",
          "-reset_timestamps", "1", str(tmp_path / "rec-%03d.flv"))
    segments = sorted(tmp_path.glob("rec-*.flv"))
    assert len(segments) == 2
    joined = media.join_segments(segments, tmp_path / "joined.mp4")
    info = media.probe(joined.path)
    assert info == joined  # what it hands back is the joined file as probed
    assert info.container.startswith("mov") and info.duration == pytest.approx(4.0, abs=0.1)
    assert media.conformance(info) == []
    assert media.cut(joined.path, tmp_path / "highlight.mp4", 1.0, 3.5).path_taken == "copy"


def test_concat_of_many_parts_keeps_sound_within_half_an_aac_frame(clip_factory, tmp_path):
    # Every AAC part brings a priming frame and a tail: left in, 12 parts would put the sound ~0.3 s late.
    part = clip_factory("short", duration=1.5)
    joined = media.concat([part] * 12, tmp_path / "joined.mp4")
    assert joined.max_drift_s <= 1024 / 48000 / 2 + 1e-3 and joined.dropped_audio_packets >= 12
    output = media.probe(joined.path)
    assert output.audio.duration == pytest.approx(output.video.duration, abs=0.03)
    assert joined.duration == pytest.approx(18.0, abs=0.05)


def test_copy_gops_copies_whole_gops_of_many_clips_in_one_run_exactly_as_long_as_asked(conformant_clip, tmp_path):
    from media.clips import copy_gops

    marked, plain = tmp_path / "marked.mp4", tmp_path / "plain.mp4"
    copy_gops([(conformant_clip, 2.0, 60, marked), (conformant_clip, 0.0, 60, plain)])
    for path in (marked, plain):
        info = media.probe(path)
        assert info.audio is None and info.video.frames == 60  # not a lone frame of the next GOP
        assert info.duration == pytest.approx(2.0, abs=0.01)
    # (where each copy starts in its clip: the flash, in the join test below)


def test_join_pictures_lays_parts_and_one_sound_track_on_their_spans_in_sync(conformant_clip, tmp_path):
    from devstack.synthetic import find_sync_marker
    from media.clips import copy_gops, join_pictures
    from media.montage import montage_sound

    parts = [(tmp_path / f"{n}.mp4", 60, 2.0) for n in "abc"]
    copy_gops([(conformant_clip, start, 60, path) for start, (path, _, _) in zip((0.0, 2.0, 2.0), parts)])
    sound = montage_sound([(conformant_clip, 0.0, 96000), (None, 0.0, 96000), (conformant_clip, 2.0, 96000)],
                          tmp_path / "sound.m4a", media.HOUSE.for_size(426, 240))
    # the middle part's pictures show the flash, its sound is silence; the last has both, in sync
    joined = join_pictures(parts, sound, tmp_path / "joined.mp4", chapters=["Một", None, "Ba"], title="Thử")
    assert joined.part_starts == pytest.approx([0, 2, 4]) and joined.duration == pytest.approx(6.0, abs=0.03)
    assert [name for name, _ in chapters(joined.path)] == ["Một", "Ba"]
    output = media.probe(joined.path)
    assert media.conformance(output) == [] and output.video.frames == 180
    assert output.audio.duration == pytest.approx(6.0, abs=0.03)
    flash, beep = find_sync_marker(joined.path, 4, 2)
    assert flash == pytest.approx(4.5, abs=0.04) and beep == pytest.approx(flash, abs=0.04)
    with pytest.raises(NotConformantError) as caught:  # a part shorter than its place: refused, not drifting
        join_pictures([(parts[0][0], 70, 2.0)], sound, tmp_path / "short.mp4")
    assert "60 frames, 70 were laid out" in str(caught.value)


def test_gop_packets_counts_the_pictures_a_live_source_kept_in_each_gop(tmp_path):
    from media.clips import copy_gops, gop_packets

    # a live push that dropped frames: 2 s GOPs holding 58, 60 and 57 pictures (the times stay on the 2 s grid)
    dropped = tmp_path / "dropped.mp4"
    kept = "+".join(f"between(n,{a},{b})" for a, b in ((0, 57), (60, 119), (120, 176)))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30:duration=6",
                    "-vf", f"select='{kept}'", "-fps_mode", "passthrough", "-c:v", "libx264", "-g", "300",
                    "-sc_threshold", "0", "-force_key_frames", "expr:eq(n,58)+eq(n,118)",
                    str(dropped)], check=True)
    gops = gop_packets(dropped)
    assert [round(t, 2) for t, _ in gops] == [0.0, 2.0, 4.0] and [n for _, n in gops] == [58, 60, 57]
    copy_gops([(dropped, 2.0, 60, tmp_path / "middle.mp4")])
    middle = media.probe(tmp_path / "middle.mp4")
    assert middle.video.frames == 60 and middle.duration == pytest.approx(2.0, abs=0.04)
