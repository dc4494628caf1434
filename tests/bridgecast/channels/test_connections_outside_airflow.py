"""Outside an Airflow task (gateway, CLI, tests) a Connection comes from its AIRFLOW_CONN_<ID> variable, read by the
Task SDK's own `Connection` — the JSON form and the URI form, as Airflow reads them — and a value that cannot be
read is refused without being echoed (it holds the password). Inside a task Airflow's lookup is used instead:
tests/e2e/test_connections.py proves that on the real scheduler."""
from __future__ import annotations

import json
import secrets

import pytest

from bridgecast.connections import (ConnectionInvalid, ConnectionNotFound, get_connection, in_airflow_task,
                                    parse_connection)


def test_outside_a_task_the_json_form_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_PORTAL", json.dumps({
        "conn_type": "http", "host": "https://bhxh.example", "port": "8443", "login": "bridgecast",
        "password": "p@ss word", "extra": {"page_id": "42"}}))
    assert not in_airflow_task()
    conn = get_connection("bridgecast_portal")
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.extra) == (
        "http", "https://bhxh.example", 8443, "bridgecast", "p@ss word", {"page_id": "42"})
    assert conn.base_url() == "https://bhxh.example:8443"
    assert "p@ss word" not in repr(conn)


def test_the_uri_form_reads_as_airflow_reads_it():
    conn = parse_connection("bridgecast_smtp", "smtp://press%40bhxh:s%2Fcret@mail.example:587/x?from_email="
                                               "truyenthong%40bhxh.example&disable_ssl=true")
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "smtp", "mail.example", 587, "press@bhxh", "s/cret", "x")
    assert conn.extra == {"from_email": "truyenthong@bhxh.example", "disable_ssl": "true"}
    nested = parse_connection("bridgecast_s3", "aws://AK:SK@/?__extra__=" + json.dumps({"bucket": "b", "n": 1}))
    assert nested.extra == {"bucket": "b", "n": 1} and nested.host == ""


@pytest.mark.parametrize("value", ['{"conn_type": "http", "password": "@@SECRET@@"',
                                   "http://a://b://@@SECRET@@@host",
                                   json.dumps({"conn_type": "http", "password": "@@SECRET@@", "extra": "[1, 2]"})],
                         ids=["cut-off-json", "three-schemes-uri", "extra-not-an-object"])
def test_an_unreadable_connection_is_refused_without_echoing_it(monkeypatch, value, no_secret, remember_secret):
    secret = remember_secret(secrets.token_urlsafe(18))
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_FANPAGE", value.replace("@@SECRET@@", secret))
    with pytest.raises(ConnectionInvalid) as caught:
        get_connection("bridgecast_fanpage")
    assert "AIRFLOW_CONN_BRIDGECAST_FANPAGE" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no traceback shows the value
    no_secret(str(caught.value), "the error")


def test_a_missing_connection_names_the_variable_to_set(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BRIDGECAST_NOWHERE", raising=False)
    with pytest.raises(ConnectionNotFound, match="AIRFLOW_CONN_BRIDGECAST_NOWHERE"):
        get_connection("bridgecast_nowhere")
