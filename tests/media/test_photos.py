"""Photo cleaning: every bad upload of the issue, and what a published rendition may (not) contain."""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageDraw

import media
from media.errors import DecompressionBombError, EmptyFileError, NotAnImageError, TruncatedFileError


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (21.0, 18.0, 30.0), 3: "E", 4: (105.0, 36.0, 10.0)})
    return exif


def quadrants(width: int = 800, height: int = 600) -> Image.Image:
    """Red top-left quadrant on blue: where the red ends up tells how the picture was turned."""
    im = Image.new("RGB", (width, height), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, width // 2, height // 2))
    return im


def assert_clean(path: Path) -> None:
    data = path.read_bytes()
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert not im.getexif() and "icc_profile" not in im.info and "exif" not in im.info
        assert "comment" not in im.info and "xmp" not in im.info
    assert b"Exif\x00\x00" not in data and b"PhoneMaker" not in data and b"ICC_PROFILE" not in data


@pytest.fixture
def policy() -> media.PhotoPolicy:
    return media.PhotoPolicy(web_long_edge=400, thumb_long_edge=100)


def test_gps_is_stripped_from_every_rendition_and_the_original_kept(tmp_path, policy):
    src = tmp_path / "photo.jpg"
    quadrants().save(src, quality=90, exif=gps_exif(),
                     icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    before = src.read_bytes()
    result = media.process_photo(src, tmp_path / "out", policy)
    assert set(result.renditions) == {"web", "thumb"}
    for path in result.renditions.values():
        assert_clean(path)
    assert "GPS location removed" in result.warnings
    assert src.read_bytes() == before
    assert result.sha256 == hashlib.sha256(before).hexdigest()
    assert Image.open(result.renditions["web"]).size == (400, 300)
    assert Image.open(result.renditions["thumb"]).size == (100, 75)


def test_exif_rotated_portrait_is_turned_upright(tmp_path, policy):
    src = tmp_path / "portrait.jpg"
    quadrants().save(src, quality=90, exif=gps_exif(orientation=6))  # stored landscape, shown turned 90° clockwise
    result = media.process_photo(src, tmp_path / "out", policy)
    web = Image.open(result.renditions["web"])
    assert web.size == (300, 400) and (result.width, result.height) == (600, 800)
    red, blue = (255, 0, 0), (0, 0, 255)
    assert _close(web.getpixel((225, 50)), red) and _close(web.getpixel((75, 50)), blue)  # red now top-right
    assert_clean(result.renditions["web"])


def test_png_with_alpha_is_flattened_onto_white(tmp_path, policy):
    src = tmp_path / "logo.png"
    im = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    im.paste((200, 0, 0, 255), (0, 0, 100, 100))
    im.save(src)
    result = media.process_photo(src, tmp_path / "out", policy)
    web = Image.open(result.renditions["web"])
    assert _close(web.getpixel((50, 50)), (200, 0, 0)) and _close(web.getpixel((150, 50)), (255, 255, 255))
    assert "transparency flattened onto white" in result.warnings and result.detected_type == "png"


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, policy):
    src = tmp_path / "print.jpg"
    Image.new("CMYK", (300, 200), (0, 255, 255, 0)).save(src, quality=95)  # pure red in CMYK
    result = media.process_photo(src, tmp_path / "out", policy)
    web = Image.open(result.renditions["web"])
    assert web.mode == "RGB" and _close(web.getpixel((10, 10)), (255, 0, 0), 12)
    assert "converted from CMYK" in result.warnings


def test_16_bit_png_is_scaled_to_8_bit_not_clipped(tmp_path, policy):
    src = tmp_path / "scan.png"
    Image.new("I;16", (120, 80), 40000).save(src)
    result = media.process_photo(src, tmp_path / "out", policy)
    web = Image.open(result.renditions["web"])
    assert _close(web.getpixel((5, 5)), (156, 156, 156), 3)  # 40000/256, not 255
    assert "reduced 16-bit to 8-bit" in result.warnings


def test_zero_byte_photo_is_refused(tmp_path, policy):
    src = tmp_path / "empty.jpg"
    src.touch()
    with pytest.raises(EmptyFileError) as caught:
        media.process_photo(src, tmp_path / "out", policy)
    assert "empty.jpg" in str(caught.value) and caught.value.reason == "empty_file"


def test_truncated_jpeg_is_refused(tmp_path, policy):
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((400, 300), 60).convert("RGB").save(whole, quality=90)
    src = tmp_path / "cut.jpg"
    src.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(TruncatedFileError) as caught:
        media.process_photo(src, tmp_path / "out", policy)
    assert "cut.jpg" in str(caught.value) and caught.value.reason == "truncated"
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_html_page_saved_as_jpg_is_not_an_image(tmp_path, policy):
    src = tmp_path / "photo.jpg"
    src.write_text("<!DOCTYPE html><html><head><title>Đăng nhập</title></head></html>", encoding="utf-8")
    with pytest.raises(NotAnImageError) as caught:
        media.process_photo(src, tmp_path / "out", policy)
    assert "photo.jpg" in str(caught.value) and "HTML" in str(caught.value)


def test_type_is_sniffed_by_content_not_extension(tmp_path, policy):
    src = tmp_path / "really_a_png.jpg"
    quadrants(60, 40).save(src, format="PNG")
    assert media.sniff(src) == "png"
    assert media.process_photo(src, tmp_path / "out", policy).detected_type == "png"


def test_decompression_bomb_is_refused_before_decoding(tmp_path, policy):
    src = tmp_path / "bomb.png"
    src.write_bytes(_png_header_claiming(30000, 30000))
    with pytest.raises(DecompressionBombError) as caught:
        media.process_photo(src, tmp_path / "out", policy)
    assert "bomb.png" in str(caught.value) and caught.value.reason == "decompression_bomb"


def test_pixel_limit_comes_from_the_policy(tmp_path):
    src = tmp_path / "big.jpg"
    quadrants(800, 600).save(src)
    with pytest.raises(DecompressionBombError) as caught:
        media.process_photo(src, tmp_path / "out", media.PhotoPolicy(max_pixels=100_000))
    assert "480,000 pixels" in str(caught.value)


def test_watermark_logo_and_vietnamese_text_mark_the_web_rendition(tmp_path):
    src = tmp_path / "photo.jpg"
    Image.new("RGB", (800, 600), (40, 90, 40)).save(src, quality=95)
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (64, 64), (255, 200, 0, 255)).save(logo)
    plain = media.process_photo(src, tmp_path / "plain", media.PhotoPolicy(web_long_edge=400))
    marked = media.process_photo(src, tmp_path / "marked", media.PhotoPolicy(
        web_long_edge=400, watermark_logo=str(logo), watermark_text="Bưu điện tỉnh Vĩnh Phúc"))
    a, b = Image.open(plain.renditions["web"]), Image.open(marked.renditions["web"])
    assert _close(a.getpixel((10, 10)), b.getpixel((10, 10)), 6)  # the top-left is untouched
    assert _differs(a, b, box=(a.size[0] // 2, a.size[1] // 2, a.size[0], a.size[1]))  # stamped bottom-right
    assert not _differs(a, b, box=(0, 0, a.size[0] // 2, a.size[1] // 2))
    assert_clean(marked.renditions["web"])


def test_watermark_text_with_a_glyph_the_font_lacks_is_refused(tmp_path):
    src = tmp_path / "photo.jpg"
    quadrants(200, 100).save(src)
    with pytest.raises(media.MissingGlyphError):
        media.process_photo(src, tmp_path / "out", media.PhotoPolicy(
            watermark_text="Hải Phòng", watermark_font="/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"))


def test_batch_returns_errors_in_place_and_cleans_the_rest(tmp_path, policy):
    good = tmp_path / "good.jpg"
    quadrants(200, 100).save(good, exif=gps_exif())
    bad = tmp_path / "bad.jpg"
    bad.write_text("<html></html>")
    results = media.process_photos([good, bad, good], tmp_path / "out", policy, workers=2)
    assert isinstance(results[0], media.PhotoResult) and isinstance(results[1], NotAnImageError)
    assert results[0].sha256 == results[2].sha256  # same bytes, same key: a re-upload dedupes


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height: enough for any decoder to allocate, nothing behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 64)
    body = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + chunk + body


def _close(a, b, tolerance: int = 8) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def _differs(a: Image.Image, b: Image.Image, box) -> bool:
    return a.crop(box).tobytes() != b.crop(box).tobytes()


def heic_photo(path: Path, image: Image.Image, exif: Image.Exif | None = None) -> Path:
    """A HEIC as a phone writes it (HEVC-coded, EXIF with GPS), encoded at test time with pillow-heif."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    image.save(path, format="HEIF", quality=90, exif=(exif or gps_exif()).tobytes())
    return path


def test_heic_from_a_phone_becomes_clean_jpeg_renditions(tmp_path, policy):
    src = heic_photo(tmp_path / "IMG_0042.HEIC", quadrants())
    assert media.sniff(src) == "heic"
    result = media.process_photo(src, tmp_path / "out", policy)
    assert result.detected_type == "heic" and (result.width, result.height) == (800, 600)
    assert "GPS location removed" in result.warnings
    for path in result.renditions.values():
        assert_clean(path)  # JPEG, RGB, no EXIF/GPS/ICC
        assert b"ftyp" not in path.read_bytes()[:32]
    web = Image.open(result.renditions["web"])
    assert web.size == (400, 300) and _close(web.getpixel((50, 50)), (255, 0, 0), 24)  # red stays top-left


def test_a_rotated_heic_is_shown_upright_once_not_turned_twice(tmp_path, policy):
    # pillow-heif stores EXIF orientation 6 as the HEIF rotation (irot) and decodes the picture already upright.
    src = heic_photo(tmp_path / "portrait.heic", quadrants(), gps_exif(orientation=6))
    result = media.process_photo(src, tmp_path / "out", policy)
    web = Image.open(result.renditions["web"])
    assert web.size == (300, 400) and (result.width, result.height) == (600, 800)
    assert _close(web.getpixel((225, 50)), (255, 0, 0), 24) and _close(web.getpixel((75, 50)), (0, 0, 255), 24)


def test_a_truncated_heic_is_refused_as_damaged(tmp_path, policy):
    whole = heic_photo(tmp_path / "whole.heic", Image.effect_noise((640, 480), 40).convert("RGB"))
    src = tmp_path / "cut.heic"
    src.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(NotAnImageError) as caught:
        media.process_photo(src, tmp_path / "out", policy)
    assert caught.value.reason in ("corrupt", "truncated") and "cut.heic" in str(caught.value)
    assert media.team_message(caught.value).problem.startswith(("Ảnh bị hỏng", "Tệp bị hỏng"))


def test_avif_is_recognised_and_refused_with_a_hint_in_the_teams_words(tmp_path, policy):
    src = tmp_path / "IMG_0001.jpg"
    src.write_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64)
    assert media.sniff(src) == "avif"
    with pytest.raises(NotAnImageError) as caught:
        media.process_photo(src, tmp_path / "out", policy)
    assert caught.value.reason == "unsupported_format" and "JPEG" in str(caught.value)
    message = media.team_message(caught.value)
    assert message.problem == "Ảnh dạng AVIF chưa được hỗ trợ" and "JPEG" in message.action


def test_the_configured_logo_watermarks_the_web_rendition_and_not_the_thumbnail(tmp_path):
    from bridgecast.event import default_event_path, load_event

    settings = load_event(default_event_path()).media
    assert settings.watermark_logo and Path(settings.watermark_logo).is_file()  # config/brand/, committed
    src = tmp_path / "photo.jpg"
    Image.new("RGB", (1600, 1200), (40, 90, 40)).save(src, quality=95)
    plain = media.process_photo(src, tmp_path / "plain", media.PhotoPolicy())
    marked = media.process_photo(src, tmp_path / "marked", media.PhotoPolicy(watermark_logo=settings.watermark_logo))
    a, b = Image.open(plain.renditions["web"]), Image.open(marked.renditions["web"])
    corner = (a.size[0] * 3 // 4, a.size[1] * 3 // 4, a.size[0], a.size[1])
    assert _differs(a, b, box=corner) and not _differs(a, b, box=(0, 0, a.size[0] // 2, a.size[1] // 2))
    # The logo's blue badge is in the bottom-right corner (the placeholder is white text on BHXH blue).
    blues = [px for px in b.crop(corner).get_flattened_data() if px[2] > 140 and px[0] < 60]
    assert len(blues) > 500
    assert Image.open(plain.renditions["thumb"]).tobytes() == Image.open(marked.renditions["thumb"]).tobytes()


def test_a_known_sha256_is_trusted_not_recomputed(tmp_path, policy):
    src = tmp_path / "photo.jpg"
    quadrants().save(src)
    given = "ab" * 32  # the ingest passes the gateway's digest; the toolkit names the renditions after it
    result = media.process_photo(src, tmp_path / "out", policy, sha256=given)
    assert result.sha256 == given and result.renditions["web"].name == f"{given[:16]}.web.jpg"


def test_the_cheap_path_keeps_the_picture_close_to_a_full_quality_downscale(tmp_path):
    """Draft decoding + bilinear + box thumbnail against a full decode and Lanczos: the same picture, within
    JPEG noise (mean absolute difference per channel a few levels out of 255)."""
    from PIL import ImageChops, ImageStat

    src = tmp_path / "scene.jpg"
    scene = Image.radial_gradient("L").resize((4000, 3000)).convert("RGB")
    ImageDraw.Draw(scene).rectangle((1000, 800, 2600, 2000), fill=(200, 40, 40))
    scene.save(src, quality=92)
    result = media.process_photo(src, tmp_path / "out", media.PhotoPolicy())
    reference = {"web": scene.resize((1600, 1200), Image.Resampling.LANCZOS),
                 "thumb": scene.resize((400, 300), Image.Resampling.LANCZOS)}
    for name, expected in reference.items():
        got = Image.open(result.renditions[name])
        assert got.size == expected.size
        assert max(ImageStat.Stat(ImageChops.difference(got, expected)).mean) < 3.0, name


def _swapped_rgb_profile() -> bytes:
    """An RGB ICC profile whose red and green primaries are swapped (built from Pillow's sRGB by exchanging the
    rXYZ/gXYZ tags): converting a red pixel tagged with it to sRGB must give green."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", icc[128:132])[0]
    entries = {bytes(icc[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, g = entries[b"rXYZ"], entries[b"gXYZ"]
    icc[r + 4:r + 12], icc[g + 4:g + 12] = icc[g + 4:g + 12], icc[r + 4:r + 12]
    return bytes(icc).replace("sRGB built-in".encode("utf-16-be"), "Swap R/G test".encode("utf-16-be"))


def test_a_wide_gamut_profile_is_converted_to_srgb_and_an_srgb_one_costs_nothing(tmp_path, policy):
    tagged = tmp_path / "p3.jpg"
    Image.new("RGB", (800, 600), (200, 30, 30)).save(tagged, quality=95, icc_profile=_swapped_rgb_profile())
    result = media.process_photo(tagged, tmp_path / "out", policy)
    assert "colour profile converted to sRGB" in result.warnings
    for path in result.renditions.values():
        assert _close(Image.open(path).getpixel((10, 10)), (30, 200, 30), 12)  # the profile's meaning, in sRGB
        assert_clean(path)
    srgb = tmp_path / "android.jpg"
    Image.new("RGB", (800, 600), (200, 30, 30)).save(
        srgb, quality=95, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    plain = media.process_photo(srgb, tmp_path / "out2", policy)
    assert "colour profile converted to sRGB" not in plain.warnings
    assert _close(Image.open(plain.renditions["web"]).getpixel((10, 10)), (200, 30, 30), 12)


@pytest.mark.parametrize("kind", ["jpeg", "png", "heic"])
def test_bytes_in_memory_give_the_same_renditions_as_the_file(tmp_path, policy, kind):
    """The ingest decodes a photo from the bytes it fetched (no scratch file): same pixels, same cleaning."""
    src = tmp_path / f"IMG_0001.{kind}"
    if kind == "heic":
        heic_photo(src, quadrants())
    else:
        quadrants().save(src, format=kind.upper(), **({"exif": gps_exif(orientation=6)} if kind == "jpeg" else {}))
    from_file = media.process_photo(src, tmp_path / "file", policy)
    data = src.read_bytes()
    src.unlink()  # nothing is read from disk
    from_memory = media.process_photo(src, tmp_path / "memory", policy, data=data)
    assert (from_memory.sha256, from_memory.detected_type, from_memory.width, from_memory.height) == (
        from_file.sha256, from_file.detected_type, from_file.width, from_file.height)
    for name, path in from_memory.renditions.items():
        assert path.read_bytes() == from_file.renditions[name].read_bytes()
        assert_clean(path)


def test_bad_bytes_in_memory_are_refused_naming_the_photo(tmp_path, policy):
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((400, 300), 60).convert("RGB").save(whole, quality=90)
    with pytest.raises(TruncatedFileError) as caught:
        media.process_photo(tmp_path / "cut.jpg", tmp_path / "out", policy, data=whole.read_bytes()[:6000])
    assert "cut.jpg" in str(caught.value)
    with pytest.raises(EmptyFileError):
        media.process_photo(tmp_path / "empty.jpg", tmp_path / "out", policy, data=b"")
