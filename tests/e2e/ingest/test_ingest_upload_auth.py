"""Upload tokens: every upload route and the upload page refuse a missing, wrong or other point's token."""
from __future__ import annotations

import hashlib

import pytest
import requests
from ingest_testkit import jpeg_bytes

pytestmark = pytest.mark.stack

POINT_A, POINT_B = "tam-duong", "song-lo"
NOT_A_TOKEN = "khong-phai-ma-that-0123456789abcdef"


def test_uploads_without_a_token_are_refused_with_403(gateway):
    photo = jpeg_bytes()
    sha256 = hashlib.sha256(photo).hexdigest()
    assert gateway.upload_multipart(POINT_A, [("a.jpg", photo, "image/jpeg")], headers={}).status_code == 403
    assert gateway.open_session(POINT_A, "a.jpg", len(photo), "image/jpeg", headers={}).status_code == 403
    assert requests.get(f"{gateway.url}/api/uploads/{sha256}", timeout=10).status_code == 403


def test_uploads_with_a_wrong_token_are_refused_with_403(gateway):
    wrong = {"Authorization": f"Bearer {NOT_A_TOKEN}"}
    photo = jpeg_bytes()
    refused = gateway.upload_multipart(POINT_A, [("a.jpg", photo, "image/jpeg")], headers=wrong)
    assert refused.status_code == 403
    assert "invalid or revoked" in refused.json()["detail"]
    assert gateway.open_session(POINT_A, "a.jpg", len(photo), "image/jpeg", headers=wrong).status_code == 403
    # The multipart form's `token` field is the fallback for clients that cannot set headers: same check.
    form = requests.post(f"{gateway.url}/api/uploads", data={"token": NOT_A_TOKEN}, timeout=30,
                         files=[("files", ("a.jpg", photo, "image/jpeg"))])
    assert form.status_code == 403


def test_a_session_opened_by_one_point_refuses_another_points_token(gateway):
    photo = jpeg_bytes()
    opened = gateway.open_session(POINT_A, "le-ra-quan.jpg", len(photo), "image/jpeg")
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["id"]

    foreign = gateway.patch_chunk(POINT_B, session_id, 0, photo, headers=gateway.auth(POINT_B))
    assert foreign.status_code == 403
    assert "another point" in foreign.json()["detail"]
    peek = requests.get(f"{gateway.url}/api/uploads/sessions/{session_id}", headers=gateway.auth(POINT_B),
                        timeout=10)
    assert peek.status_code == 403

    # Nothing of B's request reached the spool, and the owner can still complete the upload.
    own = requests.get(f"{gateway.url}/api/uploads/sessions/{session_id}", headers=gateway.auth(POINT_A), timeout=10)
    assert own.json()["offset"] == 0
    done = gateway.patch_chunk(POINT_A, session_id, 0, photo)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["sha256"] == hashlib.sha256(photo).hexdigest()


def test_a_point_cannot_read_another_points_upload_status(gateway):
    photo = jpeg_bytes()
    sent = gateway.upload_multipart(POINT_A, [("a.jpg", photo, "image/jpeg")])
    assert sent.status_code == 200, sent.text
    sha256 = sent.json()["results"][0]["sha256"]
    assert requests.get(f"{gateway.url}/api/uploads/{sha256}", headers=gateway.auth(POINT_A),
                        timeout=10).status_code == 200
    # Manifests are looked up under the caller's own point, so B learns nothing about A's files.
    assert requests.get(f"{gateway.url}/api/uploads/{sha256}", headers=gateway.auth(POINT_B),
                        timeout=10).status_code == 404


def test_the_upload_page_and_its_qr_code_need_a_valid_token(gateway, event):
    from bridgecast.ingest.page import qr_png

    assert requests.get(f"{gateway.url}/u/{NOT_A_TOKEN}", timeout=10).status_code == 403
    assert requests.get(f"{gateway.url}/u/{NOT_A_TOKEN}/qr.png", timeout=10).status_code == 403

    page_url = f"{gateway.url}/u/{gateway.token('tam-dao')}"
    page = requests.get(page_url, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Đội tuyên truyền lưu động Tam Đảo</h1>" in page.text
    assert event.short_title in page.text and event.theme in page.text
    qr = requests.get(f"{page_url}/qr.png", timeout=10)
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
    assert qr.content == qr_png(page_url)  # the code printed for the team opens exactly this page
