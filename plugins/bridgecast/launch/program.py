"""What the fanpage live carries: the program point's feed, or — while that feed is missing (not there at T0,
dropped) — a fallback slate, switched automatically and back when the feed returns, with an alert each way.

One sender at a time feeds the live's ingest (Facebook, like nginx, takes one publisher per stream), so a
switch stops the current sender before starting the other. The program relay is a `RelaySupervisor` (restarts
with back-off); the slate is a pre-rendered house-profile card looped by stream copy under the same supervision.
Switching is decided from the ingest's publish journal (who publishes now), polled every second, with a short
debounce so one lost packet is not a switch.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

POLL_S = 1.0
SWITCH_AFTER_S = 2.0  # the feed missing (or back) this long before the live is switched
SLATE_TEXT = ("Chương trình sẽ tiếp tục trong giây lát", "Tín hiệu từ điểm cầu đang được khôi phục")


def render_slate(dst: Path, event_title: str) -> Path:
    """The slate card (2 s, house profile, silent stereo AAC): what viewers see while the program is missing."""
    from media import HOUSE, CardText, render_card

    return render_card(dst, CardText(title=SLATE_TEXT[0], subtitle=event_title, footer=SLATE_TEXT[1]),
                       profile=HOUSE)


class ProgramSwitch:
    """Feeds `target` from the program relay or the slate; `poll(publishing)` decides, `stop()` ends both."""

    def __init__(self, source_url: str, target_url: str, slate_path: Path, *, transcode: bool, on_switch=None,
                 clock=time.monotonic, point: str = ""):
        self.source_url, self.target_url, self.slate_path, self.point = source_url, target_url, slate_path, point
        self.transcode, self.on_switch, self.clock = transcode, on_switch or (lambda what, at: None), clock
        self.showing: str | None = None  # "program" | "slate"
        self.sender = None
        self.switches: list[dict] = []
        self._seen_since: tuple[bool, float] | None = None

    def _start(self, what: str) -> None:
        from media import RelaySupervisor
        from media.relay import build_slate_argv

        if self.sender is not None:
            self.sender.stop(grace_s=2.0)
        argv = build_slate_argv(str(self.slate_path), self.target_url) if what == "slate" else None
        self.sender = RelaySupervisor(self.source_url, self.target_url, transcode=self.transcode, argv=argv)
        self.sender.start()
        at = datetime.now(timezone.utc)
        previous, self.showing = self.showing, what
        self.switches.append({"to": what, "at": at.isoformat(), **({"point": self.point} if what == "program" else {})})
        log.warning("the live now carries the %s", "PROGRAM feed" if what == "program" else "fallback SLATE")
        if previous != what and (previous is not None or what == "slate"):  # not a change of program point
            self.on_switch(what, at)

    def poll(self, program_publishing: bool) -> None:
        now = self.clock()
        if self._seen_since is None or self._seen_since[0] != program_publishing:
            self._seen_since = (program_publishing, now)
        wanted = "program" if program_publishing else "slate"
        if self.showing is None:  # the first choice is immediate: the live must carry something
            self._start(wanted)
        elif wanted != self.showing and now - self._seen_since[1] >= SWITCH_AFTER_S:
            self._start(wanted)

    def set_source(self, source_url: str, *, transcode: bool, point: str = "") -> None:
        """Another program point (switched from the board): a live showing the program changes sender now; one
        showing the slate takes the new point when it publishes."""
        self.source_url, self.transcode, self.point = source_url, transcode, point
        self._seen_since = None
        if self.showing == "program":
            self._start("program")

    def health(self) -> dict:
        health = dataclasses.asdict(self.sender.health()) if self.sender else {}
        return {"showing": self.showing, "switches": len(self.switches),
                **{k: str(v) if k == "state" else v for k, v in health.items()}}

    def stop(self) -> dict:
        if self.sender is not None:
            self.sender.stop()
        return self.health()
