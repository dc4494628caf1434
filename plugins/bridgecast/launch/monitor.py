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
from bridgecast.launch.plan import LaunchPlan, save_artifact, sleep_until_t0

log = logging.getLogger(__name__)

# Feeds stopping in the last seconds of the event are the event ending, not drops (the points hang up at the end).
END_GRACE_S = 5.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def monitor_points(plan_xcom: dict) -> dict:
    """The `monitor_points` task: from T0 to the end; per point what was seen (the event log stays in S3)."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    drop_alert_s = plan.load_event().stages.drop_alert_after_s
    plan, _ = sleep_until_t0(plan)  # T0 as in force (postponed or brought forward from the board)
    final = watch(plan, IngestObserver.from_connection(), lambda state: save_artifact(plan, "monitor.json", state),
                  on_long_drop=lambda pid, point, silent_s: _tell_drop(plan, pid, point, silent_s),
                  drop_alert_s=drop_alert_s, refresh=LaunchPlan.refreshed)
    return {pid: {k: v for k, v in p.items() if k != "events"} for pid, p in final["points"].items()}


def watch(plan: LaunchPlan, observer: IngestObserver, save, *, poll_s: float = 1.0, save_every_s: float = 10.0,
          stat_every_s: float = 5.0, on_long_drop=None, drop_alert_s: float = 30.0, refresh=None,
          refresh_every_s: float = 2.0) -> dict:
    """Poll until the end of the event. `save(state)` persists the state (S3 in the DAG); `on_long_drop(point_id,
    point, silent_s)` is called once per drop that lasts `drop_alert_s`; `refresh(plan)` returns the plan in
    force (the end may be moved from the board)."""
    t0, end = plan.t0, plan.end_at
    last_refresh = time.monotonic()
    names = {p.id: p.name for p in plan.points}
    state = {pid: {"name": names[pid], "live_detected_at": None, "live_detected_after_t0_s": None,
                   "publishing": False, "drops": 0, "sessions": 0, "bitrate_kbps": None, "events": [],
                   "dropped_at": None, "drop_alerted": 0}
             for pid in names}
    last_save = last_stat = 0.0
    while True:
        if refresh and time.monotonic() - last_refresh >= refresh_every_s:
            last_refresh, plan = time.monotonic(), refresh(plan)
            end = plan.end_at
        now = _now()
        try:
            live = observer.live(plan.event_id)
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
                if (end - now).total_seconds() <= END_GRACE_S:
                    point["events"].append({"at": now.isoformat(), "what": "ended"})
                else:
                    point["drops"] += 1
                    point["dropped_at"] = now.isoformat()
                    point["events"].append({"at": now.isoformat(), "what": "dropped"})
                    log.warning("DROPPED %s at %s", point["name"], now.isoformat())
            elif publishing and not point["publishing"] and point["live_detected_at"] != now.isoformat():
                point["events"].append({"at": now.isoformat(), "what": "back"})
            if publishing:
                point["dropped_at"] = None
            elif point["dropped_at"] and point["drop_alerted"] < point["drops"]:
                silent_s = (now - datetime.fromisoformat(point["dropped_at"])).total_seconds()
                if silent_s >= drop_alert_s:
                    point["drop_alerted"] = point["drops"]
                    if on_long_drop:
                        on_long_drop(pid, point, silent_s)
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


def _tell_drop(plan: LaunchPlan, point_id: str, point: dict, silent_s: float) -> None:
    from bridgecast.launch import incidents

    incidents.point_dropped(plan, point_id, point["name"], point["drops"], silent_s, point["dropped_at"])
