"""Press channel: the press-kit email (Vietnamese HTML + plain text, links to photos/video, small files attached)
to the outlets, by SMTP.

Exactly-once for email rests on the ledger and a deterministic Message-ID; see `PressChannel.find` for why a
crash between "sent" and "recorded" resends rather than risks a press kit that never went out.
"""
from __future__ import annotations

import email.policy
import hashlib
import html
import ipaddress
import logging
import os
import re
import smtplib
import socket
import ssl
import unicodedata
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from bridgecast.channels.base import (AuthError, Channel, ChannelError, HealthReport, Publication, RateLimited,
                                      RejectedInput, RemoteRef, Transient)

log = logging.getLogger(__name__)

CHANNEL = "press"
DEFAULT_CONN_ID = "bridgecast_smtp"
MAX_ATTACHMENTS_BYTES = 10 * 2**20  # newsroom mail servers commonly refuse 10–25 MB; base64 adds a third
SERVER_MARGIN_S = 30.0  # how long past our socket timeout an SMTP server may still finish taking a message
# 7bit transfer encoding everywhere (quoted-printable/base64 bodies, RFC 2047 headers): Vietnamese survives any
# relay, including ones that do not announce 8BITMIME.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "")


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", _nfc(text).replace("\r\n", "\n")) if p.strip()]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def message_id(pub: Publication, domain: str) -> str:
    """The same publication always gets the same Message-ID, so a resend is recognisable (and deduplicated by
    mail systems that do so, e.g. Gmail) as the same message."""
    digest = hashlib.sha256(f"{pub.event_id}/{pub.key}".encode()).hexdigest()[:24]
    return f"<press.{digest}@{domain}>"


def render_text(pub: Publication) -> str:
    lines = [_nfc(pub.title), ""]
    for paragraph in _paragraphs(pub.body):
        lines += [paragraph, ""]
    if pub.link:
        lines += [f"Xem chi tiết: {pub.link}", ""]
    if pub.links:
        lines.append("Tư liệu kèm theo (bấm để tải về):")
        lines += [f"- {_nfc(label)}: {url}" for label, url in pub.links]
        lines.append("")
    if pub.media:
        lines.append("Tệp đính kèm thư: " + "; ".join(_nfc(m.caption or m.filename) for m in pub.media))
        lines.append("")
    return "\n".join(lines)


def render_html(pub: Publication) -> str:
    parts = [f"<h1>{html.escape(_nfc(pub.title))}</h1>"]
    parts += [f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in _paragraphs(pub.body)]
    if pub.link:
        url = html.escape(pub.link, quote=True)
        parts.append(f'<p>Xem chi tiết: <a href="{url}">{html.escape(pub.link)}</a></p>')
    if pub.links:
        items = "".join(f'<li><a href="{html.escape(url, quote=True)}">{html.escape(_nfc(label))}</a></li>'
                        for label, url in pub.links)
        parts.append(f"<h2>Tư liệu kèm theo</h2><ul>{items}</ul>")
    if pub.media:
        items = "".join(f"<li>{html.escape(_nfc(m.caption or m.filename))} ({html.escape(m.filename)})</li>"
                        for m in pub.media)
        parts.append(f"<h2>Tệp đính kèm thư</h2><ul>{items}</ul>")
    return ('<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">'
            f"<title>{html.escape(_nfc(pub.title))}</title></head><body>{''.join(parts)}</body></html>")


