"""Announce new raw assets to Airflow as asset events — durably.

Every event is written to an outbox file first and deleted only once Airflow accepted it; a background
thread retries what is left. So an api-server restart or a busy scheduler delays processing, never loses it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path

from bridgecast.ingest.assets import raw_asset_uri

log = logging.getLogger(__name__)


class AssetNotifier:
    def __init__(self, outbox: str | os.PathLike, api_factory, retry_every_s: float = 5.0):
        self.outbox = Path(outbox)
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._api_factory = api_factory  # built lazily: the gateway must start even when Airflow is down
        self._api = None
        self._asset_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.retry_every_s = retry_every_s
        self._thread: threading.Thread | None = None

    def notify(self, kind: str, extra: dict) -> None:
        """Queue one asset event and try to deliver it right away."""
        entry = {"uri": raw_asset_uri(kind), "extra": extra, "queued_at": time.time()}
        path = self.outbox / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, ensure_ascii=False))
        os.replace(tmp, path)
        self._wake.set()

    def pending(self) -> int:
        return len(list(self.outbox.glob("*.json")))

    def flush(self) -> int:
        """Deliver queued events in order; stop at the first failure (Airflow down). Returns how many left."""
        with self._lock:
            for path in sorted(self.outbox.glob("*.json")):
                entry = json.loads(path.read_text())
                try:
                    self._deliver(entry)
                except Exception as exc:  # Airflow unreachable, restarting, or the DAG not parsed yet
                    self._asset_ids.clear()  # e.g. the asset was re-registered: look its id up again
                    log.warning("asset event for %s not delivered yet (%s); %d queued", entry["extra"].get("key"),
                                exc, self.pending())
                    return self.pending()
                path.unlink()
            return 0

    def _deliver(self, entry: dict) -> None:
        if self._api is None:
            self._api = self._api_factory()
        # The asset's id is looked up once, not per event: a burst of uploads costs Airflow one call per photo.
        if entry["uri"] not in self._asset_ids:
            self._asset_ids[entry["uri"]] = self._api.asset_id(entry["uri"])
        self._api.request("POST", "/api/v2/assets/events",
                          json={"asset_id": self._asset_ids[entry["uri"]], "extra": entry["extra"]})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="asset-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry_every_s)
            self._wake.clear()
            self.flush()
