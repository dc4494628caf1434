"""Faults of the ingest pipeline on the real stack: S3 (SeaweedFS) stopped for 60 s in the middle of a burst of
photos. Uploads refused meanwhile are sent again by the client (the upload page does the same); every photo the
gateway accepted must end processed by `bridgecast_ingest` on its own — Airflow retrying the batches that storage
failed — with none left `received` (stuck) and none lost."""
from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest
import requests
from hardening_kit import EVENT_ID, wait_for
from PIL import Image

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

DAG_ID = "bridgecast_ingest"  # the photo lane (videos and recordings have bridgecast_ingest_video)
OUTAGE_S = 60
BURST, POINTS = 24, ("tam-dao", "vinh-yen", "phuc-yen")
RECOVER_WITHIN_S = 360  # after storage is back: the batches' retries (backoff 10…120 s) and their work


def _photo() -> bytes:
    gradient = Image.linear_gradient("L").resize((800, 600)).convert("RGB")
    noise = Image.frombytes("RGB", (800, 600), os.urandom(800 * 600 * 3))
    buffer = io.BytesIO()
    Image.blend(gradient, noise, 0.3).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _upload_until_accepted(kit, point: str, data: bytes, name: str, give_up_at: float) -> bool:
    """What a field phone does: send, and send again while the answer is 'retry later' (storage down)."""
    while time.monotonic() < give_up_at:
        try:
            answer = requests.post(f"{kit.gateway_url}/api/uploads", headers=kit.auth(point), timeout=60,
                                   files=[("files", (name, data, "image/jpeg"))])
        except requests.RequestException:
            answer = None
        if answer is not None and answer.status_code == 200 and answer.json()["results"][0].get("accepted"):
            return True
        assert answer is None or answer.status_code >= 500 or answer.status_code == 429, answer.text
        time.sleep(2)
    return False


@pytest.fixture
def ingest_on(stack, airflow_api):
    was_paused = airflow_api.wait_for_dag(DAG_ID, timeout_s=180)["is_paused"]
    airflow_api.set_paused(DAG_ID, False)
    yield airflow_api
    airflow_api.set_paused(DAG_ID, was_paused)


def test_every_photo_of_a_burst_is_processed_after_a_60s_s3_outage_in_its_middle(kit, stack, storage_manifests,
                                                                              ingest_on):
    seaweed = next(s for s in stack.services() if s.name == "seaweedfs")
    photos = [(POINTS[n % len(POINTS)], _photo(), f"mat-dien-{n:02d}.jpg") for n in range(BURST)]
    sent: list[tuple[str, str]] = []  # (point, sha256) the gateway accepted
    give_up_at = time.monotonic() + OUTAGE_S + 240

    def send(batch):
        for point, data, name in batch:
            if _upload_until_accepted(kit, point, data, name, give_up_at):
                sent.append((point, hashlib.sha256(data).hexdigest()))
            time.sleep(0.5)  # a burst over ~20 s, so the outage falls in its middle

    sender = threading.Thread(target=send, args=(photos,))
    sender.start()
    wait_for(lambda: len(sent) >= BURST // 3, timeout_s=120, what="the first third of the burst accepted")
    time.sleep(2)  # let processing of the first photos begin, so the outage hits batches in work
    assert seaweed.stop()
    down_at = time.monotonic()
    try:
        time.sleep(OUTAGE_S)
    finally:
        assert seaweed.start()
    print(f"S3 down for {time.monotonic() - down_at:.0f} s; {len(sent)} photos accepted before it came back")
    sender.join(timeout=300)
    assert not sender.is_alive() and len(sent) == BURST  # refused uploads were accepted once storage was back

    def statuses() -> dict[str, str]:
        found = {}
        for point, sha in sent:
            manifest = storage_manifests.get(EVENT_ID, point, sha)
            found[sha] = manifest["status"] if manifest else "lost"
        return found

    back = time.monotonic()
    deadline = back + RECOVER_WITHIN_S
    while time.monotonic() < deadline and set(statuses().values()) != {"processed"}:
        time.sleep(3)
    final = statuses()
    stuck = sum(s == "received" for s in final.values())
    lost = sum(s == "lost" for s in final.values())
    print(f"FIGURE photos stuck after a 60 s S3 outage: {stuck} of {BURST} (lost: {lost}; "
          f"all processed {time.monotonic() - back:.0f} s after S3 was back)")
    assert (stuck, lost) == (0, 0), final
    assert set(final.values()) == {"processed"}, final
    # What the user gets: each photo's processed renditions are in storage.
    for point, sha in sent:
        manifest = storage_manifests.get(EVENT_ID, point, sha)
        assert manifest["renditions"] and all(storage_manifests.storage.exists(k)
                                              for k in manifest["renditions"].values())