class PressChannel(Channel):
    """`PressChannel("smtp.example.vn", 587, from_email="bao-chi@example.vn", starttls=True, ...).publish(pub)`."""

    name = CHANNEL
    supports_update = False  # an email cannot be changed once it is in someone's inbox

    def __init__(self, host: str, port: int = 25, *, from_email: str, from_name: str = "", login: str = "",
                 password: str = "", use_ssl: bool = False, starttls: bool = False, timeout_s: float = 30.0,
                 default_recipients: tuple[str, ...] = (), conn_id: str = DEFAULT_CONN_ID):
        if not _ADDRESS_RE.match(from_email or ""):
            raise ValueError(f"from_email {from_email!r} is not a plain e-mail address")
        if password and not (use_ssl or starttls) and not _is_loopback(host):
            raise ValueError(f"refusing to send the SMTP password to {host} without TLS: enable SSL or STARTTLS")
        self.host, self.port = host, port
        self.from_email, self.from_name = from_email, _nfc(from_name)
        self.login = login
        self._password = password
        self.use_ssl, self.starttls = use_ssl, starttls
        self.timeout_s = timeout_s
        self.default_recipients = tuple(default_recipients)
        self.conn_id = conn_id

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **options) -> "PressChannel":
        """Airflow SMTP Connection: host, port, login/password optional; extra from_email, from_name,
        disable_ssl / disable_tls (same meaning as Airflow's smtp provider: SSL and STARTTLS on unless disabled),
        timeout, to (default outlet list)."""
        from bridgecast.connections import get_connection

        conn = get_connection(conn_id)
        extra = conn.extra
        use_ssl = not _flag(extra.get("disable_ssl", False))
        recipients = extra.get("to") or ()
        if isinstance(recipients, str):
            recipients = tuple(r.strip() for r in recipients.split(",") if r.strip())
        settings = dict(
            host=conn.host, port=conn.port or (465 if use_ssl else 25), from_email=extra.get("from_email", ""),
            from_name=extra.get("from_name", ""), login=conn.login, password=conn.password, use_ssl=use_ssl,
            starttls=not use_ssl and not _flag(extra.get("disable_tls", False)),
            timeout_s=float(extra.get("timeout", 30)), default_recipients=tuple(recipients), conn_id=conn_id)
        settings.update(options)
        return cls(**settings)

    def __repr__(self) -> str:
        return f"PressChannel({self.host!r}, {self.port}, from_email={self.from_email!r}, login={self.login!r})"

    @property
    def domain(self) -> str:
        return self.from_email.rpartition("@")[2]

    # --- Channel interface ---------------------------------------------------------------------------------
    def publish(self, pub: Publication) -> RemoteRef:
        recipients = self._recipients(pub)
        message = self.build_message(pub)
        with self._session("send the press kit") as smtp:
            try:
                refused = smtp.send_message(message, from_addr=self.from_email, to_addrs=list(recipients))
            except smtplib.SMTPRecipientsRefused as exc:
                raise self._refused(exc.recipients) from None
        accepted = [r for r in recipients if r not in refused]
        if refused:
            log.warning("press: %d of %d outlets refused %s: %s", len(refused), len(recipients), pub.key,
                        ", ".join(f"{r} ({code})" for r, (code, _) in refused.items()))
        log.info("press: sent %s to %d outlet(s) as %s", pub.key, len(accepted), message["Message-ID"])
        return RemoteRef(channel=CHANNEL, remote_id=str(message["Message-ID"]), extra={
            "recipients": accepted,
            "refused": {r: f"{code} {_text(reply)}" for r, (code, reply) in refused.items()}})

    def find(self, pub: Publication) -> RemoteRef | None:
        """SMTP cannot be asked what it delivered, so a `pending`/`unknown` ledger row means "maybe sent".

        We choose to resend (with the same Message-ID) rather than to assume it went out. The ledger marks every
        failure it cannot classify `unknown` — a refused connection as much as a crash after the server's 250 —
        and assuming "sent" would silently drop the press kit in all those cases; resending costs, in the rare
        crash-after-250 window only, a duplicate that carries the same Message-ID. A `published` row is never
        resent: the ledger returns it before asking us."""
        return None

    def server_window_s(self, pub: Publication) -> float:
        """A send that lost its line may still be delivered: the socket timeout plus a margin."""
        return self.timeout_s + SERVER_MARGIN_S

    def update(self, ref: RemoteRef, pub: Publication) -> RemoteRef:
        raise RejectedInput(CHANNEL, f"{pub.key}: an email cannot be changed once sent; publish a correction "
                                     f"under a new key", param="payload")

    def delete(self, ref: RemoteRef) -> None:
        # Nothing to call: mail cannot be recalled. Cancelling still records that staff withdrew it.
        log.warning("press: %s was already emailed and cannot be recalled; only the ledger records the "
                    "cancellation", ref.remote_id)

    def check(self) -> HealthReport:
        try:
            with self._session("check the SMTP server") as smtp:
                code, _ = smtp.noop()
        except ChannelError as exc:
            return HealthReport(CHANNEL, ok=False, detail=exc.operator_message)
        mode = "SSL" if self.use_ssl else "STARTTLS" if self.starttls else "plain"
        auth = f"as '{self.login}'" if self.login else "without login"
        return HealthReport(CHANNEL, ok=code == 250,
                            detail=f"SMTP {self.host}:{self.port} ({mode}) accepts us {auth}; NOOP answered {code}")

    # --- message -------------------------------------------------------------------------------------------
    def build_message(self, pub: Publication) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        sender = Address(display_name=self.from_name, addr_spec=self.from_email)
        message["Subject"] = _nfc(pub.title)
        message["From"] = sender
        # Outlets go in the envelope only: a press list must not show every newsroom's address to the others.
        message["To"] = Address(display_name=self.from_name, addr_spec=self.from_email)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id(pub, self.domain)
        message["X-Bridgecast-Publication"] = f"{pub.event_id}/{pub.key}"
        message.set_content(render_text(pub), subtype="plain", charset="utf-8")
        message.add_alternative(render_html(pub), subtype="html", charset="utf-8")
        total = 0
        for media in pub.media:  # small files that must reach the newsroom even if no link works (poster, sheet)
            total += os.path.getsize(media.path)
            if total > MAX_ATTACHMENTS_BYTES:
                raise RejectedInput(CHANNEL, f"{pub.key}: attachments exceed {MAX_ATTACHMENTS_BYTES // 2**20} MiB "
                                             f"at {media.filename} — link large files instead", param="media")
            maintype, _, subtype = media.content_type.partition("/")
            with open(media.path, "rb") as fh:
                message.add_attachment(fh.read(), maintype=maintype, subtype=subtype or "octet-stream",
                                       filename=media.filename)
        message["Content-Language"] = "vi"  # after the parts: set_content moves Content-* headers into them
        return message

    def _recipients(self, pub: Publication) -> tuple[str, ...]:
        recipients = tuple(dict.fromkeys(r.strip() for r in (pub.recipients or self.default_recipients) if r.strip()))
        if not recipients:
            raise RejectedInput(CHANNEL, f"{pub.key}: no outlet addresses (Publication.recipients is empty and "
                                         f"Connection {self.conn_id} has no 'to')", param="recipients")
        bad = [r for r in recipients if not _ADDRESS_RE.match(r)]
        if bad:
            raise RejectedInput(CHANNEL, f"{pub.key}: not e-mail addresses: {', '.join(bad)}", param="recipients")
        return recipients

    # --- SMTP session --------------------------------------------------------------------------------------
    def _session(self, action: str) -> "_SmtpSession":
        return _SmtpSession(self, action)

    def _refused(self, recipients: dict) -> ChannelError:
        codes = {r: code for r, (code, _) in recipients.items()}
        detail = ", ".join(f"{r} ({code} {_text(reply)})" for r, (code, reply) in recipients.items())
        if all(400 <= code < 500 for code in codes.values()):
            return Transient(CHANNEL, f"every outlet was refused for now: {detail}", code="recipients_4xx")
        return RejectedInput(CHANNEL, f"the SMTP server refused every outlet address: {detail}",
                             code="recipients_refused", param="recipients")


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class _SmtpSession:
    """Connect (SSL or STARTTLS), log in, and turn every smtplib/socket failure into a typed channel error."""

    def __init__(self, channel: PressChannel, action: str):
        self.channel, self.action = channel, action
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> smtplib.SMTP:
        c = self.channel
        try:
            if c.use_ssl:
                self.smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s,
                                             context=ssl.create_default_context())
            else:
                self.smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            self.smtp.ehlo()
            if c.starttls and not c.use_ssl:
                self.smtp.starttls(context=ssl.create_default_context())
                self.smtp.ehlo()
            if c.login:
                self.smtp.login(c.login, c._password)
        except BaseException as exc:
            self._close()
            raise self._error(exc) from None
        return self.smtp

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass  # the message was accepted before QUIT; a failing goodbye changes nothing
            return False
        self._close()
        error = self._error(exc)
        if error is exc:  # already typed, or not ours to translate (KeyboardInterrupt, SystemExit…)
            return False
        raise error from None

    def _close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            except OSError:
                pass

    def _error(self, exc: BaseException) -> BaseException:
        c, action = self.channel, self.action
        if isinstance(exc, ChannelError):
            return exc
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return AuthError(CHANNEL, f"the SMTP server {c.host} refused the login of '{c.login}' while trying to "
                                      f"{action} ({exc.smtp_code} {_text(exc.smtp_error)}): renew the password in "
                                      f"Airflow Connection {c.conn_id}", code=exc.smtp_code)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return RejectedInput(CHANNEL, f"the SMTP server {c.host} does not support what Connection {c.conn_id} "
                                          f"asks for while trying to {action} ({exc}); check disable_tls/"
                                          f"disable_ssl and login", param="connection")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            if 400 <= exc.smtp_code < 500:
                return RateLimited(CHANNEL, f"the SMTP server deferred the sender while trying to {action} "
                                            f"({exc.smtp_code} {_text(exc.smtp_error)})", code=exc.smtp_code,
                                   retry_after_s=300.0)
            return RejectedInput(CHANNEL, f"the SMTP server refused sender {c.from_email} while trying to {action} "
                                          f"({exc.smtp_code} {_text(exc.smtp_error)}): fix from_email in Connection "
                                          f"{c.conn_id}", code=exc.smtp_code, param="from_email")
        if isinstance(exc, smtplib.SMTPResponseException):  # SMTPDataError, 421 and friends
            if 400 <= exc.smtp_code < 500:
                return Transient(CHANNEL, f"the SMTP server deferred {action} ({exc.smtp_code} "
                                          f"{_text(exc.smtp_error)})", code=exc.smtp_code)
            return RejectedInput(CHANNEL, f"the SMTP server rejected {action} ({exc.smtp_code} "
                                          f"{_text(exc.smtp_error)})", code=exc.smtp_code, param="message")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return RejectedInput(CHANNEL, f"the TLS certificate of {c.host} is not trusted ({exc.verify_message})",
                                 param="connection")
        if isinstance(exc, (smtplib.SMTPException, OSError, socket.timeout)):
            error = Transient(CHANNEL, f"cannot talk to the SMTP server {c.host}:{c.port} while trying to {action} "
                                       f"({type(exc).__name__}: {exc})", code=type(exc).__name__)
            error.unanswered = True  # the server may have taken the message before the line went quiet
            return error
        return exc
