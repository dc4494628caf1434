"""End to end through the real Airflow scheduler: what the gateway stores is processed by `bridgecast_ingest` by
itself — a recording published over RTMP, field photos with bad files among them — and a rerun changes nothing."""
from __future__ import annotations

import hashlib
import io
import sys
import time

import pytest
from ingest_testkit import (EVENT_ID, html_saved_as_photo, jpeg_bytes, oversized_png, publish_test_stream,
                            truncated_jpeg, wait_for)
from PIL import Image

from bridgecast.ingest.assets import raw_asset_uri
from devstack import synthetic

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

DAG_ID = "bridgecast_ingest"
FINAL = ("processed", "quarantined")
PROCESS_WITHIN_S = 120  # upload → processed manifest; ~5 s on a warm, idle stack, a run's start-up included


@pytest.fixture(scope="module")
def ingest_dag(airflow_api):
    """The ingest DAG switched on (it is created paused), as an operator does before the event; restored after."""
    was_paused = airflow_api.wait_for_dag(DAG_ID, timeout_s=120)["is_paused"]
    airflow_api.set_paused(DAG_ID, False)
    yield airflow_api
    airflow_api.set_paused(DAG_ID, was_paused)


def _final_manifest(manifests, point: str, sha256: str, timeout_s: float = PROCESS_WITHIN_S) -> dict:
    def final():
        manifest = manifests.get(EVENT_ID, point, sha256)
        return manifest if manifest and manifest["status"] in FINAL else None

    return wait_for(final, timeout_s=timeout_s, interval_s=1, what=f"the ingest DAG to process {point}/{sha256[:12]}")


def _asset_events(airflow_api, kind: str, sha256s: set[str]) -> dict[str, dict]:
    """Airflow's asset events for these assets (by sha256), newest first."""
    events = airflow_api.request("GET", "/api/v2/assets/events", params={
        "asset_id": airflow_api.asset_id(raw_asset_uri(kind)), "order_by": "-timestamp", "limit": 200})
    return {e["extra"]["sha256"]: e for e in events["asset_events"] if (e.get("extra") or {}).get("sha256") in sha256s}


def _run_that_consumed(airflow_api, kind: str, sha256: str) -> dict:
    """The ingest run the asset event of `sha256` went into, once it has finished."""
    def consumed():
        event = _asset_events(airflow_api, kind, {sha256}).get(sha256)
        runs = [r for r in (event or {}).get("created_dagruns", []) if r["dag_id"] == DAG_ID]
        return runs[0] if runs else None

    run = wait_for(consumed, timeout_s=60, interval_s=1, what=f"an ingest run to consume {sha256[:12]}")
    return airflow_api.wait_run(DAG_ID, run["run_id"], timeout_s=120)


def _batch_results(airflow_api, run_id: str) -> list[list[dict]]:
    mapped = sorted(ti["map_index"] for ti in airflow_api.task_instances(DAG_ID, run_id)
                    if ti["task_id"] == "process_batch")
    return [airflow_api.xcom(DAG_ID, run_id, "process_batch", map_index=i) for i in mapped]


def _exif_free(jpeg: bytes) -> bool:
    with Image.open(io.BytesIO(jpeg)) as image:
        return (image.format == "JPEG" and not image.getexif() and "exif" not in image.info
                and b"Exif\x00\x00" not in jpeg and b"PhoneMaker" not in jpeg)


def test_a_published_recording_is_stored_announced_and_processed_by_an_ingest_run(stack, gateway, storage,
                                                                                  manifests, ingest_dag, tmp_path):
    import media

    point = "binh-xuyen"
    before = gateway.live_point(point)
    segments_before = len(before["segments"]) if before else 0
    started = time.monotonic()
    published = publish_test_stream(stack, point, gateway.keys(point)["stream_key"], seconds=4)
    assert published.returncode == 0, published.stderr

    def segment_stored():
        live = gateway.live_point(point)
        return live["segments"][-1] if live and live["finished"] and len(live["segments"]) > segments_before else None

    segment = wait_for(segment_stored, timeout_s=60, what="the recording segment to reach S3")
    assert segment["key"].startswith(f"{EVENT_ID}/{point}/raw/recording/")
    manifest = _final_manifest(manifests, point, segment["sha256"])
    elapsed = time.monotonic() - started
    print(f"\nrecording: publish start → processed in {elapsed:.1f}s", file=sys.stderr)

    assert manifest["status"] == "processed", manifest.get("reason")
    assert (manifest["kind"], manifest["source"], manifest["key"]) == ("recording", "rtmp", segment["key"])
    assert [h["status"] for h in manifest["history"]] == ["received", "processed"]
    house = manifest["renditions"]["recording"]
    assert house.startswith(f"{EVENT_ID}/{point}/processed/recording/") and house.endswith(".mp4")
    assert manifest["renditions"]["poster"].startswith(f"{EVENT_ID}/{point}/processed/poster/")
    assert storage.head(manifest["renditions"]["poster"])["ContentType"] == "image/jpeg"
    assert 3.0 <= manifest["media"]["duration"] <= 6.0
    # The rendition really is in the house profile (the test publisher sends 25 fps Baseline: it was transcoded).
    assert media.conformance(media.probe(storage.download_file(house, tmp_path / "house.mp4"))) == []

    run = _run_that_consumed(ingest_dag, "recording", segment["sha256"])
    assert run["state"] == "success" and run["run_type"] == "asset_triggered"


