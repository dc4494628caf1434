"""Helpers shared by the media tests (kept out of conftest.py, which pytest imports on its own terms)."""
from __future__ import annotations

import subprocess

SMALL = {"width": 426, "height": 240}


def lavfi(*args: str, timeout: float = 60) -> None:
    """Run an ad-hoc ffmpeg for fixtures the toolkit itself would never produce (broken or odd files)."""
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=timeout)
