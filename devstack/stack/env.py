"""The environment every Bridgecast process of the embedded stack shares: Airflow settings and Connections.

Connections are `AIRFLOW_CONN_*` JSON built from the generated secrets — the same ids a production
deployment defines in its secrets backend, so DAG code never knows which one it runs against.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from devstack.stack.layout import REPO, Layout
from devstack.stack.secrets import stack_secrets

BUCKET = "bridgecast"
AIRFLOW_USERS = {"admin": "admin", "approver": "op", "bridgecast-service": "admin"}


def _conn(**fields) -> str:
    return json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False)


def connections(layout: Layout, secrets: dict) -> dict[str, str]:
    p = layout.ports
    return {
        "AIRFLOW_CONN_BRIDGECAST_S3": _conn(
            conn_type="aws", login=secrets["s3_access_key"], password=secrets["s3_secret_key"],
            extra={"endpoint_url": f"http://127.0.0.1:{p.s3}", "region_name": "us-east-1", "bucket": BUCKET}),
        "AIRFLOW_CONN_BRIDGECAST_PORTAL": _conn(
            conn_type="http", host=f"http://127.0.0.1:{p.portal}", login="bridgecast",
            password=secrets["portal_app_password"]),
        "AIRFLOW_CONN_BRIDGECAST_FANPAGE": _conn(
            conn_type="http", host=f"http://127.0.0.1:{p.fanpage}", password=secrets["fanpage_page_token"],
            extra={"page_id": secrets["fanpage_page_id"]}),
        "AIRFLOW_CONN_BRIDGECAST_SMTP": _conn(
            conn_type="smtp", host="127.0.0.1", port=p.smtp,
            extra={"from_email": "truyenthong@bhxh-vinhphuc.example", "disable_tls": True, "disable_ssl": True}),
        "AIRFLOW_CONN_BRIDGECAST_INGEST": _conn(
            conn_type="http", host=f"http://127.0.0.1:{p.gateway}", password=secrets["gateway_admin_token"],
            extra={"rtmp_url": f"rtmp://127.0.0.1:{p.rtmp}/live", "stat_url": f"http://127.0.0.1:{p.nginx_http}/stat"}),
        "AIRFLOW_CONN_BRIDGECAST_AIRFLOW": _conn(
            conn_type="http", host=f"http://127.0.0.1:{p.airflow}", login="bridgecast-service",
            password=secrets["airflow_service_password"]),
    }


def stack_env(layout: Layout, secrets: dict | None = None) -> dict[str, str]:
    """Variables for Airflow and for every service/CLI/test talking to this stack (no os.environ merged)."""
    secrets = secrets or stack_secrets(layout.secrets)
    p = layout.ports
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "BRIDGECAST_VAR": str(layout.var),
        "BRIDGECAST_PORT_BASE": str(p.base),
        "BRIDGECAST_BUCKET": BUCKET,
        "BRIDGECAST_LEDGER_URL": f"postgresql+psycopg2://bridgecast:{secrets['ledger_db_password']}"
                                 f"@127.0.0.1:{p.postgres}/bridgecast",
        "BRIDGECAST_POINT_KEYS_DIR": str(layout.secrets / "points"),
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'plugins'}",
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        # Airflow ----------------------------------------------------------------------------------------
        "AIRFLOW_HOME": str(layout.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "6",  # LocalExecutor starts this many workers; 2 cores here
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Ho_Chi_Minh",
        "AIRFLOW__CORE__FERNET_KEY": secrets["airflow_fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{p.airflow}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in AIRFLOW_USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.secrets / "airflow-passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:{secrets['airflow_db_password']}"
                                               f"@127.0.0.1:{p.postgres}/airflow",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(p.airflow),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{p.airflow}",
        "AIRFLOW__API__SECRET_KEY": secrets["airflow_api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets["airflow_jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(layout.log / "airflow"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(p.worker_log),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(p.trigger_log),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(p.base + 974),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",  # new DAG files show up within half a minute
        # Unchanged files are re-parsed every 2 min, not 30 s: on 2 cores the re-parsing took 13-23 CPU-s
        # out of a photo burst (measured by bench/ingest_burst.py).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        **connections(layout, secrets),
    }
    return env


def airflow_passwords(layout: Layout, secrets: dict) -> dict[str, str]:
    return {"admin": secrets["airflow_admin_password"], "approver": secrets["airflow_approver_password"],
            "bridgecast-service": secrets["airflow_service_password"]}


def write_env_file(layout: Layout, env: dict[str, str]) -> Path:
    """`var/stack.env` (mode 600): `source` it to talk to the stack from a shell."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k != "PATH"]
    path = layout.env_file
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Generated by `bridgecast up`; holds local secrets — do not commit or share.\n")
        fh.write("\n".join(lines) + "\n")
    return path
