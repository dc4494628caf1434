"""Probe, conformance and normalisation on generated clips, including the bad and odd inputs of the issue."""
from __future__ import annotations

import pytest

import media
from media.errors import EmptyFileError, MissingMoovError, NotMediaError, NoVideoError
from tests.media.helpers import lavfi


def codes(info) -> set[str]:
    return {d.code for d in media.conformance(info)}


def test_conformant_clip_reads_as_house_profile(conformant_clip):
    info = media.probe(conformant_clip)
    assert (info.video.codec, info.video.profile, info.video.level) == ("h264", "High", 41)
    assert (info.width, info.height, info.video.fps, info.video.vfr) == (426, 240, 30.0, False)
    assert info.video.keyframe_interval_s == pytest.approx(2.0, abs=0.01)
    assert (info.audio.codec, info.audio.profile, info.audio.sample_rate, info.audio.channels) == ("aac", "LC", 48000, 2)
    assert info.duration == pytest.approx(4.0, abs=0.05)
    assert media.conformance(info) == []


def test_zero_byte_video_is_refused_naming_the_file(tmp_path):
    empty = tmp_path / "upload.mp4"
    empty.touch()
    with pytest.raises(EmptyFileError) as caught:
        media.probe(empty)
    assert str(empty) in str(caught.value) and caught.value.reason == "empty_file"


def test_mp4_without_moov_is_reported_as_truncated_upload(tmp_path):
    whole = tmp_path / "whole.mp4"  # no +faststart: the index is written last, as a phone or camera does
    lavfi("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
          str(whole))
    cut_short = tmp_path / "cut_short.mp4"
    cut_short.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(MissingMoovError) as caught:
        media.probe(cut_short)
    assert caught.value.reason == "no_moov" and "cut_short.mp4" in str(caught.value)


def test_html_page_saved_as_mp4_is_not_media(tmp_path):
    page = tmp_path / "video.mp4"
    page.write_text("<!doctype html><html><body>Session expired</body></html>")
    with pytest.raises(NotMediaError) as caught:
        media.probe(page)
    assert "video.mp4" in str(caught.value)


def test_audio_only_file_has_no_video_and_cannot_be_normalised(tmp_path):
    audio = tmp_path / "interview.m4a"
    lavfi("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:a", "aac", str(audio))
    info = media.probe(audio)
    assert info.video is None and "no_video" in codes(info)
    with pytest.raises(NoVideoError) as caught:
        media.normalize(audio, tmp_path / "out.mp4")
    assert caught.value.reason == "no_video" and "interview.m4a" in str(caught.value)


def test_video_without_audio_gets_a_silent_stereo_track(clip_factory, tmp_path):
    silent = clip_factory("silent", audio_channels=0)
    assert "no_audio" in codes(media.probe(silent))
    result = media.normalize(silent, tmp_path / "out.mp4")
    assert result.output.audio.channels == 2 and result.output.audio.sample_rate == 48000
    assert media.conformance(result.output) == []
    assert result.output.audio.duration == pytest.approx(result.output.video.duration, abs=0.05)


def test_mono_44k_audio_becomes_stereo_48k(clip_factory, tmp_path):
    mono = clip_factory("mono44", audio_channels=1, sample_rate=44100)
    assert {"channels", "sample_rate"} <= codes(media.probe(mono))
    output = media.normalize(mono, tmp_path / "out.mp4").output
    assert (output.audio.channels, output.audio.sample_rate) == (2, 48000)


def test_vfr_phone_clip_is_detected_and_made_constant_30fps(clip_factory, tmp_path):
    vfr = clip_factory("vfr", vfr=True, duration=4)
    assert "vfr" in codes(media.probe(vfr))
    output = media.normalize(vfr, tmp_path / "out.mp4").output
    assert not output.video.vfr and output.video.fps == 30.0 and media.conformance(output) == []
    assert output.duration == pytest.approx(4.0, abs=0.1)


def test_portrait_clip_is_pillarboxed_into_16_9(clip_factory, tmp_path):
    portrait = clip_factory("portrait", width=240, height=426)
    assert "portrait" in codes(media.probe(portrait))
    output = media.normalize(portrait, tmp_path / "out.mp4").output
    assert (output.width, output.height) == (758, 426)  # 16:9 at the clip's own height
    assert media.conformance(output) == []


def test_portrait_clip_can_be_cropped_instead(clip_factory, tmp_path):
    portrait = clip_factory("portrait", width=240, height=426)
    output = media.normalize(portrait, tmp_path / "out.mp4", portrait="crop").output
    # The full width is kept and the centre cut to 16:9 (to the nearest even height).
    assert output.width == 240 and abs(output.width / output.height - 16 / 9) < 0.02


def test_rotated_clip_is_stored_upright(clip_factory, tmp_path):
    rotated = clip_factory("rotated", rotate=90)
    info = media.probe(rotated)
    assert info.video.rotation != 0 and (info.width, info.height) == (240, 426) and "rotation" in codes(info)
    output = media.normalize(rotated, tmp_path / "out.mp4").output
    assert output.video.rotation == 0 and media.conformance(output) == []


def test_normalize_reports_progress_until_done(clip_factory, tmp_path):
    seen: list[media.Progress] = []
    media.normalize(clip_factory("mono44", audio_channels=1, sample_rate=44100), tmp_path / "out.mp4",
                    on_progress=seen.append)
    assert seen and seen[-1].done and seen[-1].percent == 100.0
    assert any(p.speed for p in seen)


def test_remux_keeps_a_conformant_recording_as_is(conformant_clip, tmp_path):
    out = media.remux(conformant_clip, tmp_path / "remuxed.mp4")
    before, after = media.probe(conformant_clip), media.probe(out)
    assert after.video.extradata_hash == before.video.extradata_hash and after.video.frames == before.video.frames
