"""Fixtures for the channel contract suite: two portal backends (sandbox, real WordPress), an SMTP sandbox,
a ledger per test, media generated at test time, and a watch that fails any test whose logs show a secret."""
from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bridgecast.channels.base import MediaFile
from bridgecast.channels.portal import PortalChannel
from bridgecast.ledger import Ledger
from devstack.sandboxes.smtp import free_port
from devstack.stack.wordpress import WordPress

REPO = Path(__file__).resolve().parents[3]
PORTAL_USER = "bridgecast"

# Every credential the suite hands out, plus the forms it travels in (Basic header); no log line may contain one.
SECRETS: set[str] = set()


def register_secret(value: str, user: str | None = None) -> str:
    SECRETS.add(value)
    if user is not None:
        SECRETS.add(base64.b64encode(f"{user}:{value}".encode()).decode())
    return value


def assert_no_secret(text: str, where: str = "text") -> None:
    # pytest.fail, not a bare assert: assertion rewriting would print the secret in the report it protects.
    if any(secret in text for secret in SECRETS):
        pytest.fail(f"a credential leaked into {where}", pytrace=False)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    return env


def _wait_http(url: str, log_path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s:\n{log_path.read_text(errors='replace')[-3000:]}")


# --- secret watch -------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog):
    """All logging at DEBUG (our modules, requests/urllib3, aiosmtpd), checked after every test."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "bridgecast", "mail.log"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    # At teardown `caplog.records` only holds the teardown phase: read the phases that ran the test.
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert_no_secret(text, f"log record of {record.name}")


# --- portal backends ----------------------------------------------------------------------------------------
@dataclass
class PortalBackend:
    name: str
    base_url: str
    user: str
    app_password: str = field(repr=False)
    supports_faults: bool = False
    harness: WordPress | None = None  # the real WordPress's controller, for the harness tests

    def channel(self, **options) -> PortalChannel:
        return PortalChannel(self.base_url, self.user, self.app_password, **options)

    def fault(self, **rule) -> None:
        """Sandbox only: make the next matching calls fail or hang."""
        response = requests.post(f"{self.base_url}/__sandbox/faults", json=rule, timeout=5,
                                 auth=(self.user, self.app_password))
        response.raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.base_url}/__sandbox/faults", timeout=5, auth=(self.user, self.app_password))

    def count_posts(self, token: str) -> int:
        """Posts (any status but trash) whose title carries `token`: duplicates would show here."""
        posts = self.channel().client.list_posts(search=token, status="publish,future,draft,pending,private")
        return sum(1 for p in posts if token in p["title"]["raw"])


@pytest.fixture(scope="session")
def portal_sandbox(tmp_path_factory) -> PortalBackend:
    """The sandbox started through its real entry point, as the stack starts it."""
    root = tmp_path_factory.mktemp("portal-sandbox")
    password = register_secret(secrets.token_urlsafe(24), PORTAL_USER)
    password_file = root / "app-password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    port = free_port()
    log_path = root / "sandbox.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.sandboxes.portal", "--host", "127.0.0.1",
                                 "--port", str(port), "--data", str(root / "data"), "--user", PORTAL_USER,
                                 "--app-password-file", str(password_file)],
                                stdout=log, stderr=subprocess.STDOUT, env=_child_env(), cwd=REPO)
    try:
        _wait_http(f"http://127.0.0.1:{port}/wp-json/", log_path)
        yield PortalBackend("sandbox", f"http://127.0.0.1:{port}", PORTAL_USER, password, supports_faults=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert_no_secret(log_path.read_text(errors="replace"), "the portal sandbox log")


@pytest.fixture(scope="session")
def real_wordpress() -> PortalBackend:
    """A private WordPress 6.1 (Debian packages) for the whole session; fails loudly if it cannot start."""
    # Not under pytest's tmp dir: that is 0700 root, and php-fpm/MariaDB run as www-data/mysql.
    state = Path(tempfile.mkdtemp(prefix="bridgecast-wp-"))
    wordpress = WordPress(state, free_port())
    t0 = time.monotonic()
    try:
        info = wordpress.start()
    except BaseException:
        wordpress.uninstall()
        raise
    logging.getLogger(__name__).info("WordPress first start took %.1fs", time.monotonic() - t0)
    register_secret(info.app_password, info.user)
    register_secret(info.app_password.replace(" ", ""), info.user)
    try:
        yield PortalBackend("wordpress", info.base_url, info.user, info.app_password, harness=wordpress)
    finally:
        wordpress.uninstall()
        for log_file in (state / "log").rglob("*.log"):
            assert_no_secret(log_file.read_text(errors="replace"), str(log_file))
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(params=["sandbox", pytest.param("wordpress", marks=pytest.mark.wordpress)])
def portal_backend(request) -> PortalBackend:
    backend = request.getfixturevalue("portal_sandbox" if request.param == "sandbox" else "real_wordpress")
    yield backend
    if backend.supports_faults:
        backend.clear_faults()


@pytest.fixture
def portal(portal_backend) -> PortalChannel:
    return portal_backend.channel()


# --- ledger, ids, media -------------------------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


@pytest.fixture
def event_id() -> str:
    """A fresh event per test, so slugs never collide across tests sharing one server."""
    return f"test-{uuid.uuid4().hex[:10]}"


def _media(path: Path, caption: str = "", content_type: str = "image/jpeg") -> MediaFile:
    return MediaFile.from_path(path, content_type, caption)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture
def photos(media_dir) -> list[MediaFile]:
    """Three distinct JPEGs, new content per test (content-addressed media are reused across a session)."""
    from PIL import Image, ImageDraw

    files = []
    for index, (colour, caption) in enumerate([((200, 30, 30), "Điểm cầu Hà Nội"),
                                               ((30, 160, 60), "Điểm cầu Vĩnh Phúc"),
                                               ((30, 60, 200), "Người dân tham gia")]):
        image = Image.new("RGB", (320, 240), colour)
        ImageDraw.Draw(image).text((10, 10), uuid.uuid4().hex, fill=(255, 255, 255))
        path = media_dir / f"cp{index:02d}-{uuid.uuid4().hex[:8]}.jpg"
        image.save(path, quality=80)
        files.append(_media(path, caption))
    return files


def make_video(path: Path, seconds: float = 2.0, pad_bytes: int = 0) -> MediaFile:
    """A small H.264/AAC MP4 from ffmpeg's lavfi sources; `pad_bytes` of trailing data make it as big as needed."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=15:d={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=880:sample_rate=48000:d={seconds}",
                    "-metadata", f"comment={uuid.uuid4().hex}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart",
                    str(path)], check=True, timeout=60)
    if pad_bytes:
        with open(path, "ab") as fh:  # trailing bytes after the moov/mdat boxes; players ignore them
            chunk = os.urandom(1024 * 1024)
            for _ in range(pad_bytes // len(chunk)):
                fh.write(chunk)
    return _media(path, "Video tổng hợp buổi lễ", content_type="video/mp4")


@pytest.fixture
def recap_video(media_dir) -> MediaFile:
    return make_video(media_dir / f"recap-{uuid.uuid4().hex[:8]}.mp4")


# --- SMTP ---------------------------------------------------------------------------------------------------
@dataclass
class SmtpServer:
    host: str
    port: int
    data_dir: Path
    user: str
    password: str = field(repr=False)


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory) -> SmtpServer:
    """The SMTP sandbox through its real entry point, with AUTH so the suite can watch the password."""
    root = tmp_path_factory.mktemp("smtp-sandbox")
    user = "press-bot"
    password = register_secret(secrets.token_urlsafe(18))
    register_secret(base64.b64encode(f"\0{user}\0{password}".encode()).decode())  # AUTH PLAIN blob
    credentials = root / "credentials.json"
    credentials.write_text(json.dumps({"user": user, "password": password}))
    credentials.chmod(0o600)
    port = free_port()
    log_path = root / "smtp.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.sandboxes.smtp", "--port", str(port),
                                 "--data", str(root / "mail"), "--credentials-file", str(credentials)],
                                stdout=log, stderr=subprocess.STDOUT, env=_child_env(), cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        import smtplib

        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"SMTP sandbox did not start:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.1)
        yield SmtpServer("127.0.0.1", port, root / "mail", user, password)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert_no_secret(log_path.read_text(errors="replace"), "the SMTP sandbox log")


@pytest.fixture
def no_secret():
    """`no_secret(text, where)` fails when `text` holds any credential of the suite (for exception strings)."""
    return assert_no_secret


@pytest.fixture
def video_maker():
    return make_video


@pytest.fixture
def remember_secret():
    """`remember_secret(value, user)` adds a credential (and its Basic form) to what the leak watch looks for."""
    return register_secret
