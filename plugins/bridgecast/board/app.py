"""The board as a FastAPI app mounted in Airflow's api-server (by the plugin `plugins/bridgecast_board.py`).

    /bridgecast/board/                      the page (Vietnamese; laptop and phone)
    /bridgecast/board/static/<file>         its script, style and icon
    /bridgecast/api/board?event=|run_id=    the JSON the page polls every 4 s
    /bridgecast/api/thumbnails/<point>.jpg  a stream's latest picture
    /bridgecast/api/report/{html|pdf}?event= the newest results report, streamed from S3 (never a presigned URL)
    /bridgecast/api/media/<object key>      a post preview, processed photo or recap file for staff (ditto)
    /bridgecast/calendar/                   the staff's calendar of posts: week and month views (`board.calendar`)
    /bridgecast/calendar/static/<file>      its script, style and icon
    /bridgecast/api/calendar?from=&to=      every post of those days, per channel with its state (YYYY-MM-DD)
    /bridgecast/api/steering, /api/steer    what staff decided for the launch, and deciding (`board.steer`)

Every route sits behind Airflow's own authentication and authorization: the api-server's JWT (the `_token` cookie
the UI holds, or an `Authorization: Bearer` header) must belong to a user who may read the runs of
`bridgecast_launch` (`requires_access_dag`), so the auth manager's roles decide who sees the board. Without a
login the answer is 401 (403 with a token that is invalid or lacks the permission).
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from bridgecast.board import server
from bridgecast.board.assemble import Facts, assemble
from bridgecast.board.sources import REPORT_KINDS, Sources, SourceError, TTLCache
from bridgecast.event import Event, EventConfigError, default_event_path, load_event, load_event_bytes

log = logging.getLogger("bridgecast.board")

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"board.js": "text/javascript; charset=utf-8", "board.css": "text/css; charset=utf-8",
                "icon.svg": "image/svg+xml"}
_POINT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
EVENT_TTL_S = 30.0
# The page's own script and style only; pictures from here too; framed by Airflow's UI (same origin) only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")


def _require_board_access():
    """Airflow's dependency: who may read bridgecast_launch's runs may read the board."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=server.LAUNCH_DAG_ID)


class Board:
    """What the routes share: the sources (built on first use, inside the api-server) and parsed events."""

    def __init__(self, sources_factory=None):
        self._sources_factory = sources_factory or _sources_from_airflow
        self._sources: Sources | None = None
        self._lock = threading.Lock()
        self.events = TTLCache()

    @property
    def sources(self) -> Sources:
        with self._lock:
            if self._sources is None:
                self._sources = self._sources_factory()
            return self._sources


def _sources_from_airflow() -> Sources:
    from bridgecast.ledger import Ledger
    from bridgecast.storage import Storage

    return Sources(Storage.from_info(server.connection("bridgecast_s3")), server.connection("bridgecast_ingest"),
                   Ledger())


