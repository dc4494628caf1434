"""What a file is, from its first bytes (never from its name): image types, ISO-BMFF brands, saved web pages.

Shared by the photo cleaner and the upload gateway's classifier, so a HEIC from a phone is a photo in both."""
from __future__ import annotations

SNIFF_BYTES = 512  # enough for every signature below and an ftyp box with its compatible brands

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"BM", "bmp"),
)
# ISO/IEC 23008-12 (HEIF) brands of HEVC-coded images and image sequences; 'mif1'/'msf1' alone are the generic
# HEIF brands, used by HEIC and AVIF alike, so they decide only together with the other brands.
HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})


def ftyp_brands(head: bytes) -> list[bytes] | None:
    """The major brand then the compatible brands of an ISO-BMFF file (MP4, MOV, HEIF), or None if not one."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return None
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size if size >= 16 else 16)
    return [head[8:12]] + [head[i:i + 4] for i in range(16, end - 3, 4)]


def image_type(head: bytes) -> str | None:
    """'jpeg', 'png', 'gif', 'tiff', 'bmp', 'webp', 'heic' or 'avif'; None when the bytes are not an image."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    brands = ftyp_brands(head)
    if brands:
        named = set(brands)
        if named & AVIF_BRANDS and not named & HEIC_BRANDS:
            return "avif"
        if named & HEIC_BRANDS or brands[0] in GENERIC_HEIF_BRANDS:
            return "heic"
    return None


def what_it_is(head: bytes) -> str:
    """'html' or 'json' when a "photo" or "video" is really a saved web page or an API answer; '' otherwise.

    A login or error page saved under the media's name is a common field mistake worth naming to the team."""
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "html"
    return "json" if text.startswith((b"{", b"[")) else ""


def read_head(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(SNIFF_BYTES)
