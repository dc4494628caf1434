"""The environment of the embedded stack's processes, and its Connections.

The Connections are generated from var/secrets, under the ids a production deployment defines in its secrets
backend, so DAG code never knows which one it runs against. They reach the two sides of the stack differently:
- Airflow (api-server, scheduler and the tasks it runs, dag-processor, triggerer) reads them from its metadata DB,
  where `up` writes them through the REST API (`sync_connections`). No Airflow process gets an `AIRFLOW_CONN_*`
  variable (`without_connections`): Airflow looks at those before the DB, so one would hide a UI edit.
- Everything outside Airflow (the ingest gateway, the sandboxes, the CLI, tests, `var/stack.env`) gets them as
  `AIRFLOW_CONN_*` JSON, which `bridgecast.connections` parses with the Task SDK.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

from bridgecast.airflow_api import AirflowAPI, AirflowAPIError
from bridgecast.connections import env_var
from devstack.stack.layout import REPO, Layout
from devstack.stack.secrets import stack_secrets
from devstack.stack.wordpress import WordPress

BUCKET = "bridgecast"
AIRFLOW_USERS = {"admin": "admin", "approver": "op", "bridgecast-service": "admin"}
# The e2e tests' own DAGs (tests/e2e/dags), a second DAG bundle beside dags/: tagged `e2e`, paused like every DAG.
E2E_DAGS = REPO / "tests" / "e2e" / "dags"
_LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
# What `up` last wrote into Airflow's DB, per Connection (a fingerprint): tells a UI edit from a stale value.
_WRITTEN_FILE = "airflow-connections.json"
CREATED, KEPT, UPDATED, NOT_OURS = "created", "kept", "updated (new ports or secrets)", "kept (not made by the stack)"


def connection_fields(layout: Layout, secrets: dict) -> dict[str, dict]:
    """The stack's Connections, one definition for both the env form and the metadata DB."""
    p = layout.ports
    return {
        "bridgecast_s3": dict(
            conn_type="aws", login=secrets["s3_access_key"], password=secrets["s3_secret_key"],
            extra={"endpoint_url": f"http://127.0.0.1:{p.s3}", "region_name": "us-east-1", "bucket": BUCKET}),
        "bridgecast_portal": portal_connection_fields(layout),
        "bridgecast_fanpage": dict(
            conn_type="http", host=f"http://127.0.0.1:{p.fanpage}", password=secrets["fanpage_page_token"],
            extra={"page_id": secrets["fanpage_page_id"]}),
        "bridgecast_smtp": dict(
            conn_type="smtp", host="127.0.0.1", port=p.smtp,
            extra={"from_email": "truyenthong@bhxh-vinhphuc.example", "disable_tls": True, "disable_ssl": True}),
        "bridgecast_ingest": ingest_connection_fields(layout, secrets["gateway_admin_token"]),
        "bridgecast_airflow": dict(
            conn_type="http", host=f"http://127.0.0.1:{p.airflow}", login="bridgecast-service",
            password=secrets["airflow_service_password"]),
    }


def portal_connection_fields(layout: Layout) -> dict:
    """The portal is the stack's real WordPress 6 (`Stack.wordpress()`), with the Application Password WordPress
    made when it was installed (var/wordpress/credentials.json). Before the first `up` installed it there is no
    password yet: `up` starts WordPress before it writes the env file and Airflow's Connections. (The portal
    sandbox runs beside it only for the faults WordPress cannot be made to produce.)"""
    site = WordPress(layout.wordpress, layout.ports.wordpress)
    info = site.info() if site.credentials_file.exists() else None
    return dict(conn_type="http", host=site.base_url, login=info.user if info else site.user,
                password=info.app_password if info else "")


def ingest_connection_fields(layout: Layout, admin_token: str) -> dict:
    """The ingest Connection: the gateway and nginx-rtmp as the stack reaches them, and as teams reach them
    (`public_url`, `public_rtmp_url`: the keys sheet's links). The embedded stack has no address but loopback, so
    both are its own and the sheet warns that teams outside cannot use them; production sets real ones."""
    p = layout.ports
    gateway, rtmp = f"http://127.0.0.1:{p.gateway}", f"rtmp://127.0.0.1:{p.rtmp}/live"
    return dict(conn_type="http", host=gateway, password=admin_token,
                extra={"rtmp_url": rtmp, "stat_url": f"http://127.0.0.1:{p.nginx_http}/stat",
                       "public_url": gateway, "public_rtmp_url": rtmp})


