"""Which units report sign-ups (the district teams; the provinces of an event without teams), their target, and
how a name typed in a spreadsheet is matched to one of them."""
from __future__ import annotations

import difflib
import re

from bridgecast.event import Event, Point, name_key
from bridgecast.text import fold_ascii, nfc

# Administrative prefixes people write before a district's name: «Huyện Lập Thạch», «TP. Vĩnh Yên», «H. Sông Lô».
_PREFIX_RE = re.compile(r"^(huyện|h\.|thành phố|tp\.?|thị xã|tx\.?|quận|q\.|tỉnh|t\.)\s*", re.IGNORECASE)
TOTAL_ROW_NAMES = {"tổng", "tổng cộng", "cộng", "tổng số", "toàn tỉnh", "tổng toàn tỉnh"}


def signup_units(event: Event) -> tuple[Point, ...]:
    """The district teams (2020: the 9 of Vĩnh Phúc); an event without teams reports per province."""
    return event.teams or tuple(p for p in event.points if p.kind == "province")


def unit_word(event: Event) -> str:
    return "huyện" if event.teams else "tỉnh"


def target_per_unit(event: Event) -> float | None:
    key = "new_voluntary_participants_per_district" if event.teams else "new_voluntary_participants_per_province"
    return event.targets.get(key)


def _bare(text: str) -> str:
    return _PREFIX_RE.sub("", nfc(text).strip()).strip()


def _folded(text: str) -> str:
    return " ".join(fold_ascii(text).lower().replace("-", " ").split())


def is_total_row(text: str) -> bool:
    """«Tổng cộng», «Cộng», «Toàn tỉnh»: a sum row, not a district."""
    return name_key(text) in {name_key(n) for n in TOTAL_ROW_NAMES}


def match_unit(event: Event, text) -> Point | None:
    """A unit by id (`vinh-yen`), GSO code (`243`), name or full name in any orthography (NFC/NFD, case, tone-mark
    placement), with or without «Huyện»/«TP.»; typed without diacritics only when that still names one unit."""
    units = signup_units(event)
    raw = nfc(str(text)).strip()
    if not raw:
        return None
    for unit in units:
        if raw == unit.id or (unit.code and raw == unit.code):
            return unit
    key = name_key(_bare(raw))
    for unit in units:
        names = (unit.name, unit.full_name or "", *unit.aliases)
        if key in {name_key(_bare(n)) for n in names if n} or name_key(raw) in {name_key(n) for n in names if n}:
            return unit
    folded = _folded(_bare(raw))
    loose = [u for u in units if folded in {_folded(_bare(n)) for n in (u.name, u.full_name or "", *u.aliases) if n}]
    return loose[0] if len(loose) == 1 else None


def suggest_unit(event: Event, text) -> str | None:
    """The unit name closest to a name that matched none (a typo), for the error message."""
    names = {_folded(u.name): u.name for u in signup_units(event)}
    close = difflib.get_close_matches(_folded(_bare(str(text))), list(names), n=1, cutoff=0.6)
    return names[close[0]] if close else None
