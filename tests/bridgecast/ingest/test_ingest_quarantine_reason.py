"""What a team reads when an upload is held back: their file's name, the problem and what to do, in Vietnamese."""
from __future__ import annotations

import media
from bridgecast.ingest.processing import quarantine_reason


def test_the_reason_names_the_teams_file_and_says_what_to_do_without_our_paths():
    error = media.MissingMoovError("/tmp/bridgecast-ingest-x/0/source/original.mp4",
                                   "the MP4 has no index (moov atom not found): it was cut short", hint="upload again")
    reason = quarantine_reason("Lễ ra quân.mp4", error)
    assert reason == ("Lễ ra quân.mp4: Tệp video bị hỏng hoặc tải lên chưa hết (thiếu phần 'moov') — "
                      "hãy quay/xuất lại và gửi lại")


def test_a_photo_too_large_quotes_its_size_and_the_limit():
    error = media.DecompressionBombError("/tmp/x.png", "too large", facts={"width": 9000, "height": 9000,
                                                                          "limit_mp": "64"})
    assert quarantine_reason("panorama.png", error) == (
        "panorama.png: Ảnh quá lớn: 9000×9000 điểm ảnh, vượt giới hạn 64 megapixel — "
        "hãy thu nhỏ ảnh (ví dụ 12 megapixel) rồi gửi lại")
