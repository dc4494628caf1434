"""Each channel is built on its own, when first used: a broken fanpage Connection does not stop the portal article,
and the channel preflight reports it as no-go (naming the Connection to fix) instead of raising."""
from __future__ import annotations

import json
import secrets
import uuid

import pytest

from bridgecast.channels.base import Publication
from bridgecast.channels.factory import channel_for, channels_for, check_channels_health
from bridgecast.event import default_event_path, load_event
from bridgecast.ledger import publish_once

FANPAGE_VAR = "AIRFLOW_CONN_BRIDGECAST_FANPAGE"


def broken_fanpage(kind: str, token: str) -> str | None:
    """The ways an operator gets the fanpage Connection wrong (`token` is the Page token, where there is one)."""
    return {
        "missing": None,
        "unreadable": '{"conn_type": "http", "password": "' + token,  # cut-off JSON, the token inside
        "no-password": json.dumps({"conn_type": "http", "host": "http://127.0.0.1:1", "extra": {"page_id": "1"}}),
        "unparsable-host": json.dumps({"conn_type": "http", "host": "http://127.0.0.1:po rt", "password": token,
                                       "extra": {"page_id": "1"}}),
    }[kind]


@pytest.fixture
def event(monkeypatch, portal_sandbox, smtp_server):
    """The shipped event, its portal and press Connections pointing at the sandboxes."""
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_PORTAL", json.dumps({
        "conn_type": "http", "host": portal_sandbox.base_url, "login": portal_sandbox.user,
        "password": portal_sandbox.app_password}))
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_SMTP", json.dumps({
        "conn_type": "smtp", "host": smtp_server.host, "port": smtp_server.port, "login": smtp_server.user,
        "password": smtp_server.password,
        "extra": {"from_email": "truyenthong@bhxh-vinhphuc.example", "disable_tls": True, "disable_ssl": True}}))
    return load_event(default_event_path())


@pytest.mark.parametrize("kind", ["missing", "unreadable", "no-password", "unparsable-host"])
def test_a_broken_fanpage_connection_leaves_the_portal_article_published_and_the_fanpage_no_go(
        kind, event, monkeypatch, portal_sandbox, ledger, remember_secret, no_secret):
    token = remember_secret("EAAB" + secrets.token_urlsafe(32))
    value = broken_fanpage(kind, token)
    if value is None:
        monkeypatch.delenv(FANPAGE_VAR, raising=False)
    else:
        monkeypatch.setenv(FANPAGE_VAR, value)
    marker = uuid.uuid4().hex[:10]
    pub = Publication(event.id + f"-{marker}", "launch/recap-article", "article", f"Bài tổng hợp {marker}",
                      "Toàn bộ 64 điểm cầu đã kết nối.")

    outcome = publish_once(ledger, channels_for(event)["portal"], pub)

    assert outcome.action == "created"
    assert portal_sandbox.count_posts(marker) == 1  # the article is on the portal
    health = check_channels_health(event)
    fanpage = health["fanpage"]
    assert fanpage["ok"] is False
    assert "'bridgecast_fanpage'" in fanpage["detail"] and "Admin → Connections" in fanpage["detail"]
    if kind == "missing":
        assert "Chưa có Airflow Connection 'bridgecast_fanpage'" in fanpage["detail"]
    assert health["portal"]["ok"] and health["press"]["ok"], health
    no_secret(json.dumps(health, ensure_ascii=False), "the channel health report")


def test_channels_are_built_on_first_use_and_only_once(event, monkeypatch):
    monkeypatch.setenv(FANPAGE_VAR, "{not json")
    channels = channels_for(event)
    assert list(channels) == ["portal", "fanpage", "press"] and "fanpage" not in repr(channels).split("built=")[1]
    assert channels["portal"] is channels["portal"]
    with pytest.raises(ValueError, match=FANPAGE_VAR):
        channels["fanpage"]
    with pytest.raises(KeyError, match="portal, fanpage, press"):
        channel_for(event, "zalo")
