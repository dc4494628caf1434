"""The launch timetable: stage times derived from the event's T0, computed once per run and passed as XCom."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridgecast.event import Event, default_event_path, load_event
from bridgecast.storage import Storage

# The deferrable wait for go-live wakes this early; the last seconds are slept precisely inside the task,
# because a deferred task resumes on a worker only after the triggerer and scheduler have done their rounds.
GO_LIVE_WAKE_EARLY_S = 20


def event_for_run(conf: dict | None) -> tuple[Event, bytes]:
    """The event a run works on and its YAML: `conf.event_key` (an event file in S3, e.g. a rehearsal's),
    `conf.event_file` (a path readable by the worker, e.g. in the repo's config/) or the configured event."""
    from bridgecast.event import load_event_bytes

    conf = conf or {}
    if conf.get("event_key"):
        storage = Storage.from_connection()
        data = storage.get_bytes(conf["event_key"])
        return load_event_bytes(data, f"s3://{storage.bucket}/{conf['event_key']}"), data
    path = Path(conf.get("event_file") or default_event_path())
    return load_event(path), path.read_bytes()


def make_plan(event: Event, event_yaml: bytes) -> dict:
    """Stage times and the point list, computed once per run. The event file is copied to S3 so that every
    task (on any worker) reads exactly the event this run started with."""
    t0 = event.start
    event_key = f"{event.id}/_launch/event.yaml"
    Storage.from_connection().put_bytes(event_key, event_yaml, content_type="application/yaml; charset=utf-8")
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
    from bridgecast.event import load_event_bytes

    storage = Storage.from_connection()
    return load_event_bytes(storage.get_bytes(plan["event_key"]), f"s3://{storage.bucket}/{plan['event_key']}")


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(timezone.utc)


def sleep_until(moment: datetime) -> float:
    """Sleep until `moment` (aware) with sub-millisecond precision; returns how late we woke (seconds)."""
    while True:
        remaining = (moment - datetime.now(timezone.utc)).total_seconds()
        if remaining <= 0:
            return -remaining
        time.sleep(remaining - 0.002 if remaining > 0.01 else 0.0005)