def create_app(board: Board | None = None, *, access=None, thumbnailer: bool = True, agenda=None) -> FastAPI:
    """`access`: the auth dependency (Airflow's, by default); `thumbnailer`: start the thumbnailer child here when
    the ingest is on this machine; `agenda`: the posts feature's `read_agenda`, which the calendar page shows (the
    plugin passes it: features never import each other) — without it the app has no calendar."""
    board = board or Board()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        supervisor = _start_thumbnailer() if thumbnailer else None
        yield
        if supervisor:
            supervisor.stop()

    app = FastAPI(title="Bridgecast board", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(access or _require_board_access())])
    app.state.board = board

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/board/", response_class=HTMLResponse)
    def page():
        return HTMLResponse((STATIC / "board.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @app.get("/board/static/{name}")
    def static(name: str):
        if name not in STATIC_FILES:
            raise HTTPException(404, "không có tệp này")
        return Response((STATIC / name).read_bytes(), media_type=STATIC_FILES[name],
                        headers={"Cache-Control": "private, max-age=60"})

    @app.get("/api/board")
    def board_json(session=Depends(_session_dependency()), event: str | None = Query(None),
                   run_id: str | None = Query(None), dag_id: str | None = Query(None)):
        started = time.monotonic()
        facts = gather(board, session, event_id=event, run_id=run_id if dag_id in (None, server.LAUNCH_DAG_ID)
                       else None)
        data = assemble(facts, thumbnail_url=lambda stream, at: f"../api/thumbnails/{stream}.jpg?v={at:%Y%m%dT%H%M%S}")
        data["served_in_ms"] = round((time.monotonic() - started) * 1000, 1)
        if dag_id and dag_id != server.LAUNCH_DAG_ID:
            data["note"] = f"Bảng điều khiển theo dõi {server.LAUNCH_DAG_ID}; đây là lượt chạy của {dag_id}, nên bảng " \
                           "hiển thị sự kiện của lượt chạy bridgecast_launch gần nhất."
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    @app.get("/api/thumbnails/{name}")
    def thumbnail(name: str, v: str = Query("")):
        stream = name.removesuffix(".jpg")
        if not name.endswith(".jpg") or not _POINT_ID.match(stream):
            raise HTTPException(404, "không có ảnh này")
        try:
            picture = board.sources.thumbnail(stream, v[:32])
        except Exception:  # noqa: BLE001 - not taken yet, or S3 away: the page shows its placeholder
            raise HTTPException(404, "chưa có ảnh của luồng này") from None
        return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @app.get("/api/report/{kind}")
    def report_file(kind: str, event: str | None = Query(None)):
        """The newest report of the event (the configured one by default) through this authenticated app, so
        the link works only for who may see the board and the S3 credentials never leave the server."""
        if kind not in REPORT_KINDS:
            raise HTTPException(404, "chỉ có báo cáo dạng html hoặc pdf")
        event_id = event or _file_event(board, default_event_path()).id
        if not _POINT_ID.match(event_id):
            raise HTTPException(404, f"mã sự kiện {event_id!r} không hợp lệ")
        try:
            obj = board.sources.report_file(event_id, kind)
        except SourceError as exc:
            raise HTTPException(503, f"Không đọc được báo cáo từ kho lưu trữ, thử lại sau: {exc}") from None
        if obj is None:
            raise HTTPException(404, "Chưa có báo cáo kết quả của sự kiện này.")
        media = "application/pdf" if kind == "pdf" else "text/html; charset=utf-8"
        name = f"bao-cao-{event_id}.{kind}"
        headers = {"Cache-Control": "private, no-cache", "Content-Disposition": f'inline; filename="{name}"'}
        if obj.get("ContentLength") is not None:
            headers["Content-Length"] = str(obj["ContentLength"])
        if kind == "html":  # the report is self-contained (charts inlined): it may show its own images and styles
            headers["Content-Security-Policy"] = ("default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; "
                                                  "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
        return StreamingResponse(obj["Body"].iter_chunks(64 * 1024), media_type=media, headers=headers)

    @app.get("/api/media/{key:path}")
    def staff_media(key: str):
        """A stored file staff may see (post previews, processed photos, the recap: `objects.is_staff_media_key`),
        streamed through this authenticated app — what approvals and staff mails link to instead of presigned
        S3 URLs. The type comes from the extension, never from what was stored."""
        from bridgecast.objects import is_staff_media_key

        if not is_staff_media_key(key):
            raise HTTPException(404, "không có tệp này")
        try:
            obj = board.sources.media_file(key)
        except SourceError as exc:
            raise HTTPException(503, f"Không đọc được tệp từ kho lưu trữ, thử lại sau: {exc}") from None
        if obj is None:
            raise HTTPException(404, "không có tệp này (chưa tạo hoặc đã xoá)")
        suffix = Path(key).suffix.lower()
        headers = {"Cache-Control": "private, max-age=300"}
        if obj.get("ContentLength") is not None:
            headers["Content-Length"] = str(obj["ContentLength"])
        if suffix == ".html":  # a post preview: its own style and the photos from here, nothing else
            headers["Content-Security-Policy"] = ("default-src 'none'; img-src 'self'; media-src 'self'; "
                                                  "style-src 'unsafe-inline'; frame-ancestors 'self'; "
                                                  "base-uri 'none'; form-action 'none'; sandbox")
        return StreamingResponse(obj["Body"].iter_chunks(64 * 1024), media_type=MEDIA_TYPES[suffix],
                                 headers=headers)

    if agenda is not None:
        _calendar_routes(app, board, agenda)
    from bridgecast.board.steer import steering_routes

    steering_routes(app, board, event_of=_event, run_of=latest_run_of, session_dependency=_session_dependency(),
                    require_steer=access)
    return app


def _calendar_routes(app: FastAPI, board: Board, agenda) -> None:
    from bridgecast.board import calendar

    stored = TTLCache()  # what S3 holds about posts (frozen photos, removed posts' text), across requests

    @app.get("/calendar/", response_class=HTMLResponse)
    def calendar_page():
        return HTMLResponse((STATIC / "calendar.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @app.get("/calendar/static/{name}")
    def calendar_static(name: str):
        if name not in calendar.STATIC_FILES:
            raise HTTPException(404, "không có tệp này")
        return Response((STATIC / name).read_bytes(), media_type=calendar.STATIC_FILES[name],
                        headers={"Cache-Control": "private, max-age=60"})

    @app.get("/api/calendar")
    def calendar_json(session=Depends(_session_dependency()), start: str | None = Query(None, alias="from"),
                      end: str | None = Query(None, alias="to"), event: str | None = Query(None)):
        shown = _event(board, event, None)
        try:
            first, last = calendar.parse_range(start, end, datetime.now(timezone.utc).astimezone(shown.tz).date())
        except calendar.RangeError as exc:
            raise HTTPException(422, str(exc)) from None
        sources = board.sources
        try:
            data = calendar.answer(agenda, session, shown, first, last, storage=sources.storage,
                                   ledger=sources.ledger, cache=stored)
        except SQLAlchemyError as exc:  # the ledger's database (or Airflow's) is away: say so, never guess
            raise HTTPException(503, f"Không đọc được sổ đăng bài hoặc cơ sở dữ liệu của Airflow, thử lại sau: "
                                     f"{type(exc).__name__}") from None
        return JSONResponse(data, headers={"Cache-Control": "no-store"})


MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
               ".mp4": "video/mp4", ".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
               ".md": "text/plain; charset=utf-8", ".pdf": "application/pdf"}


def _session_dependency():
    from airflow.api_fastapi.common.db.common import _get_session

    return _get_session


# --- gathering the facts -------------------------------------------------------------------------------------------------
def gather(board: Board, session, *, event_id: str | None = None, run_id: str | None = None) -> Facts:
    errors: dict[str, str] = {}
    run = None
    try:
        run = server.launch_run(session, run_id) if run_id or not event_id else latest_run_of(board, session, event_id)
        paused = server.launch_dag_paused(session)
    except Exception as exc:  # noqa: BLE001 - the metadata DB is Airflow's; report, don't crash the board
        errors["airflow"], paused = f"{type(exc).__name__}: {exc}"[:200], None
    if run_id and run is None:
        raise HTTPException(404, f"không có lượt chạy {run_id!r} của {server.LAUNCH_DAG_ID}")
    event = _event(board, event_id, run)
    sources = board.sources
    facts = Facts(event=event, now=datetime.now(timezone.utc), dag_paused=paused, errors=errors,
                  run={"dag_id": server.LAUNCH_DAG_ID, "run_id": run.run_id, "state": run.state} if run else None)
    for name, attr, read in (("gateway", "live", lambda: sources.live(event.id)),
                             ("stat", "streams", sources.streams),
                             ("storage", "preflight", lambda: sources.preflight(event.id)),
                             ("storage", "manifests", lambda: sources.manifests(event.id)),
                             ("storage", "thumbnails", sources.thumbnails),
                             ("ledger", "publications", lambda: sources.publications(event.id)),
                             ("storage", "incidents", lambda: sources.incidents(event.id)),
                             ("storage", "relay", lambda: sources.relay(event.id)),
                             ("storage", "steering", lambda: sources.steering(event.id)),
                             ("storage", "report", lambda: sources.report(event.id))):
        try:
            setattr(facts, attr, read())
        except SourceError as exc:
            errors.setdefault(name, str(exc))
    return facts


def latest_run_of(board: Board, session, event_id: str):
    """The latest launch run if it runs `event_id` (a board opened for an event — the alert mails' link — shows
    that event's run), else None."""
    run = server.launch_run(session)
    try:
        return run if run is not None and _event(board, None, run).id == event_id else None
    except HTTPException:  # the run's event cannot be read: the board still shows the event asked for
        return None


def _event(board: Board, event_id: str | None, run) -> Event:
    """The event of `run` (its conf: a rehearsal's event in S3, or a file), else the event `event_id` (the configured
    one, or the copy a launch run of it keeps in S3), else the configured event."""
    from bridgecast.run_event import run_event_key

    conf = run.conf if run else {}
    try:
        if conf.get("event_key"):
            return board.events.get(("s3", conf["event_key"]), EVENT_TTL_S,
                                    lambda: _s3_event(board, conf["event_key"]))
        if conf.get("event_file"):
            return _file_event(board, Path(conf["event_file"]))
        configured = _file_event(board, default_event_path())
        if not event_id or event_id == configured.id:
            return configured
        if not _POINT_ID.match(event_id):
            raise HTTPException(404, f"mã sự kiện {event_id!r} không hợp lệ")
        return board.events.get(("s3", run_event_key(event_id)), EVENT_TTL_S,
                                lambda: _s3_event(board, run_event_key(event_id)))
    except EventConfigError as exc:
        raise HTTPException(422, f"không đọc được tệp sự kiện: {exc}") from None
    except SourceError as exc:
        raise HTTPException(404, str(exc)) from None


def _s3_event(board: Board, key: str) -> Event:
    from botocore.exceptions import ClientError

    storage = board.sources.storage
    try:
        data = storage.get_bytes(key)
    except ClientError:
        raise SourceError(f"không có sự kiện s3://{storage.bucket}/{key} (chưa có lượt chạy nào của sự kiện này?)") \
            from None
    return load_event_bytes(data, f"s3://{storage.bucket}/{key}")


def _file_event(board: Board, path: Path) -> Event:
    mtime = path.stat().st_mtime if path.exists() else 0
    return board.events.get(("file", str(path), mtime), EVENT_TTL_S, lambda: load_event(path))


def _start_thumbnailer():
    """The thumbnailer as a child of this api-server, if nginx is on this machine (it lets only loopback play)."""
    from bridgecast.board import thumbnails

    if os.environ.get("BRIDGECAST_BOARD_THUMBNAILER", "auto") == "off":
        log.info("thumbnailer disabled here (BRIDGECAST_BOARD_THUMBNAILER=off)")
        return None

    def resolve() -> dict | None:
        s3, ingest = server.connection("bridgecast_s3"), server.connection("bridgecast_ingest")
        rtmp_url = ingest.extra.get("rtmp_url", "")
        if not thumbnails.on_this_machine(rtmp_url):
            log.info("thumbnailer not started here: the ingest (%s) is on another machine — run "
                     "`python -m bridgecast.board.thumbnails` there", rtmp_url.split("?")[0])
            return None
        return {"bridgecast_s3": thumbnails.connection_fields(s3),
                "bridgecast_ingest": thumbnails.connection_fields(ingest)}

    return thumbnails.Supervisor(resolve).start()
