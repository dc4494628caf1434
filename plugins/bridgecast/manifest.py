"""One JSON manifest per asset in S3: who sent what, when, and what became of it.

Key: `{event}/{point}/manifests/{sha256}.json`. The gateway creates it (status `received`) and appends a
receipt for every duplicate; the ingest DAG moves it to `processed` (with renditions) or `quarantined` (with
the reason). Writers never clobber each other: every update is a conditional PUT on the ETag, retried.
"""
from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from bridgecast.objects import is_manifest_key, manifest_key, manifest_prefix
from bridgecast.storage import Storage

RECEIVED, PROCESSED, QUARANTINED = "received", "processed", "quarantined"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class ManifestConflict(RuntimeError):
    pass


class ManifestStore:
    def __init__(self, storage: Storage):
        self.storage = storage

    def get(self, event_id: str, point_id: str, sha256: str) -> dict | None:
        found = self.get_versioned(event_id, point_id, sha256)
        return found[0] if found else None

    def get_versioned(self, event_id: str, point_id: str, sha256: str) -> tuple[dict, str] | None:
        """(manifest, ETag): pass it to update() as `base` to save the re-read when nobody wrote in between."""
        try:
            obj = self.storage.client.get_object(Bucket=self.storage.bucket,
                                                 Key=manifest_key(event_id, point_id, sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(obj["Body"].read()), obj["ETag"]

    def record_receipt(self, *, event_id: str, point_id: str, kind: str, sha256: str, size: int, key: str,
                       content_type: str, receipt: dict) -> tuple[dict, bool]:
        """Create the manifest for a new asset, or add a receipt to an existing one. Returns (manifest, created)."""
        receipt = {"received_at": _now(), **receipt}
        fresh = {
            "schema": 1, "event_id": event_id, "point_id": point_id, "kind": kind, "sha256": sha256,
            "size": size, "key": key, "content_type": content_type,
            "original_name": receipt.get("original_name"), "source": receipt.get("source"),
            "received_at": receipt["received_at"], "receipts": [receipt], "status": RECEIVED,
            "renditions": {}, "media": {}, "reason": None, "reason_code": None,
            "history": [{"at": receipt["received_at"], "status": RECEIVED}],
        }
        mkey = manifest_key(event_id, point_id, sha256)
        if self.storage.put_json(mkey, fresh, if_absent=True).created:
            return fresh, True

        def add_receipt(manifest: dict) -> dict:
            manifest["receipts"].append(receipt)
            return manifest

        return self.update(event_id, point_id, sha256, add_receipt), False

    def update(self, event_id: str, point_id: str, sha256: str, change: Callable[[dict], dict | None],
               attempts: int = 20, base: tuple[dict, str] | None = None) -> dict:
        """Read-modify-write with optimistic concurrency (If-Match on the ETag); `base` is a (manifest, ETag)
        the caller already read, tried first. `change` returns None for "nothing to change" (no write)."""
        mkey = manifest_key(event_id, point_id, sha256)
        client, bucket = self.storage.client, self.storage.bucket
        for attempt in range(attempts):
            if base is not None and attempt == 0:
                current, etag = copy.deepcopy(base[0]), base[1]
            else:
                obj = client.get_object(Bucket=bucket, Key=mkey)
                current, etag = json.loads(obj["Body"].read()), obj["ETag"]
            manifest = change(current)
            if manifest is None:
                return current
            body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
            try:
                client.put_object(Bucket=bucket, Key=mkey, Body=body, IfMatch=etag,
                                  ContentType="application/json; charset=utf-8")
                return manifest
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                    raise
                time.sleep(0.05 * (attempt + 1))  # someone else wrote first: re-read and re-apply
        raise ManifestConflict(f"could not update {mkey} after {attempts} concurrent-write retries")

    def set_status(self, event_id: str, point_id: str, sha256: str, status: str, *,
                   base: tuple[dict, str] | None = None, **fields) -> dict:
        """Move to `status`, once: an asset another task already finished keeps that outcome and its history."""
        def apply(manifest: dict) -> dict | None:
            if manifest["status"] in (PROCESSED, QUARANTINED):
                return None
            manifest.update(fields)
            manifest["status"] = status
            manifest["history"].append({"at": _now(), "status": status,
                                        **({"reason": fields["reason"]} if fields.get("reason") else {})})
            return manifest

        return self.update(event_id, point_id, sha256, apply, base=base)

    def iter_manifests(self, event_id: str, point_id: str | None = None, kind: str | None = None) -> Iterator[dict]:
        """Manifests of an event (optionally one point / one kind)."""
        for obj in self.storage.list_keys(manifest_prefix(event_id, point_id)):
            key = obj["Key"]
            if not is_manifest_key(key):
                continue
            manifest = self.storage.get_json(key)
            if kind is None or manifest.get("kind") == kind:
                yield manifest
