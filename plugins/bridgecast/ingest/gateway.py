"""The ingest gateway: nginx-rtmp callbacks (stream-key auth, recordings) and field-team uploads.

A small service of its own, not an Airflow plugin: nginx refuses *every* publisher when `on_publish` does not
answer, so stream-key auth must stay up while Airflow's api-server restarts or is busy. It depends only on
the key files, S3 and its own spool; Airflow is told about new assets through a durable outbox.

    python -m bridgecast.ingest.gateway --host 127.0.0.1 --port 18090
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import re
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from bridgecast.event import Event, EventConfigError, load_event
from bridgecast.ingest.keys import KeyStore, PointIdentity
from bridgecast.ingest.kinds import detect
from bridgecast.ingest.live import LiveState, SegmentUploader
from bridgecast.manifest import ManifestStore
from bridgecast.ingest.notify import AssetNotifier
from bridgecast.ingest.receiver import Receiver
from bridgecast.ingest.resumable import CHUNK_SIZE, OffsetMismatch, SessionStore
from bridgecast.text import ascii_name

log = logging.getLogger("bridgecast.gateway")

DEFAULT_MAX_UPLOAD_MB = 2048
_ALLOWED_DECLARED = re.compile(r"^(image|video)/")
_ALLOWED_EXT = {"jpg", "jpeg", "png", "webp", "heic", "heif", "mp4", "mov", "m4v", "mkv", "flv", "ts", "3gp"}


class Gateway:
    """Everything the routes share; built from the environment of the embedded stack or a deployment."""

    def __init__(self, var: Path, keys: KeyStore, storage, api_factory, admin_token: str):
        self.var = var
        self.keys = keys
        self.admin_token = admin_token
        self.manifests = ManifestStore(storage)
        self.notifier = AssetNotifier(var / "ingest" / "outbox", api_factory)
        self.receiver = Receiver(storage, self.manifests, self.notifier)
        self.live = LiveState(var / "ingest" / "live.json", var / "recordings" / "live")
        self.segments = SegmentUploader(self.receiver, self.live,
                                        keep_local=os.environ.get("BRIDGECAST_KEEP_RECORDINGS") == "1")
        self.sessions = SessionStore(var / "ingest" / "spool")
        self._events: dict[str, tuple[float, Event]] = {}

    @classmethod
    def from_env(cls) -> "Gateway":
        from bridgecast.airflow_api import AirflowAPI
        from bridgecast.connections import get_connection
        from bridgecast.storage import Storage

        var = Path(os.environ.get("BRIDGECAST_VAR", "var")).resolve()
        (var / "ingest").mkdir(parents=True, exist_ok=True)
        return cls(var, KeyStore.from_env(), Storage.from_connection(),
                   lambda: AirflowAPI.from_connection("bridgecast_airflow"),
                   get_connection("bridgecast_ingest").password)

    def start(self) -> None:
        self.notifier.start()
        self.segments.start()

    def event_of(self, who: PointIdentity) -> Event | None:
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
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(token, self.admin_token):
            raise HTTPException(401, "admin token required")

    def require_point(self, authorization: str | None, token_param: str | None = None) -> PointIdentity:
        token = (authorization or "").removeprefix("Bearer ").strip() or token_param
        who = self.keys.by_upload_token(token)
        if who is None:
            raise HTTPException(403, "Mã tải lên không hợp lệ hoặc đã bị thu hồi (invalid or revoked upload token)")
        return who


def safe_filename(name: str) -> str:
    """ASCII, no path parts: original names are kept in the manifest, not on disk or in keys."""
    return ascii_name(Path(name or "upload").name, "upload")


def classify(path: Path, filename: str, declared: str | None) -> tuple[str, str, str]:
    """(kind, ext, content_type): by content when recognisable; otherwise by what the sender declared.

    Unrecognised content is still accepted when it was declared as an image/video: the ingest DAG inspects it
    properly and quarantines it with the reason, so the team sees why instead of a silent refusal."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    detected = detect(head)
    if detected:
        return detected.kind, detected.ext, detected.content_type
    ext = Path(filename).suffix.lower().lstrip(".")
    declared = (declared or "").lower()
    if declared.startswith("image/") or ext in {"jpg", "jpeg", "png", "webp", "heic", "heif"}:
        return "photo", (ext or "bin"), declared or "application/octet-stream"
    return "video", (ext or "bin"), declared or "application/octet-stream"


