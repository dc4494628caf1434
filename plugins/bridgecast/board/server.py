"""What the board reads from Airflow itself, inside the api-server: Connections, the launch DAG's runs and pause state.

The core's `get_connection` knows two places (a task asks its supervisor; any other process reads
`AIRFLOW_CONN_*`). The api-server is a third: it *is* Airflow's server side, so it asks Airflow's secrets backends
and metadata DB directly — where the stack and the UI keep the Connections. The thumbnailer, which runs either as
the api-server's child (same Airflow settings) or on the ingest host with only `AIRFLOW_CONN_*`, uses the same
lookup: environment first, then Airflow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from bridgecast.connections import ConnectionInfo, ConnectionNotFound, get_connection

LAUNCH_DAG_ID = "bridgecast_launch"


def connection(conn_id: str) -> ConnectionInfo:
    try:
        return get_connection(conn_id)
    except ConnectionNotFound:
        pass
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        raise ConnectionNotFound(f"Airflow Connection '{conn_id}' is not defined: add it in Admin → Connections "
                                 "(or in the secrets backend)") from None
    extra = conn.extra_dejson if conn.extra else {}
    return ConnectionInfo(conn_id=conn_id, conn_type=conn.conn_type or "", host=conn.host or "", port=conn.port,
                          login=conn.login or "", password=conn.password or "", schema=conn.schema or "",
                          extra=extra if isinstance(extra, dict) else json.loads(extra))


@dataclass(frozen=True)
class LaunchRun:
    run_id: str
    state: str
    conf: dict


def launch_run(session, run_id: str | None = None) -> LaunchRun | None:
    """The launch run `run_id`, or the latest one (the morning, or the rehearsal under way)."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun

    query = select(DagRun).where(DagRun.dag_id == LAUNCH_DAG_ID)
    query = query.where(DagRun.run_id == run_id) if run_id else query.order_by(DagRun.run_after.desc()).limit(1)
    run = session.scalars(query).first()
    if run is None:
        return None
    return LaunchRun(run.run_id, str(run.state), dict(run.conf or {}))


def launch_dag_paused(session) -> bool | None:
    """None when the DAG has not been parsed yet."""
    from sqlalchemy import select

    from airflow.models.dag import DagModel

    return session.scalars(select(DagModel.is_paused).where(DagModel.dag_id == LAUNCH_DAG_ID)).first()
