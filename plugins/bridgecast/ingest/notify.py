"""Announce new raw assets to Airflow as asset events — durably.

Every asset is written to an outbox file first and deleted only once Airflow accepted its event; a background
thread retries what is left. So an api-server restart or a busy scheduler delays processing, never loses it.

What was queued together is announced together: one asset event for up to MAX_ASSETS_PER_EVENT assets of the
same kind (`{"assets": [...]}`, read back by `assets.assets_in`). In a burst (15 photos a second) an event per
photo cost Airflow's api-server a token check, an insert and queueing the lane each — 0.014 CPU-s per photo, with
the gateway's own request and PostgreSQL's share besides. A quiet moment's single photo is announced alone, at
once; what arrives while an event is on its way, or in the GATHER_S after it, goes in the next one. (Without
that pause a burst still went out as ~1.6 photos per event: a POST is quick.)
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

MAX_ASSETS_PER_EVENT = 50  # keeps an event's extra small (~15 kB) and a run's first batch a sensible size
GATHER_S = 0.5  # after an event went out, what arrives within this long waits to go with the next one


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
        self.events_sent = 0

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
        """Deliver what is queued, in order, grouped (see the module); stop at the first failure (Airflow down).
        Returns how many assets are left."""
        with self._lock:
            for group in self._queued_groups():
                uri, extras = group[0][1]["uri"], [entry["extra"] for _, entry in group]
                try:
                    self._deliver(uri, extras[0] if len(extras) == 1 else {"assets": extras})
                except Exception as exc:  # Airflow unreachable, restarting, or the DAG not parsed yet
                    self._asset_ids.clear()  # e.g. the asset was re-registered: look its id up again
                    log.warning("asset event for %s not delivered yet (%s); %d queued",
                                ", ".join(str(e.get("key")) for e in extras[:3]) + (" …" if len(extras) > 3 else ""),
                                exc, self.pending())
                    return self.pending()
                for path, _ in group:
                    path.unlink()
                self.events_sent += 1
            return 0

    def _queued_groups(self) -> list[list[tuple[Path, dict]]]:
        """The outbox in order, cut into runs of the same asset (kind) of at most MAX_ASSETS_PER_EVENT."""
        groups: list[list[tuple[Path, dict]]] = []
        for path in sorted(self.outbox.glob("*.json")):
            entry = json.loads(path.read_text())
            if groups and groups[-1][0][1]["uri"] == entry["uri"] and len(groups[-1]) < MAX_ASSETS_PER_EVENT:
                groups[-1].append((path, entry))
            else:
                groups.append([(path, entry)])
        return groups

    def _deliver(self, uri: str, extra: dict) -> None:
        if self._api is None:
            self._api = self._api_factory()
        # The asset's id is looked up once, not per event.
        if uri not in self._asset_ids:
            self._asset_ids[uri] = self._api.asset_id(uri)
        self._api.request("POST", "/api/v2/assets/events", json={"asset_id": self._asset_ids[uri], "extra": extra})

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
            sent = self.events_sent
            self.flush()
            if self.events_sent > sent:
                self._stop.wait(GATHER_S)
