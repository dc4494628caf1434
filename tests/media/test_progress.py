"""Progress lines for long media steps: percent, speed and ETA in the task log, a few lines per step, not hundreds."""
from __future__ import annotations

import logging
import re

import pytest

import media
from devstack.synthetic import synthetic_clip

LOG = logging.getLogger("tests.media.progress")


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_a_real_transcode_logs_throttled_lines_with_percent_speed_and_eta(tmp_path, caplog):
    src = synthetic_clip(tmp_path / "long.mp4", width=426, height=240, duration=40, noise=True, audio_channels=1,
                         sample_rate=44100)
    blocks: list[media.Progress] = []
    step = media.ProgressLog(LOG, "normalising long.mp4", every_percent=25, min_gap_s=1.0)

    def both(progress: media.Progress) -> None:
        blocks.append(progress)
        step.ffmpeg(progress)

    with caplog.at_level(logging.INFO, logger=LOG.name):
        media.normalize(src, tmp_path / "house.mp4", on_progress=both)
    lines = progress_lines(caplog)
    assert lines[-1].startswith("normalising long.mp4: done in ")
    assert 2 <= len(lines) < len(blocks)  # throttled: fewer lines than ffmpeg's progress blocks
    for line in lines[:-1]:
        assert re.search(r": \d+% \(\d+ s of 40 s\), [\d.]+× realtime, ETA \d+ s$", line), line


def test_a_long_transcode_logs_about_ten_lines_not_hundreds():
    """Twenty minutes of media at 2× realtime: ffmpeg reports twice a second (1200 blocks); the log gets a line
    per 10 % (none closer than 5 s apart) and the end."""
    clock = FakeClock()
    lines: list[str] = []
    step = media.ProgressLog(ListLog(lines), "normalising team.mov", clock=clock)
    for n in range(1, 1201):
        clock.now = n * 0.5
        out_time = n * 0.5 * 2.0
        step.ffmpeg(media.Progress(out_time_s=out_time, percent=100 * out_time / 1200, speed=2.0, fps=60.0,
                                   bitrate_kbps=3000.0, frame=n * 30, done=False))
    step.ffmpeg(media.Progress(1200.0, 100.0, 2.0, 60.0, 3000.0, 36000, done=True))
    assert 10 <= len(lines) <= 12 and lines[-1] == "normalising team.mov: done in 600.0 s"
    assert lines[0] == "normalising team.mov: 10% (120 s of 1200 s), 2.0× realtime, ETA 540 s"


def test_a_step_of_unknown_length_still_shows_it_is_alive():
    clock = FakeClock()
    lines: list[str] = []
    step = media.ProgressLog(ListLog(lines), "remuxing feed.flv", clock=clock)
    for n in range(1, 481):  # 4 minutes, no expected duration: no percent, a heartbeat every minute
        clock.now = n * 0.5
        step.ffmpeg(media.Progress(n * 0.5, None, 1.0, 30.0, None, n * 15, done=False))
    assert len(lines) == 4 and all("(" in line and "ETA" not in line for line in lines)


def test_a_big_upload_logs_megabytes_rate_and_eta_from_boto3_callbacks():
    clock = FakeClock()
    lines: list[str] = []
    total = 800 * 1024 * 1024
    step = media.ProgressLog(ListLog(lines), "uploading house.mp4", total_bytes=total, clock=clock)
    chunk = 256 * 1024
    for n in range(1, total // chunk + 1):  # 3200 callbacks at 4 MB/s (a site's uplink): 3.5 minutes
        clock.now = n * chunk / 4e6
        step.transferred(chunk)
    assert 10 <= len(lines) <= 12 and lines[-1] == "uploading house.mp4: done in 209.7 s, 4.0 MB/s"
    assert re.fullmatch(r"uploading house\.mp4: 10% \(84 of 839 MB\), 4\.0 MB/s, ETA 189 s", lines[0]), lines[0]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ListLog:
    """A logger stand-in that keeps the formatted lines (the throttle, not logging, is under test here)."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def info(self, message: str, *args) -> None:
        self.lines.append(message % args)


@pytest.fixture(autouse=True)
def _quiet_other_loggers(caplog):
    caplog.set_level(logging.WARNING)
