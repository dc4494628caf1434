"""Render the placeholder watermark logo, config/brand/logo-bhxh-vinhphuc.png: «BHXH Vĩnh Phúc» on a blue badge.

A stand-in until the agency hands over the real logo (replace the PNG, keep the name or change
`media.watermark_logo` in config/event.yaml). The PNG is committed rather than rendered at build time: it is a
brand asset like the real one will be, its bytes are the same on every machine (font versions differ), and an
event file that names it is valid straight after a clone.

    .venv/bin/python scripts/make_placeholder_logo.py
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[1] / "config" / "brand" / "logo-bhxh-vinhphuc.png"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"  # fonts-dejavu-core: covers Vietnamese
BLUE, WHITE = (0, 84, 166, 235), (255, 255, 255, 255)


def render(path: Path = OUT) -> Path:
    lines = [(unicodedata.normalize("NFC", "BHXH"), 84), (unicodedata.normalize("NFC", "Vĩnh Phúc"), 46)]
    fonts = [ImageFont.truetype(FONT, size) for _, size in lines]
    boxes = [font.getbbox(text) for (text, _), font in zip(lines, fonts)]
    pad, gap = 28, 10
    width = max(b[2] - b[0] for b in boxes) + 2 * pad
    height = sum(b[3] - b[1] for b in boxes) + gap + 2 * pad
    logo = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=28, fill=BLUE, outline=WHITE, width=4)
    y = pad
    for (text, _), font, box in zip(lines, fonts, boxes):
        draw.text(((width - (box[2] - box[0])) // 2 - box[0], y - box[1]), text, font=font, fill=WHITE)
        y += box[3] - box[1] + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    logo.save(path, optimize=True)
    return path


if __name__ == "__main__":
    print(render())