def connections(layout: Layout, secrets: dict) -> dict[str, str]:
    """The env form (`AIRFLOW_CONN_<ID>` = Airflow's JSON), for the processes outside Airflow."""
    return {env_var(conn_id): json.dumps(fields, ensure_ascii=False)
            for conn_id, fields in connection_fields(layout, secrets).items()}


def without_connections(env: dict[str, str]) -> dict[str, str]:
    """`env` for an Airflow process: no `AIRFLOW_CONN_*`, so Airflow reads the Connections from its DB."""
    return {k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_")}


def _dag_bundles() -> str:
    bundles = [{"name": "dags-folder", "classpath": _LOCAL_BUNDLE, "kwargs": {}}]  # Airflow's default, unchanged
    if E2E_DAGS.is_dir():
        bundles.append({"name": "bridgecast-e2e", "classpath": _LOCAL_BUNDLE, "kwargs": {"path": str(E2E_DAGS)}})
    return json.dumps(bundles)


def stack_env(layout: Layout, secrets: dict | None = None) -> dict[str, str]:
    """Variables for every service/CLI/test of this stack (no os.environ merged); Airflow's processes get them
    `without_connections`."""
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
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": _dag_bundles(),
        **connections(layout, secrets),  # for the processes outside Airflow; Airflow's get `without_connections`
    }
    if os.environ.get("BRIDGECAST_EVENT"):  # the event file the launch DAG and the board read (config/event.yaml)
        env["BRIDGECAST_EVENT"] = str(Path(os.environ["BRIDGECAST_EVENT"]).resolve())
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


# --- Connections in Airflow's metadata DB ----------------------------------------------------------------------
def sync_connections(layout: Layout, secrets: dict, echo=print) -> dict[str, str]:
    """Write the stack's Connections into Airflow's metadata DB through the REST API (as the UI would), before the
    scheduler runs a task. Idempotent, and an edit made in the UI wins:
    - missing → created (also after someone deleted it: that is how to get the generated one back);
    - present, and the stack's value is the one it wrote last time → left alone, whatever the UI made of it;
    - present, and the stack's own value changed since (another port base, renewed var/secrets) → rewritten: the
      old value points at ports or secrets that no longer exist;
    - present but never written by this stack (made by hand) → left alone.
    Returns {conn_id: what was done}."""
    api = AirflowAPI(f"http://127.0.0.1:{layout.ports.airflow}", "bridgecast-service",
                     airflow_passwords(layout, secrets)["bridgecast-service"])
    written_path = layout.secrets / _WRITTEN_FILE
    written = json.loads(written_path.read_text()) if written_path.exists() else {}
    done = {}
    for conn_id, fields in connection_fields(layout, secrets).items():
        body = _rest_body(conn_id, fields)
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        done[conn_id] = _apply(api, conn_id, body, fingerprint, written.get(conn_id))
        if done[conn_id] != NOT_OURS:
            written[conn_id] = fingerprint
    fd = os.open(written_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(written, fh, indent=1, sort_keys=True)
    by_action: dict[str, list[str]] = {}
    for conn_id, action in done.items():
        by_action.setdefault(action, []).append(conn_id)
    echo(f"  {'airflow-connections':<22} "
         + "; ".join(f"{action}: {', '.join(ids)}" for action, ids in by_action.items()))
    return done


def _apply(api: AirflowAPI, conn_id: str, body: dict, fingerprint: str, last_written: str | None) -> str:
    try:
        api.request("GET", f"/api/v2/connections/{conn_id}")
    except AirflowAPIError as exc:
        if exc.status != 404:
            raise
        api.request("POST", "/api/v2/connections", json=body)
        return CREATED
    if last_written is None:
        return NOT_OURS
    if last_written == fingerprint:
        return KEPT
    api.request("PATCH", f"/api/v2/connections/{conn_id}", json=body)
    return UPDATED


def _rest_body(conn_id: str, fields: dict) -> dict:
    body = {"connection_id": conn_id, **{k: v for k, v in fields.items() if k != "extra"}}
    if "extra" in fields:
        body["extra"] = json.dumps(fields["extra"], ensure_ascii=False)  # the REST API takes extra as a JSON string
    return body
