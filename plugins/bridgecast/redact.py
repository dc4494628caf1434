"""The one redaction filter: no secret this process holds reaches a log line Bridgecast writes.

What it knows, by value: Connection passwords and secret-looking extras (`AIRFLOW_CONN_*`), secret-named settings
(`*_SECRET`, `*_PASSWORD`, `*_TOKEN`, URL passwords), every point's stream key and upload token (current and revoked,
from `BRIDGECAST_POINT_KEYS_DIR`, re-read when a key file changes) and whatever a component `register()`s (the
gateway's callback secret, a relay's output URL). By shape (`media.redact`): `rtmp(s)://host/app/<stream…>`,
`key=`/`token=`/signature query values, `user:password@` and bearer tokens.

How it is applied: `install()` wraps the process's log-record factory, so every record — ours, uvicorn's, a
library's, through any handler added later — has its message, arguments and traceback redacted when it is
created. The gateway calls `install()` at start. A task gets it by calling `install()` once (idempotent) before
it logs, e.g. first thing in a task body (`from bridgecast.redact import install; install()`); Airflow's own
secrets masker still covers the Connections it resolves, this filter adds stream keys, upload tokens and URLs.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from media.redact import MIN_SECRET_LEN, redact

_SECRET_NAME = re.compile(r"(?i)(secret|password|passwd|token|fernet|jwt|private|credential)")
_NOT_A_VALUE = re.compile(r"(?i)_(file|dir|path|folder)$")  # names a file holding secrets, is not one
_URL_PASSWORD = re.compile(r"://[^:/\s@]*:([^@/\s]+)@")
_RECHECK_S = 1.0  # key files are stat()ed at most once a second, not once per log line


class SecretRegistry:
    """Every secret value this process knows, kept fresh as key files change."""

    def __init__(self, environ: dict[str, str] | None = None):
        self._environ = environ if environ is not None else os.environ
        self._lock = threading.Lock()
        self._registered: set[str] = set()
        self._env_secrets: set[str] | None = None
        self._key_files: dict[Path, tuple[float, frozenset[str]]] = {}
        self._checked_at = 0.0

    def register(self, *secrets: str) -> None:
        with self._lock:
            self._registered.update(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)

    def secrets(self) -> set[str]:
        with self._lock:
            if self._env_secrets is None:
                self._env_secrets = _environment_secrets(self._environ)
            now = time.monotonic()
            if now - self._checked_at >= _RECHECK_S:
                self._checked_at = now
                self._refresh_key_files()
            out = set(self._registered) | self._env_secrets
            for _, values in self._key_files.values():
                out |= values
            return out

    def _refresh_key_files(self) -> None:
        keys_dir = self._environ.get("BRIDGECAST_POINT_KEYS_DIR")
        if not keys_dir:
            return
        seen = set()
        for path in Path(keys_dir).glob("*.json"):
            seen.add(path)
            try:
                mtime = path.stat().st_mtime
                if path in self._key_files and self._key_files[path][0] == mtime:
                    continue
                self._key_files[path] = (mtime, frozenset(_point_secrets(json.loads(path.read_text()))))
            except (OSError, ValueError):
                continue  # being rewritten: keep what we had; it is read again next second
        for gone in set(self._key_files) - seen:
            # A removed event file's keys stay known: they may still sit in a line being written.
            self._registered.update(self._key_files.pop(gone)[1])


def _point_secrets(data: dict) -> set[str]:
    out = set()
    entries = list((data.get("points") or {}).values()) + list(data.get("revoked") or [])
    for entry in entries:
        if isinstance(entry, dict):
            out.update(str(entry[k]) for k in ("stream_key", "upload_token") if entry.get(k))
    return out


def _environment_secrets(environ) -> set[str]:
    out: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        if name.startswith("AIRFLOW_CONN_"):
            out.update(_connection_secrets(value))
        elif _SECRET_NAME.search(name) and not _NOT_A_VALUE.search(name):
            out.add(value)
        out.update(_URL_PASSWORD.findall(value))
    return {s for s in out if s and len(s) >= MIN_SECRET_LEN}


def _connection_secrets(value: str) -> set[str]:
    """Password, secret-looking extras (and an aws login) of an `AIRFLOW_CONN_*` value, JSON or URI form.

    Parsed here with the standard library, not through `bridgecast.connections` (which loads the Task SDK): the
    filter runs in the gateway on its first log line, and that must not cost seconds of imports."""
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return set()
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                extra = {}
        out = {str(data.get("password") or "")} | _secret_extras(extra)
        if data.get("conn_type") == "aws":  # an access key id is half a credential and names the account
            out.add(str(data.get("login") or ""))
        return out
    parts = urlsplit(value)
    out = {unquote(parts.password or "")}
    if parts.scheme == "aws":
        out.add(unquote(parts.username or ""))
    out.update(v for k, v in parse_qsl(parts.query) if _SECRET_NAME.search(k) or k.lower().endswith("key"))
    return out


def _secret_extras(extra, key: str = "") -> set[str]:
    if isinstance(extra, dict):
        return set().union(*(_secret_extras(v, k) for k, v in extra.items())) if extra else set()
    if isinstance(extra, str) and (_SECRET_NAME.search(key) or key.lower().endswith("key")):
        return {extra}
    return set()


REGISTRY = SecretRegistry()


def register(*secrets: str) -> None:
    """Tell the filter about a secret it cannot find by itself (read from a file, received over the network)."""
    REGISTRY.register(*secrets)


def redact_text(text: str) -> str:
    return redact(text, REGISTRY.secrets())


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Freeze the record's message with every secret masked (arguments merged in, traceback pre-rendered)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep what there is, masked, rather than lose the line
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """The same redaction as a handler/logger filter, for a handler that must be guarded explicitly."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Redact every log record this process creates from now on (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            return redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True
