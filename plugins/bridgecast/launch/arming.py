"""Arming the launch: the one visible step before the morning (`./bridgecast arm`). The event file is validated,
`bridgecast_launch` is unpaused through Airflow's REST API, and Airflow's own next run time is read back and
told in the event's local time — so what staff see is what the scheduler will do, not what we think it will."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridgecast.event import Event, load_event
from bridgecast.timing import at

DAG_ID = "bridgecast_launch"


@dataclass(frozen=True)
class Armed:
    event: Event
    was_paused: bool
    next_run_at: datetime | None  # when the scheduler will start the run (the preflight), UTC
    preflight_at: datetime | None = None  # when this event's preflight is (what the next run should be)

    @property
    def ok(self) -> bool:
        return self.next_run_at is not None and self.next_run_at == self.preflight_at

    def describe(self) -> str:
        if self.next_run_at is not None and self.preflight_at and self.next_run_at != self.preflight_at:
            tz = self.event.tz
            return (f"{DAG_ID} bật nhưng Airflow sẽ chạy lúc {self.next_run_at.astimezone(tz):%H:%M:%S ngày %d/%m/%Y}"
                    f", còn buổi kiểm tra của «{self.event.short_title}» là lúc "
                    f"{self.preflight_at.astimezone(tz):%H:%M:%S ngày %d/%m/%Y}: Airflow đọc một tệp sự kiện khác "
                    "(BRIDGECAST_EVENT) hoặc chưa đọc lại tệp — kiểm tra rồi chạy lại lệnh arm.")
        if self.next_run_at is None:
            return (f"{DAG_ID} bật (unpaused) nhưng Airflow chưa có lượt chạy kế tiếp: kiểm tra giờ bắt đầu của "
                    f"sự kiện {self.event.id} (đã qua?) và tệp sự kiện mà Airflow đọc (BRIDGECAST_EVENT)")
        local = self.next_run_at.astimezone(self.event.tz)
        return (f"Đã kích hoạt {DAG_ID} cho «{self.event.short_title}»: Airflow sẽ chạy lúc "
                f"{local:%H:%M:%S ngày %d/%m/%Y} ({self.event.tz.key}) — kiểm tra trước giờ G; giờ G "
                f"{self.event.start_local:%H:%M:%S}.")


def arm(event_file: str | Path, api, dag_id: str = DAG_ID, *, wait_s: float = 90.0) -> Armed:
    """Validate `event_file` (raises EventConfigError with every problem), unpause `dag_id`, have Airflow parse
    it again (the event file may have just been edited; the DAG file was not) and read its next run — waiting up
    to `wait_s` for it to be this event's preflight."""
    event = load_event(event_file)
    was_paused = api.dag(dag_id)["is_paused"]
    api.set_paused(dag_id, False)
    expected = event.start - timedelta(minutes=event.stages.preflight_before_min)
    api.reparse(dag_id)
    deadline = time.monotonic() + wait_s
    while True:
        dag = api.dag(dag_id)
        nxt = dag.get("next_dagrun_run_after") or dag.get("next_dagrun_logical_date")
        if (nxt and at(nxt) == expected) or time.monotonic() > deadline or expected <= datetime.now(timezone.utc):
            return Armed(event, was_paused, at(nxt) if nxt else None, expected)
        time.sleep(2)
