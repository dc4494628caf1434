"""Vietnamese text helpers shared by every feature: NFC for what people read, ASCII folding for what machines
key on (slugs, file names, headers that must stay ASCII)."""
from __future__ import annotations

import re
import unicodedata


def nfc(text: str) -> str:
    """What we store and show: NFC (ffmpeg's drawtext without harfbuzz misplaces NFD diacritics)."""
    return unicodedata.normalize("NFC", text)


def fold_ascii(text: str) -> str:
    """`Lễ ra quân Đống Đa` → `Le ra quan Dong Da`. NFKD leaves đ/Đ whole (they are letters, not d + mark)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return decomposed.encode("ascii", "ignore").decode()


def ascii_name(text: str, fallback: str, keep: str = "A-Za-z0-9._-") -> str:
    """Folded to ASCII with every run of other characters as one dash, trimmed; `fallback` when nothing is left."""
    cleaned = re.sub(f"[^{keep}]+", "-", fold_ascii(text)).strip("-.")
    return cleaned or fallback
