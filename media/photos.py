"""Photo cleaning for publication: sniff the real type, refuse non-images and decompression bombs, verify, apply EXIF
orientation, convert to sRGB 8-bit, strip every piece of metadata, make `web` and `thumb` renditions, watermark.

The original is only read (kept untouched in raw storage); renditions are new JPEGs without EXIF/GPS/ICC/XMP, also
for HEIC photos from phones (decoded by pillow-heif).

Cheap by construction (bench/media_photos.py chose it against the former path and libvips): a JPEG is decoded at
the smallest DCT scale still ≥ the web size (`draft`: a 12 MP photo decodes at 1/2 scale), the rest of the way
is a box (area-average) resize (the DCT scaling already did the heavy, high-quality part), the thumbnail is an
integer box reduction of the web rendition whenever the sizes allow, and the caller's known SHA-256 is not computed
again."""
from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import io
import os
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageCms, ImageDraw, ImageFont, UnidentifiedImageError

from media.cards import check_glyphs, resolve_font
from media.errors import DecompressionBombError, EmptyFileError, MediaError, NotAnImageError, TruncatedFileError
from media.sniff import SNIFF_BYTES, image_type, read_head, what_it_is

# Formats we publish from. AVIF (and anything else `sniff` names) is recognised to give a useful message.
_SUPPORTED = {"jpeg", "png", "gif", "webp", "tiff", "bmp", "heic"}
_HASH_CHUNK = 1 << 20
# EXIF orientation → the turn that shows the picture upright (as ImageOps.exif_transpose does).
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def sniff(path: str | os.PathLike) -> str | None:
    """The image type by content ('jpeg', 'png', 'webp', 'heic', …), or None when the bytes are not an image."""
    return image_type(read_head(path))


@functools.lru_cache(maxsize=1)
def _heif_opener() -> None:
    """Teach Pillow HEIC, once per process, when the first HEIC arrives (pillow-heif is a sizeable import)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class PhotoPolicy:
    max_pixels: int = 50_000_000  # a 12 MP phone photo is ~12e6; 50 MP cameras exist; bombs are far above
    web_long_edge: int = 1600
    thumb_long_edge: int = 400
    jpeg_quality: int = 85
    thumb_quality: int = 80
    watermark_logo: str | None = None  # an RGBA PNG, placed bottom-right of the web rendition
    watermark_text: str | None = None
    watermark_font: str | None = None  # a path or a fontconfig family; None = DejaVu Sans Bold


@dataclass(frozen=True)
class PhotoResult:
    source: Path
    sha256: str  # of the original bytes: the dedupe key
    detected_type: str
    width: int  # upright size of the original
    height: int
    renditions: dict[str, Path]
    warnings: list[str] = field(default_factory=list)


def content_hash(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def process_photo(src: str | os.PathLike, out_dir: str | os.PathLike, policy: PhotoPolicy = PhotoPolicy(), *,
                  sha256: str | None = None, data: bytes | None = None) -> PhotoResult:
    """Clean one photo into `out_dir` as `<sha256[:16]>.web.jpg` and `<sha256[:16]>.thumb.jpg`.

    `sha256`: the original's digest when the caller already has it (the ingest knows it from the upload); it is
    computed here otherwise. `data`: the photo's bytes when the caller holds them (the ingest fetched them from
    S3), decoded from memory instead of a scratch file; `src` then only names the photo in messages."""
    src = Path(src)
    if (len(data) if data is not None else src.stat().st_size) == 0:
        raise EmptyFileError(src, "the file is empty (0 bytes)", hint="the upload did not arrive; send it again")
    head = data[:SNIFF_BYTES] if data is not None else read_head(src)
    kind = image_type(head)
    if kind is None:
        what = what_it_is(head)
        raise NotAnImageError(src, f"the content is not an image{_WHAT_IT_IS.get(what, '')}",
                              hint="upload the photo file itself (JPEG, PNG or HEIC)", facts={"what": what})
    if kind not in _SUPPORTED:
        raise NotAnImageError(src, f"{kind.upper()} images are not supported", reason="unsupported_format",
                              hint="export the photo as JPEG", facts={"format": kind.upper()})
    if kind == "heic":
        _heif_opener()
    notes: list[str] = []
    image = _open_checked(src, kind, policy, data)
    with image:
        orientation = image.getexif().get(0x0112, 1)
        width, height = image.size
        if orientation in (5, 6, 7, 8):  # these orientations turn the picture a quarter
            width, height = height, width
        im, icc = _decode(src, image, policy, notes)
    sha256 = sha256 or (hashlib.sha256(data).hexdigest() if data is not None else content_hash(src))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Resize first, then convert colours and turn: the same result, on fewer pixels.
    web = _to_srgb(_shrink(im, policy.web_long_edge), icc, notes)
    if orientation in _TRANSPOSE:
        # Only the pixels are turned: the EXIF (GPS with it) is never copied to the renditions.
        web = web.transpose(_TRANSPOSE[orientation])
        notes.append(f"rotated upright (EXIF orientation {orientation})")
    thumb = _shrink(web, policy.thumb_long_edge)
    if policy.watermark_logo or policy.watermark_text:
        _watermark(web, policy)
    renditions = {"web": out / f"{sha256[:16]}.web.jpg", "thumb": out / f"{sha256[:16]}.thumb.jpg"}
    _save_clean(web, renditions["web"], policy.jpeg_quality)
    _save_clean(thumb, renditions["thumb"], policy.thumb_quality)
    return PhotoResult(source=src, sha256=sha256, detected_type=kind, width=width, height=height,
                       renditions=renditions, warnings=notes)


def process_photos(sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   policy: PhotoPolicy = PhotoPolicy(), *, workers: int | None = None) -> list[PhotoResult | MediaError]:
    """Clean many photos in worker processes; a bad photo yields its MediaError in place instead of stopping the batch."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return [_process_or_error(s, out_dir, policy) for s in sources]
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_process_or_error, sources, [out_dir] * len(sources), [policy] * len(sources),
                             chunksize=4))


