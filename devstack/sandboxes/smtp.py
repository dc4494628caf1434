"""SMTP sandbox: a real SMTP server (aiosmtpd) on loopback that stores every accepted message as an .eml file.

It delivers nothing anywhere. `read_messages(data_dir)` gives the stored messages back to tests and to the
rehearsal summary. Optional AUTH (PLAIN/LOGIN, no TLS: loopback only) with credentials from a file or environment.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

log = logging.getLogger(__name__)


class EmlStore:
    """aiosmtpd handler: write the message as received, with the SMTP envelope in two leading headers."""

    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        # Like a mailbox's Return-Path/Delivered-To: the envelope is what actually decided who got it.
        trace = (f"X-Envelope-From: {envelope.mail_from}\r\n"
                 f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n").encode("utf-8")
        digest = hashlib.sha256(raw).hexdigest()[:12]
        with self._lock:
            name = f"{time.time_ns()}-{digest}.eml"
            tmp = self.dir / (name + ".tmp")
            tmp.write_bytes(trace + raw)
            os.replace(tmp, self.dir / name)
        log.info("stored message %s from %s to %d recipient(s)", name, envelope.mail_from, len(envelope.rcpt_tos))
        return "250 2.0.0 Message accepted for delivery"


class _PasswordCheck:
    def __init__(self, user: str, password: str):
        self._user, self._password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        # Return a bare result: aiosmtpd logs it at DEBUG, and an AuthResult carrying auth_data would log the password.
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self._user) and hmac.compare_digest(auth_data.password,
                                                                                    self._password)
        return AuthResult(success=ok, handled=False)

    def __repr__(self) -> str:
        return "<smtp sandbox password check>"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SmtpSandbox:
    """`with SmtpSandbox(dir) as smtp: ...` — an SMTP server on `smtp.host:smtp.port` storing .eml files in `dir`."""

    def __init__(self, data_dir: str | os.PathLike, *, host: str = "127.0.0.1", port: int | None = None,
                 user: str | None = None, password: str | None = None):
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        kwargs = {}
        if user and password:
            kwargs = {"authenticator": _PasswordCheck(user, password), "auth_required": True,
                      "auth_require_tls": False}  # loopback only: the sandbox never leaves the machine
        self._controller = Controller(EmlStore(self.data_dir), hostname=host, port=self.port,
                                      server_hostname="smtp-sandbox.bridgecast.local", enable_SMTPUTF8=True,
                                      decode_data=False, **kwargs)

    def start(self) -> "SmtpSandbox":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "SmtpSandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class StoredMessage:
    path: Path
    envelope_from: str
    envelope_to: tuple[str, ...]
    message: EmailMessage
    raw: bytes

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part else ""


def read_messages(data_dir: str | os.PathLike) -> list[StoredMessage]:
    """Every stored message, oldest first, parsed with the modern email policy (headers decoded)."""
    folder = Path(data_dir)
    if not folder.exists():
        return []
    messages = []
    for path in sorted(folder.glob("*.eml")):
        raw = path.read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        recipients = tuple(a.strip() for a in str(message.get("X-Envelope-To", "")).split(",") if a.strip())
        messages.append(StoredMessage(path=path, envelope_from=str(message.get("X-Envelope-From", "")),
                                      envelope_to=recipients, message=message, raw=raw))
    return messages


def _credentials(args) -> tuple[str | None, str | None]:
    """From a JSON file {"user", "password"} or BRIDGECAST_SMTP_SANDBOX_USER/_PASSWORD; never from argv."""
    if args.credentials_file:
        data = json.loads(Path(args.credentials_file).read_text(encoding="utf-8"))
        return data["user"], data["password"]
    return os.environ.get("BRIDGECAST_SMTP_SANDBOX_USER"), os.environ.get("BRIDGECAST_SMTP_SANDBOX_PASSWORD")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.sandboxes.smtp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True, help="directory for the received .eml files")
    parser.add_argument("--credentials-file", default=None,
                        help='JSON {"user": ..., "password": ...}; without it (and without the environment '
                             "variables) the sandbox accepts mail without AUTH")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    user, password = _credentials(args)
    sandbox = SmtpSandbox(args.data, host=args.host, port=args.port, user=user, password=password).start()
    log.info("SMTP sandbox on %s:%d storing messages in %s (AUTH %s)", sandbox.host, sandbox.port, args.data,
             "required" if user else "off")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sandbox.stop()


if __name__ == "__main__":
    main()
