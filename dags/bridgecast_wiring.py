"""Wiring check: list the event's connection points, and for each one write an object to S3 and read it back."""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from bridgecast.event import default_event_path, load_event


@dag(
    dag_id="bridgecast_wiring",
    schedule=None,
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_tasks=64,
    tags=["bridgecast"],
    doc_md=__doc__,
)
def bridgecast_wiring():
    @task
    def list_points() -> list[dict]:
        from bridgecast.wiring import points_to_check

        return points_to_check(load_event(default_event_path()))

    @task(map_index_template="{{ task.op_kwargs['point']['name'] }}")
    def write_and_read_back(point: dict) -> dict:
        from bridgecast.storage import Storage
        from bridgecast.wiring import round_trip

        return round_trip(Storage.from_connection(), point)

    @task
    def report(results: list[dict]) -> int:
        print(f"{len(results)} points wrote and read back their object")
        return len(results)

    report(write_and_read_back.expand(point=list_points()))


bridgecast_wiring()