def _process_or_error(src, out_dir, policy) -> PhotoResult | MediaError:
    try:
        return process_photo(src, out_dir, policy)
    except MediaError as exc:
        return exc


_WHAT_IT_IS = {"html": " (it is an HTML page, e.g. a login or error page saved instead of the photo)",
               "json": " (it looks like JSON)"}


def _open_checked(src: Path, kind: str, policy: PhotoPolicy, data: bytes | None) -> Image.Image:
    """Open the header only and refuse oversized images before a single pixel is decoded."""
    def opened() -> Image.Image:
        return Image.open(io.BytesIO(data) if data is not None else src)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = opened()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBombError(src, f"the image is too large to decode safely ({exc})",
                                     hint=f"the limit is {policy.max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise NotAnImageError(src, f"the file starts like a {kind.upper()} but cannot be read as one",
                              reason="corrupt", hint="upload the original photo again") from None
    pixels = image.size[0] * image.size[1]
    if pixels > policy.max_pixels:
        image.close()
        raise DecompressionBombError(src, f"{image.size[0]}x{image.size[1]} = {pixels:,} pixels is above the limit "
                                     f"of {policy.max_pixels:,}", hint="resize the photo before uploading",
                                     facts={"width": image.size[0], "height": image.size[1],
                                            "limit_mp": f"{policy.max_pixels / 1e6:g}"})
    if kind not in ("jpeg", "heic"):
        # PNG/GIF/TIFF structure and CRC check; verify() spends the object, so reopen for decoding. For JPEG and
        # HEIC the decode below is the check (a truncated one fails there, or already at open).
        try:
            image.verify()
        except Exception as exc:  # Pillow raises assorted types (SyntaxError, OSError, struct.error) here
            raise TruncatedFileError(src, f"the {kind.upper()} is damaged or cut short ({exc})",
                                     hint="upload the original photo again") from None
        image.close()
        image = opened()
    return image


