"""The gateway's classifier: what an upload is, from its first bytes — a HEIC from an iPhone is a photo, not a video."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from bridgecast.ingest.kinds import detect
from tests.media.helpers import phone_clip


def _heic_head() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 30)).save(buffer, format="HEIF")
    return buffer.getvalue()[:512]


def test_a_real_heic_is_a_photo():
    found = detect(_heic_head())
    assert (found.kind, found.ext, found.content_type) == ("photo", "heic", "image/heic")


@pytest.mark.parametrize("brands, kind, ext", [
    (b"heic\x00\x00\x00\x00mif1heic", "photo", "heic"),        # iPhone
    (b"mif1\x00\x00\x00\x00mif1heicmiaf", "photo", "heic"),    # some Android phones: the generic brand first
    (b"avif\x00\x00\x00\x00avifmif1miaf", "photo", "avif"),    # taken, and quarantined with a reason
    (b"mif1\x00\x00\x00\x00avifmif1", "photo", "avif"),
    (b"qt  \x00\x00\x02\x00qt  ", "video", "mov"),
    (b"isom\x00\x00\x02\x00isomiso2avc1mp41", "video", "mp4"),
    (b"mp42\x00\x00\x00\x00mp42isom", "video", "mp4"),
    (b"3gp4\x00\x00\x00\x00isom3gp4", "video", "mp4"),
])
def test_iso_media_files_are_told_apart_by_their_brands(brands, kind, ext):
    head = (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands + b"\x00" * 64
    found = detect(head)
    assert (found.kind, found.ext) == (kind, ext)


def test_real_phone_videos_are_videos(tmp_path):
    assert detect(phone_clip(tmp_path / "a.mov").read_bytes()[:512]).ext == "mov"
    assert detect(phone_clip(tmp_path / "a.mp4").read_bytes()[:512]).ext == "mp4"


def test_a_web_page_is_neither():
    assert detect(b"<!DOCTYPE html><html><body>login</body></html>") is None
