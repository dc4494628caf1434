"""The same photo sent again (even under another name) is one asset: one raw object, one manifest, all receipts."""
from __future__ import annotations

import hashlib

import pytest
from ingest_testkit import EVENT_ID, jpeg_bytes, wait_for

from bridgecast.ingest.assets import assets_in

pytestmark = pytest.mark.stack

POINT = "phuc-yen"


def test_a_photo_sent_twice_and_renamed_is_stored_once_with_every_receipt(gateway, storage, manifests,
                                                                            airflow_api):
    photo = jpeg_bytes()
    sha256 = hashlib.sha256(photo).hexdigest()

    first = gateway.upload_multipart(POINT, [("IMG_0412.jpg", photo, "image/jpeg")]).json()["results"][0]
    again = gateway.upload_multipart(POINT, [("IMG_0412.jpg", photo, "image/jpeg")]).json()["results"][0]
    # The third copy comes through the resumable path the upload page uses, under a Vietnamese name.
    renamed_name = "Ảnh đội Phúc Yên – lễ ra quân.jpg"
    opened = gateway.open_session(POINT, renamed_name, len(photo), "image/jpeg").json()
    renamed = gateway.patch_chunk(POINT, opened["id"], 0, photo).json()["result"]

    assert (first["duplicate"], again["duplicate"], renamed["duplicate"]) == (False, True, True)
    assert first["sha256"] == again["sha256"] == renamed["sha256"] == sha256
    assert first["key"] == again["key"] == renamed["key"]
    assert first["key"].startswith(f"{EVENT_ID}/{POINT}/raw/photo/") and sha256[:12] in first["key"]

    raw_copies = [o["Key"] for o in storage.list_keys(f"{EVENT_ID}/{POINT}/raw/photo/") if sha256[:12] in o["Key"]]
    assert raw_copies == [first["key"]]
    assert storage.get_bytes(first["key"]) == photo

    manifest = manifests.get(EVENT_ID, POINT, sha256)
    assert [r["original_name"] for r in manifest["receipts"]] == ["IMG_0412.jpg", "IMG_0412.jpg", renamed_name]
    assert manifest["original_name"] == "IMG_0412.jpg" and manifest["kind"] == "photo"

    # Only the first copy starts processing: Airflow gets exactly one asset event for this photo.
    photo_asset = airflow_api.asset_id("s3://bridgecast/raw/photo")

    def events_for_this_photo():
        gateway_queue_empty = gateway.healthz()["asset_events_queued"] == 0
        events = airflow_api.request("GET", "/api/v2/assets/events", params={
            "asset_id": photo_asset, "order_by": "-timestamp", "limit": 100})["asset_events"]
        matching = [item for e in events for item in assets_in(e.get("extra") or {}) if item.get("sha256") == sha256]
        return matching if gateway_queue_empty and matching else None

    assert len(wait_for(events_for_this_photo, timeout_s=60, what="the photo's asset event in Airflow")) == 1
