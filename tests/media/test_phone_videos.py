"""Team videos as phones make them (MP4/MOV, H.264/HEVC, portrait by rotation metadata, variable frame rate) reach
the house profile with a poster; the ways they fail come back typed, with words a field team can act on."""
from __future__ import annotations

import unicodedata

import pytest
from PIL import Image

import media
from media.errors import ffmpeg_failure
from media.normalize import target_profile
from media.run import run_ffmpeg
from tests.media.helpers import has_encoder, lavfi, phone_clip, with_fourcc

HEVC = pytest.mark.skipif(not has_encoder("libx265"), reason="this ffmpeg has no libx265 to make an HEVC clip")


def _processed_like_the_ingest(src, tmp_path):
    """What the ingest does with a team video: probe, normalise to the house profile, take a poster frame."""
    info = media.probe(src)
    result = media.normalize(src, tmp_path / "house.mp4", source_info=info)
    poster = media.poster_frame(result.path, tmp_path / "poster.jpg")
    return info, media.probe(result.path), poster


@pytest.mark.parametrize("name, options", [
    ("h264-portrait.mp4", {"rotate": 90}),
    ("h264-portrait.mov", {"rotate": 270}),
    ("h264-vfr.mp4", {"vfr": True}),
    pytest.param("hevc-portrait.mov", {"codec": "hevc", "rotate": 90}, marks=HEVC),
    pytest.param("hevc-vfr.mp4", {"codec": "hevc", "vfr": True}, marks=HEVC),
])
def test_a_phone_clip_is_processed_to_the_house_profile_with_a_poster(tmp_path, name, options):
    src = phone_clip(tmp_path / name, **options)
    info, output, poster = _processed_like_the_ingest(src, tmp_path)
    assert media.conformance(info), "the phone clip should need normalising"
    assert media.conformance(output, target_profile(info)) == []  # H.264 High, 30 fps CFR, AAC 48 kHz stereo
    assert output.video.codec == "h264" and output.video.rotation == 0 and not output.video.vfr
    assert output.width > output.height  # landscape 16:9 frame (a portrait clip is pillarboxed into it)
    assert output.duration == pytest.approx(3.0, abs=0.15)
    with Image.open(poster) as still:
        assert still.format == "JPEG" and still.size[0] == output.width


