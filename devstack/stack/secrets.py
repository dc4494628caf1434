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

from bridgecast.ingest.keys import write_private as _write_private

_STACK_SECRETS = (
    "postgres_password", "airflow_db_password", "ledger_db_password",
    "s3_access_key", "s3_secret_key",
    "airflow_admin_password", "airflow_approver_password", "airflow_service_password",
    "airflow_jwt_secret", "airflow_api_secret_key",
    "portal_app_password", "fanpage_page_token", "fanpage_app_secret", "gateway_admin_token",
)


def _token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


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
