"""`airflow-init` of docker-compose.yml: what a fresh deployment needs before its services start. Idempotent — it
runs at every `docker compose up` — and run as root, so it can hand the state it writes to the services' user.

1. .env is complete: every value the services need is set, and none is still the example's `change-me`;
2. Airflow's metadata DB is migrated, and the ledger's database exists;
3. the login: FAB's tables migrated, the office's roles applied (`bridgecast.roles`), and the accounts admin
   (Admin), approver (Người duyệt) and bridgecast-service (Admin: the ingest gateway posts asset events with it)
   created or brought up to date from .env — a password changed in .env takes effect at the next `up`;
4. the Connections (`AIRFLOW_CONN_*` of this container only) are in the metadata DB: created when missing, updated
   when .env changed since the last init — unless someone edited them in the UI since, then the UI's value stays;
5. the S3 bucket exists; the event's point keys are issued (kept if they exist);
6. everything it wrote belongs to AIRFLOW_UID:0 (the gateway, the api-server and nginx run as that uid), secrets
   0600 in 0700 directories.

    docker compose run --rm airflow-init      # by hand, e.g. after editing .env
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REQUIRED = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
            "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_APPROVER_PASSWORD", "AIRFLOW_SERVICE_PASSWORD", "S3_ACCESS_KEY",
            "S3_SECRET_KEY", "GATEWAY_ADMIN_TOKEN", "RTMP_CALLBACK_SECRET")
# The deployment's own accounts: (role keys of bridgecast.roles, the .env variable of the password). Staff accounts
# are added in the UI (Security → Users) or with `python -m bridgecast.roles --users-json -`.
ACCOUNTS = {"admin": (["admin"], "AIRFLOW_ADMIN_PASSWORD"), "approver": (["approver"], "AIRFLOW_APPROVER_PASSWORD"),
            "bridgecast-service": (["admin"], "AIRFLOW_SERVICE_PASSWORD")}
CONN_PREFIX = "AIRFLOW_CONN_"
WRITTEN_FILE = "connections-written.json"  # fingerprint per Connection of what the last init wrote


def say(text: str) -> None:
    print(f"airflow-init: {text}", flush=True)


def check_env(env=os.environ) -> list[str]:
    """Problems with .env, each naming the variable and what to do."""
    problems = []
    for name in REQUIRED:
        value = env.get(name, "")
        if not value:
            problems.append(f"{name} is empty: set it in .env")
        elif value.startswith("change-me"):
            problems.append(f"{name} is still the example's placeholder: put a real secret in .env")
    if env.get("AIRFLOW_FERNET_KEY") and len(env["AIRFLOW_FERNET_KEY"]) != 44:
        problems.append("AIRFLOW_FERNET_KEY is not a Fernet key: generate one with `python -c \"from "
                        "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`")
    return problems


# --- databases ------------------------------------------------------------------------------------------------------
def migrate_airflow_db() -> None:
    subprocess.run(["airflow", "db", "migrate"], check=True)


def ensure_ledger_db(name: str = "bridgecast") -> None:
    """The publication ledger's database, on Airflow's PostgreSQL server, owned by the same role."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    conn = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                            dbname=url.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
            say(f"created database {name}")
    conn.close()


# --- the login: FAB's tables, the roles, the deployment's accounts ---------------------------------------------------
def login_accounts(env=os.environ) -> list[dict]:
    return [{"username": user, "roles": roles, "password": env[variable]}
            for user, (roles, variable) in ACCOUNTS.items()]


def set_up_login() -> None:
    subprocess.run(["airflow", "fab-db", "migrate"], check=True)
    done = subprocess.run([sys.executable, "-m", "bridgecast.roles", "--users-json", "-"], check=True, text=True,
                          input=json.dumps(login_accounts()), capture_output=True)
    say(f"roles and accounts: {done.stdout.strip()}")  # what was done, never a password


