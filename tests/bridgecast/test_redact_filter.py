"""The one redaction filter: every secret the process holds — Connection passwords, point stream keys and upload
tokens (revoked ones too, re-read when the key file changes), registered secrets, and stream URLs / key= values by
shape — is masked in every log line, arguments and tracebacks included."""
from __future__ import annotations

import json
import logging
import secrets

import pytest

from bridgecast import redact


@pytest.fixture
def registry(tmp_path, monkeypatch):
    keys_dir = tmp_path / "points"
    keys_dir.mkdir()
    env = {
        "AIRFLOW_CONN_BRIDGECAST_S3": json.dumps({"conn_type": "aws", "login": "BCACCESSKEY0001", "password":
                                                  "s3-secret-" + secrets.token_hex(8), "extra": {"bucket": "b"}}),
        "AIRFLOW_CONN_BRIDGECAST_PORTAL": "http://bridgecast:app%20pass%20word%2012@127.0.0.1:8092",
        "AIRFLOW__API_AUTH__JWT_SECRET": "jwt-" + secrets.token_hex(8),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": "/var/secrets/airflow-passwords.json",
        "BRIDGECAST_POINT_KEYS_DIR": str(keys_dir),
    }
    fresh = redact.SecretRegistry(env)
    monkeypatch.setattr(redact, "REGISTRY", fresh)
    return fresh, env, keys_dir


def _write_keys(keys_dir, points: dict, revoked: list | None = None) -> None:
    (keys_dir / "ev.json").write_text(json.dumps({"event_id": "ev", "points": points, "revoked": revoked or []}))


def _logged(caplog, *args, exc: BaseException | None = None) -> str:
    redact.install()
    logger = logging.getLogger("bridgecast.test.redact")
    with caplog.at_level(logging.INFO, logger=logger.name):
        if exc is None:
            logger.info(*args)
        else:
            try:
                raise exc
            except type(exc):
                logger.exception(*args)
    return caplog.text


def test_connection_passwords_and_secret_settings_are_masked(registry, caplog):
    _, env, _ = registry
    s3 = json.loads(env["AIRFLOW_CONN_BRIDGECAST_S3"])
    text = _logged(caplog, "s3 %s/%s portal %s jwt %s", s3["login"], s3["password"], "app pass word 12",
                   env["AIRFLOW__API_AUTH__JWT_SECRET"])
    for secret in (s3["login"], s3["password"], "app pass word 12", env["AIRFLOW__API_AUTH__JWT_SECRET"]):
        assert secret not in text
    assert "***" in text
    # A setting that names a secrets *file* is a path, not a secret: it stays readable.
    assert "/var/secrets/airflow-passwords.json" in _logged(caplog, "reading %s",
                                                            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])


def test_point_keys_are_masked_including_revoked_and_newly_issued_ones(registry, caplog, monkeypatch):
    fresh, _, keys_dir = registry
    old_key, old_token = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    _write_keys(keys_dir, {"ha-noi": {"stream_key": old_key, "upload_token": old_token}})
    assert old_key not in _logged(caplog, "publish to live/%s?key=%s token %s", "ha-noi", old_key, old_token)
    new_key = secrets.token_urlsafe(18)
    _write_keys(keys_dir, {"ha-noi": {"stream_key": new_key, "upload_token": old_token}},
                revoked=[{"point": "ha-noi", "stream_key": old_key, "upload_token": old_token}])
    monkeypatch.setattr(fresh, "_checked_at", 0.0)  # as if a second had passed since the last look
    text = _logged(caplog, "keys %s %s %s", new_key, old_key, old_token)
    assert new_key not in text and old_key not in text and old_token not in text


def test_stream_urls_key_values_and_tracebacks_are_masked_by_shape(registry, caplog):
    fb = "rtmps://live-api-s.facebook.com:443/rtmp/FB-1234567890-0-AbCdEfGhIjKlMnOp"
    text = _logged(caplog, "relay to %s failed; point url rtmp://h:1935/live/ha-noi?key=zzzsecretzzz&x=1", fb,
                   exc=RuntimeError(f"ffmpeg said: {fb}: Input/output error"))
    assert "FB-1234567890" not in text and "zzzsecretzzz" not in text
    assert "rtmps://live-api-s.facebook.com:443/rtmp/***" in text and "Traceback" in text


def test_a_registered_secret_is_masked_and_a_broken_format_string_still_logs(registry, caplog):
    value = "callback-" + secrets.token_urlsafe(24)
    redact.register(value)
    assert "/rtmp/***/on_publish" in _logged(caplog, "path /rtmp/%s/on_publish", value)
    broken = _logged(caplog, "path /rtmp/%s/on_record_done %d", value, "not-a-number")
    assert value not in broken and "on_record_done" in broken and "not-a-number" in broken
    assert value not in caplog.text
