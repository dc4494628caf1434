"""Non-ASCII and malformed input on every gateway endpoint (public and nginx-callback) gets a clear 4xx, never a 5xx:
Vietnamese text where a token goes, broken JSON and multipart, wrong types, absurd numbers, path tricks, bytes that
are not UTF-8. Sent raw, so header bytes reach the server exactly as a hostile client would send them."""
from __future__ import annotations

import json
import sys
import uuid
from urllib.parse import quote

import pytest
import requests
from hardening_kit import raw_request

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

POINT = "yen-lac"
VI = "Hà-Nội-điểm-cầu-🎥"


def _request(method: str, path: str, headers: dict[str, bytes | str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("utf-8")))
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _multipart(parts: list[tuple[str, bytes, str]], boundary: str = "bc") -> bytes:
    out = b""
    for filename, data, ctype in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _cases(kit) -> list[tuple[str, int, bytes]]:
    """(what, port, raw request)."""
    token = kit.keys(POINT)["upload_token"]
    auth = {"Authorization": f"Bearer {token}"}
    js = {**auth, "Content-Type": "application/json"}
    session = requests.post(f"{kit.gateway_url}/api/uploads/sessions", headers=auth, timeout=30, json={
        "filename": "a.mp4", "size": 1000, "content_type": "video/mp4", "fingerprint": uuid.uuid4().hex}).json()["id"]
    pub, cb = kit.layout.ports.gateway, kit.layout.ports.gateway_callbacks
    cb_path = f"/rtmp/{kit.callback_secret}"
    sha = "a" * 64
    mp = {**auth, "Content-Type": "multipart/form-data; boundary=bc"}
    return [
        ("upload page, Vietnamese token", pub, _request("GET", f"/u/{quote(VI)}")),
        ("upload page, invalid UTF-8 token", pub, _request("GET", "/u/%FF%FE%80")),
        ("QR code, Vietnamese token", pub, _request("GET", f"/u/{quote(VI)}/qr.png")),
        ("upload page, 10 kB token", pub, _request("GET", f"/u/{'x' * 10000}")),
        ("upload status, Vietnamese query token", pub, _request("GET", f"/api/uploads/{sha}?token={quote(VI)}")),
        ("upload status, Vietnamese id", pub, _request("GET", f"/api/uploads/{quote(VI)}", auth)),
        ("upload, UTF-8 bytes in Authorization", pub,
         _request("POST", "/api/uploads", {"Authorization": f"Bearer {VI}".encode()}, _multipart([]))),
        ("upload, Latin-1 byte in Authorization", pub,
         _request("POST", "/api/uploads", {"Authorization": b"Bearer caf\xe9"}, _multipart([]))),
        ("upload, text/plain body", pub, _request("POST", "/api/uploads", {**auth, "Content-Type": "text/plain"},
                                                  b"hello")),
        ("upload, multipart without boundary", pub,
         _request("POST", "/api/uploads", {**auth, "Content-Type": "multipart/form-data"}, b"--x--")),
        ("upload, garbage multipart", pub, _request("POST", "/api/uploads", mp, b"\x00\xff garbage \r\n--bc")),
        ("upload, multipart cut before its closing boundary", pub,
         _request("POST", "/api/uploads", mp, _multipart([("a.jpg", b"\xff\xd8\xff" + b"0" * 100, "image/jpeg")])
                  [:-8])),
        ("upload, multipart with no file", pub, _request("POST", "/api/uploads", mp, b"--bc--\r\n")),
        ("upload, Content-Length not a number", pub,
         b"POST /api/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
         + b"\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"),
        ("session, broken JSON", pub, _request("POST", "/api/uploads/sessions", js, b"{broken")),
        ("session, JSON list", pub, _request("POST", "/api/uploads/sessions", js, b"[1, 2]")),
        ("session, JSON string", pub, _request("POST", "/api/uploads/sessions", js, b'"a.mp4"')),
        ("session, not UTF-8", pub, _request("POST", "/api/uploads/sessions", js, b"\xff\xfe{}")),
        ("session, empty body", pub, _request("POST", "/api/uploads/sessions", js, b"")),
        ("session, filename a number", pub,
         _request("POST", "/api/uploads/sessions", js, json.dumps({"filename": 5, "size": 10}).encode())),
        ("session, size a string", pub,
         _request("POST", "/api/uploads/sessions", js, json.dumps({"filename": "a.mp4", "size": "10"}).encode())),
        ("session, size a fraction", pub,
         _request("POST", "/api/uploads/sessions", js, json.dumps({"filename": "a.mp4", "size": 1.5}).encode())),
        ("session, size true", pub,
         _request("POST", "/api/uploads/sessions", js, json.dumps({"filename": "a.mp4", "size": True}).encode())),
        ("session, size 10^30", pub,
         _request("POST", "/api/uploads/sessions", js, b'{"filename": "a.mp4", "size": 1000000000000000000000000000000}')),
        ("session, negative size", pub,
         _request("POST", "/api/uploads/sessions", js, json.dumps({"filename": "ảnh.jpg", "size": -1}).encode())),
        ("session, content_type a list", pub, _request("POST", "/api/uploads/sessions", js, json.dumps(
            {"filename": "a.mp4", "size": 10, "content_type": ["video/mp4"]}).encode())),
        ("session, fingerprint an object", pub, _request("POST", "/api/uploads/sessions", js, json.dumps(
            {"filename": "a.mp4", "size": 10, "fingerprint": {"a": 1}}).encode())),
        ("session, NUL in filename", pub, _request("POST", "/api/uploads/sessions", js, json.dumps(
            {"filename": "a\u0000.mp4", "size": 10}).encode())),
        ("session, 200 kB body", pub, _request("POST", "/api/uploads/sessions", js, b" " * 200_000)),
        ("session status, Vietnamese id", pub, _request("GET", f"/api/uploads/sessions/{quote(VI)}", auth)),
        ("session status, dot-dot id", pub, _request("GET", "/api/uploads/sessions/..%2F..%2Fsecrets", auth)),
        ("chunk, offset not a number", pub, _request("PATCH", f"/api/uploads/sessions/{session}",
                                                     {**auth, "Upload-Offset": "mười"}, b"x")),
        ("chunk, negative offset", pub, _request("PATCH", f"/api/uploads/sessions/{session}",
                                                 {**auth, "Upload-Offset": "-5"}, b"x")),
        ("chunk, offset 10^25", pub, _request("PATCH", f"/api/uploads/sessions/{session}",
                                              {**auth, "Upload-Offset": "1" + "0" * 25}, b"x")),
        ("chunk, unknown session", pub, _request("PATCH", f"/api/uploads/sessions/{'0' * 32}",
                                                 {**auth, "Upload-Offset": "0"}, b"x")),
        ("chunk, Vietnamese session id", pub, _request("PATCH", f"/api/uploads/sessions/{quote(VI)}",
                                                       {**auth, "Upload-Offset": "0"}, b"x")),
        ("live view, Vietnamese admin token", pub, _request("GET", "/api/live", {"Authorization": f"Bearer {VI}"
                                                                                .encode()})),
        ("callback, no secret, Vietnamese body", cb, _request("POST", "/rtmp/on_publish", {}, VI.encode())),
        ("callback, Vietnamese secret", cb, _request("POST", f"/rtmp/{quote(VI)}/on_publish", {}, b"name=x")),
        ("callback, unknown call", cb, _request("POST", f"{cb_path}/on_play", {}, b"name=x")),
        ("callback, GET", cb, _request("GET", f"{cb_path}/on_publish")),
        ("on_publish, not UTF-8", cb, _request("POST", f"{cb_path}/on_publish", {}, b"\xff\xfe=\x80&&==&")),
        ("on_publish, Vietnamese name and key", cb, _request("POST", f"{cb_path}/on_publish", {}, (
            "app=live&flashver=x&swfurl=&tcurl=x&pageurl=&addr=127.0.0.1&clientid=1&call=publish"
            f"&name={quote(VI)}&type=live&key={quote(VI)}").encode())),
        ("on_publish, 20 kB body", cb, _request("POST", f"{cb_path}/on_publish", {}, b"a=" + b"x" * 20000)),
        ("on_publish, 500 fields", cb, _request("POST", f"{cb_path}/on_publish", {}, b"&".join([b"a=1"] * 500))),
        ("on_publish_done, Vietnamese name", cb, _request("POST", f"{cb_path}/on_publish_done", {},
                                                          f"call=publish_done&name={quote(VI)}".encode())),
        ("on_record_done, Vietnamese path", cb, _request("POST", f"{cb_path}/on_record_done", {},
                                                         f"call=record_done&name=x&path=/{quote(VI)}".encode())),
        ("on_record_done, invalid UTF-8 path", cb, _request("POST", f"{cb_path}/on_record_done", {},
                                                            b"call=record_done&name=x&path=%FF%FE")),
    ]


def test_no_malformed_or_non_ascii_input_gets_a_5xx_from_any_gateway_endpoint(kit):
    answers = {}
    for what, port, raw in _cases(kit):
        answer = raw_request(port, raw, timeout_s=15)
        answers[what] = answer.status
    server_errors = {what: status for what, status in answers.items() if status is None or status >= 500}
    print(f"\nbad inputs: {len(answers)}, answered 5xx or not at all: {len(server_errors)}", file=sys.stderr)
    assert server_errors == {}
    assert all(400 <= status < 500 or what.startswith("on_") for what, status in answers.items()), answers
    # The gateway is still serving after all of it.
    assert requests.get(f"{kit.gateway_url}/healthz", timeout=10).json()["ok"]
