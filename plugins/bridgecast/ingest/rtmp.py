"""The nginx-rtmp side of the gateway: its callbacks, and its control API for dropping a publisher.

The callbacks are served on a port of their own (loopback in the embedded stack), never on the public upload port,
under a path holding a per-stack secret that only nginx's config knows (nginx-rtmp's `on_*` URLs are plain http
URLs; it cannot send a header). Their body mixes nginx's own fields with the publisher's query string, appended
verbatim *after* them (`…&call=publish&name=trung-uong&type=live&key=…&name=ha-noi`), so:

- only the FIRST value of a field is nginx's; a publish whose query string repeats one of nginx's fields (or adds
  one nginx sends for another call, like `path`) is refused as tampering;
- the stream key is checked against the stream name nginx publishes (that first `name`);
- a recording's owner comes from nginx's stream name and client id matched against the live state, and its path
  must be one of nginx's segment files in the recordings directory (`live.recording_file`).

The callback server is the standard library's threaded HTTP server, on its own threads: it starts before the
gateway imports anything heavy (S3, FastAPI, Airflow), so a restarted gateway accepts publishers again in well under
a second, and no upload on the public server's event loop can delay the answer nginx waits for.

A revoked key also ends a publisher already live: `RevokedKeyWatcher` compares each live session's key with the
point's current one every second and drops the publisher through nginx's `rtmp_control` (`/control/drop/publisher`)
on the loopback http server. Chosen over `on_update`: on_update drops *every* publisher whose update call fails, so
a gateway restart would cut live points, while a failed drop here only delays the drop to the next second.
"""
from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlencode

from bridgecast.ingest.keys import key_fingerprint
from bridgecast.ingest.live import NotARecording, recording_file

log = logging.getLogger("bridgecast.gateway.rtmp")

APP = "live"  # the nginx application whose callbacks come here (fblive belongs to the fanpage sandbox)
SESSION_FIELDS = ("app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid")  # in every callback
CALL_FIELDS = {  # what nginx-rtmp adds per call (ngx_rtmp_notify_module.c)
    "publish": ("call", "name", "type"),
    "publish_done": ("call", "name"),
    "record_done": ("call", "recorder", "name", "path"),
}
# Every field nginx sends in some callback: a publisher's query string may not name any of them.
CONTROL_FIELDS = frozenset(SESSION_FIELDS) | {f for fields in CALL_FIELDS.values() for f in fields} | {
    "start", "duration", "reset", "time", "timestamp", "epoch"}
MAX_BODY = 16 * 1024  # nginx's names and args are capped far below this
MAX_FIELDS = 100


class CallbackRefused(ValueError):
    """A callback body nginx would not have sent."""


@dataclass(frozen=True)
class CallbackForm:
    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, body: bytes) -> "CallbackForm":
        if len(body) > MAX_BODY:
            raise CallbackRefused(f"body over {MAX_BODY} bytes")
        try:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except ValueError as exc:
            raise CallbackRefused(str(exc)) from None
        return cls(tuple(pairs))

    def first(self, name: str) -> str:
        """nginx's value of `name`: the first one (the publisher's query string comes after nginx's fields)."""
        return next((v for k, v in self.pairs if k == name), "")

    def tampering(self, call: str) -> list[str]:
        """The control fields whose count is not what nginx sends for `call` (empty: nothing added)."""
        own = set(SESSION_FIELDS) | set(CALL_FIELDS[call])
        counts = Counter(k for k, _ in self.pairs)
        wrong = [f for f in sorted(CONTROL_FIELDS) if counts[f] != (1 if f in own else 0)]
        return wrong + (["key"] if counts["key"] > 1 else [])


def _secret_ok(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode("utf-8"))


class CallbackServer(ThreadingHTTPServer):
    """`POST /rtmp/<secret>/on_publish|on_publish_done|on_record_done` (nginx-rtmp's form bodies), `GET /healthz`.
    A wrong or missing secret gets the same 404 as an unknown path (nothing to probe). Binds when constructed."""

    daemon_threads = True
    request_queue_size = 128  # 64 points reconnecting at once after an nginx restart

    def __init__(self, address: tuple[str, int], gateway, secret: str):
        if len(secret) < 16:
            raise ValueError("the nginx callback secret must be at least 16 characters")
        self.gateway, self.secret = gateway, secret
        super().__init__(address, _CallbackHandler)


class _CallbackHandler(BaseHTTPRequestHandler):
    server: CallbackServer
    protocol_version = "HTTP/1.0"  # what nginx-rtmp speaks: one request per connection
    server_version, sys_version = "bridgecast-callbacks", ""
    timeout = 10  # a client that stalls mid-request gives its thread back

    def log_message(self, format, *args) -> None:
        pass  # no access log: the request path holds the secret

    def _answer(self, status: int, text: str = "", content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            return self._answer(200, json.dumps({"ok": True}), "application/json")
        self._answer(404, "not found")

    def do_POST(self) -> None:
        parts = self.path.split("?", 1)[0].split("/")
        call = parts[3] if len(parts) == 4 and parts[1] == "rtmp" else ""
        if call not in HANDLERS or not _secret_ok(unquote(parts[2]), self.server.secret):
            return self._answer(404, "not found")
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):
            return self._answer(411, "Content-Length required")
        if int(length) > MAX_BODY:
            return self._answer(400, f"body over {MAX_BODY} bytes")
        try:
            form = CallbackForm.parse(self.rfile.read(int(length)))
        except CallbackRefused as exc:
            log.warning("%s callback refused: %s", call, exc)
            return self._answer(400, "refused")
        try:
            status = HANDLERS[call](self.server.gateway, form)
        except Exception:
            log.exception("%s callback failed (nginx refuses the publisher)", call)
            status = 500
        self._answer(status, "ok" if status < 300 else "refused")

    def _not_allowed(self) -> None:
        self._answer(405, "method not allowed")

    do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _not_allowed


