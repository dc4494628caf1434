"""Media fixtures, generated at test time with ffmpeg (lavfi) and Pillow: small (240p, a few seconds) to stay fast."""
from __future__ import annotations

from pathlib import Path

import pytest

from devstack.synthetic import synthetic_clip
from tests.media.helpers import SMALL


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def conformant_clip(media_dir) -> Path:
    """4 s, 426x240, house profile, flash+beep at 2.5 s."""
    return synthetic_clip(media_dir / "conformant.mp4", duration=4, marker_at=2.5, label="Điểm cầu 07", **SMALL)


@pytest.fixture(scope="session")
def clip_factory(media_dir):
    made: dict[tuple, Path] = {}

    def make(name: str, **kwargs) -> Path:
        key = (name, tuple(sorted(kwargs.items())))
        if key not in made:
            made[key] = synthetic_clip(media_dir / f"{name}.mp4", **{**SMALL, "duration": 3, **kwargs})
        return made[key]

    return make
