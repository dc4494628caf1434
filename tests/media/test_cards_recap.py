"""Title cards (Vietnamese text, glyph coverage), the recap (copy path, A/V sync, chapters, cache), stills."""
from __future__ import annotations

import json
import subprocess
import unicodedata

import pytest

import media
from media.cards import CardText, check_glyphs, render_card
from media.clips import stream_signature
from media.errors import MissingGlyphError
from media.recap import RecapItem, build_recap, vertical_variant
from devstack import synthetic
from devstack.synthetic import find_sync_marker

MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"  # fontconfig does not list it for "vi"
PROFILE_240 = media.HOUSE.for_size(426, 240)


def first_frame(path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-"],
                          capture_output=True, check=True).stdout


def test_font_missing_a_vietnamese_glyph_is_refused_before_rendering(tmp_path):
    with pytest.raises(MissingGlyphError) as caught:
        render_card(tmp_path / "card.mp4", CardText("Phú Thọ", "Điểm cầu Hưng Yên"), profile=PROFILE_240,
                    style=media.CardStyle(font=MONO))
    assert caught.value.reason == "missing_glyph" and MONO in str(caught.value) and "U+" in str(caught.value)
    assert not (tmp_path / "card.mp4").exists()


def test_dejavu_sans_covers_every_vietnamese_letter():
    letters = "ĂÂĐÊÔƠƯăâđêôơư" + "".join(unicodedata.normalize("NFC", base + mark) for base in "aăâeêioôơuưy"
                                          for mark in "\u0300\u0301\u0303\u0309\u0323")
    check_glyphs(media.resolve_font(), letters)
    check_glyphs(media.resolve_font("DejaVu Sans", bold=True), letters)
    with pytest.raises(MissingGlyphError):
        check_glyphs(MONO, letters)


def test_card_matches_clip_codec_parameters_and_renders_nfd_like_nfc(conformant_clip, tmp_path):
    nfc = render_card(tmp_path / "nfc.mp4", CardText("Tỉnh Vĩnh Phúc", "Thành phố Hồ Chí Minh"), profile=PROFILE_240)
    nfd = render_card(tmp_path / "nfd.mp4", CardText(unicodedata.normalize("NFD", "Tỉnh Vĩnh Phúc"),
                                                     unicodedata.normalize("NFD", "Thành phố Hồ Chí Minh")),
                      profile=PROFILE_240)
    card = media.probe(nfc)
    assert stream_signature(card) == stream_signature(media.probe(conformant_clip))
    assert media.conformance(card) == [] and card.video.frames == 60 and card.audio.packets == 94
    assert first_frame(nfc) == first_frame(nfd)
    blank = render_card(tmp_path / "blank.mp4", CardText(" "), profile=PROFILE_240)
    assert first_frame(nfc) != first_frame(blank)


@pytest.fixture(scope="module")
def recap(conformant_clip, clip_factory, tmp_path_factory):
    out = tmp_path_factory.mktemp("recap")
    items = [RecapItem("Tỉnh Vĩnh Phúc", conformant_clip, "08:00"),
             RecapItem("Huyện Lập Thạch", clip_factory("point2", duration=3.3, marker_at=1.7, label="Lập Thạch")),
             RecapItem("Huyện Sông Lô", clip_factory("mono44", audio_channels=1, sample_rate=44100))]
    result = build_recap(items, out / "recap.mp4", theme="Tháng vận động BHXH toàn dân", cache_dir=out / "cache")
    return result, items, out


def test_recap_copies_matching_clips_and_reencodes_the_odd_one_once(recap):
    result, _, _ = recap
    clips = [p for p in result.parts if p.kind == "clip"]
    assert [p.path_taken for p in clips] == ["copy", "copy", "reencode"]
    assert "channels" in clips[2].reason
    assert (result.copied, result.reencoded) == (2, 1)
    assert [p.kind for p in result.parts] == ["intro", "card", "clip", "card", "clip", "card", "clip", "outro"]


def test_recap_is_conformant_with_a_chapter_per_point_and_the_summed_duration(recap):
    result, items, _ = recap
    assert result.deviations == []
    card = 2.0
    assert result.duration == pytest.approx(card * 5 + 4 + 3.3 + 3, abs=0.5)
    titles = [c.title for c in result.chapters]
    assert titles[1:4] == [item.point for item in items]
    probed = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters",
                                        "-show_format", str(result.path)], capture_output=True).stdout)
    assert [c["tags"]["title"] for c in probed["chapters"]][1:4] == titles[1:4]
    assert probed["format"]["tags"]["title"] == "Tháng vận động BHXH toàn dân"


def test_recap_keeps_sound_on_picture_for_every_copied_clip(recap):
    result, items, _ = recap
    starts = [c.start for c in result.chapters[1:3]]
    for item, chapter_start, marker in zip(items, starts, (2.5, 1.7)):
        source_flash, source_beep = find_sync_marker(item.clip, marker - 0.5, 1.0)
        clip_start = chapter_start + 2.0
        flash, beep = find_sync_marker(result.path, clip_start + marker - 0.5, 1.0)
        assert flash == pytest.approx(clip_start + marker, abs=0.05)
        assert abs((beep - flash) - (source_beep - source_flash)) < 0.040
    assert result.av_drift_s < 0.040


