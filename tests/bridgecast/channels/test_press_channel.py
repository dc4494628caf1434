"""Press kit by email against a real SMTP server (the aiosmtpd sandbox), with the real ledger."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from bridgecast.channels.base import AuthError, Publication, RejectedInput
from bridgecast.channels.press import PressChannel
from bridgecast.ledger import PENDING, Ledger, publish_once
from devstack.sandboxes.smtp import read_messages

OUTLETS = ("toasoan@baovinhphuc.example", "thoisu@truyenhinh.example")
TITLE = "Thông cáo báo chí: Lễ ra mắt điểm cầu Vĩnh Phúc — ngày hội BHXH"


@pytest.fixture
def press(smtp_server) -> PressChannel:
    return PressChannel(smtp_server.host, smtp_server.port, from_email="truyenthong@bhxh-vinhphuc.example",
                        from_name="Ban Truyền thông", login=smtp_server.user, password=smtp_server.password)


def press_kit(event_id: str, **fields) -> Publication:
    defaults = dict(event_id=event_id, key="press/kit", kind="email", title=TITLE,
                    body="Kính gửi quý cơ quan báo chí,\n\nSáng nay 64 điểm cầu đồng loạt ra mắt.",
                    recipients=OUTLETS,
                    links=(("Ảnh điểm cầu Vĩnh Phúc (ZIP)", "https://bhxh.vinhphuc.example/wp-content/uploads/2020/10/anh.zip"),
                           ("Video tổng hợp 3 phút", "https://bhxh.vinhphuc.example/wp-content/uploads/2020/10/recap.mp4")))
    defaults.update(fields)
    return Publication(**defaults)


def sent(smtp_server, pub: Publication) -> list:
    tag = f"{pub.event_id}/{pub.key}"
    return [m for m in read_messages(smtp_server.data_dir) if m.message["X-Bridgecast-Publication"] == tag]


def test_press_kit_is_html_and_text_in_vietnamese_with_links(press, smtp_server, ledger, event_id):
    pub = press_kit(event_id)
    outcome = publish_once(ledger, press, pub)
    [stored] = sent(smtp_server, pub)
    message = stored.message
    assert outcome.action == "created" and outcome.ref.remote_id == message["Message-ID"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == TITLE and unicodedata.is_normalized("NFC", message["Subject"])
    raw_headers = stored.raw.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii() and b"=?utf-8?" in raw_headers  # RFC 2047: readable by any mail client
    assert message["From"].addresses[0].display_name == "Ban Truyền thông"
    assert set(stored.envelope_to) == set(OUTLETS)
    assert not any(outlet in str(message["To"]) for outlet in OUTLETS)  # outlets do not see each other
    for label, url in pub.links:
        assert f"- {label}: {url}" in stored.text
        assert f'<a href="{url}">{label}</a>' in stored.html
    assert "Sáng nay 64 điểm cầu đồng loạt ra mắt." in stored.text and 'lang="vi"' in stored.html


def test_small_files_go_attached_and_are_named_in_the_text(press, smtp_server, ledger, event_id, photos):
    pub = press_kit(event_id, media=tuple(photos[:2]))
    publish_once(ledger, press, pub)
    [stored] = sent(smtp_server, pub)
    attached = {part.get_filename(): part.get_content() for part in stored.message.iter_attachments()}
    assert set(attached) == {m.filename for m in photos[:2]}
    for media in photos[:2]:  # the newsroom gets the very bytes we hold
        assert attached[media.filename] == Path(media.path).read_bytes()
    assert "Tệp đính kèm thư: Điểm cầu Hà Nội; Điểm cầu Vĩnh Phúc" in stored.text


def test_attachments_over_the_mail_size_limit_are_refused_naming_the_file(press, event_id, tmp_path, monkeypatch):
    import bridgecast.channels.press as press_module

    big = tmp_path / "poster.jpg"
    big.write_bytes(b"\xff\xd8" + b"0" * 4096)
    monkeypatch.setattr(press_module, "MAX_ATTACHMENTS_BYTES", 4000)
    from bridgecast.channels.base import MediaFile

    with pytest.raises(RejectedInput, match="poster.jpg"):
        press.build_message(press_kit(event_id, media=(MediaFile.from_path(big, "image/jpeg"),)))


def test_rerun_does_not_send_twice(press, smtp_server, ledger, event_id):
    pub = press_kit(event_id)
    outcomes = [publish_once(ledger, press, pub) for _ in range(5)]
    assert [o.action for o in outcomes] == ["created"] + ["existing"] * 4
    assert len(sent(smtp_server, pub)) == 1


def test_changed_press_kit_is_not_sent_again(press, smtp_server, ledger, event_id):
    publish_once(ledger, press, press_kit(event_id))
    outcome = publish_once(ledger, press, press_kit(event_id, body="Bản sửa."))
    assert outcome.action == "existing" and press.supports_update is False
    assert len(sent(smtp_server, press_kit(event_id))) == 1


def test_crash_after_send_resends_with_the_same_message_id(press, smtp_server, ledger, event_id, monkeypatch):
    """The chosen trade-off (see PressChannel.find): an unrecorded send is repeated, recognisably the same mail."""
    pub = press_kit(event_id)

    def crash(*_args, **_kwargs):
        raise SystemExit("worker killed after the SMTP server accepted the message")

    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "mark_published", crash)
        with pytest.raises(SystemExit):
            publish_once(ledger, press, pub)
    assert ledger.get(event_id, "press", pub.key).status == PENDING
    assert publish_once(ledger, press, pub).action == "created"
    assert [publish_once(ledger, press, pub).action for _ in range(3)] == ["existing"] * 3
    messages = sent(smtp_server, pub)
    assert len(messages) == 2 and messages[0].message["Message-ID"] == messages[1].message["Message-ID"]


def test_wrong_smtp_password_is_an_auth_error(smtp_server, event_id, no_secret):
    wrong = PressChannel(smtp_server.host, smtp_server.port, from_email="truyenthong@bhxh-vinhphuc.example",
                         login=smtp_server.user, password="not-" + smtp_server.password)
    with pytest.raises(AuthError) as caught:
        wrong.publish(press_kit(event_id))
    assert "bridgecast_smtp" in caught.value.operator_message
    health = wrong.check()
    assert health.ok is False and "renew the password" in health.detail
    no_secret(str(caught.value) + repr(caught.value) + health.detail + repr(wrong), "an SMTP AuthError")
    assert smtp_server.password not in repr(PressChannel(smtp_server.host, smtp_server.port, from_email="a@b.vn",
                                                         login="x", password=smtp_server.password))


def test_from_connection_reads_airflow_smtp_extras(smtp_server, monkeypatch, ledger, event_id):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_SMTP", json.dumps({
        "conn_type": "smtp", "host": smtp_server.host, "port": smtp_server.port, "login": smtp_server.user,
        "password": smtp_server.password,
        "extra": {"from_email": "truyenthong@bhxh-vinhphuc.example", "disable_tls": True, "disable_ssl": True,
                  "to": ",".join(OUTLETS)}}))
    channel = PressChannel.from_connection()
    assert channel.use_ssl is False and channel.starttls is False and channel.check().ok
    pub = press_kit(event_id, recipients=())
    publish_once(ledger, channel, pub)
    [stored] = sent(smtp_server, pub)
    assert set(stored.envelope_to) == set(OUTLETS)


def test_no_recipients_or_bad_address_is_rejected_before_connecting(press, event_id):
    with pytest.raises(RejectedInput) as caught:
        press.publish(press_kit(event_id, recipients=()))
    assert caught.value.param == "recipients"
    with pytest.raises(RejectedInput):
        press.publish(press_kit(event_id, recipients=("không phải địa chỉ",)))


def test_password_is_never_sent_in_clear_to_a_remote_host():
    with pytest.raises(ValueError):
        PressChannel("smtp.example.vn", 25, from_email="a@example.vn", login="u", password="p")
