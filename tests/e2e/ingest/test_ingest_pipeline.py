"""End to end through the real Airflow scheduler: what the gateway stores is processed by its ingest lane by itself
(`bridgecast_ingest` for photos, `bridgecast_ingest_video` for videos and recordings) — a recording published over
RTMP, field photos with bad files among them, team videos from phones (MP4 and MOV, H.264 and HEVC, portrait,
variable frame rate), a HEIC photo — and a rerun changes nothing."""
from __future__ import annotations

import hashlib
import io
import sys
import time

import pytest
import requests
from ingest_testkit import (EVENT_ID, html_saved_as_photo, jpeg_bytes, oversized_png, publish_test_stream,
                            truncated_jpeg, wait_for)
from PIL import Image

from bridgecast.ingest.assets import INGEST_LANES, assets_in, ingest_dag_of, raw_asset_uri
from bridgecast.ingest.processing import LINGER_MAX_S
from devstack import synthetic
from tests.media.helpers import has_encoder, phone_clip

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

DAG_ID = "bridgecast_ingest"  # the photo lane
FINAL = ("processed", "quarantined")
PROCESS_WITHIN_S = 120  # upload → processed manifest; ~5 s on a warm, idle stack, a run's start-up included


@pytest.fixture(scope="module")
def ingest_dag(airflow_api):
    """Both ingest lanes switched on (they are created paused), as an operator does before the event; restored
    after."""
    was_paused = {dag_id: airflow_api.wait_for_dag(dag_id, timeout_s=120)["is_paused"] for dag_id in INGEST_LANES}
    for dag_id in INGEST_LANES:
        airflow_api.set_paused(dag_id, False)
    yield airflow_api
    for dag_id, paused in was_paused.items():
        airflow_api.set_paused(dag_id, paused)


def _final_manifest(manifests, point: str, sha256: str, timeout_s: float = PROCESS_WITHIN_S) -> dict:
    def final():
        manifest = manifests.get(EVENT_ID, point, sha256)
        return manifest if manifest and manifest["status"] in FINAL else None

    return wait_for(final, timeout_s=timeout_s, interval_s=1, what=f"the ingest DAG to process {point}/{sha256[:12]}")


def _asset_events(airflow_api, kind: str, sha256s: set[str]) -> dict[str, dict]:
    """Airflow's asset events for these assets (by sha256), newest first."""
    events = airflow_api.request("GET", "/api/v2/assets/events", params={
        "asset_id": airflow_api.asset_id(raw_asset_uri(kind)), "order_by": "-timestamp", "limit": 200})
    return {item["sha256"]: e for e in events["asset_events"] for item in assets_in(e.get("extra") or {})
            if item.get("sha256") in sha256s}


def _run_that_consumed(airflow_api, kind: str, sha256: str) -> dict:
    """The run of `kind`'s ingest lane the asset event of `sha256` went into, once it has finished."""
    dag_id = ingest_dag_of(kind)

    def consumed():
        event = _asset_events(airflow_api, kind, {sha256}).get(sha256)
        runs = [r for r in (event or {}).get("created_dagruns", []) if r["dag_id"] == dag_id]
        return runs[0] if runs else None

    run = wait_for(consumed, timeout_s=60, interval_s=1, what=f"a {dag_id} run to consume {sha256[:12]}")
    return airflow_api.wait_run(dag_id, run["run_id"], timeout_s=120)


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
    assert set(sha.values()) <= {item.get("sha256") for e in consumed["asset_events"]
                                 for item in assets_in(e.get("extra") or {})}

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


def _probe_rendition(storage, key: str, path):
    import media

    return media.probe(storage.download_file(key, path))


