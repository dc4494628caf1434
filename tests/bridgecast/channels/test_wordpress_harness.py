"""The real-WordPress harness itself: idempotent start, restart keeping content and credentials, local timezone."""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from bridgecast.channels.base import Publication

pytestmark = pytest.mark.wordpress


def test_second_start_is_a_no_op(real_wordpress):
    wordpress = real_wordpress.harness
    t0 = time.monotonic()
    info = wordpress.start()
    assert time.monotonic() - t0 < 5 and wordpress.running()
    assert info.base_url == real_wordpress.base_url and info.app_password == real_wordpress.app_password
    assert info.app_password not in repr(info)


def test_restart_keeps_posts_and_the_application_password(real_wordpress, event_id):
    wordpress = real_wordpress.harness
    token = uuid.uuid4().hex[:10]
    ref = real_wordpress.channel().publish(Publication(event_id, "harness/restart", "article",
                                                      f"Trước khi khởi động lại {token}", "Nội dung."))
    assert set(wordpress.stop()) == {"nginx", "php-fpm", "mariadb"} and not wordpress.running()
    t0 = time.monotonic()
    info = wordpress.start()
    assert time.monotonic() - t0 < 30
    assert info.app_password == real_wordpress.app_password
    assert real_wordpress.channel().client.get_post(int(ref.remote_id))["title"]["raw"].endswith(token)


def test_site_runs_in_the_event_timezone_with_application_passwords(real_wordpress):
    settings = requests.get(f"{real_wordpress.base_url}/wp-json/wp/v2/settings", timeout=10,
                            auth=(real_wordpress.user, real_wordpress.app_password)).json()
    assert settings["timezone"] == "Asia/Ho_Chi_Minh"
    index = requests.get(f"{real_wordpress.base_url}/wp-json/", timeout=10).json()
    assert "application-passwords" in index["authentication"]
    home = requests.get(f"{real_wordpress.base_url}/", timeout=10, allow_redirects=False)
    assert home.status_code == 200  # the Host header fix: no redirect loop on front pages
