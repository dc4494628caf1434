"""A 200 MB video cut off at half way continues from the server's offset and arrives byte-exact in S3."""
from __future__ import annotations

import hashlib
import os
import socket
import sys
import time

import pytest
import requests
from ingest_testkit import EVENT_ID, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

POINT = "vinh-yen"
MIB = 1024 * 1024
FILE_SIZE = 200 * MIB


def _write_random_file(path, size: int) -> str:
    """Stream random bytes to disk (never the whole file in memory); returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size // (4 * MIB)):
            block = os.urandom(4 * MIB)
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


def _read(path, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _patch_and_drop_connection(gateway_url: str, token: str, session_id: str, offset: int, chunk: bytes,
                               send_bytes: int) -> None:
    """Announce a whole chunk, send only its first `send_bytes`, then hang up — a phone losing signal mid-chunk."""
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (f"PATCH /api/uploads/sessions/{session_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
                f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(chunk)}\r\n\r\n")
        sock.sendall(head.encode() + chunk[:send_bytes])


def _server_offset(gateway, session_id: str) -> int:
    response = requests.get(f"{gateway.url}/api/uploads/sessions/{session_id}", headers=gateway.auth(POINT),
                            timeout=30)
    response.raise_for_status()
    return response.json()["offset"]


def test_a_200_mb_upload_interrupted_half_way_resumes_and_arrives_intact(gateway, storage, manifests, stack,
                                                                         tmp_path):
    video = tmp_path / "le-ra-quan-toan-canh.mp4"
    sha256 = _write_random_file(video, FILE_SIZE)
    fingerprint = f"{video.name}:{FILE_SIZE}:{int(video.stat().st_mtime * 1000)}"  # what the page sends

    started = time.monotonic()
    opened = gateway.open_session(POINT, video.name, FILE_SIZE, "video/mp4", fingerprint=fingerprint)
    assert opened.status_code == 201, opened.text
    session = opened.json()
    chunk_size = session["chunk_size"]
    half_way_chunk = FILE_SIZE // 2 // chunk_size  # the chunk that crosses 50 %

    offset = 0
    for _ in range(half_way_chunk):
        answer = gateway.patch_chunk(POINT, session["id"], offset, _read(video, offset, chunk_size))
        assert answer.status_code == 200, answer.text
        offset = answer.json()["offset"]
    cut_after = chunk_size // 2
    _patch_and_drop_connection(gateway.url, gateway.token(POINT), session["id"], offset,
                               _read(video, offset, chunk_size), cut_after)

    # The server keeps every byte it got, acknowledged or not; wait until it has noticed the hang-up.
    readings = []

    def offset_settled():
        readings.append(_server_offset(gateway, session["id"]))
        return len(readings) >= 3 and readings[-1] == readings[-2] == readings[-3]

    wait_for(offset_settled, timeout_s=60, what="the server to settle after the dropped connection")
    interrupted_at = readings[-1]
    assert offset <= interrupted_at <= offset + cut_after
    assert interrupted_at >= FILE_SIZE * 0.48  # really half way, not a restart from zero

    # A reload of the page re-opens the session with the same fingerprint: same session, server's offset.
    resumed_at = time.monotonic()
    reopened = gateway.open_session(POINT, video.name, FILE_SIZE, "video/mp4", fingerprint=fingerprint)
    assert reopened.status_code == 201
    assert reopened.json()["id"] == session["id"]
    assert interrupted_at <= reopened.json()["offset"] <= offset + cut_after  # never less than it had

    offset, result = reopened.json()["offset"], None
    while result is None:
        answer = gateway.patch_chunk(POINT, session["id"], offset, _read(video, offset, chunk_size))
        assert answer.status_code == 200, answer.text
        offset, result = answer.json()["offset"], answer.json()["result"]
    resume_s = time.monotonic() - resumed_at
    total_s = time.monotonic() - started
    print(f"\n200 MB upload: cut at {interrupted_at / MIB:.1f} MB; resume → stored in S3 in {resume_s:.1f}s "
          f"(whole upload incl. the interruption {total_s:.1f}s)", file=sys.stderr)

    assert result["accepted"] and not result["duplicate"]
    assert (result["sha256"], result["size"], result["kind"]) == (sha256, FILE_SIZE, "video")
    assert result["key"].startswith(f"{EVENT_ID}/{POINT}/raw/video/")
    assert not (stack.layout.var / "ingest" / "spool" / f"{session['id']}.part").exists()  # spool freed

    stored = storage.client.get_object(Bucket=storage.bucket, Key=result["key"])
    assert stored["ContentLength"] == FILE_SIZE
    digest = hashlib.sha256()
    for block in stored["Body"].iter_chunks(4 * MIB):
        digest.update(block)
    assert digest.hexdigest() == sha256

    manifest = manifests.get(EVENT_ID, POINT, sha256)
    assert manifest["key"] == result["key"] and manifest["size"] == FILE_SIZE
    assert manifest["status"] in ("received", "processed")
    assert manifest["receipts"][0]["original_name"] == video.name
