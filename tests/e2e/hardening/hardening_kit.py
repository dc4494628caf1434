"""Tools of the adversarial suite: real publishers with any URL, raw HTTP that counts what the server took, a TCP
relay that connects from another source address, and the list of every secret the stack holds (for the log scan).

Nothing here starts a server of the stack; `spare_gateway` starts a second gateway *process* (the real module,
another configuration) for faults the shared one must not have.
"""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests

EVENT_ID = "bhxh-vinhphuc-2020"
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Kit:
    stack: object

    @property
    def layout(self):
        return self.stack.layout

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.ports.gateway}"

    @property
    def callbacks_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.ports.gateway_callbacks}"

    @property
    def callback_secret(self) -> str:
        return (self.layout.secrets / "rtmp-callback.secret").read_text().strip()

    @property
    def keys_file(self) -> Path:
        return self.layout.secrets / "points" / f"{EVENT_ID}.json"

    def keys(self, point: str) -> dict:
        return json.loads(self.keys_file.read_text())["points"][point]

    def auth(self, point: str) -> dict:
        return {"Authorization": f"Bearer {self.keys(point)['upload_token']}"}

    def rtmp_url(self, stream: str, query: str | None) -> str:
        return f"rtmp://127.0.0.1:{self.layout.ports.rtmp}/live/{stream}" + (f"?{query}" if query else "")

    def live_points(self) -> dict[str, dict]:
        response = requests.get(f"{self.gateway_url}/api/live", params={"event": EVENT_ID}, timeout=10,
                                headers={"Authorization": f"Bearer {self.stack.secrets['gateway_admin_token']}"})
        response.raise_for_status()
        return {p["point_id"]: p for p in response.json()["points"]}

    def live_point(self, point: str) -> dict | None:
        return self.live_points().get(point)

    def recordings(self, stream: str) -> set[str]:
        return {p.name for p in (self.layout.recordings / "live").glob(f"{stream}-*.flv")}


def ffmpeg_publish_argv(url: str, seconds: float, seed: int | None = None) -> list[str]:
    """A connection point's encoder: H.264/AAC test pattern; seeded noise keeps every publish's bytes new."""
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big") >> 1
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25,noise=alls=10:allf=t:all_seed={seed}",
            "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac", "2", "-rw_timeout", "10000000", "-f", "flv", url]


def publish(url: str, seconds: float = 2.0) -> subprocess.CompletedProcess:
    return subprocess.run(ffmpeg_publish_argv(url, seconds), capture_output=True, text=True, timeout=seconds + 60)


