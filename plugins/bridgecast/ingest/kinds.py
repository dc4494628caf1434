"""What an uploaded file really is, decided from its first bytes (never from its name)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectedType:
    kind: str  # "photo" | "video"
    ext: str
    content_type: str


def detect(head: bytes) -> DetectedType | None:
    """Sniff the container from the first bytes; None when it is neither a photo nor a video we take."""
    if head.startswith(b"\xff\xd8\xff"):
        return DetectedType("photo", "jpg", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DetectedType("photo", "png", "image/png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DetectedType("photo", "webp", "image/webp")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return DetectedType("photo", "heic", "image/heic")
        if brand == b"qt  ":
            return DetectedType("video", "mov", "video/quicktime")
        return DetectedType("video", "mp4", "video/mp4")
    if head.startswith(b"FLV\x01"):
        return DetectedType("video", "flv", "video/x-flv")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return DetectedType("video", "mkv", "video/x-matroska")
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return DetectedType("video", "ts", "video/mp2t")
    return None
