"""Per-point credentials: a stream key (RTMP publish) and an upload token (field-team upload link).

Keys live in one JSON file per event under `BRIDGECAST_POINT_KEYS_DIR` (generated into var/secrets, or
mounted from a secret store in production). The store re-reads a file when it changes, so a revoked key stops
working at the next publish or upload without restarting anything.
"""
from __future__ import annotations

import hmac
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path


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
        """The identity behind a publish to `live/<point_id>?key=<key>`, or None (unknown, wrong point, revoked)."""
        if not key:
            return None
        for data in self._files():
            entry = data.get("points", {}).get(point_id)
            if entry and not entry.get("revoked") and hmac.compare_digest(entry["stream_key"], key):
                return PointIdentity(data["event_id"], point_id, data.get("event_file"))
        return None

    def by_upload_token(self, token: str | None) -> PointIdentity | None:
        if not token:
            return None
        for data in self._files():
            for point_id, entry in data.get("points", {}).items():
                if not entry.get("revoked") and hmac.compare_digest(entry["upload_token"], token):
                    return PointIdentity(data["event_id"], point_id, data.get("event_file"))
        return None
