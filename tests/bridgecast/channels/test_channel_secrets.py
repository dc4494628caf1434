"""No credential in any log line, exception, repr or ledger row, on every failure path the channels have."""
from __future__ import annotations

import logging
import secrets

import pytest

from bridgecast.channels.base import ChannelError, Publication
from bridgecast.channels.portal import PortalChannel
from bridgecast.channels.press import PressChannel
from bridgecast.ledger import publish_once
from devstack.sandboxes.smtp import free_port


def _everything_said(caplog, errors, objects, ledger) -> str:
    parts = [record.getMessage() for record in caplog.records]
    parts += [logging.Formatter().formatException(r.exc_info) for r in caplog.records if r.exc_info]
    parts += [f"{e}|{e!r}|{getattr(e, 'operator_message', '')}" for e in errors]
    parts += [repr(o) for o in objects]
    parts += [repr(row) for row in ledger.rows()]
    return "\n".join(parts)


def test_portal_failures_never_show_the_app_password(portal_backend, ledger, event_id, caplog, no_secret,
                                                      remember_secret):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line at DEBUG
    wrong = remember_secret(secrets.token_urlsafe(18), portal_backend.user)
    good = portal_backend.channel(first_wait_s=0.01)
    bad = PortalChannel(portal_backend.base_url, portal_backend.user, wrong)
    offline = PortalChannel(f"http://127.0.0.1:{free_port()}", portal_backend.user, portal_backend.app_password,
                            read_attempts=2, first_wait_s=0.01)
    pub = Publication(event_id, "secrets/article", "article", "Kiểm tra bí mật", "Nội dung.")
    errors: list[BaseException] = []
    for attempt in (lambda: publish_once(ledger, bad, pub), lambda: bad.find(pub),
                    lambda: offline.publish(pub), lambda: offline.find(pub),
                    lambda: good.client.create_post({"title": "x", "status": "never"})):
        with pytest.raises(ChannelError) as caught:
            attempt()
        errors.append(caught.value)
    health = [bad.check(), offline.check(), good.check()]
    ref = publish_once(ledger, good, pub).ref
    objects = [good, bad, offline, good.client, good.client.transport.session.auth, health, ref]
    no_secret(_everything_said(caplog, errors, objects, ledger), "portal logs, errors, reprs or ledger rows")
    assert any("urllib3" in r.name for r in caplog.records)  # the HTTP debug lines were really looked at


def test_press_failures_never_show_the_smtp_password(smtp_server, ledger, event_id, caplog, no_secret,
                                                     remember_secret):
    caplog.set_level(logging.DEBUG)  # aiosmtpd is not in this process; smtplib and our logs are
    wrong = remember_secret(secrets.token_urlsafe(18))

    def make(password: str, port: int = smtp_server.port) -> PressChannel:
        return PressChannel(smtp_server.host, port, from_email="truyenthong@bhxh-vinhphuc.example",
                            login=smtp_server.user, password=password)

    good, bad, offline = make(smtp_server.password), make(wrong), make(smtp_server.password, free_port())
    pub = Publication(event_id, "secrets/press", "email", "Kiểm tra bí mật", "Nội dung.",
                      recipients=("toasoan@bao.example",))
    errors: list[BaseException] = []
    for attempt in (lambda: publish_once(ledger, bad, pub), lambda: offline.publish(pub)):
        with pytest.raises(ChannelError) as caught:
            attempt()
        errors.append(caught.value)
    health = [bad.check(), offline.check(), good.check()]
    ref = publish_once(ledger, good, pub).ref
    no_secret(_everything_said(caplog, errors, [good, bad, offline, health, ref], ledger),
              "press logs, errors, reprs or ledger rows")
