"""Upload limits: only photos and videos (415 otherwise) up to the event's size limit (413 above it)."""
from __future__ import annotations

import pytest
from ingest_testkit import jpeg_bytes

pytestmark = pytest.mark.stack

POINT = "lap-thach"
MIB = 1024 * 1024
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 120 + b"This program cannot be run in DOS mode."


@pytest.mark.parametrize("name, content_type, body", [
    ("cai-dat.exe", "application/x-msdownload", WINDOWS_EXE),
    ("ghi-chu.txt", "text/plain", "Danh sách người tham gia BHXH tự nguyện\n".encode()),
])
def test_a_file_that_is_neither_photo_nor_video_is_refused_with_415(gateway, name, content_type, body):
    direct = gateway.upload_multipart(POINT, [(name, body, content_type)])
    assert direct.status_code == 415, direct.text
    assert direct.json()["results"][0]["accepted"] is False
    session = gateway.open_session(POINT, name, len(body), content_type)
    assert session.status_code == 415, session.text
    assert "chỉ nhận ảnh hoặc video" in session.json()["detail"]


def test_a_batch_with_one_bad_file_keeps_the_good_one_and_says_which_was_refused(gateway):
    answer = gateway.upload_multipart(POINT, [("anh-1.jpg", jpeg_bytes(), "image/jpeg"),
                                              ("cai-dat.exe", WINDOWS_EXE, "application/x-msdownload")])
    assert answer.status_code == 207
    by_name = {r["file"]: r for r in answer.json()["results"]}
    assert by_name["anh-1.jpg"]["accepted"] is True and by_name["anh-1.jpg"]["kind"] == "photo"
    assert by_name["cai-dat.exe"] == {**by_name["cai-dat.exe"], "accepted": False, "status_code": 415}


def test_a_file_over_the_event_limit_is_refused_with_413_before_any_byte_is_sent(gateway, event):
    limit = event.media.max_upload_mb * MIB
    too_big = gateway.open_session(POINT, "ca-buoi-le.mp4", limit + 1, "video/mp4")
    assert too_big.status_code == 413, too_big.text
    assert f"{event.media.max_upload_mb} MB" in too_big.json()["detail"]
    # The limit itself is allowed: the boundary is "more than", not "at least".
    assert gateway.open_session(POINT, "ca-buoi-le.mp4", limit, "video/mp4").status_code == 201


def test_sending_more_bytes_than_the_session_declared_is_refused_with_413(gateway):
    photo = jpeg_bytes()
    opened = gateway.open_session(POINT, "anh.jpg", len(photo) - 100, "image/jpeg")
    assert opened.status_code == 201
    overflow = gateway.patch_chunk(POINT, opened.json()["id"], 0, photo)
    assert overflow.status_code == 413
    assert "declared size" in overflow.json()["detail"]