def test_a_portrait_clip_is_turned_upright_before_pillarboxing(tmp_path):
    """Content check, not only metadata: the phone held upright shows a tall picture in the middle of the frame."""
    src = phone_clip(tmp_path / "portrait.mp4", rotate=90)
    _, output, poster = _processed_like_the_ingest(src, tmp_path)
    with Image.open(poster) as still:
        grey = still.convert("L")
        width, height = grey.size
        left_bar = grey.crop((0, 0, width // 5, height))
        centre = grey.crop((width * 2 // 5, 0, width * 3 // 5, height))
        assert max(left_bar.getextrema()) < 40  # black pillarbox
        assert max(centre.getextrema()) > 120  # the picture


def test_a_truncated_mp4_without_moov_tells_the_team_to_export_again(tmp_path):
    whole = phone_clip(tmp_path / "whole.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(media.MissingMoovError) as caught:
        _processed_like_the_ingest(cut, tmp_path)
    assert caught.value.reason == "no_moov"
    assert str(media.team_message(caught.value)) == (
        "Tệp video bị hỏng hoặc tải lên chưa hết (thiếu phần 'moov') — hãy quay/xuất lại và gửi lại")


def test_an_mp4_cut_short_after_its_index_says_how_much_is_missing(tmp_path):
    whole = phone_clip(tmp_path / "whole.mp4", faststart=True, seconds=4)  # moov first: the cut keeps the index
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(media.FFmpegError) as caught:
        _processed_like_the_ingest(cut, tmp_path)
    assert caught.value.reason == "short_output"
    message = media.team_message(caught.value)
    assert message.problem.startswith("Video bị cắt ngắn: tệp ghi 4.0 giây nhưng chỉ đọc được ")
    assert message.action == "hãy gửi lại tệp gốc từ máy"


def test_a_zero_length_upload_is_refused_before_ffmpeg(tmp_path):
    empty = tmp_path / "IMG_0001.MOV"
    empty.touch()
    with pytest.raises(media.EmptyFileError) as caught:
        _processed_like_the_ingest(empty, tmp_path)
    assert media.team_message(caught.value).problem == "Tệp trống (0 byte), tải lên chưa thành công"


def test_a_web_page_saved_as_mp4_is_named_for_what_it_is(tmp_path):
    page = tmp_path / "video.mp4"
    page.write_text("<!DOCTYPE html><html><body>Phiên đăng nhập đã hết hạn</body></html>", encoding="utf-8")
    with pytest.raises(media.NotMediaError) as caught:
        _processed_like_the_ingest(page, tmp_path)
    message = media.team_message(caught.value)
    assert message.problem.startswith("Tệp không phải là video") and "trang web" in message.problem
    assert "MP4 hoặc MOV" in message.action


def test_a_sound_only_file_has_no_picture(tmp_path):
    audio = tmp_path / "ghi-am.mp4"
    lavfi("-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "2", "-c:a", "aac", str(audio))
    with pytest.raises(media.NoVideoError) as caught:
        _processed_like_the_ingest(audio, tmp_path)
    assert str(media.team_message(caught.value)) == "Tệp chỉ có tiếng, không có hình — hãy gửi tệp video có hình"


def test_a_codec_ffmpeg_cannot_decode_is_named_with_how_to_export_instead(tmp_path):
    odd = with_fourcc(phone_clip(tmp_path / "whole.mp4"), tmp_path / "odd.mp4", b"zzzz")
    with pytest.raises(media.UnsupportedCodecError) as caught:
        _processed_like_the_ingest(odd, tmp_path)
    message = media.team_message(caught.value)
    assert message.problem == "Video được nén bằng chuẩn 'zzzz' mà hệ thống không đọc được"
    assert "MP4 (H.264)" in message.action


def test_ffmpeg_failures_are_typed_by_what_ffmpeg_said(tmp_path):
    """Real ffmpeg runs (probe bypassed): its stderr decides the reason, and its last words reach the team only
    when nothing more specific is known — without addresses or our scratch directories."""
    whole = phone_clip(tmp_path / "whole.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    odd = with_fourcc(whole, tmp_path / "odd.mp4", b"zzzz")
    audio = tmp_path / "audio.m4a"
    lavfi("-f", "lavfi", "-i", "sine", "-t", "1", str(audio))

    def failure(*argv: str) -> media.FFmpegError:
        with pytest.raises(media.FFmpegError) as caught:
            run_ffmpeg(["ffmpeg", "-y", *argv], timeout=60, path=argv[1])
        return caught.value

    assert failure("-i", str(cut), "-f", "null", "-").reason == "no_moov"
    assert failure("-i", str(odd), "-c:v", "libx264", "-f", "null", "-").reason == "unsupported_codec"
    assert failure("-i", str(audio), "-map", "0:v", "-f", "null", "-").reason == "no_video"
    full_disk = failure("-i", str(whole), "-f", "mp4", "/dev/full")
    assert full_disk.reason == "host_failure" and not media.blames_input(full_disk)
    unknown = ffmpeg_failure(tmp_path / "x.mp4", 1, "[mov,mp4 @ 0x5589aa] something new\n"
                             f"{tmp_path}/x.mp4: Weird thing happened", ["ffmpeg"])
    assert unknown.reason == "ffmpeg_failed" and media.blames_input(unknown)
    assert media.team_message(unknown).problem == "Không xử lý được video (ffmpeg báo: x.mp4: Weird thing happened)"


@pytest.mark.parametrize("reason", ["invalid_media", "empty_file", "not_an_image", "corrupt", "unsupported_format",
                                    "truncated", "decompression_bomb", "not_media", "no_moov", "no_video",
                                    "unsupported_codec", "short_output", "timeout", "ffmpeg_failed", "missing_glyph"])
def test_every_reason_reads_as_vietnamese_with_something_to_do(reason, tmp_path):
    error = media.MediaError(tmp_path / "IMG_0001.MOV", "technical detail", reason=reason)
    message = media.team_message(error)
    for text in (message.problem, message.action):
        assert text and text == unicodedata.normalize("NFC", text)
        assert "{" not in text and str(tmp_path) not in text and "technical detail" not in text
    assert message.action.startswith("hãy ") or " hãy " in message.action or message.action.startswith("nếu")