def _task_log_of(airflow_api, dag_id: str, key: str, runs: int = 10) -> str | None:
    """The log of the process_batch task of `dag_id` that processed `key` (its XCom names it), among the latest
    runs. Which run took an asset is the scheduler's business (a triggering event, a late one, or a lingering
    task)."""
    for run in airflow_api.runs(dag_id, limit=runs):
        for ti in airflow_api.task_instances(dag_id, run["dag_run_id"]):
            if ti["task_id"] != "process_batch" or ti["state"] != "success":
                continue
            results = airflow_api.xcom(dag_id, run["dag_run_id"], "process_batch", map_index=ti["map_index"])
            if any(r["key"] == key for r in results or []):
                log = airflow_api.request(
                    "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/process_batch/logs/"
                           f"{ti['try_number']}", params={"map_index": ti["map_index"]})
                return "\n".join(str(entry.get("event", entry)) if isinstance(entry, dict) else str(entry)
                                 for entry in log.get("content", []))
    return None  # not yet: the task that took it may still be running (a lingering one takes new arrivals)


def test_team_videos_from_phones_are_processed_to_the_house_profile_with_a_poster(gateway, storage, manifests,
                                                                                  ingest_dag, tmp_path):
    """The issue's bug: every uploaded .mp4 was quarantined ("ffmpeg exited with code 1") because the processed
    file's path was the download's. Phone clips as they come must end up as house-profile MP4 in S3."""
    import media
    from media.normalize import target_profile

    point, seed = "tam-duong", int(time.time())
    clips = {  # original name → (file, declared type)
        "VID_20200615_080212.mp4": (phone_clip(tmp_path / "android.mp4", rotate=90, seed=seed), "video/mp4"),
        "quay-nhanh.mp4": (phone_clip(tmp_path / "vfr.mp4", vfr=True, seed=seed + 1), "video/mp4"),
        "IMG_0042.MOV": (phone_clip(tmp_path / "iphone.mov", rotate=270, seed=seed + 2), "video/quicktime"),
    }
    if has_encoder("libx265"):  # iPhones record HEVC by default
        clips["IMG_0043.MOV"] = (phone_clip(tmp_path / "iphone-hevc.mov", codec="hevc", rotate=90, vfr=True,
                                            seed=seed + 3), "video/quicktime")
    sent = gateway.upload_multipart(point, [(name, path.read_bytes(), declared)
                                            for name, (path, declared) in clips.items()])
    assert sent.status_code == 200, sent.text
    answers = {r["file"]: r for r in sent.json()["results"]}
    assert {answers[name]["kind"] for name in clips} == {"video"}

    for name, (path, _) in clips.items():
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest = _final_manifest(manifests, point, sha256)
        assert manifest["status"] == "processed", f"{name}: {manifest.get('reason')} / {manifest.get('reason_detail')}"
        assert manifest["media"]["path"] == "normalized" and manifest["media"]["deviations"]
        house = manifest["renditions"]["video"]
        assert house.startswith(f"{EVENT_ID}/{point}/processed/video/") and house.endswith(".mp4")
        output = _probe_rendition(storage, house, tmp_path / f"{sha256[:8]}.house.mp4")
        source = media.probe(path)
        # What a viewer gets: H.264 High/AAC 48 kHz stereo, 30 fps CFR, upright, landscape 16:9.
        assert media.conformance(output, target_profile(source)) == [], name
        assert output.video.rotation == 0 and output.width > output.height
        assert output.duration == pytest.approx(source.duration, abs=0.2)
        poster = manifest["renditions"]["poster"]
        assert storage.head(poster)["ContentType"] == "image/jpeg"
        with Image.open(io.BytesIO(storage.get_bytes(poster))) as still:
            assert still.format == "JPEG" and still.size[0] == output.width
        assert storage.get_bytes(manifest["key"]) == path.read_bytes()  # the raw original is kept as sent

    # Long steps log progress in the task log (a 3 s clip is short: at least its closing line).
    last = hashlib.sha256(next(reversed(clips.values()))[0].read_bytes()).hexdigest()
    last_key = manifests.get(EVENT_ID, point, last)["key"]
    text = wait_for(lambda: _task_log_of(ingest_dag, ingest_dag_of("video"), last_key),
                    timeout_s=LINGER_MAX_S + 60, interval_s=2,
                    what="the task that processed the last clip to finish (a successful process_batch of the video "
                         "lane's last 10 runs reporting it)")
    assert "normalising " in text and ": done in " in text, text[-2000:]