def test_recap_rerun_reuses_cached_cards(recap):
    result, items, out = recap
    again = build_recap(items, out / "again.mp4", theme="Tháng vận động BHXH toàn dân", cache_dir=out / "cache")
    assert {p.path_taken for p in again.parts if p.kind != "clip"} == {"cached"}
    assert again.duration == pytest.approx(result.duration, abs=0.01)


def test_vertical_variant_is_9_16_with_chapters(recap, tmp_path):
    result, _, _ = recap
    vertical = vertical_variant(result.path, tmp_path / "vertical.mp4", width=180)
    assert (vertical.width, vertical.height) == (180, 320)
    assert vertical.duration == pytest.approx(result.duration, abs=0.1)
    probed = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters",
                                        str(vertical.path)], capture_output=True).stdout)
    assert len(probed["chapters"]) == len(result.chapters)


def test_poster_frame_and_contact_sheet_are_images(recap, tmp_path):
    from PIL import Image

    result, _, _ = recap
    poster = media.poster_frame(result.path, tmp_path / "poster.jpg")
    sheet = media.contact_sheet(result.path, tmp_path / "sheet.jpg", columns=3, rows=2, tile_width=160)
    assert Image.open(poster).size == (426, 240)
    assert Image.open(sheet).size == (480, 180)


def frame_image(path, tmp_path):
    from PIL import Image

    png = tmp_path / f"{path.stem}-frame.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-frames:v", "1", str(png)], check=True)
    return Image.open(png).convert("L")


def mean_difference(a, b, box) -> float:
    from PIL import ImageChops, ImageStat

    return ImageStat.Stat(ImageChops.difference(a.crop(box), b.crop(box))).mean[0]


def test_lower_third_overlays_text_and_logo_on_the_bottom_band_only(conformant_clip, tmp_path):
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGBA", (40, 40), (20, 20, 20, 255)).save(logo)  # dark on testsrc2's bright top-right corner
    out = media.add_lower_third(conformant_clip, tmp_path / "overlay.mp4", "Huyện Tam Đảo — 08:00", logo=logo)
    info = media.probe(out)
    assert media.conformance(info) == [] and info.duration == pytest.approx(4.0, abs=0.1)
    before, after = frame_image(conformant_clip, tmp_path), frame_image(out, tmp_path)
    assert mean_difference(before, after, (0, 0, 200, 120)) < 4  # top-left: only re-encoding noise
    assert mean_difference(before, after, (0, 196, 426, 226)) > 15  # the band with the text
    assert mean_difference(before, after, (384, 14, 414, 44)) > 60  # the logo, top-right


def test_lower_third_with_a_glyph_the_font_lacks_is_refused(conformant_clip, tmp_path):
    with pytest.raises(MissingGlyphError):
        media.add_lower_third(conformant_clip, tmp_path / "overlay.mp4", "Thủ đô Hà Nội",
                              style=media.CardStyle(font=MONO))


def test_recap_copies_highlights_cut_from_joined_flv_recordings(tmp_path):
    # The rehearsal path: a point's feed encoded once, recorded by nginx as FLV chunks (1 ms clock), joined,
    # a highlight cut by copy; the recap's cards must still match it exactly so it is copied, not re-encoded.
    feed = synthetic.rehearsal_stream(tmp_path / "feed.mp4", "Điểm cầu 12", duration=6)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(feed), "-c", "copy", "-f", "segment",
                    "-segment_time", "2", "-segment_format", "flv", "-reset_timestamps", "1",
                    str(tmp_path / "rec-%03d.flv")], check=True)
    joined = media.join_segments(sorted(tmp_path.glob("rec-*.flv")), tmp_path / "joined.mp4")
    highlight = media.cut(joined.path, tmp_path / "highlight.mp4", 2.5, 5.5)
    assert highlight.path_taken == "copy"
    result = build_recap([("Điểm cầu 12", highlight.path)], tmp_path / "recap.mp4", theme="Diễn tập")
    assert [p.path_taken for p in result.parts if p.kind == "clip"] == ["copy"]
    assert result.deviations == [] and result.av_drift_s < 0.040


def test_every_frame_of_a_recap_card_shows_its_text(recap, tmp_path):
    # A card is its own first frame plus shared skipped frames: all 60 must show this card's picture.
    result, items, _ = recap
    start = result.chapters[2].start  # the second point's card
    frames = tmp_path / "frames"
    frames.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{start:.3f}", "-i", str(result.path), "-frames:v", "60",
                    "-vf", "format=gray", str(frames / "%02d.png")], check=True)
    from PIL import Image

    shots = [Image.open(p) for p in sorted(frames.glob("*.png"))]
    assert len(shots) == 60
    plain = Image.new("L", shots[0].size, shots[0].getpixel((2, 2)))
    assert mean_difference(shots[0], plain, (0, 0, *plain.size)) > 3  # the text is there
    for shot in shots[1:]:
        assert mean_difference(shots[0], shot, (0, 0, *plain.size)) < 1


def test_a_long_title_is_wrapped_and_shrunk_to_fit_a_small_frame():
    from PIL import ImageFont

    from media.cards import fit_line

    font = media.resolve_font(bold=True)
    theme = "Chính sách BHXH - Điểm tựa an sinh của NLĐ và nhân dân"
    rows = fit_line(theme, font, 20, 392)
    assert len(rows) == 2 and " ".join(r for r, _ in rows) == theme
    assert all(ImageFont.truetype(str(font), px).getlength(r) <= 392 for r, px in rows)
    assert fit_line("Hà Nội", font, 20, 392) == [("Hà Nội", 20)]
