"""Benchmark: CPU seconds per 12 MP phone photo for the photo-processing step (decode, orient, sRGB, strip, web +
thumb renditions, logo + text watermark), for each candidate path, against the path before issue 13 measured in
the same run. Prints a table, the quality of each path (mean difference to a full-quality reference) and
PASS/FAIL for the goals:

  * the toolkit's path costs ≤ 0.75× the former path, and ≤ 0.10 CPU-s per photo (half of the 0.2 CPU-s budget
    for the whole gateway → S3 → processed path; the other half is upload, storage and Airflow);
  * it is the cheapest candidate of acceptable quality (within 10 %), so the choice is the bench's, not taste;
  * no rendition carries EXIF.

libvips is measured when pyvips can be imported (`pip install pyvips pyvips-binary`; it is not a dependency).

    .venv/bin/python bench/media_photos.py           # 40 photos per path
    .venv/bin/python bench/media_photos.py --quick   # 12 photos per path
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import io
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageFilter, ImageStat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import media  # noqa: E402
from media import photos as toolkit  # noqa: E402  (the stamp and transpose table, shared by every path)

PHOTO_SIZE = (4000, 3000)
DISTINCT_PHOTOS = 4  # generating a 12 MP scene costs ~1 s; copies decode the same
WEB, THUMB = 1600, 400
LOGO = REPO / "config" / "brand" / "logo-bhxh-vinhphuc.png"
POLICY = media.PhotoPolicy(watermark_logo=str(LOGO), watermark_text="BHXH tỉnh Vĩnh Phúc · Bưu điện tỉnh Vĩnh Phúc")
GOAL_RATIO, GOAL_CPU_S, CHOICE_MARGIN, QUALITY_LIMIT = 0.75, 0.10, 1.10, 1.5


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- inputs ----------------------------------------------------------------------------------------------------
def make_photo(path: Path, seed: int) -> None:
    """A phone-like 12 MP JPEG (~4 MB): a smooth scene with crowd-sized shapes plus sensor noise, EXIF orientation
    and GPS as phones write them, and (every other photo, like most Android phones) an embedded sRGB profile."""
    rng = random.Random(seed)
    small = Image.new("RGB", (PHOTO_SIZE[0] // 8, PHOTO_SIZE[1] // 8), (110, 150, 210))
    draw = ImageDraw.Draw(small)
    w, h = small.size
    draw.rectangle((0, h // 2, w, h), fill=(90, 110, 60))
    for _ in range(140):
        x, y, rx, ry = rng.randrange(w), rng.randrange(h // 3, h), rng.randrange(4, 22), rng.randrange(8, 40)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=tuple(rng.randrange(256) for _ in range(3)))
    scene = small.resize(PHOTO_SIZE, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1.2))
    noise = Image.merge("RGB", [Image.effect_noise(PHOTO_SIZE, 9) for _ in range(3)])
    scene = ImageChops.add(scene, noise, scale=1.0, offset=-128)
    exif = Image.Exif()
    exif[0x0112] = (1, 6, 8, 3)[seed % 4]
    exif.get_ifd(0x8825).update({1: "N", 2: (21.0, 18.0, float(seed)), 3: "E", 4: (105.0, 36.0, 0.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() if seed % 2 else None
    scene.save(path, quality=92, exif=exif, **({"icc_profile": icc} if icc else {}))


# --- the paths -------------------------------------------------------------------------------------------------
Path_ = Callable[[Path, Path, str], None]  # (source, output dir, known sha256) → writes web.jpg and thumb.jpg


def former_path(src: Path, out: Path, sha256: str) -> None:
    """The toolkit before issue 13, step for step (the same-run baseline): hash the original again, decode at the
    DCT scale ≥ web, convert any ICC profile (sRGB too) at that size, bicubic to web, turn, bicubic thumbnail,
    watermark, save both."""
    hashlib.sha256(src.read_bytes()).hexdigest()
    with Image.open(src) as image:
        orientation = image.getexif().get(0x0112, 1)
        image.draft("RGB", (WEB, WEB * 3 // 4))
        image.load()
        icc = image.info.get("icc_profile")
        im = image
        if icc:
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), toolkit._srgb(),
                                           outputMode="RGB")
        im = im.convert("RGB")
    web = im.resize(_fit(im.size, WEB), Image.Resampling.BICUBIC, reducing_gap=2.0)
    if orientation in toolkit._TRANSPOSE:
        web = web.transpose(toolkit._TRANSPOSE[orientation])
    thumb = web.resize(_fit(web.size, THUMB), Image.Resampling.BICUBIC, reducing_gap=2.0)
    toolkit._watermark(web, POLICY)
    web.save(out / "web.jpg", quality=85)
    thumb.save(out / "thumb.jpg", quality=80)


def toolkit_path(src: Path, out: Path, sha256: str) -> None:
    """What the ingest runs now: media.process_photo with the gateway's digest."""
    media.process_photo(src, out, POLICY, sha256=sha256)


