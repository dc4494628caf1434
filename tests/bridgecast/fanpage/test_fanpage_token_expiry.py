"""A Page token that stops working during the morning is a preflight no-go that says when and which Connection to
renew — found while there is time; and the sandbox, like Graph, refuses every call once the token has expired."""
from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from bridgecast.channels.base import AuthError
from bridgecast.channels.factory import check_channels_health
from bridgecast.event import default_event_path, load_event


@pytest.fixture
def event_in_an_hour(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_FANPAGE", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "password": sandbox.token,
        "extra": {"page_id": sandbox.page_id}}))
    event = load_event(default_event_path())
    yield dataclasses.replace(event, start=datetime.now(timezone.utc) + timedelta(minutes=10),
                              duration=timedelta(minutes=60))
    sandbox.knobs(token_expires_at=0)


def test_a_token_expiring_before_the_wrap_up_is_a_no_go_naming_the_time_and_connection(sandbox, event_in_an_hour):
    sandbox.knobs(token_expires_at=int(time.time() + 2 * 3600))  # after the end, but before the wrap-up is out
    fanpage = check_channels_health(event_in_an_hour)["fanpage"]
    assert fanpage["ok"] is False, fanpage
    assert "hết hạn lúc" in fanpage["detail"] and "giờ Việt Nam" in fanpage["detail"]
    assert "'bridgecast_fanpage'" in fanpage["detail"]

    sandbox.knobs(token_expires_at=int(time.time() + 60 * 86400))  # a token renewed for 60 days
    assert check_channels_health(event_in_an_hour)["fanpage"]["ok"] is True


def test_once_expired_the_token_is_refused_as_graph_refuses_it(sandbox, event_in_an_hour):
    channel = sandbox.channel()
    sandbox.knobs(token_expires_at=int(time.time() - 1))
    assert channel.check().ok is False
    with pytest.raises(AuthError):
        channel.create_post("Thử sau khi mã hết hạn")
