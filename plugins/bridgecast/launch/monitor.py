"""During the event: who is live, who dropped, who reconnected, at what bitrate — until the end.

One task watches every point (64 long-running mapped sensors would take every worker slot). A point counts as
live the first time it is seen publishing after go-live (or when it publishes later: late points are picked up).
Drops are noted, never fatal. The state is written to S3 every few seconds for the board and the summary.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from bridgecast.launch.observe import IngestObserver
from bridgecast.timing import at

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def monitor_points(plan: dict, observer: IngestObserver, save, *, poll_s: float = 1.0, save_every_s: float = 10.0,
                   stat_every_s: float = 5.0) -> dict:
    """Poll until the end of the event. `save(state)` persists the state (S3 in the DAG)."""
    t0, end = at(plan["t0"]), at(plan["end_at"])
    names = {p["id"]: p["name"] for p in plan["points"]}
    state = {pid: {"name": names[pid], "live_detected_at": None, "live_detected_after_t0_s": None,
                   "publishing": False, "drops": 0, "sessions": 0, "bitrate_kbps": None, "events": []}
             for pid in names}
    last_save = last_stat = 0.0
    while True:
        now = _now()
        try:
            live = observer.live(plan["event_id"])
        except Exception as exc:  # the gateway being briefly busy is not the event failing
            log.warning("gateway not answering (%s); retrying", exc)
            time.sleep(poll_s)
            continue
        for pid, point in state.items():
            seen = live.get(pid, {})
            publishing = bool(seen.get("publishing"))
            if publishing and point["live_detected_at"] is None:
                point["live_detected_at"] = now.isoformat()
                point["live_detected_after_t0_s"] = round((now - t0).total_seconds(), 3)
                point["first_live_at"] = seen.get("first_live_at")
                log.info("LIVE %s at %s", point["name"], now.isoformat())
            if point["publishing"] and not publishing:
                point["drops"] += 1
                point["events"].append({"at": now.isoformat(), "what": "dropped"})
                log.warning("DROPPED %s at %s", point["name"], now.isoformat())
            elif publishing and not point["publishing"] and point["live_detected_at"] != now.isoformat():
                point["events"].append({"at": now.isoformat(), "what": "back"})
            point["publishing"] = publishing
            point["sessions"] = seen.get("sessions", 0)
        if time.monotonic() - last_stat >= stat_every_s:
            last_stat = time.monotonic()
            try:
                for pid, stat in observer.streams().items():
                    if pid in state:
                        state[pid]["bitrate_kbps"] = round(stat.bw_in_kbps)
            except Exception as exc:
                log.warning("nginx /stat not answering (%s)", exc)
        if time.monotonic() - last_save >= save_every_s or now >= end:
            last_save = time.monotonic()
            save({"updated_at": now.isoformat(), "points": state})
            live_count = sum(p["publishing"] for p in state.values())
            log.info("%d/%d points live, %d drops so far", live_count, len(state),
                     sum(p["drops"] for p in state.values()))
        if now >= end:
            return {"updated_at": now.isoformat(), "points": state}
        time.sleep(poll_s)
