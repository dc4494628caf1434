"""Helpers for the ingest tests: a gateway client, generated media, a test publisher and headless Chromium.

Imported by the tests and by conftest.py (fixtures); nothing here starts servers of the stack itself.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

EVENT_ID = "bhxh-vinhphuc-2020"
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Gateway:
    """The stack's ingest gateway as seen by a client: its URL and each point's current credentials."""

    url: str
    keys_file: Path
    admin_token: str

    def keys(self, point_id: str) -> dict:
        # Read fresh every time: revocation rewrites the file and the gateway follows it at once.
        return json.loads(self.keys_file.read_text())["points"][point_id]

    def token(self, point_id: str) -> str:
        return self.keys(point_id)["upload_token"]

    def auth(self, point_id: str) -> dict:
        return {"Authorization": f"Bearer {self.token(point_id)}"}

    def healthz(self) -> dict:
        return requests.get(f"{self.url}/healthz", timeout=10).json()

    def live_point(self, point_id: str) -> dict | None:
        response = requests.get(f"{self.url}/api/live", params={"event": EVENT_ID}, timeout=10,
                                headers={"Authorization": f"Bearer {self.admin_token}"})
        response.raise_for_status()
        return next((p for p in response.json()["points"] if p["point_id"] == point_id), None)

    def open_session(self, point_id: str, filename: str, size: int, content_type: str,
                     fingerprint: str | None = None, headers: dict | None = None) -> requests.Response:
        return requests.post(f"{self.url}/api/uploads/sessions", timeout=30,
                             headers=headers if headers is not None else self.auth(point_id),
                             json={"filename": filename, "size": size, "content_type": content_type,
                                   "fingerprint": fingerprint or uuid.uuid4().hex})

    def patch_chunk(self, point_id: str, session_id: str, offset: int, data: bytes,
                    headers: dict | None = None) -> requests.Response:
        return requests.patch(f"{self.url}/api/uploads/sessions/{session_id}", data=data, timeout=120,
                              headers={**(headers if headers is not None else self.auth(point_id)),
                                       "Upload-Offset": str(offset),
                                       "Content-Type": "application/offset+octet-stream"})

    def upload_multipart(self, point_id: str, files: list[tuple[str, bytes, str]],
                         headers: dict | None = None) -> requests.Response:
        return requests.post(f"{self.url}/api/uploads", timeout=60,
                             headers=headers if headers is not None else self.auth(point_id),
                             files=[("files", f) for f in files])


def jpeg_bytes(width: int = 640, height: int = 480) -> bytes:
    """A small JPEG that is new every call (random pixels over a gradient), so it is never a duplicate."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    Image.blend(gradient, noise, 0.35).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def publish_test_stream(stack, point_id: str, key: str | None, seconds: float = 4.0) -> subprocess.CompletedProcess:
    """Publish a lavfi test pattern (H.264/AAC like a connection point's encoder) to nginx-rtmp with `key`
    (None: no key in the URL at all).

    Seeded noise makes every publish's bytes new: a bit-identical recording would be (rightly) taken as a
    duplicate of an earlier test's and announce nothing."""
    url = f"rtmp://127.0.0.1:{stack.layout.ports.rtmp}/live/{point_id}" + (f"?key={key}" if key is not None else "")
    seed = int.from_bytes(os.urandom(4), "big") >> 1
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=426x240:rate=25,noise=alls=10:allf=t:all_seed={seed}",
            "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
            "-rw_timeout", "10000000", "-f", "flv", url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)


