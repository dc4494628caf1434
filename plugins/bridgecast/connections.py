"""Credentials for external systems, looked up by Airflow Connection id.

Inside an Airflow task the lookup is Airflow's own (Task SDK `Connection.get`): the task asks its supervisor, which
asks the API server, which consults the secrets backend, the `AIRFLOW_CONN_*` variables and the metadata DB — so a
secrets backend works and a Connection edited in the UI is the one the next task uses — and the SDK registers the
password and the extras with the log masker, so they show as *** in the task log.
Outside Airflow (the ingest gateway, the CLI, tests) there is nobody to ask: the `AIRFLOW_CONN_<ID>` environment
variable is parsed by the Task SDK's `Connection`, exactly as Airflow reads it (JSON or URI form).
No credential ever lives in code or config files.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field


class ConnectionNotFound(LookupError):
    pass


class ConnectionInvalid(ValueError):
    """The Connection exists but cannot be read; the message never quotes its value (it holds the password)."""


@dataclass(frozen=True)
class ConnectionInfo:
    conn_id: str
    conn_type: str = ""
    host: str = ""
    port: int | None = None
    login: str = ""
    password: str = field(default="", repr=False)  # never shown in reprs, logs or XComs
    schema: str = ""
    extra: dict = field(default_factory=dict)

    def base_url(self, default_scheme: str = "http") -> str:
        """`scheme://host[:port][/schema]` — `host` may already carry a scheme (http://… in the UI)."""
        host = self.host
        if "://" not in host:
            scheme = self.extra.get("scheme") or default_scheme
            host = f"{scheme}://{host}"
        if self.port:
            host = f"{host}:{self.port}"
        if self.schema:
            host = f"{host}/{self.schema.strip('/')}"
        return host.rstrip("/")


def env_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def in_airflow_task() -> bool:
    """True while Airflow runs a task in this process (a worker's task runner, or `dag.test()`): the Task SDK's
    task runner then holds its channel to the supervisor. This is the test the SDK itself makes to choose its
    secrets backends (`supervisor.ensure_secrets_backend_loaded`); looking in sys.modules keeps the gateway and
    the CLI from importing the task runner just to ask."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def get_connection(conn_id: str) -> ConnectionInfo:
    """The Connection `conn_id`: through Airflow inside a task, from `AIRFLOW_CONN_<ID>` outside."""
    return _from_airflow(conn_id) if in_airflow_task() else _from_environment(conn_id)


def _from_airflow(conn_id: str) -> ConnectionInfo:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        raise ConnectionNotFound(f"Airflow Connection '{conn_id}' is not defined: add it in Admin → Connections "
                                 "(or in the secrets backend)") from None
    # extra_dejson also masks each sensitive extra value (app_secret, token…), not only the extra as a whole
    return _info(conn, conn.extra_dejson)


def _from_environment(conn_id: str) -> ConnectionInfo:
    value = os.environ.get(env_var(conn_id))
    if not value:
        raise ConnectionNotFound(f"Connection '{conn_id}' is not set for this process (outside Airflow): export "
                                 f"{env_var(conn_id)} in Airflow's JSON or URI form (for the embedded stack: "
                                 "source var/stack.env)")
    return parse_connection(conn_id, value)


def parse_connection(conn_id: str, value: str) -> ConnectionInfo:
    """An `AIRFLOW_CONN_*` value read by the Task SDK's `Connection`: Airflow's JSON form or its URI form."""
    from airflow.sdk import Connection

    value = value.strip()
    try:
        conn = Connection.from_json(value, conn_id=conn_id) if value.startswith("{") else \
            Connection.from_uri(value, conn_id=conn_id)
        extra = json.loads(conn.extra) if conn.extra else {}
        if not isinstance(extra, dict):
            raise TypeError("extra is not a JSON object")
    except Exception as exc:  # noqa: BLE001 - whatever the parser says, the value must not be echoed
        raise ConnectionInvalid(
            f"{env_var(conn_id)} is not a Connection Airflow can read ({type(exc).__name__}): write it in Airflow's "
            'JSON form {"conn_type": …, "host": …, "login": …, "password": …, "extra": {…}} or as a connection '
            "URI") from None
    return _info(conn, extra)


def _info(conn, extra: dict) -> ConnectionInfo:
    return ConnectionInfo(conn_id=conn.conn_id, conn_type=conn.conn_type or "", host=conn.host or "",
                          port=conn.port, login=conn.login or "", password=conn.password or "",
                          schema=conn.schema or "", extra=extra)
