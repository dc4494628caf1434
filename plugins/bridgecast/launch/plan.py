"""The launch plan: the run's stage times, derived once from the event's T0 by `plan_launch`, and its points.

Tasks receive it as a small XCom dict (`LaunchPlan.to_xcom`) and work on the typed, frozen `LaunchPlan`
(`from_xcom`). The DAG's stage sensors template their target times from that dict (`preflight_at`,
`live_setup_at`, `final_check_at`, `golive_wake_at`, `end_at`): those field names are part of the DAG's contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridgecast.event import Event
from bridgecast.objects import launch_key
from bridgecast.timing import at

# The deferrable wait for go-live wakes this early; the last seconds are slept precisely inside the task,
# because a deferred task resumes on a worker only after the triggerer and scheduler have done their rounds.
GO_LIVE_WAKE_EARLY_S = 20


@dataclass(frozen=True)
class PlanPoint:
    """A connection point (it streams): one `check_stream` and one `build_highlight` each."""

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


def save_artifact(plan: LaunchPlan, name: str, data) -> str:
    """Text as UTF-8 markdown, anything else as JSON; returns the key."""
    from bridgecast.storage import Storage

    storage, key = Storage.from_connection(), plan.artifact_key(name)
    if isinstance(data, str):
        storage.put_bytes(key, data.encode(), content_type="text/markdown; charset=utf-8")
    else:
        storage.put_json(key, data)
    return key
