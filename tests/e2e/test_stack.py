"""The embedded stack for real: SeaweedFS S3, nginx-rtmp with stream-key auth and recording, Airflow's scheduler."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid

import psutil
import pytest
import requests

from bridgecast.storage import Storage

pytestmark = pytest.mark.stack


def _publish(stack, point: str, key: str, seconds: float = 4) -> subprocess.CompletedProcess:
    url = f"rtmp://127.0.0.1:{stack.layout.ports.rtmp}/live/{point}?key={key}"
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-ac", "2",
         "-f", "flv", url], capture_output=True, text=True, timeout=60)


def _keys(stack) -> dict:
    return json.loads((stack.layout.secrets / "points" / "bhxh-vinhphuc-2020.json").read_text())["points"]


def test_second_up_is_a_no_op(stack):
    assert stack.up(echo=lambda _: None) == {}
    assert all(stack.status().values())


def test_s3_put_get_list_through_boto3(stack):
    storage = Storage.from_connection()
    prefix = f"tests/{uuid.uuid4().hex}"
    storage.put_bytes(f"{prefix}/a.txt", "Vĩnh Phúc".encode())
    storage.put_json(f"{prefix}/b.json", {"điểm cầu": 64})
    assert storage.get_bytes(f"{prefix}/a.txt").decode() == "Vĩnh Phúc"
    assert [o["Key"] for o in storage.list_keys(prefix)] == [f"{prefix}/a.txt", f"{prefix}/b.json"]
    # content-addressed keys are never overwritten
    assert storage.put_bytes(f"{prefix}/a.txt", b"other", if_absent=True).created is False
    assert storage.get_bytes(f"{prefix}/a.txt").decode() == "Vĩnh Phúc"


def test_s3_checks_the_digest_a_caller_already_had(stack):
    """The gateway passes the digest it computed on receipt instead of hashing the photo again: S3 still checks
    it against the bytes, so a wrong one stores nothing."""
    from botocore.exceptions import ClientError

    storage = Storage.from_connection()
    key = f"tests/{uuid.uuid4().hex}/photo.jpg"
    data = os.urandom(4096)
    with pytest.raises(ClientError):
        storage.put_bytes(key, data, sha256=hashlib.sha256(b"other bytes").hexdigest())
    assert not storage.exists(key)
    storage.put_bytes(key, data, sha256=hashlib.sha256(data).hexdigest())
    assert storage.get_bytes(key) == data


def test_every_write_carries_a_checksum_the_unsigned_payload_relies_on(stack):
    """The signature leaves the body out (no SHA-256 of it on either side); a checksum header that the signature
    covers and S3 verifies binds the bytes instead — on every kind of write we make."""
    storage = Storage.from_connection()
    sent: list[dict] = []
    storage.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                                          for k, v in request.headers.items()}))
    prefix = f"tests/{uuid.uuid4().hex}"
    storage.put_bytes(f"{prefix}/photo.jpg", os.urandom(4096))
    storage.put_json(f"{prefix}/manifest.json", {"status": "received"})
    storage.client.put_object(Bucket=storage.bucket, Key=f"{prefix}/plain.json", Body=b"{}")  # as manifest.update
    path = stack.layout.var / "tmp-upload.bin"
    path.write_bytes(os.urandom(8192))
    storage.upload_file(path, f"{prefix}/video.mp4")
    path.unlink()
    assert len(sent) == 4
    for headers in sent:
        assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        checksum = next(k for k in headers if k.startswith("x-amz-checksum-"))
        assert checksum in headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


def test_nginx_rtmp_accepts_a_keyed_publish_records_it_and_refuses_bad_keys(stack):
    keys = _keys(stack)
    assert _publish(stack, "ha-noi", keys["ha-noi"]["stream_key"]).returncode == 0
    assert _publish(stack, "ha-noi", "not-the-key", 2).returncode != 0
    assert _publish(stack, "ha-nam", keys["ha-noi"]["stream_key"], 2).returncode != 0  # another point's key
    api = f"http://127.0.0.1:{stack.layout.ports.gateway}/api/live"
    headers = {"Authorization": f"Bearer {stack.secrets['gateway_admin_token']}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        points = {p["point_id"]: p for p in requests.get(api, headers=headers, timeout=5).json()["points"]}
        if points.get("ha-noi", {}).get("finished") and points["ha-noi"]["segments"]:
            break
        time.sleep(0.5)
    hanoi = points["ha-noi"]
    assert hanoi["finished"] and hanoi["segments"], hanoi
    assert "ha-nam" not in points
    segment = hanoi["segments"][-1]
    assert segment["file"].startswith("ha-noi-") and segment["file"].endswith(".flv")  # recorded by nginx to disk
    head = Storage.from_connection().head(segment["key"])
    assert head["ContentLength"] == segment["size"] > 10_000


def test_wiring_dag_maps_64_points_by_name_and_succeeds_via_the_scheduler(stack, airflow_api):
    airflow_api.wait_for_dag("bridgecast_wiring", timeout_s=180)
    airflow_api.set_paused("bridgecast_wiring", False)
    run_id = f"test_wiring_{uuid.uuid4().hex[:8]}"
    airflow_api.trigger("bridgecast_wiring", run_id=run_id)
    run = airflow_api.wait_run("bridgecast_wiring", run_id, timeout_s=600)
    assert run["state"] == "success"
    mapped = [ti for ti in airflow_api.task_instances("bridgecast_wiring", run_id)
              if ti["task_id"] == "write_and_read_back"]
    assert len(mapped) == 64 and all(ti["state"] == "success" for ti in mapped)
    names = {ti["rendered_map_index"] for ti in mapped}
    assert {"Trung ương", "Vĩnh Phúc", "Hà Nội", "Thành phố Hồ Chí Minh"} - names == {"Thành phố Hồ Chí Minh"}
    assert "Hồ Chí Minh" in names
    assert airflow_api.xcom("bridgecast_wiring", run_id, "report") == 64


def test_every_stack_server_listens_on_loopback_only(stack):
    pids = set()
    for pid_file in stack.layout.run.glob("*.pid"):
        text = pid_file.read_text().split()
        if text:
            pids.add(int(text[0]))
    pids.add(int((stack.layout.var / "pg" / "data" / "postmaster.pid").read_text().split()[0]))
    family = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        family |= {proc, *proc.children(recursive=True)}
    listening = []
    for proc in family:
        try:
            listening += [(proc.name(), c.laddr) for c in proc.net_connections(kind="inet") if c.status == "LISTEN"]
        except psutil.NoSuchProcess:
            continue
    assert listening
    assert all(addr.ip in ("127.0.0.1", "::1") for _, addr in listening), listening


def test_objects_survive_a_storage_restart(stack):
    storage = Storage.from_connection()
    key = f"tests/restart-{uuid.uuid4().hex}.txt"
    storage.put_bytes(key, b"still here")
    seaweed = next(s for s in stack.services() if s.name == "seaweedfs")
    assert seaweed.stop()
    assert not seaweed.running()
    assert seaweed.start()
    assert Storage.from_connection().get_bytes(key) == b"still here"
