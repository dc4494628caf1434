"""The ingest gateway: nginx-rtmp callbacks (stream-key auth, recordings) and field-team uploads.

A small service of its own, not an Airflow plugin: nginx refuses *every* publisher when `on_publish` does not
answer, so stream-key auth must stay up while Airflow's api-server restarts or is busy. It depends only on
the key files, S3 and its own spool; Airflow is told about new assets through a durable outbox.

One process, two servers: nginx's callbacks (`--callback-port`, loopback, under a secret path; `rtmp.py`) on
threads of their own, started first and with light imports, so a restarted gateway takes publishers again within a
second; then the public upload API (`--port`, what teams reach; `api.py`) once S3 and Airflow are wired.

    python -m bridgecast.ingest.gateway --port 18090 --callback-port 18089 --callback-secret-file FILE \
        --rtmp-control-url http://127.0.0.1:18081/control
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import sys
import threading
from pathlib import Path

from bridgecast.ingest.keys import KeyStore, PointIdentity
from bridgecast.ingest.live import LiveState, SegmentUploader
from bridgecast.ingest.resumable import DEFAULT_TTL_S, SessionStore
from bridgecast.ingest.rtmp import CallbackServer, NginxControl, RevokedKeyWatcher

log = logging.getLogger("bridgecast.gateway")

DEFAULT_MAX_UPLOAD_MB = 2048
MAX_TOKEN_CHARS = 256
# Abandoned resumable uploads are swept in the background, never on the request path: the sweep looks at every
# stored session (a day's worth), which made each new upload slower than the one before (bench/ingest_burst.py).
SWEEP_EVERY_S = 600
# A refusal sent before the body was read closes the connection: otherwise the server would go on reading (and
# discarding) whatever the client keeps sending.
CLOSE = {"Connection": "close"}


class Gateway:
    """Everything the routes and callbacks share. Built in two steps: the RTMP side (keys, live state) at once,
    storage and Airflow (`connect`) after nginx's callback server is already answering."""

    def __init__(self, var: Path, keys: KeyStore, *, control_url: str | None = None,
                 session_ttl_s: float = DEFAULT_TTL_S, session_sweep_every_s: float = SWEEP_EVERY_S):
        self.var = var
        self.keys = keys
        self.live = LiveState(var / "ingest" / "live.json", var / "recordings" / "live")
        self.segments = SegmentUploader(None, self.live,
                                        keep_local=os.environ.get("BRIDGECAST_KEEP_RECORDINGS") == "1")
        self.sessions = SessionStore(var / "ingest" / "spool")
        self.session_ttl_s, self.session_sweep_every_s = session_ttl_s, session_sweep_every_s
        self.incoming = var / "ingest" / "incoming"  # multipart files while they are being received
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.watcher = RevokedKeyWatcher(keys, self.live, NginxControl(control_url) if control_url else None)
        self.admin_token = ""
        self.manifests = self.notifier = self.receiver = None
        self._events: dict = {}
        self._stop = threading.Event()

    @classmethod
    def from_env(cls, **kw) -> "Gateway":
        var = Path(os.environ.get("BRIDGECAST_VAR", "var")).resolve()
        (var / "ingest").mkdir(parents=True, exist_ok=True)
        return cls(var, KeyStore.from_env(), **kw)

    def connect(self, storage, api_factory, admin_token: str) -> None:
        from bridgecast.ingest.notify import AssetNotifier
        from bridgecast.ingest.receiver import Receiver
        from bridgecast.manifest import ManifestStore

        self.admin_token = admin_token
        self.manifests = ManifestStore(storage)
        self.notifier = AssetNotifier(self.var / "ingest" / "outbox", api_factory)
        self.receiver = Receiver(storage, self.manifests, self.notifier)
        self.segments.receiver = self.receiver

    def connect_from_env(self) -> None:
        from bridgecast.airflow_api import AirflowAPI
        from bridgecast.connections import get_connection
        from bridgecast.storage import Storage

        self.connect(Storage.from_connection(), lambda: AirflowAPI.from_connection("bridgecast_airflow"),
                     get_connection("bridgecast_ingest").password)

    def start(self) -> None:
        for leftover in self.incoming.glob("upload-*"):  # a request cut off by a crash of this process
            leftover.unlink(missing_ok=True)
        self.notifier.start()
        self.segments.start()
        threading.Thread(target=self._sweep_sessions, name="session-sweep", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.watcher.stop()
        if self.notifier is not None:
            self.notifier.stop()

    def _sweep_sessions(self) -> None:
        while True:
            try:
                removed = self.sessions.sweep(self.session_ttl_s)
                if removed:
                    log.info("removed %d abandoned upload session(s) idle for over %.0f h", len(removed),
                             self.session_ttl_s / 3600)
            except Exception:
                log.exception("upload session sweep failed; trying again later")
            if self._stop.wait(self.session_sweep_every_s):
                return

    def event_of(self, who: PointIdentity):
        from bridgecast.event import EventConfigError, load_event

        if not who.event_file:
            return None
        path = Path(who.event_file)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._events.get(who.event_file)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, load_event(path))
            except EventConfigError:
                log.exception("event file %s is invalid; serving without point names", path)
                return None
            self._events[who.event_file] = cached
        return cached[1]

    def max_upload_bytes(self, who: PointIdentity) -> int:
        event = self.event_of(who)
        mb = event.media.max_upload_mb if event else DEFAULT_MAX_UPLOAD_MB
        return mb * 1024 * 1024

    def require_admin(self, authorization: str | None) -> None:
        from fastapi import HTTPException

        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token or not self.admin_token or not hmac.compare_digest(
                token.encode("utf-8", "surrogatepass"), self.admin_token.encode()):
            raise HTTPException(401, "admin token required")

    def require_point(self, authorization: str | None, token_param: str | None = None) -> PointIdentity:
        from fastapi import HTTPException

        token = (authorization or "").removeprefix("Bearer ").strip() or token_param
        who = self.keys.by_upload_token(token) if token and len(token) <= MAX_TOKEN_CHARS else None
        if who is None:
            raise HTTPException(403, "Mã tải lên không hợp lệ hoặc đã bị thu hồi (invalid or revoked upload token)",
                                headers=CLOSE)
        return who

    async def point_of(self, authorization: str | None, token_param: str | None = None) -> PointIdentity:
        return await asyncio.to_thread(self.require_point, authorization, token_param)