def truncated_jpeg() -> bytes:
    """The first half of a JPEG: what a phone sends when the upload is cut and the app does not notice."""
    whole = jpeg_bytes(800, 600)
    return whole[:len(whole) // 2]


def html_saved_as_photo() -> bytes:
    """A login page saved under a photo's name (a common field mistake); a nonce keeps it unique per test."""
    return (f"<!DOCTYPE html><html><head><title>Đăng nhập</title></head>"
            f"<body><!-- {uuid.uuid4().hex} --></body></html>").encode()


def oversized_png(width: int = 9000, height: int = 9000) -> bytes:
    """A few hundred bytes claiming width×height pixels (81 MP by default: above the event's 64 MP limit, below
    Pillow's own bomb guard, so the event policy is what refuses it). Never decoded, so the data can be short."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", b"nonce\x00" + uuid.uuid4().hex.encode())
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def wait_for(condition, *, timeout_s: float, interval_s: float = 0.5, what: str):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


# --- headless Chromium over the DevTools protocol -----------------------------------------------------------
class DevToolsError(RuntimeError):
    pass


class HeadlessChromium:
    """Debian's Chromium, headless, driven over the DevTools protocol with `websockets` (no WebDriver needed)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]

    def __init__(self, profile_dir: Path, log_path: Path, width: int = 390, height: int = 844):
        from websockets.sync.client import connect

        self.width, self.height = width, height
        self.exceptions: list[str] = []
        self.log_entries: list[dict] = []
        self._next_id = 0
        self._unanswered: set[int] = set()  # commands sent from inside the event loop (replies checked later)
        self._intercept = None
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [CHROMIUM, *self.FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                 "about:blank"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # own process group: closing it also ends the zygote/renderers
        # Port 0 lets Chromium pick a free port (several test stacks share this machine); it writes it here.
        port_file = profile_dir / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), timeout_s=30,
                 what=f"Chromium's DevTools port (log: {log_path})")
        port = int(port_file.read_text().split()[0])
        targets = wait_for(lambda: [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                                    if t["type"] == "page"], timeout_s=15, what="a Chromium page target")
        self._closing = contextlib.ExitStack()
        self.ws = self._closing.enter_context(connect(targets[0]["webSocketDebuggerUrl"], max_size=None,
                                                      open_timeout=15))
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})

    def _send(self, method: str, params: dict | None = None) -> int:
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params or {}}))
        return self._next_id

    def call(self, method: str, params: dict | None = None, timeout_s: float = 30) -> dict:
        call_id = self._send(method, params)
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._on_message(message)

    def _on_message(self, message: dict) -> None:
        method = message.get("method")
        if "id" in message:
            if message["id"] in self._unanswered:
                self._unanswered.discard(message["id"])
                if "error" in message:
                    self.exceptions.append(f"DevTools: {message['error']}")
        elif method == "Runtime.exceptionThrown":
            details = message["params"]["exceptionDetails"]
            self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded":
            self.log_entries.append(message["params"]["entry"])
        elif method == "Page.javascriptDialogOpening":  # a "leave this page?" prompt must not block a reload
            self._unanswered.add(self._send("Page.handleJavaScriptDialog", {"accept": True}))
        elif method == "Fetch.requestPaused":
            self._answer_paused(message["params"])

    def intercept(self, url_pattern: str, decide, stages: tuple[str, ...] = ("Request",)) -> None:
        """Pause requests matching `url_pattern` (glob) and let `decide(request, answered)` settle each one.

        `request` is DevTools' {url, method, headers}; `answered` is None before the request is sent, or the
        server's status code when "Response" is among `stages` (the server has then already handled it). The
        decision is None to let it through, ("fail", reason) to drop it like a lost connection, or
        ("fulfill", status, json_body) to answer in the server's place."""
        self._intercept = decide
        self.call("Fetch.enable", {"patterns": [{"urlPattern": url_pattern, "requestStage": stage}
                                                for stage in stages]})

    def _answer_paused(self, paused: dict) -> None:
        decision = (self._intercept(paused["request"], paused.get("responseStatusCode"))
                    if self._intercept else None)
        request_id = paused["requestId"]
        if decision is None:
            command = ("Fetch.continueRequest", {"requestId": request_id})
        elif decision[0] == "fail":
            command = ("Fetch.failRequest", {"requestId": request_id, "errorReason": decision[1]})
        else:
            _, status, payload = decision
            command = ("Fetch.fulfillRequest", {
                "requestId": request_id, "responseCode": status,
                "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                "body": base64.b64encode(json.dumps(payload).encode()).decode()})
        self._unanswered.add(self._send(*command))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, timeout_s: float = 30) -> None:
        self._navigate("Page.navigate", {"url": url}, timeout_s, what=f"{url} to load")

    def reload(self, timeout_s: float = 30) -> None:
        self._navigate("Page.reload", {"ignoreCache": True}, timeout_s, what="the page to reload")

    def _navigate(self, method: str, params: dict, timeout_s: float, what: str) -> None:
        # Mark the current document: "complete" must come from the new one, not from the page being left.
        self.evaluate("window.__leaving = true")
        self.call(method, params)

        def new_document_ready() -> bool:
            try:
                return self.evaluate("!window.__leaving && document.readyState === 'complete'")
            except DevToolsError:  # evaluated while the old context was torn down: ask again
                return False

        wait_for(new_document_ready, timeout_s=timeout_s, what=what)

    def set_files(self, selector: str, paths: list[Path]) -> None:
        """What a tap on the file picker does: put these files on the <input type=file> (fires `change`)."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        if not node:
            raise DevToolsError(f"no element matches {selector!r}")
        self.call("DOM.setFileInputFiles", {"nodeId": node, "files": [str(p) for p in paths]})

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, timeout_s=60)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout_s=5)
        except Exception:
            pass  # already gone or hung: the process group is ended below either way
        try:
            self._closing.close()
        except Exception:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                self.proc.wait(timeout=5)
                return
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=5)
