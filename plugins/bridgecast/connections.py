"""Credentials for external systems, looked up by Airflow Connection id.

Inside Airflow the Task SDK resolves connections (env, secrets backend, metadata DB). Outside Airflow
(the ingest gateway, the CLI, tests) the same `AIRFLOW_CONN_<ID>` environment variables are parsed here,
so one definition serves both and no credential ever lives in code or config files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit


class ConnectionNotFound(LookupError):
    pass


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


def parse_connection(conn_id: str, value: str) -> ConnectionInfo:
    """Parse an `AIRFLOW_CONN_*` value: Airflow's JSON form or its URI form."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        return ConnectionInfo(
            conn_id=conn_id,
            conn_type=data.get("conn_type", ""),
            host=data.get("host") or "",
            port=int(data["port"]) if data.get("port") else None,
            login=data.get("login") or "",
            password=data.get("password") or "",
            schema=data.get("schema") or "",
            extra=_extra(data.get("extra")),
        )
    parts = urlsplit(value)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra = json.loads(query.pop("__extra__")) if "__extra__" in query else query
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=parts.scheme.replace("-", "_"),
        host=unquote(parts.hostname or ""),
        port=parts.port,
        login=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        schema=unquote(parts.path.lstrip("/")),
        extra=extra,
    )


def _extra(raw) -> dict:
    if not raw:
        return {}
    return raw if isinstance(raw, dict) else json.loads(raw)


def get_connection(conn_id: str) -> ConnectionInfo:
    env_value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if env_value:
        return parse_connection(conn_id, env_value)
    try:
        from airflow.sdk import BaseHook  # only available (and only meaningful) inside Airflow
    except ImportError as exc:  # pragma: no cover - Airflow is always installed in this project
        raise ConnectionNotFound(conn_id) from exc
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise ConnectionNotFound(
            f"Airflow Connection '{conn_id}' is not defined: add it in Admin → Connections "
            f"or as the environment variable AIRFLOW_CONN_{conn_id.upper()}"
        ) from exc
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=conn.conn_type or "",
        host=conn.host or "",
        port=conn.port,
        login=conn.login or "",
        password=conn.password or "",
        schema=conn.schema or "",
        extra=_extra(conn.extra),
    )
