"""Fixtures for the fanpage contract suite: the sandbox started through its real entry point, a private nginx-rtmp
whose callbacks point at it, a channel and a ledger per test, media made by Pillow and ffmpeg at test time, and a
watch that fails any test whose logs show a credential."""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bridgecast.channels.base import MediaFile
from bridgecast.channels.fanpage import FanpageChannel
from bridgecast.ledger import Ledger
from devstack.sandboxes.fanpage import DEFAULT_PERMISSIONS

REPO = Path(__file__).resolve().parents[3]
UPLOAD_CHUNK_BYTES = 256 * 1024
RTMP_APP = "fblive"

# Every credential the suite hands out; no log line, exception or repr may contain one.
SECRETS: set[str] = set()


def register_secret(value: str) -> str:
    SECRETS.add(value)
    return value


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a credential leaked into {where}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "BRIDGECAST_FANPAGE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    return env


# --- secret watch -------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog):
    """Everything logged at DEBUG (our modules, requests, urllib3) is checked after every test."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "bridgecast"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert_no_secret(text, f"a log record of {record.name}")


# --- the sandbox --------------------------------------------------------------------------------------------------
@dataclass
class Sandbox:
    base_url: str
    page_id: str
    rtmp_port: int
    record_dir: Path
    log_path: Path
    token: str = field(repr=False)
    app_secret: str = field(repr=False)

    @property
    def rtmp_base(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/{RTMP_APP}"

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base_url}/_sandbox/{path}", json=body, timeout=10,
                                    headers={"Authorization": f"Bearer {self.app_secret}"})
        assert response.status_code < 300, response.text
        return response.json()

    def fault(self, **rule) -> None:
        """Make matching Graph calls fail or stall (see Faults in the sandbox)."""
        self.admin("POST", "faults", rule)

    def knobs(self, **values) -> dict:
        return self.admin("POST", "knobs", values)

    def advance_clock(self, seconds: float) -> None:
        self.admin("POST", "clock", {"advance_s": seconds})

    def reset(self) -> None:
        self.admin("DELETE", "faults")
        self.knobs(expired=False, permissions=list(DEFAULT_PERMISSIONS), require_appsecret_proof=False,
                   rate_limit_calls=100000, rate_limit_window_s=3600, upload_chunk_bytes=UPLOAD_CHUNK_BYTES,
                   duplicate_window_s=0)
        self.admin("POST", "clock", {"offset_s": 0})

    def last_seq(self) -> int:
        return self.admin("GET", "requests?since=999999999")["last"]

    def requests_since(self, seq: int) -> list[dict]:
        return self.admin("GET", f"requests?since={seq}")["requests"]

    def obj(self, object_id: str) -> dict:
        return self.admin("GET", f"objects/{object_id}")

    def graph(self, path: str, **params) -> dict:
        """A raw Graph read with the Page token, independent of the client under test."""
        response = requests.get(f"{self.base_url}/v25.0/{path}", params=params, timeout=10,
                                headers={"Authorization": f"OAuth {self.token}"})
        return response.json()

    def channel(self, **options) -> FanpageChannel:
        options.setdefault("sleep", lambda _s: None)
        return FanpageChannel(self.page_id, self.token, graph_version="v25.0", base_url=self.base_url, **options)

    def posts_with(self, marker: str) -> list[dict]:
        """Published and scheduled posts whose message contains `marker`: a duplicate would show here."""
        found = []
        for edge in ("posts", "scheduled_posts"):
            page = self.graph(f"{self.page_id}/{edge}", fields="id,message", limit=100)
            found += [p for p in page["data"] if marker in p.get("message", "")]
        return found


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    """The sandbox as the stack starts it: `python -m devstack.sandboxes.fanpage`, secrets from a 0600 file."""
    root = tmp_path_factory.mktemp("fanpage-sandbox")
    page_id = str(100000000000000 + secrets.randbelow(10 ** 14))
    token = register_secret("EAAB" + secrets.token_urlsafe(40))
    app_secret = register_secret(secrets.token_hex(16))
    secrets_file = root / "secrets.json"
    secrets_file.write_text(json.dumps({"fanpage_page_token": token, "fanpage_app_secret": app_secret}))
    secrets_file.chmod(0o600)
    record_dir = root / "recordings"
    record_dir.mkdir()
    port, rtmp_port = free_port(), free_port()
    log_path = root / "sandbox.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.sandboxes.fanpage", "--host", "127.0.0.1", "--port", str(port),
             "--data", str(root / "data"), "--rtmp-base", f"rtmp://127.0.0.1:{rtmp_port}/{RTMP_APP}",
             "--page-id", page_id, "--secrets-file", str(secrets_file), "--record-dir", str(record_dir),
             "--upload-chunk-kb", str(UPLOAD_CHUNK_BYTES // 1024)],
            stdout=log, stderr=subprocess.STDOUT, env=_child_env(), cwd=REPO)
    try:
        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"the fanpage sandbox exited:\n{log_path.read_text(errors='replace')}")
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout_s=30, what="the fanpage sandbox", interval_s=0.1)
        yield Sandbox(f"http://127.0.0.1:{port}", page_id, rtmp_port, record_dir, log_path, token, app_secret)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert_no_secret(log_path.read_text(errors="replace"), "the sandbox log")


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox):
    yield
    sandbox.reset()


@pytest.fixture(scope="session")
def rtmp_ingest(sandbox, tmp_path_factory) -> Sandbox:
    """A private nginx-rtmp on the port the sandbox hands out, with on_publish/on_publish_done/on_record_done
    pointing at the sandbox and recordings where the sandbox looks for them."""
    prefix = tmp_path_factory.mktemp("nginx-rtmp")
    callbacks = f"{sandbox.base_url}/_ingest"
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{sandbox.rtmp_port};
        chunk_size 4096;
        notify_method post;
        application {RTMP_APP} {{
            live on;
            drop_idle_publisher 10s;
            on_publish      {callbacks}/on_publish;
            on_publish_done {callbacks}/on_publish_done;
            on_record_done  {callbacks}/on_record_done;
            record all;
            record_path {sandbox.record_dir};
            record_suffix -%Y%m%dT%H%M%S.flv;
            record_unique on;
        }}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        def listening():
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'error.log').read_text(errors='replace')}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", sandbox.rtmp_port)) == 0

        wait_for(listening, timeout_s=10, what="nginx-rtmp", interval_s=0.1)
        yield sandbox
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def publish_stream(url: str, *, seconds: float, conformant: bool = True) -> subprocess.Popen:
    """A real-time lavfi stream to an RTMP URL: 640x360 H.264 2 s GOP + AAC 48 kHz stereo, or (not conformant)
    a 10 s GOP with mono 22.05 kHz audio."""
    if conformant:
        video = ["-b:v", "600k", "-maxrate", "600k", "-bufsize", "600k", "-g", "60", "-keyint_min", "60"]
        audio = ["-b:a", "128k", "-ar", "48000", "-ac", "2"]
        rate = 48000
    else:
        video = ["-b:v", "600k", "-g", "300", "-keyint_min", "300"]
        audio = ["-b:a", "64k", "-ar", "22050", "-ac", "1"]
        rate = 22050
    return subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                             "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate={rate}", "-t", str(seconds),
                             "-c:v", "libx264", "-preset", "veryfast", *video, "-sc_threshold", "0",
                             "-pix_fmt", "yuv420p", "-c:a", "aac", *audio, "-f", "flv", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# --- channel, ledger, ids, media ------------------------------------------------------------------------------------
@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fanpage(sandbox, sleeps, tmp_path) -> FanpageChannel:
    """The channel under test; retry waits are recorded instead of slept."""
    return sandbox.channel(sleep=sleeps.append, resume_dir=tmp_path / "uploads")


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


@pytest.fixture
def event_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def marker() -> str:
    """A word unique to the test, put into every message so posts of one test are told apart."""
    return f"m{uuid.uuid4().hex[:12]}"


def media_file(path: Path, content_type: str, caption: str = "") -> MediaFile:
    return MediaFile.from_path(path, content_type, caption)


@pytest.fixture
def photos(tmp_path) -> list[MediaFile]:
    from PIL import Image, ImageDraw

    files = []
    for index, (colour, caption) in enumerate([((200, 30, 30), "Điểm cầu Hà Nội"),
                                               ((30, 160, 60), "Điểm cầu Vĩnh Phúc"),
                                               ((30, 60, 200), "Người dân tham gia")]):
        image = Image.new("RGB", (320, 240), colour)
        ImageDraw.Draw(image).text((10, 10), uuid.uuid4().hex, fill=(255, 255, 255))
        path = tmp_path / f"cp{index:02d}.jpg"
        image.save(path, quality=80)
        files.append(media_file(path, "image/jpeg", caption))
    return files


@pytest.fixture
def recap_video(tmp_path) -> MediaFile:
    """An H.264/AAC MP4 padded past five upload chunks, so an upload can be cut in the middle."""
    path = tmp_path / "recap.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:d=2",
                    "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:d=2", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    "-movflags", "+faststart", str(path)], check=True, timeout=60)
    with open(path, "ab") as fh:  # trailing bytes after the MP4 boxes; players ignore them
        fh.write(os.urandom(5 * UPLOAD_CHUNK_BYTES + 12345))
    return media_file(path, "video/mp4", "Video tổng hợp buổi lễ")


# --- helpers as fixtures (test modules do not import conftest) --------------------------------------------------------
@pytest.fixture
def wait():
    return wait_for


@pytest.fixture
def stream():
    return publish_stream


@pytest.fixture
def no_secret():
    """`no_secret(text, where)` fails when `text` holds a credential of the suite (exception strings, reprs)."""
    return assert_no_secret


@pytest.fixture
def secret():
    """`secret(value)` adds a value (a stream key, a wrong token) to what must never be logged."""
    return register_secret