def pillow_variant(*, draft: bool, resample: Image.Resampling) -> Path_:
    """The toolkit's steps with another decode scale or filter: what the choice of draft + box is against."""
    def run(src: Path, out: Path, sha256: str) -> None:
        with Image.open(src) as image:
            orientation = image.getexif().get(0x0112, 1)
            if draft:
                image.draft("RGB", (WEB, WEB * 3 // 4))
            image.load()
            icc = image.info.get("icc_profile")
            im = image.convert("RGB")
        web = toolkit._to_srgb(im.resize(_fit(im.size, WEB), resample, reducing_gap=2.0), icc, [])
        if orientation in toolkit._TRANSPOSE:
            web = web.transpose(toolkit._TRANSPOSE[orientation])
        thumb = toolkit._shrink(web, THUMB)
        toolkit._watermark(web, POLICY)
        toolkit._save_clean(web, out / "web.jpg", 85)
        toolkit._save_clean(thumb, out / "thumb.jpg", 80)
    return run


def vips_variant(pyvips, *, thumbnail: bool) -> Path_:
    """libvips: shrink-on-load (its DCT scaling) + linear resize, or its all-in-one `thumbnail` (Lanczos 3);
    autorotate, sRGB, the same stamp composited, metadata stripped on save."""
    @functools.lru_cache(maxsize=4)
    def stamp(width: int):
        buffer = io.BytesIO()
        toolkit._stamp(POLICY, width).save(buffer, format="PNG")
        return pyvips.Image.new_from_buffer(buffer.getvalue(), "")

    def run(src: Path, out: Path, sha256: str) -> None:
        if thumbnail:
            web = pyvips.Image.thumbnail(str(src), WEB, height=WEB, export_profile="srgb")
        else:
            image = pyvips.Image.new_from_file(str(src), shrink=2)  # random access: autorot turns it
            web = image.resize(WEB / max(image.width, image.height), kernel="linear").autorot()
            if web.get_typeof("icc-profile-data"):
                web = web.icc_transform("srgb")
        web = web.copy_memory()
        thumb = web.shrink(WEB // THUMB, WEB // THUMB) if max(web.width, web.height) == WEB else \
            web.resize(THUMB / max(web.width, web.height))
        mark = stamp(web.width)
        margin = max(8, web.width // 80)
        marked = web.composite2(mark, "over", x=web.width - mark.width - margin, y=web.height - mark.height - margin)
        marked.flatten().jpegsave(str(out / "web.jpg"), Q=85, keep="none")
        thumb.jpegsave(str(out / "thumb.jpg"), Q=80, keep="none")
    return run


def _fit(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    scale = long_edge / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


# --- measuring -------------------------------------------------------------------------------------------------
@dataclass
class Measured:
    name: str
    cpu_s: float  # per photo
    wall_s: float
    quality: float  # mean absolute difference of the web rendition to the reference, levels of 255
    exif_left: int


def measure(name: str, run: Path_, sources: list[tuple[Path, str]], tmp: Path, references: dict) -> Measured:
    out = tmp / "out" / name
    out.mkdir(parents=True)
    run(sources[0][0], out, sources[0][1])  # warm: imports, caches, the stamp
    cpu0, wall0 = time.process_time(), time.monotonic()  # process_time counts every thread (libvips uses several)
    for src, sha256 in sources:
        run(src, out, sha256)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    differences, exif_left = [], 0
    for src, sha256 in sources[:DISTINCT_PHOTOS]:  # one of each distinct photo, outputs compared to the reference
        run(src, out, sha256)
        web, thumb = _outputs(out, sha256)
        with Image.open(web) as got:
            differences.append(difference(got.convert("RGB"), references[src.read_bytes()[:4096]]))
        for path in (web, thumb):
            with Image.open(path) as im:
                exif_left += bool(im.getexif()) or "exif" in im.info
    return Measured(name, cpu / len(sources), wall / len(sources), statistics.mean(differences), exif_left)


def _outputs(out: Path, sha256: str) -> tuple[Path, Path]:
    named = out / f"{sha256[:16]}.web.jpg", out / f"{sha256[:16]}.thumb.jpg"
    return named if named[0].exists() else (out / "web.jpg", out / "thumb.jpg")


def difference(got: Image.Image, reference: Image.Image) -> float:
    """Mean absolute difference (levels of 255, worst channel) after a light blur of both: how far the picture is
    from the reference — position, turn, colour, tone, detail — without counting the sensor noise, which every
    filter renders a little differently."""
    blur = ImageFilter.GaussianBlur(1.5)
    return max(ImageStat.Stat(ImageChops.difference(got.filter(blur), reference.filter(blur))).mean)


def reference_web(src: Path) -> Image.Image:
    """Full decode, Lanczos to 1600, upright, watermarked: the best picture the web rendition could be."""
    with Image.open(src) as image:
        orientation = image.getexif().get(0x0112, 1)
        im = image.convert("RGB")
    web = im.resize(_fit(im.size, WEB), Image.Resampling.LANCZOS)
    if orientation in toolkit._TRANSPOSE:
        web = web.transpose(toolkit._TRANSPOSE[orientation])
    toolkit._watermark(web, POLICY)
    return web


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 photos per path")
    parser.add_argument("--photos", type=int)
    args = parser.parse_args()
    count = args.photos or (12 if args.quick else 40)
    with tempfile.TemporaryDirectory(prefix="bench-photos-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        bases = []
        for seed in range(DISTINCT_PHOTOS):
            bases.append(tmp / f"base{seed}.jpg")
            make_photo(bases[-1], seed)
        sources = []
        for index in range(count):
            sources.append(tmp / "in" / f"IMG_{index:04d}.jpg")
            sources[-1].parent.mkdir(exist_ok=True)
            shutil.copyfile(bases[index % DISTINCT_PHOTOS], sources[-1])
        with_sha = [(src, hashlib.sha256(src.read_bytes()).hexdigest()) for src in sources]
        references = {b.read_bytes()[:4096]: reference_web(b) for b in bases}
        mb = sum(s.stat().st_size for s in sources) / 1e6 / count
        print(f"inputs: {count} phone-like JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, {mb:.1f} MB each, EXIF "
              f"orientation + GPS, half with an sRGB profile (generated in {time.monotonic() - t0:.1f} s)")

        paths: list[tuple[str, Path_]] = [
            ("former path (baseline)", former_path),
            ("toolkit: draft + box + box thumb", toolkit_path),
            ("pillow: full decode + bilinear", pillow_variant(draft=False, resample=Image.Resampling.BILINEAR)),
            ("pillow: draft + bilinear", pillow_variant(draft=True, resample=Image.Resampling.BILINEAR)),
        ]
        try:
            import pyvips
            paths += [(f"libvips {pyvips.version(0)}.{pyvips.version(1)}: shrink-on-load + linear",
                       vips_variant(pyvips, thumbnail=False)),
                      (f"libvips {pyvips.version(0)}.{pyvips.version(1)}: thumbnail (lanczos3)",
                       vips_variant(pyvips, thumbnail=True))]
        except (ImportError, OSError) as exc:
            print(f"libvips not measured: pyvips cannot be imported ({exc}); pip install pyvips pyvips-binary")
        results = [measure(f"p{n}", run, with_sha, tmp, references) for n, (_, run) in enumerate(paths)]
        for (name, _), result in zip(paths, results):
            result.name = name

    baseline, chosen = results[0], results[1]
    print(f"\n{'path':46s} {'CPU-s/photo':>11s} {'× baseline':>10s} {'wall ms':>8s} {'quality':>8s}")
    for r in results:
        print(f"{r.name:46s} {r.cpu_s:11.3f} {r.cpu_s / baseline.cpu_s:9.2f}× {r.wall_s * 1000:8.0f} "
              f"{r.quality:8.2f}")
    print("(quality: mean difference of the web rendition to a full-decode Lanczos reference, noise blurred away, "
          "in levels of 255; lower is better)")
    acceptable = [r for r in results[1:] if r.quality <= QUALITY_LIMIT]
    cheapest = min(acceptable, key=lambda r: r.cpu_s) if acceptable else chosen
    ratio = chosen.cpu_s / baseline.cpu_s
    exif = sum(r.exif_left for r in results)
    checks = [
        (ratio <= GOAL_RATIO, f"toolkit vs the former path: {ratio:.2f}× (goal ≤ {GOAL_RATIO}×)"),
        (chosen.cpu_s <= GOAL_CPU_S, f"toolkit: {chosen.cpu_s:.3f} CPU-s per photo (goal ≤ {GOAL_CPU_S})"),
        (chosen.cpu_s <= CHOICE_MARGIN * cheapest.cpu_s and chosen.quality <= QUALITY_LIMIT,
         f"cheapest path of acceptable quality (≤ {QUALITY_LIMIT}): {cheapest.name} at {cheapest.cpu_s:.3f}; "
         f"the toolkit is within {CHOICE_MARGIN:.2f}× of it"),
        (exif == 0, f"renditions still carrying EXIF: {exif}"),
    ]
    print()
    for ok, text in checks:
        print(f"{verdict(ok)}  {text}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
