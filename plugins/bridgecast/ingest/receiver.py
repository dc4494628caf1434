"""Receive one file from a point: hash it, store it raw in S3 (never overwriting), write its manifest, announce it.

Shared by the RTMP recording path and the upload path, so both obey the same rules: a duplicate becomes a
second receipt on the same manifest (one object), and only new assets start processing.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bridgecast.ingest.keys import PointIdentity
from bridgecast.manifest import ManifestStore
from bridgecast.ingest.notify import AssetNotifier
from bridgecast.objects import raw_key
from bridgecast.storage import MULTIPART_THRESHOLD, Storage, sha256_file

log = logging.getLogger(__name__)

SINGLE_PUT_BYTES = MULTIPART_THRESHOLD


@dataclass(frozen=True)
class Received:
    sha256: str
    key: str
    size: int
    created: bool  # False: a duplicate of an asset we already had
    manifest: dict


class Receiver:
    def __init__(self, storage: Storage, manifests: ManifestStore, notifier: AssetNotifier):
        self.storage, self.manifests, self.notifier = storage, manifests, notifier

    def receive(self, path: str | os.PathLike, who: PointIdentity, *, kind: str, ext: str, content_type: str,
                source: str, original_name: str, client: str | None = None, sha256: str | None = None) -> Received:
        path = Path(path)
        size = path.stat().st_size
        # A photo is read once, into memory, and hashed there: the same bytes go to S3 with that digest.
        data = path.read_bytes() if size <= SINGLE_PUT_BYTES else None
        sha256 = sha256 or (hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path))
        receipt = {"source": source, "original_name": original_name, "client": client, "size": size}
        existing = self.manifests.get(who.event_id, who.point_id, sha256)
        if existing is not None:
            manifest, _ = self.manifests.record_receipt(
                event_id=who.event_id, point_id=who.point_id, kind=existing["kind"], sha256=sha256, size=size,
                key=existing["key"], content_type=existing["content_type"], receipt=receipt)
            return Received(sha256, existing["key"], size, False, manifest)

        key = raw_key(who.event_id, who.point_id, kind, datetime.now(timezone.utc), sha256, ext)
        if data is not None:  # a photo: one conditional PUT (S3 checks its SHA-256), no multipart threads
            self.storage.put_bytes(key, data, content_type=content_type, if_absent=True, metadata={"sha256": sha256},
                                   sha256=sha256)
        else:
            self.storage.upload_file(path, key, content_type=content_type, if_absent=True, sha256=sha256)
        manifest, created = self.manifests.record_receipt(
            event_id=who.event_id, point_id=who.point_id, kind=kind, sha256=sha256, size=size, key=key,
            content_type=content_type, receipt=receipt)
        if not created:
            # Two identical uploads raced; the other one's object is the asset, ours is a spare copy.
            if manifest["key"] != key:
                self.storage.delete(key)
            return Received(sha256, manifest["key"], size, False, manifest)
        self.notifier.notify(kind, {"event": who.event_id, "point": who.point_id, "kind": kind, "key": key,
                                    "sha256": sha256})
        log.info("received %s %s/%s %s (%d bytes) from %s", kind, who.event_id, who.point_id, key, size, source)
        return Received(sha256, key, size, True, manifest)