def test_bad_files_are_quarantined_with_the_reason_and_the_good_ones_in_their_batch_processed(
        gateway, storage, manifests, ingest_dag, tmp_path):

    point = "vinh-tuong"
    gps_photo = synthetic.field_photo(tmp_path / "le-ra-quan.jpg", "Lễ ra quân Vĩnh Tường", seed=int(time.time()))
    files = {  # original name → (bytes, what the team's phone declared, expected outcome)
        "Lễ ra quân – Vĩnh Tường.jpg": (gps_photo.read_bytes(), "image/jpeg", "processed"),
        "IMG_2041.jpg": (truncated_jpeg(), "image/jpeg", "truncated"),
        "anh-trao-so.jpg": (jpeg_bytes(1200, 1600), "image/jpeg", "processed"),
        "trang-dang-nhap.jpg": (html_saved_as_photo(), "image/jpeg", "not_an_image"),
        "panorama-khong-lo.png": (oversized_png(), "image/png", "decompression_bomb"),
    }
    sha = {name: hashlib.sha256(data).hexdigest() for name, (data, _, _) in files.items()}

    # Events that arrive close together are meant to share a run. To make that certain here, the DAG is paused
    # while the team's upload lands in Airflow; the next event after un-pausing starts one run taking them all.
    ingest_dag.set_paused(DAG_ID, True)
    try:
        sent = gateway.upload_multipart(point, [(n, d, t) for n, (d, t, _) in files.items()])
        assert sent.status_code == 200, sent.text  # all accepted: judging the content is the DAG's job
        wait_for(lambda: gateway.healthz()["asset_events_queued"] == 0
                 and len(_asset_events(ingest_dag, "photo", set(sha.values()))) == len(files),
                 timeout_s=60, interval_s=1, what="the five asset events to reach Airflow")
    finally:
        ingest_dag.set_paused(DAG_ID, False)
    nudge = jpeg_bytes()
    assert gateway.upload_multipart(point, [("anh-cuoi.jpg", nudge, "image/jpeg")]).status_code == 200

    results = {name: _final_manifest(manifests, point, sha[name]) for name in files}
    run = _run_that_consumed(ingest_dag, "photo", hashlib.sha256(nudge).hexdigest())
    assert run["state"] == "success"
    consumed = ingest_dag.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    assert set(sha.values()) <= {e["extra"].get("sha256") for e in consumed["asset_events"]}

    for name, (data, _, expected) in files.items():
        manifest = results[name]
        if expected == "processed":
            assert manifest["status"] == "processed", manifest["reason"]
            assert set(manifest["renditions"]) == {"web", "thumb"}
            for rendition in manifest["renditions"].values():
                assert rendition.startswith(f"{EVENT_ID}/{point}/processed/")
                assert _exif_free(storage.get_bytes(rendition)), f"{rendition} still carries EXIF"
        else:
            assert manifest["status"] == "quarantined" and manifest["reason_code"] == expected
            # The team reads this on the upload page: it names their file and says what to do.
            assert manifest["reason"].startswith(f"{name}: ") and " — " in manifest["reason"]
            assert "/tmp" not in manifest["reason"] and not manifest["renditions"]
            record = storage.get_json(f"{EVENT_ID}/{point}/quarantine/{sha[name]}.json")
            assert record["reason_code"] == expected and record["key"] == manifest["key"]
        assert storage.get_bytes(manifest["key"]) == data  # the raw original is kept untouched, GPS and all
    web = Image.open(io.BytesIO(storage.get_bytes(results["anh-trao-so.jpg"]["renditions"]["web"])))
    assert max(web.size) == 1600 and web.size[0] < web.size[1]

    # Bad and good files went through the same mapped task, and that task succeeded for all of them.
    ours = {m["key"]: m["status"] for m in results.values()}
    shared = [b for b in _batch_results(ingest_dag, run["dag_run_id"])
              if {ours.get(r["key"]) for r in b} >= {"processed", "quarantined"}]
    assert shared, "no batch held both a good and a bad file of this upload"
    assert all(r["status"] == ours[r["key"]] for r in shared[0] if r["key"] in ours)

    # A rerun (the operator clears the run's processing) is a no-op: nothing rewritten, nothing re-derived.
    etags = {k: storage.head(k)["ETag"] for m in results.values() for k in m["renditions"].values()}
    started = time.monotonic()
    ingest_dag.clear_tasks(DAG_ID, run["dag_run_id"], ["process_batch"], downstream=True)
    rerun = wait_for(lambda: (r := ingest_dag.run(DAG_ID, run["dag_run_id"]))["state"] in ("success", "failed")
                     and r["end_date"] != run["end_date"] and r, timeout_s=120, interval_s=1,
                     what="the cleared run to finish again")
    print(f"\nrerun of the cleared ingest run: {time.monotonic() - started:.1f}s", file=sys.stderr)
    assert rerun["state"] == "success"
    again = [r for b in _batch_results(ingest_dag, run["dag_run_id"]) for r in b if r["key"] in ours]
    assert len(again) == len(files) and all(r.get("skipped") and r["status"] == ours[r["key"]] for r in again)
    for name in files:
        assert manifests.get(EVENT_ID, point, sha[name])["history"] == results[name]["history"]
    assert {k: storage.head(k)["ETag"] for k in etags} == etags