# --- the process ---------------------------------------------------------------------------------------------
def _callback_secret(args) -> str:
    if args.callback_secret_file:
        return Path(args.callback_secret_file).read_text().strip()
    secret = os.environ.get("BRIDGECAST_RTMP_CALLBACK_SECRET", "")
    if not secret:
        raise SystemExit("the nginx callback secret is missing: pass --callback-secret-file FILE "
                         "(or set BRIDGECAST_RTMP_CALLBACK_SECRET)")
    return secret


def main() -> None:
    from bridgecast import redact

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="public upload API address")
    parser.add_argument("--port", type=int, required=True, help="public upload API port")
    parser.add_argument("--callback-host", default="127.0.0.1", help="nginx callbacks address (keep it loopback)")
    parser.add_argument("--callback-port", type=int, required=True, help="nginx callbacks port")
    parser.add_argument("--callback-secret-file", help="file holding the secret path segment of the callback URLs")
    parser.add_argument("--rtmp-control-url", default=os.environ.get("BRIDGECAST_RTMP_CONTROL_URL"),
                        help="nginx-rtmp control endpoint, e.g. http://127.0.0.1:18081/control (drops revoked keys)")
    parser.add_argument("--session-ttl-h", type=float, default=DEFAULT_TTL_S / 3600,
                        help="abandoned resumable uploads are removed after this many hours idle")
    parser.add_argument("--session-sweep-every-s", type=float, default=SWEEP_EVERY_S,
                        help="how often the spool is swept for abandoned uploads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.install()
    secret = _callback_secret(args)
    redact.register(secret)

    # 1. nginx's side: keys and live state only, so publishers are authenticated again within a second.
    gateway = Gateway.from_env(control_url=args.rtmp_control_url, session_ttl_s=args.session_ttl_h * 3600,
                               session_sweep_every_s=args.session_sweep_every_s)
    try:
        callbacks = CallbackServer((args.callback_host, args.callback_port), gateway, secret)
    except OSError as exc:
        sys.exit(f"the nginx callback server cannot listen on {args.callback_host}:{args.callback_port}: {exc}")
    threading.Thread(target=callbacks.serve_forever, name="rtmp-callbacks", daemon=True).start()
    gateway.watcher.start()
    log.info("nginx callbacks answering on %s:%d", args.callback_host, args.callback_port)

    # 2. S3, Airflow and the public upload API (the slow imports come after nginx is served).
    import uvicorn

    from bridgecast.ingest.api import create_app

    gateway.connect_from_env()
    redact.register(gateway.admin_token)
    gateway.start()
    public = uvicorn.Server(uvicorn.Config(create_app(gateway), host=args.host, port=args.port, log_level="info",
                                           access_log=False, lifespan="off"))
    try:
        public.run()
    finally:
        callbacks.shutdown()
        gateway.stop()


if __name__ == "__main__":
    main()