def _decode(src: Path, image: Image.Image, policy: PhotoPolicy, notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """Decode (JPEG: at the smallest DCT scale still ≥ the web size) to 8-bit RGB, L or CMYK, and return it with
    its ICC profile: the colour conversion waits until the picture is web-sized (see `_to_srgb`)."""
    if image.format == "JPEG":
        long_edge, short_edge = max(image.size), min(image.size)
        wanted_long = policy.web_long_edge
        wanted_short = max(1, wanted_long * short_edge // long_edge)
        image.draft("RGB" if image.mode == "RGB" else None,
                    (wanted_long, wanted_short) if image.size[0] >= image.size[1] else (wanted_short, wanted_long))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # pillow-heif raises the last two
        raise TruncatedFileError(src, f"the {image.format} is truncated or damaged ({exc})",
                                 hint="upload the original photo again") from None
    icc = image.info.get("icc_profile")
    im = image
    if image.getexif().get_ifd(0x8825):
        notes.append("GPS location removed")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8-bit (a plain convert("L") clips everything above 255 to white).
        im = im.convert("I").point(lambda value: value / 256).convert("L")
        notes.append("reduced 16-bit to 8-bit")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
        notes.append("transparency flattened onto white")
    if im.mode not in ("RGB", "L", "CMYK"):  # palette and bilevel images resize only by nearest neighbour
        im = im.convert("RGB")
    return im, icc


def _to_srgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    """8-bit sRGB RGB. A profile that already is sRGB (most Android phones embed one) costs nothing; another
    (Display P3, Adobe RGB, a CMYK press profile) is converted — on the web-sized picture, 1/3 of the pixels of a
    half-scale decode, and with its transform built once per profile."""
    if icc and not _is_srgb(icc):
        try:
            im = ImageCms.applyTransform(im, _transform_to_srgb(icc, im.mode))
            notes.append("colour profile converted to sRGB")
        except (ImageCms.PyCMSError, OSError):
            notes.append("unreadable colour profile ignored")
    if im.mode == "CMYK":
        notes.append("converted from CMYK")
    return im if im.mode == "RGB" else im.convert("RGB")


@functools.lru_cache(maxsize=64)
def _is_srgb(icc: bytes) -> bool:
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError):
        return False
    return "srgb" in description.lower().replace(" ", "")


@functools.lru_cache(maxsize=16)
def _transform_to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), _srgb(), mode, "RGB")


@functools.lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _shrink(im: Image.Image, long_edge: int) -> Image.Image:
    """Fit within `long_edge`: an integer box reduction when the sizes divide exactly (1600 → 400), otherwise a
    box (area-average) resize. After the DCT-scaled decode the step left is under 2× (2000 → 1600), where the box
    filter is as close to a full-decode Lanczos reference as bilinear in bench/media_photos.py (1.40 against 1.36
    levels of 255) for 12 % less CPU per photo — the bench's choice."""
    scale = long_edge / max(im.size)
    if scale >= 1:
        return im.copy()
    size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
    factor = im.size[0] / size[0]
    if factor == int(factor) and im.size[1] == size[1] * int(factor):
        return im.reduce(int(factor))
    return im.resize(size, Image.Resampling.BOX)


def _save_clean(im: Image.Image, dst: Path, quality: int) -> None:
    """Write a JPEG with no EXIF, ICC, XMP or comment: a fresh info dict means Pillow has nothing to copy."""
    im.info = {}
    partial = dst.with_suffix(".partial.jpg")
    im.save(partial, "JPEG", quality=quality, optimize=False, progressive=False)
    os.replace(partial, dst)


def _watermark(im: Image.Image, policy: PhotoPolicy) -> None:
    stamp = _stamp(policy, im.size[0])
    margin = max(8, im.size[0] // 80)
    im.paste(stamp, (im.size[0] - stamp.size[0] - margin, im.size[1] - stamp.size[1] - margin), stamp)


@functools.lru_cache(maxsize=8)
def _stamp(policy: PhotoPolicy, image_width: int) -> Image.Image:
    """Logo and text composed once per policy and width (reused for every photo of a batch)."""
    parts: list[Image.Image] = []
    if policy.watermark_logo:
        logo = Image.open(policy.watermark_logo).convert("RGBA")
        logo_width = max(16, image_width // 8)
        parts.append(logo.resize((logo_width, max(1, logo.size[1] * logo_width // logo.size[0])),
                                 Image.Resampling.LANCZOS))
    if policy.watermark_text:
        text = unicodedata.normalize("NFC", policy.watermark_text)
        font_path = resolve_font(policy.watermark_font, bold=True)
        check_glyphs(font_path, text)
        font = ImageFont.truetype(str(font_path), max(10, image_width // 45))
        left, top, right, bottom = font.getbbox(text)
        pad = 2
        label = Image.new("RGBA", (right - left + 2 * pad + 2, bottom - top + 2 * pad + 2), (0, 0, 0, 0))
        draw = ImageDraw.Draw(label)
        draw.text((pad + 1 - left, pad + 1 - top), text, font=font, fill=(0, 0, 0, 140))  # shadow for light photos
        draw.text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 200))
        parts.append(label)
    gap = 6
    width = max(p.size[0] for p in parts)
    height = sum(p.size[1] for p in parts) + gap * (len(parts) - 1)
    stamp = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    y = 0
    for part in parts:
        stamp.alpha_composite(part, (width - part.size[0], y))
        y += part.size[1] + gap
    return stamp
