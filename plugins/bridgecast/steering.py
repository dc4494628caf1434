"""Steering the launch morning: go live now, postpone T0, switch the program point, end early.

What staff decide is one small record in S3 (`objects.steering_key`), read by the launch's stage waits, go-live,
the relay and the monitor; the plan `plan_launch` made stays as it was and every task applies the record to it
(`LaunchPlan.steered`). The record holds absolute values (the T0 now in force, the end, the program point), so
applying it twice changes nothing.

Each decision is one numbered entry of the audit trail (`objects.steering_log_key`: who, what, when, the values
before and after), written create-only: two staff pressing at once cannot both win — the second is refused and
sees the first's decision. The board is where staff steer (behind Airflow's login, with the clear-task permission
on the launch); this module only decides and records, so a CLI or a test steers the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from bridgecast.objects import steering_key, steering_log_key, steering_log_prefix
from bridgecast.timing import at

ACTIONS = {  # what the board's buttons say
    "go_live_now": "Phát trực tiếp ngay",
    "postpone": "Lùi giờ G",
    "switch_program": "Đổi điểm cầu chương trình",
    "end_early": "Kết thúc sớm",
}
MAX_POSTPONE_MIN = 120
EVENT_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the default only: callers pass the event's own zone
# The launch DAG's stage waits (task id → the plan's time each waits for). A decision that moves one of these
# times has the waits still deferred cleared, so they read the record again at once (`launch.waits`).
STAGE_WAITS = {
    "wait_for_preflight": "preflight_at",
    "wait_for_live_setup": "live_setup_at",
    "wait_for_final_check": "final_check_at",
    "wait_for_t0": "golive_wake_at",
    "wait_for_end": "end_at",
}
MOVES_TIMES = {"go_live_now", "postpone", "end_early"}


class SteeringRefused(ValueError):
    """A decision that cannot be carried out now; the message (Vietnamese) says why and what to do."""


@dataclass(frozen=True)
class Steering:
    revision: int = 0  # how many decisions were taken (the audit trail's last number)
    t0: datetime | None = None  # T0 in force, when moved (postponed, or brought forward by "go live now")
    end_at: datetime | None = None  # the end in force, when moved (postponed with T0, or ended early)
    program_point: str | None = None  # the program point in force, when switched

    def to_json(self) -> dict:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "Steering":
        return cls(revision=int(data.get("revision", 0)), t0=at(data["t0"]) if data.get("t0") else None,
                   end_at=at(data["end_at"]) if data.get("end_at") else None,
                   program_point=data.get("program_point"))


@dataclass(frozen=True)
class Times:
    """The three values steering changes, as planned or as in force."""

    t0: datetime
    end_at: datetime
    program_point: str


def in_force(planned: Times, steering: Steering) -> Times:
    times = stage_times({"t0": planned.t0, "end_at": planned.end_at}, steering)
    return Times(times["t0"], times["end_at"], steering.program_point or planned.program_point)


def stage_times(planned: dict[str, datetime], steering: Steering) -> dict[str, datetime]:
    """Stage times in force (`planned` holds `t0`, `end_at` and any other stage, by the plan's field names):
    every stage moves with T0; the end is the one decided, else it moves with T0 too."""
    shift = steering.t0 - planned["t0"] if steering.t0 else timedelta(0)
    times = {name: moment + shift for name, moment in planned.items()}
    times["end_at"] = steering.end_at or planned["end_at"] + shift
    return times


def decide(steering: Steering, planned: Times, action: str, *, now: datetime, streaming_points: dict[str, str],
           minutes: float | None = None, point: str | None = None, tz: tzinfo = EVENT_TZ) -> tuple[Steering, str]:
    """The record after `action`, and what happened in words (Vietnamese, times in the event's zone `tz`);
    `SteeringRefused` if it cannot be. `streaming_points`: id → display name of the points that may carry the
    program."""
    now = now.astimezone(timezone.utc)

    def _hm(moment: datetime) -> str:
        return local_time(moment, tz)

    cur = in_force(planned, steering)
    started, ended = now >= cur.t0, now >= cur.end_at
    nxt = replace(steering, revision=steering.revision + 1)
    if ended:
        raise SteeringRefused("Buổi phát đã kết thúc: không còn gì để điều khiển.")
    if action == "go_live_now":
        if started:
            raise SteeringRefused(f"Đã qua giờ G ({_hm(cur.t0)}): buổi phát đã lên sóng.")
        return replace(nxt, t0=now, end_at=now + (cur.end_at - cur.t0)), \
            f"Phát trực tiếp ngay lúc {_hm(now)} (giờ G trước đó {_hm(cur.t0)})"
    if action == "postpone":
        if minutes is None or not 0 < minutes <= MAX_POSTPONE_MIN:
            raise SteeringRefused(f"Số phút lùi giờ G phải lớn hơn 0 và không quá {MAX_POSTPONE_MIN}.")
        if started:
            raise SteeringRefused(f"Đã qua giờ G ({_hm(cur.t0)}): không lùi được nữa; có thể kết thúc sớm.")
        shift = timedelta(minutes=minutes)
        return replace(nxt, t0=cur.t0 + shift, end_at=cur.end_at + shift), \
            f"Lùi giờ G {minutes:g} phút: từ {_hm(cur.t0)} sang {_hm(cur.t0 + shift)}"
    if action == "switch_program":
        if point not in streaming_points:
            raise SteeringRefused(f"Điểm cầu {point!r} không có trong sự kiện (hoặc không phát hình): chọn một "
                                  "điểm cầu trong danh sách.")
        if point == cur.program_point:
            raise SteeringRefused(f"{streaming_points[point]} đang là điểm cầu chương trình.")
        return replace(nxt, program_point=point), \
            f"Đổi tín hiệu chương trình: {streaming_points.get(cur.program_point, cur.program_point)} → " \
            f"{streaming_points[point]}"
    if action == "end_early":
        if not started:
            raise SteeringRefused(f"Chưa đến giờ G ({_hm(cur.t0)}): chưa lên sóng thì không kết thúc được; có thể "
                                  "lùi giờ G.")
        return replace(nxt, end_at=now), f"Kết thúc sớm lúc {_hm(now)} (dự kiến {_hm(cur.end_at)})"
    raise SteeringRefused(f"Không có lệnh {action!r}: chỉ có {', '.join(ACTIONS)}.")


def local_time(moment: datetime, tz: tzinfo = EVENT_TZ) -> str:
    return f"{moment.astimezone(tz):%H:%M:%S}"


# --- I/O -----------------------------------------------------------------------------------------------------------
def load(storage, event_id: str) -> Steering:
    """The record in force (none yet: nothing decided)."""
    key = steering_key(event_id)
    return Steering.from_json(storage.get_json(key)) if storage.exists(key) else Steering()


def record(storage, event_id: str, before: Steering, after: Steering, *, action: str, said: str, by: str,
           now: datetime, details: dict | None = None) -> dict:
    """Write the decision's audit entry (create-only, numbered by revision), then the record. Refused when
    another decision took that number first."""
    entry = {"revision": after.revision, "action": action, "label": ACTIONS[action], "said": said, "by": by,
             "at": now.astimezone(timezone.utc).isoformat(), "before": before.to_json(), "after": after.to_json(),
             **(details or {})}
    if not storage.put_json(steering_log_key(event_id, f"{after.revision:04d}"), entry, if_absent=True).created:
        raise SteeringRefused("Vừa có người khác ra lệnh điều khiển cùng lúc: xem lại bảng rồi thử lại.")
    storage.put_json(steering_key(event_id), after.to_json())
    return entry


def audit_log(storage, event_id: str) -> list[dict]:
    """Every decision, oldest first."""
    keys = sorted(item["Key"] for item in storage.list_keys(steering_log_prefix(event_id)))
    return [storage.get_json(key) for key in keys]
