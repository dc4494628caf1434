"""Precise, timezone-aware timing shared by the pipelines: times cross tasks as ISO strings and are compared
in UTC."""
from __future__ import annotations

import time
from datetime import datetime, timezone


def at(iso: str) -> datetime:
    """An ISO timestamp from a plan or XCom as an aware UTC datetime (a naive one is refused)."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        raise ValueError(f"naive timestamp {iso!r}: every time that crosses tasks carries its offset")
    return moment.astimezone(timezone.utc)


def sleep_until(moment: datetime) -> float:
    """Sleep until `moment` (aware) with sub-millisecond precision; returns how late we woke (seconds)."""
    while True:
        remaining = (moment - datetime.now(timezone.utc)).total_seconds()
        if remaining <= 0:
            return -remaining
        time.sleep(remaining - 0.002 if remaining > 0.01 else 0.0005)
