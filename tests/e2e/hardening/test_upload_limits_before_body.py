"""An anonymous or oversized upload is refused before its body is read: the token and the declared size are judged
on the request head, a body sending more than it may is cut at the limit, and a slow body without a token is not
waited for. Raw sockets, so what the server accepted before refusing can be counted."""
from __future__ import annotations

import sys
import uuid

import pytest
import requests
from hardening_kit import MIB, raw_request, upload_head

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

POINT = "vinh-tuong"
GOAL_BYTES = MIB


def test_an_anonymous_2_gb_upload_is_refused_before_1_mib_of_it_is_read(kit):
    answer = raw_request(kit.layout.ports.gateway, upload_head("/api/uploads", content_length=2 * 1024 * MIB),
                         body_bytes=64 * MIB, timeout_s=60)
    print(f"\nbytes read from an unauthenticated 2 GB upload before it was refused: at most {answer.sent} "
          f"(answer {answer.status} after {answer.elapsed_s:.2f} s)", file=sys.stderr)
    assert answer.status == 403, answer.head
    assert answer.sent <= GOAL_BYTES


def test_a_wrong_token_is_refused_on_the_request_head_too(kit):
    head = upload_head("/api/uploads", content_length=512 * MIB, token="khong-phai-ma-that-0123456789abcdef")
    answer = raw_request(kit.layout.ports.gateway, head, body_bytes=64 * MIB, timeout_s=60)
    assert answer.status == 403 and answer.sent <= GOAL_BYTES, (answer.status, answer.sent)


def test_a_slow_body_without_a_token_is_answered_at_once_not_waited_for(kit):
    answer = raw_request(kit.layout.ports.gateway, upload_head("/api/uploads", content_length=10 * MIB),
                         body_bytes=10 * MIB, trickle_s=0.2, timeout_s=10)
    assert answer.status == 403, answer.head
    assert answer.elapsed_s < 3 and answer.sent < 64 * 1024


def test_a_declared_size_over_the_event_limit_is_refused_before_the_body_even_with_a_valid_token(kit, event_limit):
    head = upload_head("/api/uploads", content_length=event_limit + 2 * MIB, token=kit.keys(POINT)["upload_token"])
    answer = raw_request(kit.layout.ports.gateway, head, body_bytes=64 * MIB, timeout_s=60)
    assert answer.status == 413, answer.head
    assert answer.sent <= GOAL_BYTES


def test_a_chunk_longer_than_what_the_session_has_left_is_refused_before_it_is_read(kit):
    opened = requests.post(f"{kit.gateway_url}/api/uploads/sessions", headers=kit.auth(POINT), timeout=30,
                           json={"filename": "video.mp4", "size": MIB, "content_type": "video/mp4",
                                 "fingerprint": uuid.uuid4().hex})
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["id"]
    head = (f"PATCH /api/uploads/sessions/{session_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {kit.keys(POINT)['upload_token']}\r\nUpload-Offset: 0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {256 * MIB}\r\n\r\n").encode()
    answer = raw_request(kit.layout.ports.gateway, head, body_bytes=64 * MIB, timeout_s=60)
    assert answer.status == 413, answer.head
    assert answer.sent <= GOAL_BYTES
    status = requests.get(f"{kit.gateway_url}/api/uploads/sessions/{session_id}", headers=kit.auth(POINT),
                          timeout=10).json()
    assert status["offset"] == 0  # nothing of the refused chunk was written


@pytest.fixture(scope="module")
def event_limit() -> int:
    from bridgecast.event import default_event_path, load_event

    return load_event(default_event_path()).media.max_upload_mb * MIB
