"""What staff links point at: files the board serves behind Airflow's login, never a presigned S3 URL; and which
stored files those links may reach at all."""
from __future__ import annotations

import pytest

from bridgecast import staff_links
from bridgecast.objects import is_staff_media_key, launch_key, processed_key, raw_key


@pytest.mark.parametrize("key", [
    processed_key("ev", "vinh-yen", "web", "a1b2.jpg"),
    processed_key("ev", "vinh-yen", "thumb", "a1b2.jpg"),
    processed_key("ev", "ha-noi", "highlight", "highlight.mp4"),
    "ev/_posts/calendar/t-1/preview/run-1/portal.html",
    launch_key("ev", "recap.mp4"), launch_key("ev", "contact-sheet.jpg"),
])
def test_what_previews_and_staff_mails_show_may_be_opened(key):
    assert is_staff_media_key(key)


@pytest.mark.parametrize("key", [
    raw_key("ev", "vinh-yen", "photo", __import__("datetime").datetime(2020, 10, 1), "ab" * 32, "jpg"),  # GPS in it
    "ev/vinh-yen/manifests/abc.json", "ev/vinh-yen/quarantine/abc.json", "ev/_launch/event.yaml",
    "ev/_launch/summary.json", "ev/_launch/steering.json", "_board/thumbnails/ha-noi.jpg",
    "ev/vinh-yen/processed/web/../../raw/photo/x.jpg", "ev/_posts/../_launch/keys.jpg", "/ev/_posts/a.html",
    "ev/_signups/files/abc.xlsx", "ev/_alerts/drop.json", "ev/vinh-yen/processed/web/x.exe",
])
def test_raw_uploads_manifests_keys_and_path_tricks_may_not(key):
    assert not is_staff_media_key(key)


def test_links_are_on_the_ui_never_on_the_storage(monkeypatch):
    monkeypatch.setattr(staff_links, "ui_base", lambda: "https://airflow.bhxh.example/ops")
    key = processed_key("ev", "vinh-yen", "thumb", "ảnh 1.jpg")
    assert staff_links.media_path(key) == "/ops/bridgecast/api/media/ev/vinh-yen/processed/thumb/%E1%BA%A3nh%201.jpg"
    assert staff_links.media_url(key).startswith("https://airflow.bhxh.example/ops/bridgecast/api/media/ev/")
    assert staff_links.report_url("ev", "pdf") == "https://airflow.bhxh.example/ops/bridgecast/api/report/pdf?event=ev"
    assert staff_links.board_url("ev") == "https://airflow.bhxh.example/ops/bridgecast/board/?event=ev"
    assert staff_links.ui_url("https://x.example/a") == "https://x.example/a"
