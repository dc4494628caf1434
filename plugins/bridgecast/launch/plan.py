"""The launch timetable: stage times derived from the event's T0, computed once per run and passed as XCom."""
from __future__ import annotations

from datetime import timedelta

from bridgecast.event import Event
from bridgecast.run_event import load_run_event, save_run_event

# The deferrable wait for go-live wakes this early; the last seconds are slept precisely inside the task,
# because a deferred task resumes on a worker only after the triggerer and scheduler have done their rounds.
GO_LIVE_WAKE_EARLY_S = 20


def make_plan(event: Event, event_yaml: bytes) -> dict:
    """Stage times and the point list, computed once per run. The event file is copied to S3 so that every
    task (on any worker) reads exactly the event this run started with."""
    t0 = event.start
    event_key = save_run_event(event, event_yaml)
    return {
        "event_id": event.id,
        "event_key": event_key,
        "title": event.title,
        "t0": t0.isoformat(),
        "preflight_at": (t0 - timedelta(minutes=event.stages.preflight_before_min)).isoformat(),
        "live_setup_at": (t0 - timedelta(minutes=event.stages.live_setup_before_min)).isoformat(),
        "golive_wake_at": (t0 - timedelta(seconds=GO_LIVE_WAKE_EARLY_S)).isoformat(),
        "end_at": event.end.isoformat(),
        "program_point": event.program_point,
        "points": [{"id": p.id, "name": p.name, "display_name": p.display_name} for p in event.connection_points],
        "teams": [{"id": p.id, "name": p.name, "parent": p.parent} for p in event.teams],
    }


def plan_event(plan: dict) -> Event:
    """The run's event, from its copy in S3."""
    return load_run_event(plan["event_key"])
