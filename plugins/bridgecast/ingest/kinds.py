"""What an uploaded file really is, decided from its first bytes (never from its name).

Images are recognised by the media toolkit's sniffer (the photo cleaner uses the same one), so a HEIC from a phone
is a photo here and a photo there; an AVIF is a photo too, and the ingest quarantines it with a reason the team can
act on. Everything else in an ISO-BMFF box (MP4, MOV, 3GP) is a video."""
from __future__ import annotations

from dataclasses import dataclass

from media.sniff import ftyp_brands, image_type

# image type (media.sniff) → (extension of the raw key, content type)
_PHOTO_TYPES = {
    "jpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png"), "webp": ("webp", "image/webp"),
    "heic": ("heic", "image/heic"), "avif": ("avif", "image/avif"), "gif": ("gif", "image/gif"),
    "tiff": ("tiff", "image/tiff"), "bmp": ("bmp", "image/bmp"),
}


@dataclass(frozen=True)
class DetectedType:
    kind: str  # "photo" | "video"
    ext: str
    content_type: str


def detect(head: bytes) -> DetectedType | None:
    """Sniff the container from the first bytes; None when it is neither a photo nor a video we take."""
    image = image_type(head)
    if image is not None:
        return DetectedType("photo", *_PHOTO_TYPES[image])
    brands = ftyp_brands(head)
    if brands:
        if brands[0] == b"qt  ":
            return DetectedType("video", "mov", "video/quicktime")
        return DetectedType("video", "mp4", "video/mp4")
    if head.startswith(b"FLV\x01"):
        return DetectedType("video", "flv", "video/x-flv")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return DetectedType("video", "mkv", "video/x-matroska")
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return DetectedType("video", "ts", "video/mp2t")
    return None
