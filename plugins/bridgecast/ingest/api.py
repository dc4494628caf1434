"""The gateway's public API: field-team uploads (multipart and resumable), a district team's daily sign-up figure,
the upload page, health, the admin live view. No nginx callback lives here (`rtmp.py`, a port of its own).

Every request that carries a body is authenticated and size-checked on its head, before the body is read; every
file operation runs in a worker thread, so the event loop keeps answering.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as S3ConnectionError
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from bridgecast.ingest.gateway import CLOSE, Gateway
from bridgecast.ingest.keys import PointIdentity
from bridgecast.ingest.resumable import CHUNK_SIZE, SESSION_ID, OffsetMismatch, TooManyBytes, UploadSession
from bridgecast.ingest.uploads import (ENVELOPE_BYTES, SpooledPart, UploadRefused, classify,
                                       refuse_if_clearly_not_media, spool_multipart)

log = logging.getLogger("bridgecast.gateway")

MAX_JSON_BYTES = 64 * 1024
_TRANSIENT_S3 = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                 "ThrottlingException", "RequestLimitExceeded", "OperationAborted", "ServiceUnavailableException"}


# --- storage errors: "retry later" only when later can help -----------------------------------------------------
def storage_error_is_transient(exc: Exception) -> bool:
    if isinstance(exc, (HTTPClientError, S3ConnectionError)):  # unreachable, timed out, connection dropped
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in _TRANSIENT_S3 or status >= 500 or status in (408, 429)
    return False  # missing credentials, invalid parameters: a configuration problem, not a passing one


def storage_error_answer(exc: Exception, *, kept: bool) -> tuple[int, str, dict]:
    if storage_error_is_transient(exc):
        return 503, ("Kho lưu trữ tạm thời chưa nhận được tệp — trang sẽ tự gửi lại; nếu vẫn lỗi, báo ban tổ chức "
                     "(storage unavailable, retry later)"), {"Retry-After": "10"}
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
    where = ("phần đã gửi vẫn được giữ ở cổng tiếp nhận, không mất gì" if kept
             else "tệp chưa được lưu — giữ tệp trên máy và gửi lại khi ban tổ chức báo đã sửa")
    return 502, (f"Kho lưu trữ từ chối tệp (S3: {code}) — lỗi cấu hình phía ban tổ chức, không phải lỗi của tệp; "
                 f"{where}. Báo ban tổ chức (storage refused the file: {code})"), {}


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise HTTPException(400, "Content-Length must be a number of bytes", headers=CLOSE)
    return int(value)


async def _read_json_object(request: Request) -> dict:
    declared = _content_length(request)
    if declared is not None and declared > MAX_JSON_BYTES:
        raise HTTPException(413, f"the request body is over {MAX_JSON_BYTES} bytes", headers=CLOSE)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise HTTPException(413, f"the request body is over {MAX_JSON_BYTES} bytes", headers=CLOSE)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the body must be a JSON object: {\"filename\": …, \"size\": …}") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object: {\"filename\": …, \"size\": …}")
    return data


def _session_fields(body: dict) -> tuple[str, int, str, str]:
    filename, size = body.get("filename"), body.get("size")
    content_type, fingerprint = body.get("content_type") or "", body.get("fingerprint", "")
    if not isinstance(filename, str) or not filename.strip() or len(filename) > 1024 or "\x00" in filename:
        raise HTTPException(422, "`filename` is required: the file's name as text (at most 1024 characters)")
    if isinstance(size, bool) or not isinstance(size, int):
        raise HTTPException(422, "`size` is required: the file's size in bytes, a whole number")
    if not isinstance(content_type, str) or len(content_type) > 255:
        raise HTTPException(422, "`content_type` must be text, e.g. \"video/mp4\" (or left out)")
    if not isinstance(fingerprint, (str, int)) or isinstance(fingerprint, bool) or len(str(fingerprint)) > 1024:
        raise HTTPException(422, "`fingerprint` must be text of at most 1024 characters (or left out)")
    return filename, size, content_type, str(fingerprint)


# --- a district team's sign-ups of one day ------------------------------------------------------------------------
SIGNUPS_DAG = "bridgecast_import_signups"  # records it (bridgecast.results; the gateway never imports a feature)
MAX_FIGURE = 1_000_000
SIGNUP_LABELS = {"day": "Ngày (day)", "count": "Số người tham gia mới (count)", "forms": "Số tờ khai (forms)"}


def _figure(body: dict, field: str, *, required: bool) -> int | None:
    value, label = body.get(field), SIGNUP_LABELS[field]
    if value is None or value == "":
        if required:
            raise HTTPException(422, f"«{label}»: chưa nhập — nhập số người tham gia mới trong ngày (0 nếu không có).")
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise HTTPException(422, f"«{label}»: {str(value)[:20]!r} không phải số nguyên — nhập một số nguyên ≥ 0.")
    if not 0 <= value <= MAX_FIGURE:
        raise HTTPException(422, f"«{label}»: {value} không hợp lệ — nhập một số nguyên từ 0 đến {MAX_FIGURE:,}."
                            .replace(",", "."))
    return value


def _signup_day(body: dict, event) -> date:
    text, label = str(body.get("day") or "").strip(), SIGNUP_LABELS["day"]
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise HTTPException(422, f"«{label}»: {text[:20]!r} không phải ngày — chọn ngày báo cáo.") from None
    today = datetime.now(event.tz).date()  # the event's zone (Asia/Ho_Chi_Minh): "today" is the team's today
    if day > today:
        raise HTTPException(422, f"«{label}»: ngày {day:%d/%m/%Y} chưa đến (hôm nay {today:%d/%m/%Y}) — chỉ báo cáo "
                                 "số của những ngày đã qua.")
    first, last = event.campaign_start, event.campaign_last_day
    if not first <= day <= last:
        raise HTTPException(422, f"«{label}»: ngày {day:%d/%m/%Y} nằm ngoài Tháng vận động ({first:%d/%m/%Y} – "
                                 f"{last:%d/%m/%Y}) — chọn đúng ngày.")
    return day


def signup_conf(who: PointIdentity, event, body: dict) -> dict:
    """The `bridgecast_import_signups` conf for a team's figure (its `team_report`), or a 4xx naming the field."""
    point = event.point(who.point_id) if event is not None and who.point_id in {p.id for p in event.points} else None
    if point is None or point.kind != "district":
        raise HTTPException(403, "Chỉ đội tuyên truyền lưu động cấp huyện báo cáo số người tham gia trên trang này.")
    report = {"district_id": who.point_id, "day": _signup_day(body, event).isoformat(),
              "count": _figure(body, "count", required=True), "forms": _figure(body, "forms", required=False),
              "source": f"team_page:{who.point_id}"}
    conf = {"team_report": report, "event_id": who.event_id}
    if who.event_file:  # the same event file the gateway read (a rehearsal's, or the configured one)
        conf["event_file"] = who.event_file
    return conf


