"""Benchmark: clean N generated 12 MP JPEGs (web + thumb + strip + watermark) vs a bare Pillow open/thumbnail/save
loop producing the same two sizes, and the speed-up of 2 worker processes, all measured in the same run.
Goals: per-photo cost ≤ 1.25× the bare loop; ≥ 1.6× faster with 2 workers.

    .venv/bin/python bench/media_photos.py           # 200 photos of 4000x3000
    .venv/bin/python bench/media_photos.py --quick   # 24 photos
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import media  # noqa: E402

DISTINCT_PHOTOS = 8  # generating 200 different 12 MP images would dominate the run; copies decode the same


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def make_photo(path: Path, seed: int) -> None:
    """A 12 MP photo-like JPEG: gradients, shapes and grain (compresses like a real photo, ~3–5 MB), with EXIF
    orientation and GPS as phones write them."""
    size = (4000, 3000)
    base = Image.merge("RGB", [Image.linear_gradient("L").resize(size).rotate(seed * 40 + k * 90, expand=False)
                               for k in range(3)])
    draw = ImageDraw.Draw(base)
    for k in range(40):
        x, y = (seed * 997 + k * 613) % size[0], (seed * 331 + k * 419) % size[1]
        draw.ellipse((x, y, x + 300 + k * 7, y + 200 + k * 5), fill=((k * 37) % 256, (k * 91) % 256, (seed * 53) % 256))
    grain = Image.effect_noise(size, 24).convert("RGB")
    photo = Image.blend(base, grain, 0.15)
    exif = Image.Exif()
    exif[0x0112] = (1, 6, 8, 3)[seed % 4]
    exif.get_ifd(0x8825).update({1: "N", 2: (21.0, 18.0, float(seed)), 3: "E", 4: (105.0, 36.0, 0.0)})
    photo.save(path, quality=92, exif=exif)


def bare_loop(sources: list[Path], out: Path, *, draft: bool) -> float:
    """open → resize → save, web then thumb; `draft=True` also decodes the JPEG at a reduced DCT scale."""
    started = time.monotonic()
    for index, src in enumerate(sources):
        with Image.open(src) as im:
            web_size = (1600, 1600 * im.size[1] // im.size[0])
            if draft:
                im.draft("RGB", web_size)
            web = im.resize(web_size)
            web.save(out / f"{index}.web.jpg", quality=85)
            web.resize((400, 400 * web.size[1] // web.size[0])).save(out / f"{index}.thumb.jpg", quality=80)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="24 photos")
    parser.add_argument("--photos", type=int)
    args = parser.parse_args()
    count = args.photos or (24 if args.quick else 200)
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
        mb = sum(s.stat().st_size for s in sources) / 1e6
        print(f"inputs: {count} JPEGs of 4000x3000, {mb / count:.1f} MB each (generated in {time.monotonic() - t0:.1f} s)")
        logo = tmp / "logo.png"
        Image.new("RGBA", (256, 256), (255, 200, 0, 220)).save(logo)
        policy = media.PhotoPolicy(watermark_logo=str(logo), watermark_text="Bưu điện tỉnh Vĩnh Phúc")

        for name in ("bare", "one", "two"):
            (tmp / name).mkdir()
        bare_loop(sources[:2], tmp / "bare", draft=False)  # warm the page cache and the libraries for both sides
        media.process_photos(sources[:2], tmp / "one", policy, workers=1)
        bare = bare_loop(sources, tmp / "bare", draft=False)
        bare_draft = bare_loop(sources, tmp / "bare", draft=True)
        t0 = time.monotonic()
        results = media.process_photos(sources, tmp / "one", policy, workers=1)
        one = time.monotonic() - t0
        t0 = time.monotonic()
        media.process_photos(sources, tmp / "two", policy, workers=2)
        two = time.monotonic() - t0
        failed = [r for r in results if not isinstance(r, media.PhotoResult)]
        gps_left = [p for r in results if isinstance(r, media.PhotoResult) for p in r.renditions.values()
                    if Image.open(p).getexif()]
        cost = one / bare
        speedup = one / two
        print(f"bare Pillow loop (open, resize, save ×2): {bare / count * 1000:.0f} ms/photo; "
              f"the same with JPEG draft decoding: {bare_draft / count * 1000:.0f} ms/photo")
        print(f"toolkit, 1 worker (sniff, hash, orient, sRGB, strip, watermark): {one / count * 1000:.0f} ms/photo")
        print(f"toolkit, 2 workers: {two / count * 1000:.0f} ms/photo")
        print(f"cost vs bare loop: {cost:.2f}× (goal ≤ 1.25×) {verdict(cost <= 1.25)}; "
              f"vs the draft-decoding bare loop: {one / bare_draft:.2f}× (the cleaning's own overhead)")
        print(f"speed-up with 2 workers: {speedup:.2f}× (goal ≥ 1.6×) {verdict(speedup >= 1.6)}")
        print(f"failures: {len(failed)}; renditions still carrying EXIF: {len(gps_left)}")
        ok = cost <= 1.25 and speedup >= 1.6 and not failed and not gps_left
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