def test_a_broken_team_video_is_quarantined_with_the_reason_in_the_teams_words(gateway, storage, manifests,
                                                                               ingest_dag, tmp_path):
    point, name = "tam-duong", "VID_20200615_0815.mp4"
    whole = phone_clip(tmp_path / "whole.mp4", seed=int(time.time()) + 7)
    broken = whole.read_bytes()[: whole.stat().st_size // 2]  # the upload cut short: the index (moov) never came
    sent = gateway.upload_multipart(point, [(name, broken, "video/mp4")])
    assert sent.status_code == 200, sent.text
    sha256 = hashlib.sha256(broken).hexdigest()
    manifest = _final_manifest(manifests, point, sha256)

    assert manifest["status"] == "quarantined" and manifest["reason_code"] == "no_moov"
    assert manifest["reason"] == (f"{name}: Tệp video bị hỏng hoặc tải lên chưa hết (thiếu phần 'moov') — "
                                  "hãy quay/xuất lại và gửi lại")
    # Operators keep the technical detail, naming the raw object rather than the task's scratch file.
    assert "moov atom not found" in manifest["reason_detail"] and manifest["key"] in manifest["reason_detail"]
    assert "/tmp" not in manifest["reason_detail"]
    record = storage.get_json(f"{EVENT_ID}/{point}/quarantine/{sha256}.json")
    assert record["reason"] == manifest["reason"] and record["detail"] == manifest["reason_detail"]
    # The team sees it where they uploaded: the upload status the page polls.
    status = requests.get(f"{gateway.url}/api/uploads/{sha256}", headers=gateway.auth(point), timeout=10).json()
    assert status["status"] == "quarantined" and status["reason"] == manifest["reason"]


def _heic(image: Image.Image, exif: Image.Exif) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, format="HEIF", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def test_a_heic_photo_from_an_iphone_becomes_a_watermarked_jpeg_without_gps(gateway, storage, manifests,
                                                                            ingest_dag, event):
    point, name = "yen-lac", "IMG_0101.HEIC"
    picture = Image.linear_gradient("L").resize((1200, 900)).convert("RGB")
    picture = Image.merge("RGB", (picture.getchannel(0).point(lambda v: v // 3), picture.getchannel(0),
                                  Image.new("L", picture.size, int(time.time()) % 50)))  # greens: no blue of its own
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825).update({1: "N", 2: (21.0, 18.0, 30.0), 3: "E", 4: (105.0, 36.0, 10.0)})
    data = _heic(picture, exif)
    sent = gateway.upload_multipart(point, [(name, data, "image/heic")])
    assert sent.status_code == 200, sent.text
    assert sent.json()["results"][0]["kind"] == "photo"  # sniffed by content as a photo, not a video
    manifest = _final_manifest(manifests, point, hashlib.sha256(data).hexdigest())

    assert manifest["status"] == "processed", manifest.get("reason")
    assert manifest["media"]["type"] == "heic" and manifest["key"].endswith(".heic")
    web_bytes = storage.get_bytes(manifest["renditions"]["web"])
    assert _exif_free(web_bytes) and b"GPS" not in web_bytes
    with Image.open(io.BytesIO(web_bytes)) as web:
        assert web.size == (1200, 900)
        corner = web.crop((900, 675, 1200, 900)).convert("RGB")
        logo_blue = [px for px in corner.get_flattened_data() if px[2] > 140 and px[0] < 60]
        assert event.media.watermark_logo and len(logo_blue) > 500  # the configured logo's badge, bottom right
        assert not [px for px in web.crop((0, 0, 600, 450)).convert("RGB").get_flattened_data() if px[2] > 140]
