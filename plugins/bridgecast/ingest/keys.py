"""Per-point credentials: a stream key (RTMP publish) and an upload token (field-team upload link).

Keys live in one JSON file per event under `BRIDGECAST_POINT_KEYS_DIR` (generated into var/secrets, or
mounted from a secret store in production). The store re-reads a file when it changes, so a revoked key stops
working at the next publish or upload without restarting anything.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path


REVOKED = "revoked"


@dataclass(frozen=True)
class PointIdentity:
    event_id: str
    point_id: str
    event_file: str | None


class KeyStore:
    def __init__(self, keys_dir: str | os.PathLike):
        self.keys_dir = Path(keys_dir)
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[float, dict]] = {}

    @classmethod
    def from_env(cls) -> "KeyStore":
        keys_dir = os.environ.get("BRIDGECAST_POINT_KEYS_DIR")
        if not keys_dir:
            raise RuntimeError("BRIDGECAST_POINT_KEYS_DIR is not set: point it at the directory of point key files")
        return cls(keys_dir)

    def _files(self) -> list[dict]:
        out = []
        with self._lock:
            for path in sorted(self.keys_dir.glob("*.json")):
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                cached = self._cache.get(path)
                if cached is None or cached[0] != mtime:
                    try:
                        cached = (mtime, json.loads(path.read_text()))
                    except (OSError, ValueError):
                        continue  # a file being rewritten: its previous content stays cached below
                    self._cache[path] = cached
                out.append(cached[1])
        return out

    def by_stream_key(self, point_id: str, key: str | None) -> PointIdentity | None:
        """The identity behind a publish to `live/<point_id>?key=<key>`, or None (unknown, wrong point, revoked).

        A key proves one point of one event: it is compared with that point's entry only, event by event."""
        if not key:
            return None
        for data in self._files():
            entry = data.get("points", {}).get(point_id)
            if entry and not entry.get("revoked") and _same(entry["stream_key"], key):
                return PointIdentity(data["event_id"], point_id, data.get("event_file"))
        return None

    def by_upload_token(self, token: str | None) -> PointIdentity | None:
        if not token:
            return None
        for data in self._files():
            for point_id, entry in data.get("points", {}).items():
                if not entry.get("revoked") and _same(entry["upload_token"], token):
                    return PointIdentity(data["event_id"], point_id, data.get("event_file"))
        return None

    def stream_key_fingerprint(self, event_id: str, point_id: str) -> str | None:
        """The fingerprint of the point's current stream key; REVOKED if it is revoked; None if the event or the
        point is unknown (a key file missing or being replaced says nothing about one key)."""
        for data in self._files():
            if data.get("event_id") != event_id:
                continue
            entry = data.get("points", {}).get(point_id)
            if entry is None:
                return None
            return REVOKED if entry.get("revoked") else key_fingerprint(entry["stream_key"])
        return None


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison that also takes what a client may send: any Unicode (compared as UTF-8 bytes;
    `hmac.compare_digest` refuses non-ASCII str), never an exception."""
    try:
        return hmac.compare_digest(str(expected).encode("utf-8"), str(given).encode("utf-8", "surrogatepass"))
    except (UnicodeError, TypeError):
        return False


def key_fingerprint(key: str) -> str:
    """A stream key's stand-in for the live journal: says "the same key" without holding the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


# --- issuing: one file per event, mode 600, read by the gateway's KeyStore above --------------------------------

def _token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def write_private(path: Path, data: dict) -> None:
    """Write JSON readable by its owner only, atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


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
            data["points"][pid] = {"stream_key": _token(), "upload_token": _token(), "revoked": False}
            changed = True
    if changed or not path.exists():
        write_private(path, data)
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
    data["points"][point_id] = {"stream_key": _token(), "upload_token": _token(), "revoked": False}
    write_private(path, data)
    return data["points"][point_id]