def write_private(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


# --- Connections ----------------------------------------------------------------------------------------------------
def _fingerprint(conn) -> str:
    fields = conn.to_dict(prune_empty=True, validate=False)
    fields.pop("conn_id", None)
    fields.pop("description", None)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def load_connections(written_path: Path) -> dict[str, str]:
    """Every `AIRFLOW_CONN_<ID>` of this container into the metadata DB (the Airflow services have none in their
    environment, so the DB — and the UI — is where they read them). Returns {conn_id: what was done}."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    written = json.loads(written_path.read_text()) if written_path.exists() else {}
    done = {}
    with create_session() as session:
        for var, value in sorted(os.environ.items()):
            if not var.startswith(CONN_PREFIX):
                continue
            conn_id = var[len(CONN_PREFIX):].lower()
            wanted = Connection.from_json(value, conn_id=conn_id)
            current = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
            if current is None:
                session.add(wanted)
                done[conn_id] = "created"
            elif _fingerprint(current) == _fingerprint(wanted):
                done[conn_id] = "kept"
            elif written.get(conn_id) == _fingerprint(current):  # still what init wrote: .env changed since
                for field in ("conn_type", "host", "login", "password", "schema", "port", "extra"):
                    setattr(current, field, getattr(wanted, field))
                done[conn_id] = "updated from .env"
            else:
                done[conn_id] = "kept (edited in the UI)"
                continue
            written[conn_id] = _fingerprint(wanted)
    write_private(written_path, written)
    say("Connections: " + ", ".join(f"{c} {what}" for c, what in done.items()))
    return done


# --- S3 and point keys ----------------------------------------------------------------------------------------------
def ensure_bucket(timeout_s: float = 120) -> None:
    """The bucket of Connection bridgecast_s3; SeaweedFS answers /healthz before its volume server is ready."""
    import boto3

    fields = json.loads(os.environ["AIRFLOW_CONN_BRIDGECAST_S3"])
    extra = fields.get("extra", {})
    s3 = boto3.client("s3", endpoint_url=extra["endpoint_url"], region_name=extra.get("region_name", "us-east-1"),
                      aws_access_key_id=fields["login"], aws_secret_access_key=fields["password"])
    bucket, deadline = extra["bucket"], time.monotonic() + timeout_s
    while True:
        try:
            if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
                s3.create_bucket(Bucket=bucket)
                say(f"created bucket {bucket}")
            s3.put_object(Bucket=bucket, Key=".bridgecast/canary", Body=b"ok")
            return
        except Exception as exc:  # not ready yet; the last error is reported on timeout
            if time.monotonic() > deadline:
                raise SystemExit(f"S3 at {extra['endpoint_url']} not usable after {timeout_s:.0f}s: {exc}")
            time.sleep(2)


def issue_keys(secrets_dir: Path) -> Path:
    from bridgecast.event import default_event_path, load_event
    from bridgecast.ingest.keys import issue_point_keys

    event_path = default_event_path()
    event = load_event(event_path)
    path = issue_point_keys(secrets_dir, event.id, [p.id for p in event.points], event_file=str(event_path))
    say(f"point keys of {event.id} ({len(event.points)} points) in {path}")
    return path


# --- ownership ------------------------------------------------------------------------------------------------------
def hand_over(root: Path, uid: int, *, private: bool) -> None:
    """chown -R uid:0; private trees get 0700 directories and 0600 files (the key files, the passwords file)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, uid, 0)
        if private:
            path.chmod(0o700 if path.is_dir() else 0o600)


def main() -> int:
    problems = check_env()
    if problems:
        print("airflow-init: .env is not ready:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    uid = int(os.environ.get("AIRFLOW_UID") or 50000)
    secrets_dir = Path(os.environ["BRIDGECAST_POINT_KEYS_DIR"]).parent
    migrate_airflow_db()
    ensure_ledger_db()
    set_up_login()
    load_connections(secrets_dir / WRITTEN_FILE)
    ensure_bucket()
    issue_keys(secrets_dir)
    hand_over(secrets_dir, uid, private=True)
    for shared in os.environ.get("BRIDGECAST_INIT_CHOWN", "").split(":"):
        if shared:
            Path(shared).mkdir(parents=True, exist_ok=True)
            hand_over(Path(shared), uid, private=False)
    say(f"ready; state owned by uid {uid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
