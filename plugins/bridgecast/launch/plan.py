"""The launch plan: the run's stage times, derived once from the event's T0 by `plan_launch`, and its points.

Tasks receive it as a small XCom dict (`LaunchPlan.to_xcom`) and work on the typed, frozen `LaunchPlan`
(`from_xcom`). The DAG's stage sensors template their target times from that dict (`preflight_at`,
`live_setup_at`, `final_check_at`, `golive_wake_at`, `end_at`): those field names are part of the DAG's contract.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from bridgecast.event import Event
from bridgecast.objects import launch_key
from bridgecast.timing import at, sleep_until

log = logging.getLogger(__name__)

# The deferrable wait for go-live wakes this early; the last seconds are slept precisely inside the task,
# because a deferred task resumes on a worker only after the triggerer and scheduler have done their rounds.
GO_LIVE_WAKE_EARLY_S = 20


@dataclass(frozen=True)
class PlanPoint:
    """A connection point (it streams): one `check_stream` each, and a highlight (`build_highlights`)."""

    id: str
    name: str
    display_name: str


@dataclass(frozen=True)
class PlanTeam:
    """A district team under a province: it sends photos, it does not stream."""

    id: str
    name: str
    parent: str | None


@dataclass(frozen=True)
class LaunchPlan:
    event_id: str
    event_key: str  # the copy of the event file this run started with (S3)
    title: str
    t0: datetime  # every time aware, UTC
    preflight_at: datetime
    live_setup_at: datetime
    final_check_at: datetime  # the second go/no-go
    golive_wake_at: datetime
    end_at: datetime
    program_point: str
    points: tuple[PlanPoint, ...]
    teams: tuple[PlanTeam, ...]

    @classmethod
    def for_event(cls, event: Event, event_key: str) -> "LaunchPlan":
        t0 = event.start
        return cls(
            event_id=event.id, event_key=event_key, title=event.title, t0=t0,
            preflight_at=t0 - timedelta(minutes=event.stages.preflight_before_min),
            live_setup_at=t0 - timedelta(minutes=event.stages.live_setup_before_min),
            final_check_at=t0 - timedelta(minutes=event.stages.final_check_before_min),
            golive_wake_at=t0 - timedelta(seconds=GO_LIVE_WAKE_EARLY_S),
            end_at=event.end, program_point=event.program_point,
            points=tuple(PlanPoint(p.id, p.name, p.display_name) for p in event.connection_points),
            teams=tuple(PlanTeam(p.id, p.name, p.parent) for p in event.teams))

    def to_xcom(self) -> dict:
        return {
            "event_id": self.event_id, "event_key": self.event_key, "title": self.title,
            **{name: getattr(self, name).isoformat() for name in _TIMES},
            "program_point": self.program_point,
            "points": [self.point_item(p) for p in self.points],
            "teams": [{"id": t.id, "name": t.name, "parent": t.parent} for t in self.teams],
        }

    @classmethod
    def from_xcom(cls, data: dict) -> "LaunchPlan":
        return cls(
            event_id=data["event_id"], event_key=data["event_key"], title=data["title"],
            **{name: at(data[name]) for name in _TIMES}, program_point=data["program_point"],
            points=tuple(PlanPoint(p["id"], p["name"], p["display_name"]) for p in data["points"]),
            teams=tuple(PlanTeam(t["id"], t["name"], t["parent"]) for t in data["teams"]))

    @staticmethod
    def point_item(point: PlanPoint) -> dict:
        """A point as a mapped task's argument (the DAG names map indexes by `name`)."""
        return {"id": point.id, "name": point.name, "display_name": point.display_name}

    def artifact_key(self, name: str) -> str:
        """Where this run keeps an artefact (preflight table, recap, summary…): `{event}/_launch/{name}`."""
        return launch_key(self.event_id, name)

    def steered(self, steering) -> "LaunchPlan":
        """This plan with staff's decisions applied (`bridgecast.steering`): the stages move with T0, the end as
        decided, the program point as switched."""
        from bridgecast.steering import stage_times

        times = stage_times({name: getattr(self, name) for name in _TIMES}, steering)
        return replace(self, **times, program_point=steering.program_point or self.program_point)

    def in_force(self) -> "LaunchPlan":
        """The plan as staff have steered it so far (read from S3 now; the XCom plan is never rewritten)."""
        from bridgecast import steering
        from bridgecast.storage import Storage

        return self.steered(steering.load(Storage.from_connection(), self.event_id))

    def refreshed(self) -> "LaunchPlan":
        """`in_force()` for the event-long loops: S3 away for a moment keeps the plan they have."""
        try:
            return self.in_force()
        except Exception as exc:  # noqa: BLE001 - any storage error: the next poll tries again
            log.warning("could not read the steering record (%s); keeping the plan in force", exc)
            return self

    def load_event(self) -> Event:
        """The run's event, from its copy in S3 (the same on every worker)."""
        from bridgecast.run_event import load_run_event

        return load_run_event(self.event_key)


_TIMES = ("t0", "preflight_at", "live_setup_at", "final_check_at", "golive_wake_at", "end_at")


# --- I/O: the plan task and the run's artefacts in S3 ---------------------------------------------------------------
def plan_launch(conf: dict | None) -> dict:
    """The `plan_launch` task: the run's event (from `conf`), copied to S3 so every task on any worker reads
    exactly the event this run started with; the plan as XCom."""
    from bridgecast.run_event import event_for_run, save_run_event

    event, event_yaml = event_for_run(conf)
    return LaunchPlan.for_event(event, save_run_event(event, event_yaml)).to_xcom()


STEERING_POLL_S = 1.0


def sleep_until_t0(plan: LaunchPlan, poll_s: float = STEERING_POLL_S) -> tuple[LaunchPlan, float]:
    """Sleep to T0 as it is in force when it comes: staff may postpone it or bring it forward meanwhile, so the
    record is re-read every `poll_s` and the last second is slept precisely. Returns the plan in force at T0
    and how late we woke (seconds)."""
    plan = plan.in_force()
    while (plan.t0 - datetime.now(timezone.utc)).total_seconds() > poll_s * 1.5:
        time.sleep(poll_s)
        plan = plan.in_force()
    return plan, sleep_until(plan.t0)


def save_artifact(plan: LaunchPlan, name: str, data) -> str:
    """Text as UTF-8 markdown, anything else as JSON; returns the key."""
    from bridgecast.storage import Storage

    storage, key = Storage.from_connection(), plan.artifact_key(name)
    if isinstance(data, str):
        storage.put_bytes(key, data.encode(), content_type="text/markdown; charset=utf-8")
    else:
        storage.put_json(key, data)
    return key