def start_publisher(url: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(ffmpeg_publish_argv(url, seconds), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(condition, *, timeout_s: float, interval_s: float = 0.2, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- raw HTTP: what a hostile client sends, and how much of it the server took ---------------------------------
@dataclass
class RawAnswer:
    status: int | None  # None: the server closed without an answer we could read
    sent: int  # body bytes the client got into the socket before the answer (an upper bound of what was read)
    elapsed_s: float
    head: bytes


def raw_request(port: int, head: bytes, *, body_bytes: int = 0, trickle_s: float | None = None,
                timeout_s: float = 20.0, stop_when_answered: bool = True) -> RawAnswer:
    """Send `head`, then stream up to `body_bytes` of zeros (all at once, or 64 bytes every `trickle_s`), stopping
    at the first byte of an answer. The send buffer is kept small, so `sent` overstates what the server read by
    at most the two sockets' buffers (a few hundred KiB on loopback)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    started, sent, answer = time.monotonic(), 0, b""
    # The head may end with the start of the body (a part header). A server that refuses on the headers alone
    # answers and closes while the rest is still being sent (a broken pipe here): its answer is read below.
    closed = not _send_all(sock, head, started + timeout_s)
    block = b"\0" * (64 if trickle_s else 16 * 1024)
    next_send = 0.0
    try:
        while time.monotonic() - started < timeout_s:
            due = time.monotonic() >= next_send
            writable = [sock] if sent < body_bytes and not closed and due else []
            readable, can_write, _ = select.select([sock], writable, [], 0.05 if trickle_s else 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    data, closed = b"", True
                if not data:
                    closed = True
                    break
                answer += data
                if stop_when_answered and b"\r\n\r\n" in answer:
                    break
            if can_write:
                try:
                    sent += sock.send(block[: body_bytes - sent])
                    next_send = time.monotonic() + (trickle_s or 0.0)
                except (BlockingIOError, InterruptedError):
                    pass
                except ConnectionError:
                    closed = True
            elif not readable and sent >= body_bytes and closed:
                break
    finally:
        sock.close()
    status = None
    if answer.startswith(b"HTTP/1."):
        try:
            status = int(answer.split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = None
    return RawAnswer(status, sent, time.monotonic() - started, answer[:2000])


def upload_head(path: str, *, content_length: int, token: str | None = None, boundary: str = "hardening") -> bytes:
    """A multipart upload's request head plus the first part's header: what follows is the file's bytes."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {content_length}\r\n\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"ca-buoi-le.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode()


def _send_all(sock, data: bytes, deadline: float) -> bool:
    """Send all of `data`; False when the server closed the connection first (it answered, or not: read it)."""
    view = memoryview(data)
    while view:
        if time.monotonic() > deadline:
            raise TimeoutError("could not send the request head")
        select.select([], [sock], [], 1)
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return False
    return True


# --- a TCP relay that connects from another loopback address -------------------------------------------------
@contextmanager
def tcp_relay(target_port: int, source_ip: str):
    """Listen on 127.0.0.1:<free>, forward each connection to 127.0.0.1:`target_port` *from* `source_ip` (any
    127.x address works on Linux), so nginx sees a client that is not 127.0.0.1."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    stopping = threading.Event()

    def pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket()
            upstream.bind((source_ip, 0))
            upstream.connect(("127.0.0.1", target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        listener.close()


# --- every secret the stack holds ----------------------------------------------------------------------------
NOT_SECRET = {"fanpage_page_id"}


def _wordpress_secrets(layout) -> dict[str, str]:
    """The portal's: the Application Password the tasks publish with, and WordPress's own local secrets."""
    found = {}
    for path in layout.wordpress.glob("*.json"):  # credentials.json, secrets.json
        data = json.loads(path.read_text())
        for name, value in {**data, **data.get("salts", {})}.items():
            if isinstance(value, str) and (name.endswith("password") or name in data.get("salts", {})):
                found[f"WordPress {name} ({path.name})"] = value
    return found


def stack_secrets(layout) -> dict[str, str]:
    """{secret value: what it is} for everything the embedded stack generated: point keys and upload tokens of every
    event (revoked ones too), the stack's own secrets, the nginx callback secret, the portal's WordPress credentials,
    fanpage stream keys."""
    found: dict[str, str] = {}
    for path in (layout.secrets / "points").glob("*.json"):
        data = json.loads(path.read_text())
        for point, entry in data.get("points", {}).items():
            found[entry["stream_key"]] = f"stream key of {data['event_id']}/{point}"
            found[entry["upload_token"]] = f"upload token of {data['event_id']}/{point}"
        for entry in data.get("revoked", []):
            found[entry["stream_key"]] = f"revoked stream key of {data['event_id']}/{entry['point']}"
            found[entry["upload_token"]] = f"revoked upload token of {data['event_id']}/{entry['point']}"
    for name, value in json.loads((layout.secrets / "stack.json").read_text()).items():
        if name not in NOT_SECRET and isinstance(value, str) and len(value) >= 8:
            found[value] = f"stack secret {name}"
    callback = layout.secrets / "rtmp-callback.secret"
    if callback.exists():
        found[callback.read_text().strip()] = "nginx callback secret"
    for name, value in _wordpress_secrets(layout).items():
        found[value] = name
    for path in (layout.sandboxes / "fanpage").rglob("*.json"):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        for key in _stream_keys_in(text):
            found[key] = f"fanpage stream key ({path.name})"
    return {k: v for k, v in found.items() if len(k) >= 8}


def _stream_keys_in(text: str) -> list[str]:
    import re

    return re.findall(r"/fblive/([A-Za-z0-9_\-]{12,})", text)


def scan(paths: list[Path], secrets: dict[str, str], offsets: dict[Path, int] | None = None) -> list[str]:
    """Lines "file: what" for every secret found in `paths` (from `offsets[path]` on, when given)."""
    hits = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                fh.seek((offsets or {}).get(path, 0))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        for secret, what in secrets.items():
            if secret in text:
                hits.append(f"{path}: {what}")
    return hits


# --- a second gateway process, for faults the stack's own gateway must not have --------------------------------
@contextmanager
def spare_gateway(stack, tmp_path: Path, *, env_overrides: dict[str, str], keys_dir: Path | None = None,
                  port_offset: int = 61, args: tuple[str, ...] = ()):
    """The real gateway module on ports base+`port_offset` (public) and +1 (callbacks), with its own var/ and the
    stack's environment changed by `env_overrides` (e.g. a wrong S3 secret)."""
    base = stack.layout.ports.base
    port, callback_port = base + port_offset, base + port_offset + 1
    var = tmp_path / "spare-var"
    var.mkdir(parents=True, exist_ok=True)
    secret_file = tmp_path / "spare-callback.secret"
    secret_file.write_text("spare-gateway-callback-secret-" + os.urandom(8).hex())
    env = {**os.environ, **stack.env, "BRIDGECAST_VAR": str(var), **env_overrides}
    if keys_dir is not None:
        env["BRIDGECAST_POINT_KEYS_DIR"] = str(keys_dir)
    log = open(tmp_path / "spare-gateway.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "bridgecast.ingest.gateway", "--port", str(port),
                             "--callback-port", str(callback_port), "--callback-secret-file", str(secret_file),
                             *args],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up():
            if proc.poll() is not None:
                pytest.fail(f"the spare gateway exited: {(tmp_path / 'spare-gateway.log').read_text()[-2000:]}")
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(up, timeout_s=60, what="the spare gateway")
        yield f"http://127.0.0.1:{port}", var
    finally:
        stop(proc)
        log.close()