def _trigger_with_airflow(dag_id: str, conf: dict) -> dict:
    from bridgecast.airflow_api import AirflowAPI

    return AirflowAPI.from_connection().trigger(dag_id, conf)


def _airflow_answer(exc: Exception) -> tuple[int, str]:
    """503 «thử lại sau» when the api-server is away or failing; 502 when it refuses us (a configuration matter)."""
    import requests

    from bridgecast.airflow_api import AirflowAPIError

    if isinstance(exc, requests.RequestException) or (isinstance(exc, AirflowAPIError) and exc.status >= 500):
        return 503, ("Máy chủ Airflow tạm thời chưa nhận được số liệu — số đã nhập vẫn còn trên trang, hãy thử lại "
                     "sau ít phút.")
    return 502, ("Máy chủ Airflow từ chối ghi số liệu (lỗi cấu hình phía ban tổ chức) — số đã nhập vẫn còn trên "
                 "trang; báo ban tổ chức rồi thử lại sau.")


def create_app(gateway: Gateway, *, trigger=None) -> FastAPI:
    """The public API: uploads, sign-ups, the upload page, health, and the admin live view. No nginx callback lives
    here. `trigger(dag_id, conf)` starts a DAG run (Airflow's REST API by default)."""
    app = FastAPI(title="Bridgecast ingest gateway", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway
    trigger = trigger or _trigger_with_airflow

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def storage_failed(request: Request, exc: Exception):
        status, detail, headers = storage_error_answer(exc, kept=False)
        route = getattr(request.scope.get("route"), "path", "?")  # the template: a /u/{token} path holds a token
        log.error("storage error on %s %s: %s", request.method, route, exc)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    def gw(request: Request) -> Gateway:
        return request.app.state.gateway

    def client_of(request: Request) -> str | None:
        return request.client.host if request.client else None

    @app.get("/healthz")
    async def healthz(request: Request):
        return {"ok": True, "asset_events_queued": await asyncio.to_thread(gw(request).notifier.pending)}

    @app.get("/api/live")
    async def live(request: Request, event: str | None = None, authorization: str | None = Header(None)):
        gw(request).require_admin(authorization)
        return {"points": await asyncio.to_thread(gw(request).live.snapshot, event)}

    # --- uploads -------------------------------------------------------------------------------------------
    async def _receive(g: Gateway, who: PointIdentity, path: Path, filename: str, kind: str, ext: str,
                       content_type: str, client: str | None) -> dict:
        got = await asyncio.to_thread(g.receiver.receive, path, who, kind=kind, ext=ext,
                                      content_type=content_type, source="upload", original_name=filename,
                                      client=client)
        return {"file": filename, "accepted": True, "upload_id": got.sha256, "sha256": got.sha256,
                "key": got.key, "size": got.size, "kind": kind, "duplicate": not got.created,
                "status": got.manifest["status"]}

    async def _receive_part(g: Gateway, who: PointIdentity, part: SpooledPart, client: str | None) -> dict:
        try:
            kind, ext, content_type = classify(part.head, part.filename, part.content_type)
            return await _receive(g, who, part.path, part.filename, kind, ext, content_type, client)
        except UploadRefused as exc:
            return {"file": part.filename, "accepted": False, "error": exc.detail, "status_code": exc.status}
        except (BotoCoreError, ClientError) as exc:
            status, detail, _ = storage_error_answer(exc, kept=False)
            log.error("storage error storing %s for %s/%s: %s", part.filename, who.event_id, who.point_id, exc)
            return {"file": part.filename, "accepted": False, "error": detail, "status_code": status}

    @app.post("/api/uploads")
    async def upload(request: Request, authorization: str | None = Header(None)):
        """Multipart upload of one or more files (field `files`). The token (Authorization header) and the
        declared size are checked before a byte of the body is read."""
        g = gw(request)
        who = await g.point_of(authorization)
        limit = await asyncio.to_thread(g.max_upload_bytes, who)
        body_limit = limit + ENVELOPE_BYTES
        declared = _content_length(request)
        if declared is not None and declared > body_limit:
            raise HTTPException(413, f"vượt quá giới hạn {limit // 2**20} MB (request too large)", headers=CLOSE)
        try:
            parts = await spool_multipart(request.stream(), request.headers.get("content-type"), g.incoming,
                                          file_limit=limit, body_limit=body_limit)
        except UploadRefused as exc:
            return JSONResponse({"point": who.point_id, "detail": exc.detail,
                                 "results": [{"accepted": False, "error": exc.detail, "status_code": exc.status}]},
                                status_code=exc.status, headers=CLOSE)
        try:
            results = [await _receive_part(g, who, part, client_of(request)) for part in parts]
        finally:
            await asyncio.to_thread(lambda: [p.path.unlink(missing_ok=True) for p in parts])
        status = 200 if all(r["accepted"] for r in results) else (207 if any(r["accepted"] for r in results)
                                                                   else results[0]["status_code"])
        headers = {"Retry-After": "10"} if any(r.get("status_code") == 503 for r in results) else {}
        return JSONResponse({"point": who.point_id, "results": results}, status_code=status, headers=headers)

    @app.post("/api/uploads/sessions", status_code=201)
    async def open_session(request: Request, authorization: str | None = Header(None)):
        g = gw(request)
        who = await g.point_of(authorization)
        filename, size, content_type, fingerprint = _session_fields(await _read_json_object(request))
        try:
            refuse_if_clearly_not_media(filename, content_type)
        except UploadRefused as exc:
            raise HTTPException(exc.status, exc.detail) from None
        limit = await asyncio.to_thread(g.max_upload_bytes, who)
        if size <= 0 or size > limit:
            raise HTTPException(413, f"'{filename}': kích thước {size} byte không hợp lệ (limit {limit // 2**20} MB)")
        session = await asyncio.to_thread(
            lambda: g.sessions.open(event_id=who.event_id, point_id=who.point_id, filename=filename, size=size,
                                    content_type=content_type, fingerprint=fingerprint))
        return {**asdict(session), "chunk_size": CHUNK_SIZE}

    async def _own_session(g: Gateway, who: PointIdentity, session_id: str) -> UploadSession:
        session = await asyncio.to_thread(g.sessions.get, session_id)
        if session is None:
            raise HTTPException(404, "upload session not found — start the upload again")
        if (session.event_id, session.point_id) != (who.event_id, who.point_id):
            raise HTTPException(403, "this upload belongs to another point")
        return session

    @app.get("/api/uploads/sessions/{session_id}")
    async def session_status(request: Request, session_id: str, authorization: str | None = Header(None)):
        g = gw(request)
        session = await _own_session(g, await g.point_of(authorization), session_id)
        return {**asdict(session), "offset": await asyncio.to_thread(g.sessions.offset_of, session)}

    async def _judge_content(g: Gateway, session: UploadSession) -> None:
        """The first bytes decide what a file is; a file that named no media type and is none is refused."""
        if session.checked_content or not (session.offset >= 512 or session.complete):
            return
        head = await asyncio.to_thread(g.sessions.head, session)
        try:
            classify(head, session.filename, session.content_type)
        except UploadRefused as exc:
            await asyncio.to_thread(g.sessions.discard, session)
            raise HTTPException(exc.status, exc.detail) from None
        session.checked_content = True
        await asyncio.to_thread(g.sessions.save, session)

    @app.patch("/api/uploads/sessions/{session_id}")
    async def append_chunk(request: Request, session_id: str, authorization: str | None = Header(None),
                           upload_offset: int = Header(..., alias="Upload-Offset")):
        g = gw(request)
        who = await g.point_of(authorization)
        if not SESSION_ID.fullmatch(session_id):
            raise HTTPException(404, "upload session not found — start the upload again", headers=CLOSE)
        declared = _content_length(request)
        async with g.sessions.lock(session_id):
            session = await _own_session(g, who, session_id)
            if session.result is not None:
                return {**asdict(session)}
            try:
                session = await g.sessions.append(session, upload_offset, request.stream(), declared_length=declared)
            except OffsetMismatch as exc:
                return JSONResponse({"error": str(exc), "offset": exc.expected}, status_code=409,
                                    headers={"Upload-Offset": str(exc.expected), **CLOSE})
            except TooManyBytes as exc:
                raise HTTPException(413, str(exc), headers=CLOSE) from None
            await _judge_content(g, session)
            if session.complete:
                try:
                    result = await _receive_session(g, who, session, client_of(request))
                except UploadRefused as exc:
                    raise HTTPException(exc.status, exc.detail) from None
                except (BotoCoreError, ClientError) as exc:
                    status, detail, headers = storage_error_answer(exc, kept=True)
                    log.error("storage error storing session %s of %s/%s: %s", session.id, who.event_id,
                              who.point_id, exc)
                    return JSONResponse({"detail": detail, "offset": session.offset}, status_code=status,
                                        headers={**headers, "Upload-Offset": str(session.offset)})
                await asyncio.to_thread(g.sessions.finish, session, result)
        return JSONResponse(asdict(session), headers={"Upload-Offset": str(session.offset)})

    async def _receive_session(g: Gateway, who: PointIdentity, session: UploadSession, client: str | None) -> dict:
        path = g.sessions.data_path(session.id)
        head = await asyncio.to_thread(g.sessions.head, session)
        kind, ext, content_type = classify(head, session.filename, session.content_type)
        return await _receive(g, who, path, session.filename, kind, ext, content_type, client)

    @app.get("/api/uploads/{upload_id}")
    async def upload_status(request: Request, upload_id: str, authorization: str | None = Header(None),
                            token: str | None = None):
        g = gw(request)
        who = await g.point_of(authorization, token)
        if not re.fullmatch(r"[0-9a-f]{64}", upload_id):
            raise HTTPException(404, "unknown upload")
        manifest = await asyncio.to_thread(g.manifests.get, who.event_id, who.point_id, upload_id)
        if manifest is None:
            raise HTTPException(404, "unknown upload")
        return {k: manifest.get(k) for k in ("sha256", "kind", "status", "reason", "reason_code", "original_name",
                                             "received_at", "renditions", "receipts", "size")}

    @app.post("/api/signups")
    async def signups(request: Request, authorization: str | None = Header(None)):
        """A district team's new participants of one day: checked here (4xx naming the field), recorded by
        bridgecast_import_signups; the answer is a receipt with the run that records it."""
        g = gw(request)
        who = await g.point_of(authorization)
        event = await asyncio.to_thread(g.event_of, who)
        conf = signup_conf(who, event, await _read_json_object(request))
        try:
            run = await asyncio.to_thread(trigger, SIGNUPS_DAG, conf)
        except Exception as exc:  # noqa: BLE001 - requests/AirflowAPIError: answered, never a 500
            status, detail = _airflow_answer(exc)
            log.error("sign-ups of %s/%s not sent to Airflow: %s", who.event_id, who.point_id, exc)
            return JSONResponse({"detail": detail}, status_code=status,
                                headers={"Retry-After": "30"} if status == 503 else {})
        report = conf["team_report"]
        day = date.fromisoformat(report["day"])
        forms = f", {report['forms']} tờ khai" if report["forms"] is not None else ""
        return {"accepted": True, "run_id": (run or {}).get("dag_run_id"), **report,
                "message": f"Đã nhận báo cáo ngày {day:%d/%m/%Y}: {report['count']} người tham gia mới{forms}. "
                           "Số liệu vào báo cáo kết quả sau ít phút; gửi lại số khác cho cùng ngày là sửa số."}

    @app.get("/u/{token}", response_class=HTMLResponse)
    async def upload_page(request: Request, token: str):
        from bridgecast.ingest.page import render_upload_page

        g = gw(request)
        who = await g.point_of(None, token)
        event = await asyncio.to_thread(g.event_of, who)
        return HTMLResponse(render_upload_page(who, event, token))

    @app.get("/u/{token}/qr.png")
    async def upload_qr(request: Request, token: str):
        from bridgecast.ingest.page import qr_png

        await gw(request).point_of(None, token)
        png = await asyncio.to_thread(qr_png, str(request.url_for("upload_page", token=token)))
        return Response(png, media_type="image/png")

    return app