def on_publish(g, form: CallbackForm) -> int:
    name, addr = form.first("name"), form.first("addr")
    if form.first("call") != "publish" or form.first("app") != APP:
        log.warning("publish refused for stream %r from %s: not a publish to /%s", name, addr, APP)
        return 403
    tampered = form.tampering("publish")
    if tampered:
        log.warning("publish refused for stream %r from %s: its URL repeats nginx's field(s) %s", name, addr,
                    ", ".join(tampered))
        return 403
    key = form.first("key")
    who = g.keys.by_stream_key(name, key)
    if who is None:
        log.warning("publish refused for stream %r from %s (unknown, wrong-point or revoked key)", name, addr)
        return 403
    g.live.published(who, addr, form.first("clientid"), key_fingerprint(key))
    log.info("publish accepted: %s/%s from %s", who.event_id, who.point_id, addr)
    return 200


def on_publish_done(g, form: CallbackForm) -> int:
    name, clientid = form.first("name"), form.first("clientid")
    who = g.live.publish_done(name, clientid)
    if who is not None:
        log.info("publish done: %s/%s", who.event_id, who.point_id)
    return 200  # nginx ignores the status of publish_done


def on_record_done(g, form: CallbackForm) -> int:
    name, clientid = form.first("name"), form.first("clientid")
    tampered = form.tampering("record_done")
    if tampered:  # the publish was refused for this already; say so if it somehow got here
        log.warning("record_done for stream %r carries repeated field(s) %s; nginx's (first) values used",
                    name, ", ".join(tampered))
    try:
        path = recording_file(form.first("path"), g.live.recordings_dir, name)
    except NotARecording as exc:
        log.error("record_done for stream %r refused: the path is %s", name, exc)
        return 200
    who = g.live.owner_of_recording(name, clientid)
    if who is None:
        log.error("record_done %s: no accepted publish session of stream %r had client %s (the sweep keeps it)",
                  path.name, name, clientid)
        return 200
    g.segments.submit(path, who)
    return 200


HANDLERS = {"on_publish": on_publish, "on_publish_done": on_publish_done, "on_record_done": on_record_done}


class NginxControl:
    """nginx-rtmp's control API on its loopback http server (`location /control { rtmp_control all; }`)."""

    def __init__(self, control_url: str, timeout_s: float = 3.0):
        self.control_url = control_url.rstrip("/")
        self.timeout_s = timeout_s

    def drop_publisher(self, name: str, app: str = APP) -> int:
        """Disconnect the publisher of `app/name`; returns how many sessions nginx dropped."""
        from urllib.request import urlopen

        query = urlencode({"app": app, "name": name})
        with urlopen(f"{self.control_url}/drop/publisher?{query}", timeout=self.timeout_s) as response:
            text = response.read().decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else 0


class RevokedKeyWatcher:
    """Every `every_s`, drops the publisher of any live session whose stream key is no longer its point's key."""

    def __init__(self, keys, live, control: NginxControl | None, every_s: float = 1.0, retry_after_s: float = 5.0):
        self.keys, self.live, self.control = keys, live, control
        self.every_s, self.retry_after_s = every_s, retry_after_s
        self._dropped_at: dict[tuple[str, str, str | None], float] = {}
        self._stop = threading.Event()

    def start(self) -> None:
        if self.control is None:
            log.warning("no nginx control URL configured: a revoked key only stops its next publish")
            return
        threading.Thread(target=self._run, name="revoked-key-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check_once()
            except Exception:
                log.exception("revoked-key check failed; trying again in %.0f s", self.every_s)

    def check_once(self) -> list[str]:
        dropped = []
        for session in self.live.live_sessions():
            if not session.key_fingerprint:
                continue  # accepted before fingerprints were journalled: its next publish is checked
            current = self.keys.stream_key_fingerprint(session.event_id, session.point_id)
            if current is None or current == session.key_fingerprint:
                continue  # unknown (key file missing or replaced): never cut a live point on an absence
            marker = (session.event_id, session.point_id, session.clientid)
            if time.monotonic() - self._dropped_at.get(marker, -1e9) < self.retry_after_s:
                continue  # asked already; nginx's publish_done is on its way
            self._dropped_at[marker] = time.monotonic()
            count = self.control.drop_publisher(session.point_id)
            if count == 0:  # nginx has no such publisher (it restarted since): the session is over already
                self.live.publish_done(session.point_id, session.clientid)
            log.warning("stream key of %s/%s revoked: dropped its live publisher (%d session(s))",
                        session.event_id, session.point_id, count)
            dropped.append(session.point_id)
        return dropped
