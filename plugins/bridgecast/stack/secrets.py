"""Local secrets of the embedded stack: generated once into `var/secrets/` (mode 600), never committed.

Production takes the same values from Airflow Connections / a secrets backend; nothing here is a default
credential that could leak into a real deployment.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

_STACK_SECRETS = (
    "postgres_password", "airflow_db_password", "ledger_db_password",
    "s3_access_key", "s3_secret_key",
    "airflow_admin_password", "airflow_approver_password", "airflow_service_password",
    "airflow_jwt_secret", "airflow_api_secret_key",
    "portal_app_password", "fanpage_page_token", "fanpage_app_secret", "gateway_admin_token",
)


def _token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def _write_private(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def stack_secrets(secrets_dir: Path) -> dict[str, str]:
    """Load the stack's secrets, generating any that are missing (idempotent)."""
    path = secrets_dir / "stack.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in _STACK_SECRETS:
        if name not in data:
            data[name] = _token()
            changed = True
    if "s3_access_key" in data and not data["s3_access_key"].isalnum():
        data["s3_access_key"] = "BC" + secrets.token_hex(9).upper()
        changed = True
    if "airflow_fernet_key" not in data:
        data["airflow_fernet_key"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
        changed = True
    if "fanpage_page_id" not in data:
        data["fanpage_page_id"] = str(100000000000000 + secrets.randbelow(10**14))
        changed = True
    if changed:
        _write_private(path, data)
    return data


def point_keys_file(secrets_dir: Path, event_id: str) -> Path:
    return secrets_dir / "points" / f"{event_id}.json"


def issue_point_keys(secrets_dir: Path, event_id: str, point_ids: list[str], event_file: str | None = None) -> Path:
    """Give every point a stream key and an upload token (keeps existing ones; idempotent)."""
    path = point_keys_file(secrets_dir, event_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.loads(path.read_text()) if path.exists() else {"event_id": event_id, "points": {}}
    changed = False
    if event_file and data.get("event_file") != str(event_file):
        data["event_file"] = str(event_file)  # the gateway reads point names and limits from it
        changed = True
    for pid in point_ids:
        if pid not in data["points"]:
            data["points"][pid] = {"stream_key": _token(18), "upload_token": _token(18), "revoked": False}
            changed = True
    if changed or not path.exists():
        _write_private(path, data)
    return path


def revoke_point_keys(secrets_dir: Path, event_id: str, point_id: str) -> dict:
    """Revoke a point's keys and issue fresh ones (the old stream key and upload link stop working at once)."""
    path = point_keys_file(secrets_dir, event_id)
    data = json.loads(path.read_text())
    old = data["points"].get(point_id)
    if old is None:
        raise KeyError(f"event {event_id!r} has no keys for point {point_id!r}")
    data.setdefault("revoked", []).append({"point": point_id, "stream_key": old["stream_key"],
                                           "upload_token": old["upload_token"]})
    data["points"][point_id] = {"stream_key": _token(18), "upload_token": _token(18), "revoked": False}
    _write_private(path, data)
    return data["points"][point_id]
