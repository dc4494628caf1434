"""E2E only (tests/e2e/test_connections.py): how a task sees its Connections through Airflow.

The embedded stack loads this folder as a second DAG bundle. `print_connection_secret` prints a password on
purpose, so the test can find it masked in the task log; `check_channels` runs the product's channel preflight,
so the test can see which Connection the task really used after one was edited through the REST API.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="bridgecast_e2e_connections",
    schedule=None,
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    tags=["bridgecast", "e2e"],
    doc_md=__doc__,
)
def bridgecast_e2e_connections():
    @task
    def print_connection_secret() -> None:
        import os

        from bridgecast.connections import get_connection

        conn = get_connection("bridgecast_portal")
        print(f"bridgecast_portal password as the task got it: {conn.password}")
        print(f"AIRFLOW_CONN_ variables in the task: {sorted(k for k in os.environ if k.startswith('AIRFLOW_CONN_'))}")

    @task
    def check_channels() -> dict:
        from bridgecast.channels.factory import check_channels_health
        from bridgecast.event import default_event_path, load_event

        return check_channels_health(load_event(default_event_path()))

    print_connection_secret() >> check_channels()


bridgecast_e2e_connections()