def check_declared_type(filename: str, declared: str | None) -> None:
    ext = Path(filename).suffix.lower().lstrip(".")
    if not (_ALLOWED_DECLARED.match(declared or "") or ext in _ALLOWED_EXT):
        raise HTTPException(415, f"'{filename}': chỉ nhận ảnh hoặc video (only photos and videos are accepted)")


def create_app(gateway: Gateway | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.gateway is None:
            app.state.gateway = Gateway.from_env()
        app.state.gateway.start()
        yield
        app.state.gateway.notifier.stop()

    app = FastAPI(title="Bridgecast ingest gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gateway

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def storage_unavailable(request: Request, exc: Exception):
        # S3 down or full: nothing was lost (a session keeps its bytes in the spool), so say "retry", not "500".
        log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "Kho lưu trữ tạm thời chưa nhận được tệp — trang sẽ tự gửi lại; nếu vẫn lỗi, "
                                       "báo ban tổ chức (storage unavailable, retry later)"},
                            status_code=503, headers={"Retry-After": "10"})

    def gw(request: Request) -> Gateway:
        return request.app.state.gateway

    @app.get("/healthz")
    async def healthz(request: Request):
        return {"ok": True, "asset_events_queued": gw(request).notifier.pending()}

    # --- nginx-rtmp callbacks (form-encoded; 2xx accepts, anything else drops the publisher) ---------------
    @app.post("/rtmp/on_publish")
    async def on_publish(request: Request):
        form = await request.form()
        name, key = form.get("name", ""), form.get("key")
        who = gw(request).keys.by_stream_key(name, key)
        if who is None:
            log.warning("publish refused for stream %r from %s (unknown, wrong-point or revoked key)",
                        name, form.get("addr"))
            return PlainTextResponse("refused", status_code=403)
        gw(request).live.published(who, form.get("addr"))
        log.info("publish accepted: %s/%s from %s", who.event_id, who.point_id, form.get("addr"))
        return PlainTextResponse("ok")

    @app.post("/rtmp/on_publish_done")
    async def on_publish_done(request: Request):
        form = await request.form()
        who = gw(request).keys.by_stream_key(form.get("name", ""), form.get("key"))
        if who:
            gw(request).live.publish_done(who)
        return PlainTextResponse("ok")

    @app.post("/rtmp/on_record_done")
    async def on_record_done(request: Request):
        form = await request.form()
        g = gw(request)
        name = form.get("name", "")
        who = g.keys.by_stream_key(name, form.get("key")) or g.live.last_publisher(name)
        path = Path(form.get("path", ""))
        if who is None or not path.is_absolute():
            log.error("record_done without a known publisher: %s %s (the sweep keeps it)", name, path)
            return PlainTextResponse("ok")
        g.segments.submit(path, who)
        return PlainTextResponse("ok")

    @app.get("/api/live")
    async def live(request: Request, event: str | None = None, authorization: str | None = Header(None)):
        gw(request).require_admin(authorization)
        return {"points": gw(request).live.snapshot(event)}

    # --- uploads -------------------------------------------------------------------------------------------
    async def _receive(g: Gateway, who: PointIdentity, path: Path, filename: str, declared: str | None,
                       client: str | None) -> dict:
        kind, ext, content_type = classify(path, filename, declared)
        got = await asyncio.to_thread(g.receiver.receive, path, who, kind=kind, ext=ext,
                                      content_type=content_type, source="upload", original_name=filename,
                                      client=client)
        return {"file": filename, "accepted": True, "upload_id": got.sha256, "sha256": got.sha256,
                "key": got.key, "size": got.size, "kind": kind, "duplicate": not got.created,
                "status": got.manifest["status"]}

    @app.post("/api/uploads")
    async def upload(request: Request, files: list[UploadFile] = File(...),
                     authorization: str | None = Header(None), token: str | None = Form(None)):
        g = gw(request)
        who = g.require_point(authorization, token)
        limit = g.max_upload_bytes(who)
        results = []
        for f in files:
            name = f.filename or "upload"
            try:
                check_declared_type(name, f.content_type)
                if f.size is not None and f.size > limit:
                    raise HTTPException(413, f"'{name}' vượt quá giới hạn {limit // 2**20} MB (file too large)")
                with tempfile.NamedTemporaryFile(dir=g.var / "ingest", delete=False) as tmp:
                    await asyncio.to_thread(shutil.copyfileobj, f.file, tmp, 1024 * 1024)
                tmp_path = Path(tmp.name)
                try:
                    results.append(await _receive(g, who, tmp_path, name, f.content_type,
                                                  request.client.host if request.client else None))
                finally:
                    tmp_path.unlink(missing_ok=True)
            except HTTPException as exc:
                results.append({"file": name, "accepted": False, "error": exc.detail, "status_code": exc.status_code})
        status = 200 if all(r["accepted"] for r in results) else (207 if any(r["accepted"] for r in results)
                                                                   else results[0]["status_code"])
        return JSONResponse({"point": who.point_id, "results": results}, status_code=status)

    @app.post("/api/uploads/sessions", status_code=201)
    async def open_session(request: Request, authorization: str | None = Header(None)):
        g = gw(request)
        who = g.require_point(authorization)
        body = await request.json()
        try:
            filename, size = str(body["filename"]), int(body["size"])
        except (KeyError, TypeError, ValueError):
            raise HTTPException(422, "filename and size are required") from None
        check_declared_type(filename, body.get("content_type"))
        limit = g.max_upload_bytes(who)
        if size <= 0 or size > limit:
            raise HTTPException(413, f"'{filename}': kích thước {size} byte không hợp lệ (limit {limit // 2**20} MB)")
        session = g.sessions.open(event_id=who.event_id, point_id=who.point_id, filename=filename, size=size,
                                  content_type=body.get("content_type") or "", fingerprint=str(body.get("fingerprint", "")))
        return {**asdict(session), "chunk_size": CHUNK_SIZE}

    def _own_session(g: Gateway, who: PointIdentity, session_id: str):
        session = g.sessions.get(session_id)
        if session is None:
            raise HTTPException(404, "upload session not found — start the upload again")
        if (session.event_id, session.point_id) != (who.event_id, who.point_id):
            raise HTTPException(403, "this upload belongs to another point")
        return session

    @app.get("/api/uploads/sessions/{session_id}")
    async def session_status(request: Request, session_id: str, authorization: str | None = Header(None)):
        g = gw(request)
        session = _own_session(g, g.require_point(authorization), session_id)
        data = g.sessions.data_path(session_id)
        offset = data.stat().st_size if data.exists() else session.offset
        return {**asdict(session), "offset": offset}

    @app.patch("/api/uploads/sessions/{session_id}")
    async def append_chunk(request: Request, session_id: str, authorization: str | None = Header(None),
                           upload_offset: int = Header(..., alias="Upload-Offset")):
        g = gw(request)
        who = g.require_point(authorization)
        async with g.sessions.lock(session_id):
            session = _own_session(g, who, session_id)
            if session.result is not None:
                return {**asdict(session)}
            try:
                session = await g.sessions.append(session, upload_offset, request.stream())
            except OffsetMismatch as exc:
                return JSONResponse({"error": str(exc), "offset": exc.expected}, status_code=409,
                                    headers={"Upload-Offset": str(exc.expected)})
            except ValueError as exc:
                raise HTTPException(413, str(exc)) from None
            if session.complete:
                result = await _receive(g, who, g.sessions.data_path(session_id), session.filename,
                                        session.content_type, request.client.host if request.client else None)
                g.sessions.finish(session, result)
        return JSONResponse(asdict(session), headers={"Upload-Offset": str(session.offset)})

    @app.get("/api/uploads/{upload_id}")
    async def upload_status(request: Request, upload_id: str, authorization: str | None = Header(None),
                            token: str | None = None):
        g = gw(request)
        who = g.require_point(authorization, token)
        if not re.fullmatch(r"[0-9a-f]{64}", upload_id):
            raise HTTPException(404, "unknown upload")
        manifest = await asyncio.to_thread(g.manifests.get, who.event_id, who.point_id, upload_id)
        if manifest is None:
            raise HTTPException(404, "unknown upload")
        return {k: manifest.get(k) for k in ("sha256", "kind", "status", "reason", "reason_code", "original_name",
                                             "received_at", "renditions", "receipts", "size")}

    @app.get("/u/{token}", response_class=HTMLResponse)
    async def upload_page(request: Request, token: str):
        from bridgecast.ingest.page import render_upload_page

        g = gw(request)
        who = g.require_point(None, token)
        event = g.event_of(who)
        return HTMLResponse(render_upload_page(who, event, token))

    @app.get("/u/{token}/qr.png")
    async def upload_qr(request: Request, token: str):
        from bridgecast.ingest.page import qr_png

        gw(request).require_point(None, token)
        return Response(qr_png(str(request.url_for("upload_page", token=token))), media_type="image/png")

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
