"""The launch's stage waits: deferred (no worker slot held) until a stage time of the plan *in force*.

A stage time is the plan's (`plan_launch`'s XCom, by its field names) moved by what staff decided
(`bridgecast.steering`). When a decision moves a stage time, the board clears the waits still deferred: they start
again, read the record and pass (go live now, end early) or defer to the new time (postpone). A wait whose trigger
fires reads the record again too, so a missed clear costs time, never a wrong T0. Imported by the launch DAG file,
so it stays light: Airflow's operator and trigger, and the core's steering.
"""
from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator

from bridgecast.steering import STAGE_WAITS, load, stage_times
from bridgecast.timing import at


class StageWait(BaseOperator):
    """Waits for `STAGE_WAITS[task_id]` of the run's plan as steered; returns the time it passed for."""

    ui_color = "#e8f0fe"

    def __init__(self, *, task_id: str, **kwargs):
        super().__init__(task_id=task_id, **kwargs)
        self.stage = STAGE_WAITS[task_id]

    def execute(self, context, event=None) -> str:
        from bridgecast.storage import Storage

        plan = context["ti"].xcom_pull(task_ids="plan_launch")
        planned = {name: at(plan[name]) for name in ("t0", "end_at", self.stage)}
        target = stage_times(planned, load(Storage.from_connection(), plan["event_id"]))[self.stage]
        if datetime.now(timezone.utc) >= target:
            self.log.info("%s reached: %s", self.stage, target.isoformat())
            return target.isoformat()
        self.log.info("waiting (deferred) until %s = %s", self.stage, target.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=target), method_name="execute")
