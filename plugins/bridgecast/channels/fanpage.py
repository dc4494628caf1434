"""Fanpage channel: posts, photos, scheduled posts, the live video and the recap video on the Page via the Graph API.
`GraphClient` owns the Graph URLs, the token and the error mapping over the shared `HttpTransport` (session,
timeouts, retries, streamed uploads); `FanpageChannel` maps Publications onto it."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import quote

import requests

from bridgecast.channels.base import (AuthError, Channel, ChannelError, DuplicateRejected, HealthReport, MediaFile,
                                      NotFound, PermissionMissing, PolicyBlocked, Publication, RateLimited,
                                      RejectedInput, RemoteRef, Transient, file_sha256)
from bridgecast.channels.transport import HeaderAuth, HttpTransport, MultipartFile, checked_base_url

log = logging.getLogger(__name__)

CHANNEL = "fanpage"
DEFAULT_CONN_ID = "bridgecast_fanpage"
GRAPH_URL = "https://graph.facebook.com"
WEB_URL = "https://www.facebook.com"
DEFAULT_VERSION = "v25.0"  # what the official SDK pins; the event config pins ours
SCHEDULE_MIN_LEAD = timedelta(minutes=10)
SCHEDULE_MAX_LEAD = timedelta(days=30)
LIVE_SCHEDULE_MAX_LEAD = timedelta(days=7)
# A live starting sooner than this is created as a preview and started by go_live: a scheduled start that close
# could pass before the stream arrives.
LIVE_SCHEDULE_MIN_LEAD = timedelta(seconds=60)
LIVE_TITLE_MAX_CHARS = 254
MAX_PHOTOS = 10  # the content calendar's cap for one post
# After our client gave up on a call, Graph may still carry it out; an attempt's server-side deadline is our timeout
# plus this margin (Meta documents no bound: keep it generous).
SERVER_MARGIN_S = 60.0
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff"})
REQUIRED_PERMISSIONS = ("pages_manage_posts", "pages_read_engagement")
VIDEO_PERMISSIONS = ("pages_show_list",)
OPEN_LIVE_STATUSES = ("UNPUBLISHED", "LIVE", "SCHEDULED_UNPUBLISHED", "SCHEDULED_LIVE")
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, *range(80001, 80010), 80014})
DEFAULT_RATE_LIMIT_WAIT_S = 60.0
# X-App-Usage / X-Page-Usage are rolling one-hour percentages without a regain estimate: at 100 % a few minutes
# let the oldest calls age out.
FULL_USAGE_WAIT_S = 300.0
AUTH_SUBCODES = {458: "the app is not installed for the Page admin", 459: "the admin account is checkpointed",
                 460: "the admin changed their password", 463: "the token has expired",
                 464: "the admin account is unconfirmed", 467: "the token is invalid", 492: "the session is invalid"}
# Graph parameter → the Publication field an operator edits to fix it.
PARAM_FIELDS = {"scheduled_publish_time": "publish_at", "message": "title/body", "link": "link",
                "attached_media": "media", "source": "media", "url": "media", "title": "title",
                "description": "body", "event_params": "start_at", "video_file_chunk": "video", "file_size": "video"}
_KNOWN_PARAMS = tuple(PARAM_FIELDS) + ("published", "temporary", "status", "upload_session_id", "start_offset",
                                       "planned_start_time", "end_live_video", "appsecret_proof", "input_token")
_PERMISSION_RE = re.compile(r"\b(pages_[a-z_]+|publish_video|business_management|read_insights)\b")


# --- error mapping ----------------------------------------------------------------------------------------------------
def retry_after_from_headers(headers) -> float | None:
    """Seconds to wait, from Meta's usage headers: the Business Use Case estimate (minutes), else a full app/page
    usage percentage."""
    waits = []
    raw = headers.get("X-Business-Use-Case-Usage")
    if raw:
        try:
            for entries in json.loads(raw).values():
                for entry in entries if isinstance(entries, list) else [entries]:
                    minutes = float(entry.get("estimated_time_to_regain_access") or 0)
                    if minutes > 0:
                        waits.append(minutes * 60)
        except (ValueError, AttributeError, TypeError):
            log.debug("unreadable X-Business-Use-Case-Usage header")
    for name in ("X-App-Usage", "X-Page-Usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
            if max(float(usage.get(k) or 0) for k in ("call_count", "total_time", "total_cputime")) >= 100:
                waits.append(FULL_USAGE_WAIT_S)
        except (ValueError, AttributeError, TypeError):
            log.debug("unreadable %s header", name)
    return max(waits) if waits else None


def _param_in(code: int, text: str) -> str | None:
    if code == 324:
        return "source"
    if code == 1609005:
        return "link"
    if re.search(r"scheduled publish time", text, re.I):
        return "scheduled_publish_time"
    for pattern in (r"\b[Pp]aram(?:eter)?\s+([A-Za-z_]\w*(?:\[[^\]\s]*\])*)", r"nonexisting field \((\w+)\)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    mentioned = [(match.start(), name) for name in _KNOWN_PARAMS
                 if (match := re.search(rf"\b{re.escape(name)}\b", text))]
    return min(mentioned)[1] if mentioned else None  # the parameter a message names first is the one it is about


def graph_error(status: int, payload, headers, *, conn_id: str = DEFAULT_CONN_ID, what: str = "",
                scrub=lambda text: text) -> ChannelError:
    """The typed error for a failed Graph call; the operator message says what happened and what to do."""
    where = f" on {what}" if what else ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        if status >= 500:
            return Transient(CHANNEL, f"Facebook answered HTTP {status}{where} without a Graph error: retry in a few "
                                      "minutes.", status=status)
        return ChannelError(CHANNEL, f"Facebook answered HTTP {status}{where} without a Graph error body: check the "
                                     f"Graph base URL (host) of Airflow Connection '{conn_id}'.", status=status)
    try:
        code = int(error.get("code") or 0)
    except (TypeError, ValueError):
        code = 0
    subcode = error.get("error_subcode")
    message = scrub(str(error.get("message") or ""))
    user_msg = scrub(str(error.get("error_user_msg") or ""))
    said = f'Facebook said: "{message}"' + (f' / "{user_msg}"' if user_msg else "")
    if error.get("fbtrace_id"):
        said += f" (fbtrace_id {error['fbtrace_id']})"
    kw = {"code": code, "status": status}
    label = f"code {code}" + (f"/{subcode}" if subcode else "")

    if code in (190, 102):
        reason = AUTH_SUBCODES.get(subcode, "the token was rejected")
        return AuthError(CHANNEL, f"The Facebook Page access token was refused{where} ({reason}; {label}). Renew the "
                                  f"Page token and save it as the password of Airflow Connection '{conn_id}', then "
                                  f"clear the failed task. {said}", **kw)
    if code in RATE_LIMIT_CODES:
        wait = retry_after_from_headers(headers) or DEFAULT_RATE_LIMIT_WAIT_S
        return RateLimited(CHANNEL, f"Facebook is throttling calls to this Page{where} ({label}): wait about "
                                    f"{math.ceil(wait / 60)} min; the task's retry picks it up. {said}",
                           retry_after_s=wait, **kw)
    if code in (1, 2):
        return Transient(CHANNEL, f"Facebook had a temporary problem{where} ({label}): retry in a few minutes; if it "
                                  f"persists check https://metastatus.com. {said}", **kw)
    if code == 368:
        return PolicyBlocked(CHANNEL, f"Facebook temporarily blocked this action for policy reasons{where} ({label}). "
                                      "A Page admin must check the Page's notifications and Page quality in Meta "
                                      f"Business Suite before anything is published again; do not retry. {said}", **kw)
    if code == 506:
        return DuplicateRejected(CHANNEL, f"Facebook refused a duplicate of a recent post{where} ({label}); the "
                                          f"ledger reconciles it with the post that exists. {said}", **kw)
    if code == 10 or 200 <= code <= 299:
        names = list(dict.fromkeys(_PERMISSION_RE.findall(f"{message} {user_msg}")))
        wanted = ", ".join(names) or None
        grant = f"'{wanted}'" if wanted else "the permission this action needs"
        return PermissionMissing(CHANNEL, f"The Page token lacks {grant}{where} ({label}). Grant it to the app for "
                                          "this Page (App Review / business settings), generate a new Page token and "
                                          f"save it in Airflow Connection '{conn_id}'. {said}", permission=wanted, **kw)
    if code == 100 and subcode == 33:
        return NotFound(CHANNEL, f"The object{where} does not exist on the Page any more (deleted?) ({label}). "
                                 f"{said}", **kw)
    if code in (100, 324, 1609005):
        param = _param_in(code, f"{message} {user_msg}")
        fix = PARAM_FIELDS.get(re.sub(r"\[.*$", "", param or ""))
        named = f"parameter '{param}'" + (f" (publication field {fix})" if fix else "") if param else "the input"
        return RejectedInput(CHANNEL, f"Facebook rejected {named}{where} ({label}): fix it and run again. {said}",
                             param=param, **kw)
    if code == 6000:
        return Transient(CHANNEL, f"Facebook could not take the video{where} ({label}): run the task again; the "
                                  f"upload resumes where it stopped. {said}", **kw)
    if code == 3:
        return PermissionMissing(CHANNEL, f"The app lacks the capability for this call{where} ({label}), e.g. the Live "
                                          f"Video API feature, which needs App Review. {said}", permission=None, **kw)
    if error.get("is_transient") or status >= 500:
        return Transient(CHANNEL, f"Facebook failed{where} ({label}) and calls it temporary: retry later. {said}",
                         **kw)
    hint = " Check channels.fanpage.graph_version." if code == 2500 else ""
    return ChannelError(CHANNEL, f"Facebook refused the call{where} ({label}).{hint} {said}", **kw)


# --- the Graph client -------------------------------------------------------------------------------------------
class GraphClient:
    """Graph API calls with a Page token over the shared transport: reads (and the few writes that are safe to
    repeat) under its retry policy, anything that creates something sent once (a timeout leaves the outcome
    unknown; the ledger reconciles). Transport options (timeout, upload_timeout, read_attempts, first_wait_s,
    max_retry_wait_s, sleep, session) go through to `HttpTransport`."""

    def __init__(self, page_token: str, *, version: str = DEFAULT_VERSION, base_url: str = GRAPH_URL,
                 video_base_url: str | None = None, app_secret: str | None = None, conn_id: str = DEFAULT_CONN_ID,
                 **transport_options):
        if not page_token:
            raise AuthError(CHANNEL, f"No Page access token: set it as the password of Airflow Connection '{conn_id}'")
        if not re.fullmatch(r"v\d+\.0", version or ""):
            raise ValueError(f"graph_version must look like 'v25.0', got {version!r}")
        self._token = page_token
        self._proof = (hmac.new(app_secret.encode(), page_token.encode(), hashlib.sha256).hexdigest()
                       if app_secret else None)
        self.version = version
        self.base_url = checked_base_url(base_url, service="Graph API", conn_id=conn_id)
        self.video_base_url = checked_base_url(video_base_url or base_url, service="Graph video", conn_id=conn_id)
        self.conn_id = conn_id
        self.transport = HttpTransport(HeaderAuth.token("OAuth", page_token, "Page access token"),
                                       service="Facebook", channel=CHANNEL, conn_id=conn_id, **transport_options)
        self.last_usage: dict[str, dict] = {}
        self._warned_version = False

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r}, version={self.version!r}, token=<hidden>)"

    def scrub(self, text: str) -> str:
        """Remove the token from text a server sent back (it should never be there; this makes sure)."""
        return text.replace(self._token, "<token>")

    def url(self, path: str, *, video: bool = False) -> str:
        base = self.video_base_url if video else self.base_url
        return f"{base}/{self.version}/" + "/".join(quote(part, safe=":_-.") for part in path.strip("/").split("/"))

    # --- public verbs -------------------------------------------------------------------------------------------
    def get(self, path: str, params: dict | None = None) -> dict:
        return self.transport.repeat(lambda: self._send("GET", path, params=dict(params or {})), f"GET /{path}")

    def post(self, path: str, data: dict | None = None, *, files: dict | None = None, body=None,
             headers: dict | None = None, video: bool = False, upload: bool = False,
             idempotent: bool = False) -> dict:
        """A write. Only calls that are safe to repeat (setting a live video's status) pass `idempotent=True` and
        get the retry policy; anything that creates something is sent once."""
        def call():
            return self._send("POST", path, data=dict(data or {}), files=files, body=body, headers=headers,
                              video=video, upload=upload)
        return self.transport.repeat(call, f"POST /{path}") if idempotent else call()

    def delete(self, path: str) -> dict:
        return self._send("DELETE", path)

    def repeat(self, call, what: str):
        """Run a call that is safe to repeat (e.g. resending a video chunk) under the retry policy."""
        return self.transport.repeat(call, what)

    def debug_own_token(self) -> dict:
        """`debug_token` for the client's own token. The token to inspect travels in a form body (Graph's
        `method=GET` tunnelling) because in a query string it would end up in access logs."""
        return self.post("debug_token", {"input_token": self._token, "method": "GET"}, idempotent=True).get("data", {})

    def get_all(self, path: str, params: dict | None = None, *, max_pages: int = 10) -> Iterator[dict]:
        """Items of an edge, page after page by cursor (`paging.next` URLs carry the token on the real Graph)."""
        params = dict(params or {})
        params.setdefault("limit", "100")
        for _ in range(max_pages):
            page = self.get(path, params)
            yield from page.get("data", [])
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not after or not paging.get("next"):
                return
            params["after"] = after

    # --- mechanics ------------------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params: dict | None = None, data: dict | None = None,
              files: dict | None = None, body=None, headers: dict | None = None, video: bool = False,
              upload: bool = False) -> dict:
        params = dict(params or {})
        if self._proof:
            if method == "POST" and data is not None and body is None:
                data["appsecret_proof"] = self._proof
            else:
                params["appsecret_proof"] = self._proof
        what = f"{method} /{path}"
        response = self.transport.send(method, self.url(path, video=video), what, upload=upload,
                                       params=params or None, data=body if body is not None else data or None,
                                       files=files, headers=headers)
        self._note_usage(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code < 400 and payload is not None and not (isinstance(payload, dict)
                                                                       and "error" in payload):
            return payload
        raise graph_error(response.status_code, payload, response.headers, conn_id=self.conn_id, what=what,
                          scrub=self.scrub)

    def _note_usage(self, response: requests.Response) -> None:
        served = response.headers.get("facebook-api-version")
        if served and served != self.version and not self._warned_version:
            self._warned_version = True
            log.warning("Graph answered with %s although %s is pinned: the pinned version has expired; update "
                        "channels.fanpage.graph_version", served, self.version)
        for name in ("X-App-Usage", "X-Page-Usage", "X-Business-Use-Case-Usage"):
            raw = response.headers.get(name)
            if not raw:
                continue
            try:
                self.last_usage[name] = json.loads(raw)
            except ValueError:
                continue
            log.debug("%s: %s", name, raw)
        app_usage = self.last_usage.get("X-App-Usage") or {}
        if isinstance(app_usage, dict) and max([float(v) for v in app_usage.values()
                                                if isinstance(v, (int, float))] or [0]) >= 80:
            log.warning("the app has used %s of its Graph call budget", app_usage)


# --- resumable upload state -----------------------------------------------------------------------------------------
class ResumeStore(Protocol):
    """Where an interrupted video upload keeps its session id and offset, so the retried task continues."""

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...

    def clear(self) -> None: ...


class JsonResumeFile:
    """A small JSON file, replaced atomically after every chunk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JsonResumeFile({str(self.path)!r})"

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("ignoring the unreadable upload state %s", self.path)
            return None

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# --- the channel ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveVideo(RemoteRef):
    """A live video reference; `secure_stream_url` carries the stream key, so it is left out of reprs and of what
    the ledger stores (it keeps remote_id, url and extra only)."""

    secure_stream_url: str = field(default="", repr=False, compare=False)


def _created(item: dict) -> datetime:
    """Graph's `created_time` ("2026-03-01T01:00:00+0000"); an item without one sorts as brand new."""
    try:
        return datetime.strptime(item["created_time"], "%Y-%m-%dT%H:%M:%S%z")
    except (KeyError, TypeError, ValueError):
        return datetime.now(timezone.utc)


def _created_order(item: dict) -> tuple:
    """Earliest first; within a second, by the numeric part of the id (Graph ids grow with time)."""
    tail = str(item["id"]).rsplit("_", 1)[-1]
    return _created(item), int(tail) if tail.isdigit() else 0, str(item["id"])


def normalize_text(text: str) -> str:
    """How a message is compared with what Facebook shows: NFC, LF line ends, no surrounding blanks."""
    return unicodedata.normalize("NFC", (text or "").replace("\r\n", "\n")).strip()


def post_message(pub: Publication) -> str:
    """The post text: title, a blank line, the body (plain text with blank-line paragraphs)."""
    return normalize_text("\n\n".join(part.strip() for part in (pub.title, pub.body) if part and part.strip()))


class FanpageChannel(Channel):
    """The Page as a channel. Shell use::

        fp = FanpageChannel("1234567890", page_token, graph_version="v25.0", base_url="http://127.0.0.1:28091")
        fp.create_post("Xin chào từ Bridgecast")
    """

    name = CHANNEL
    supports_update = True
    compensates = True

    def __init__(self, page_id: str, page_token: str, *, graph_version: str = DEFAULT_VERSION,
                 base_url: str = GRAPH_URL, video_base_url: str | None = None, app_id: str | None = None,
                 app_secret: str | None = None, conn_id: str = DEFAULT_CONN_ID,
                 resume_dir: str | os.PathLike | None = None, find_lookback: timedelta = timedelta(days=7),
                 web_url: str = WEB_URL, server_margin_s: float = SERVER_MARGIN_S, **client_options):
        if not str(page_id or "").strip():
            raise ValueError("page_id is required (the numeric id of the Facebook Page)")
        self.page_id = str(page_id).strip()
        self.app_id = app_id
        self.conn_id = conn_id
        self.client = GraphClient(page_token, version=graph_version, base_url=base_url,
                                  video_base_url=video_base_url, app_secret=app_secret, conn_id=conn_id,
                                  **client_options)
        # None: interrupted uploads resume from the ledger's database, shared by every worker (never a worker's disk)
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.find_lookback = find_lookback
        self.web_url = web_url.rstrip("/")
        self.server_margin_s = server_margin_s

    def __repr__(self) -> str:
        return (f"FanpageChannel(page_id={self.page_id!r}, base_url={self.client.base_url!r}, "
                f"graph_version={self.client.version!r}, token=<hidden>)")

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, *, graph_version: str | None = None,
                        **options) -> "FanpageChannel":
        """Build from an Airflow Connection: host = Graph base URL, password = Page token, extra = {page_id,
        graph_version?, app_id?, app_secret?, video_host?}; `graph_version` (from the event config) wins."""
        from bridgecast.connections import get_connection

        conn = get_connection(conn_id)
        extra = conn.extra or {}
        page_id = str(extra.get("page_id") or "").strip()
        if not page_id:
            raise ValueError(f"Airflow Connection '{conn_id}' has no page_id: add "
                             '{"page_id": "<numeric Page id>"} to its extra')
        if not conn.password:
            raise AuthError(CHANNEL, f"Airflow Connection '{conn_id}' has no Page access token: put it in the "
                                     "password field", code=190)
        base_url = conn.base_url(default_scheme="https") if conn.host else GRAPH_URL
        return cls(page_id, conn.password, graph_version=graph_version or extra.get("graph_version") or DEFAULT_VERSION,
                   base_url=base_url, video_base_url=extra.get("video_host"), app_id=extra.get("app_id"),
                   app_secret=extra.get("app_secret"), conn_id=conn_id, **options)

    # --- Channel interface -------------------------------------------------------------------------------------------
    def publish(self, pub: Publication) -> RemoteRef:
        """A post (text, link, up to 10 photos), scheduled when `publish_at` is 10 min to 30 days ahead and published
        now when it is due or past; or, for a publication with a video, the video (resumable upload)."""
        if pub.kind == "email":
            raise RejectedInput(CHANNEL, f"{pub.key}: an email cannot be published on the fanpage", param="kind")
        if pub.video is not None or pub.kind == "video":
            return self._publish_video(pub)
        when = self.schedule_time(pub.publish_at)
        self._check_photos(pub.media)
        message = post_message(pub)
        media_ids = [self.upload_photo(m, temporary=when is not None) for m in pub.media]
        post_id = self.create_post(message, link=pub.link, media_ids=media_ids, publish_at=when)
        log.info("fanpage %s %s for %s", "scheduled" if when else "published", post_id, pub.key)
        return RemoteRef(CHANNEL, post_id, url=self._permalink(post_id),
                         extra=self._post_extra(pub, when, media_ids))

    def find(self, pub: Publication) -> RemoteRef | None:
        """A post whose message is exactly this publication's, among scheduled posts and recent Page posts."""
        if pub.video is not None or pub.kind == "video":
            return self._find_video(pub)
        message = post_message(pub)
        for item in self.client.get_all(f"{self.page_id}/scheduled_posts",
                                        {"fields": "id,message,scheduled_publish_time,created_time"}):
            if normalize_text(item.get("message", "")) == message:
                when = datetime.fromtimestamp(int(item["scheduled_publish_time"]), timezone.utc) \
                    if item.get("scheduled_publish_time") else None
                return RemoteRef(CHANNEL, item["id"], url=None, extra={
                    "kind": "post", "scheduled": True, "publish_at": when.isoformat() if when else None})
        since = int((datetime.now(timezone.utc) - self.find_lookback).timestamp())
        for item in self.client.get_all(f"{self.page_id}/posts", {"fields": "id,message,created_time,permalink_url",
                                                                  "since": str(since)}):
            if normalize_text(item.get("message", "")) == message:
                return RemoteRef(CHANNEL, item["id"], url=self._absolute(item.get("permalink_url")),
                                 extra={"kind": "post", "scheduled": False, "publish_at": None})
        return None

    def reconcile(self, pub: Publication, *, since: datetime | None = None, exclude: frozenset[str] = frozenset(),
                  complete: bool = True) -> RemoteRef | None:
        """The one item of `pub` on the Page. Graph has no idempotency key and a post carries no hidden marker, so
        an item is ours by its deterministic text — the message (posts: scheduled AND published) or title +
        description (videos) — created since the publication's first attempt, and not recorded in the ledger for
        another publication (`exclude`). If several match, the earliest is kept and the newer twins deleted."""
        items = sorted((i for i in self._matches(pub, since) if str(i["id"]) not in exclude), key=_created_order)
        if not items:
            return None
        keep, twins = items[0], items[1:]
        for twin in twins:
            log.warning("fanpage: %s is a twin of %s for %s (same text, created later): deleting it", twin["id"],
                        keep["id"], pub.key)
            self.delete(RemoteRef(CHANNEL, str(twin["id"])))
        return self._match_ref(keep)

    def server_window_s(self, pub: Publication) -> float:
        """Our longest timeout for `pub` (uploads for photos and videos) plus the margin Graph may run past it."""
        transport = self.client.transport
        connect, read = transport.upload_timeout if (pub.media or pub.video) else transport.timeout
        return connect + read + self.server_margin_s

    def _matches(self, pub: Publication, since: datetime | None) -> list[dict]:
        since = since or datetime.now(timezone.utc) - self.find_lookback
        if pub.video is not None or pub.kind == "video":
            title, description = normalize_text(pub.title), normalize_text(pub.body)
            return [dict(item, _kind="video") for item in self.client.get_all(
                        f"{self.page_id}/videos", {"fields": "id,title,description,created_time"})
                    if normalize_text(item.get("title", "")) == title
                    and normalize_text(item.get("description", "")) == description and _created(item) >= since]
        message = post_message(pub)
        found = [dict(item, _kind="scheduled") for item in self.client.get_all(
                     f"{self.page_id}/scheduled_posts", {"fields": "id,message,scheduled_publish_time,created_time"})
                 if normalize_text(item.get("message", "")) == message and _created(item) >= since]
        found += [dict(item, _kind="published") for item in self.client.get_all(
                      f"{self.page_id}/posts", {"fields": "id,message,created_time,permalink_url",
                                                "since": str(int(since.timestamp()))})
                  if normalize_text(item.get("message", "")) == message]
        return found

    def _match_ref(self, item: dict) -> RemoteRef:
        if item["_kind"] == "video":
            return RemoteRef(CHANNEL, str(item["id"]), url=f"{self.web_url}/{self.page_id}/videos/{item['id']}/",
                             extra={"kind": "video"})
        if item["_kind"] == "scheduled":
            when = datetime.fromtimestamp(int(item["scheduled_publish_time"]), timezone.utc) \
                if item.get("scheduled_publish_time") else None
            return RemoteRef(CHANNEL, str(item["id"]), url=None, extra={
                "kind": "post", "scheduled": True, "publish_at": when.isoformat() if when else None})
        return RemoteRef(CHANNEL, str(item["id"]), url=self._absolute(item.get("permalink_url")),
                         extra={"kind": "post", "scheduled": False, "publish_at": None})

    def update(self, ref: RemoteRef, pub: Publication) -> RemoteRef:
        """Message (and the time of a still-scheduled post) of a post; title and description of a video.
        Facebook cannot swap a post's photos or link: that is refused with a RejectedInput naming the field."""
        if ref.extra.get("kind") == "video" or pub.video is not None:
            self.client.post(ref.remote_id, {"title": pub.title, "description": pub.body.strip()}, video=True)
            return RemoteRef(CHANNEL, ref.remote_id, url=ref.url, extra=dict(ref.extra))
        old_media, new_media = ref.extra.get("media_sha256"), [m.sha256 for m in pub.media]
        if old_media is not None and old_media != new_media:
            raise RejectedInput(CHANNEL, f"{pub.key}: Facebook cannot change the photos of post {ref.remote_id}. "
                                         "Withdraw it (cancel) and publish the new photos under a new key.",
                                param="media")
        if "link" in ref.extra and ref.extra["link"] != pub.link:
            raise RejectedInput(CHANNEL, f"{pub.key}: Facebook cannot change the link of post {ref.remote_id}. "
                                         "Withdraw it (cancel) and publish under a new key.", param="link")
        data = {"message": post_message(pub)}
        still_scheduled = False
        if ref.extra.get("scheduled") and ref.extra.get("publish_at"):
            still_scheduled = datetime.fromisoformat(ref.extra["publish_at"]) > datetime.now(timezone.utc)
        when = None
        if still_scheduled:
            when = self.schedule_time(pub.publish_at)
            if when is None:
                data["is_published"] = "true"
            else:
                data["scheduled_publish_time"] = str(int(when.timestamp()))
        self.client.post(ref.remote_id, data)
        log.info("fanpage updated %s for %s", ref.remote_id, pub.key)
        extra = dict(ref.extra)
        if still_scheduled:
            extra["scheduled"] = when is not None
            extra["publish_at"] = when.isoformat() if when else None
        return RemoteRef(CHANNEL, ref.remote_id, url=ref.url, extra=extra)

    def delete(self, ref: RemoteRef) -> None:
        """Delete a post, photo, video or live video; one that is already gone counts as deleted."""
        try:
            self.client.delete(ref.remote_id)
        except NotFound:
            log.info("fanpage %s was already deleted", ref.remote_id)

    def check(self) -> HealthReport:
        """Token valid for this Page, and the permissions publishing needs (read through debug_token)."""
        try:
            page = self.client.get(self.page_id, {"fields": "id,name"})
        except ChannelError as exc:
            return HealthReport(CHANNEL, False, exc.operator_message)
        label = f"Page '{page.get('name', '?')}' ({self.page_id})"
        try:
            info = self.debug_token()
        except AuthError as exc:
            return HealthReport(CHANNEL, False, exc.operator_message)
        except ChannelError as exc:
            return HealthReport(CHANNEL, True, f"{label} answers with this token, but its permissions could not be "
                                               f"listed: {exc.operator_message}")
        scopes = tuple(info.get("scopes") or ())
        if not info.get("is_valid", False):
            return HealthReport(CHANNEL, False, f"The Page token is not valid any more: renew it in Airflow "
                                                f"Connection '{self.conn_id}'.", permissions=scopes)
        if info.get("profile_id") and str(info["profile_id"]) != self.page_id:
            return HealthReport(CHANNEL, False, f"The token belongs to Page {info['profile_id']}, not {self.page_id}: "
                                                f"store the token of the right Page in Airflow Connection "
                                                f"'{self.conn_id}'.", permissions=scopes)
        missing = tuple(p for p in REQUIRED_PERMISSIONS + VIDEO_PERMISSIONS if p not in scopes)
        if missing:
            return HealthReport(CHANNEL, False, f"{label}: the Page token lacks {', '.join(missing)}. Grant them to "
                                                "the app, generate a new Page token and save it in Airflow Connection "
                                                f"'{self.conn_id}'.", permissions=scopes, missing_permissions=missing)
        expiry, expires = "", None
        if info.get("expires_at"):
            expires = datetime.fromtimestamp(int(info["expires_at"]), timezone.utc)
            expiry = f"; the token expires {expires:%Y-%m-%d %H:%M} UTC"
        return HealthReport(CHANNEL, True, f"{label} reachable, token valid with {', '.join(REQUIRED_PERMISSIONS)}"
                                           f"{expiry}.", permissions=scopes, expires_at=expires)

    def debug_token(self) -> dict:
        """What Graph knows about our Page token: validity, expiry, Page, granted permissions (`scopes`)."""
        return self.client.debug_own_token()

    # --- posts ----------------------------------------------------------------------------------------------------
    def schedule_time(self, publish_at: datetime | None, *, now: datetime | None = None) -> datetime | None:
        """None (publish now) for no time or a time already due; the time itself inside Facebook's window; a
        RejectedInput naming `publish_at` — before any call — for anything else."""
        if publish_at is None:
            return None
        if publish_at.tzinfo is None:
            raise RejectedInput(CHANNEL, "publish_at must be timezone-aware (e.g. 08:00 Asia/Ho_Chi_Minh)",
                                param="publish_at")
        now = now or datetime.now(timezone.utc)
        lead = publish_at - now
        if lead <= timedelta(0):
            return None
        shown = publish_at.isoformat(timespec="minutes")
        if lead < SCHEDULE_MIN_LEAD:
            earliest = (now + SCHEDULE_MIN_LEAD + timedelta(minutes=1)).astimezone(publish_at.tzinfo)
            raise RejectedInput(CHANNEL, f"publish_at {shown} is only {lead.total_seconds() / 60:.0f} min ahead: "
                                         "Facebook schedules posts at least 10 minutes ahead. Set publish_at to "
                                         f"{earliest.isoformat(timespec='minutes')} or later, or clear it to publish "
                                         "now.", param="publish_at")
        if lead > SCHEDULE_MAX_LEAD:
            raise RejectedInput(CHANNEL, f"publish_at {shown} is {lead.days} days ahead: Facebook schedules posts at "
                                         "most 30 days ahead. Publish it from the calendar closer to the date.",
                                param="publish_at")
        return publish_at

    def upload_photo(self, media: MediaFile, *, temporary: bool = False) -> str:
        """An unpublished photo (to attach to a post); `temporary` when that post will be scheduled."""
        self._check_photos((media,))
        data = {"published": "false"}
        if temporary:
            data["temporary"] = "true"
        if media.caption:
            data["caption"] = media.caption
        with open(media.path, "rb") as fh:
            result = self.client.post(f"{self.page_id}/photos", data,
                                      files={"source": (media.filename, fh, media.content_type)}, upload=True)
        return str(result["id"])

    def create_post(self, message: str, *, link: str | None = None, media_ids: tuple[str, ...] | list[str] = (),
                    publish_at: datetime | None = None) -> str:
        """One feed post: text, optional link, photos uploaded with `upload_photo`; scheduled when `publish_at` is in
        the window (UNIX seconds on the wire)."""
        when = self.schedule_time(publish_at)
        data = {"message": normalize_text(message)}
        if link:
            data["link"] = link
        for index, media_id in enumerate(media_ids):
            data[f"attached_media[{index}]"] = json.dumps({"media_fbid": str(media_id)})
        if when is not None:
            data["published"] = "false"
            data["scheduled_publish_time"] = str(int(when.timestamp()))
        return str(self.client.post(f"{self.page_id}/feed", data)["id"])

    def scheduled_posts(self) -> list[dict]:
        return list(self.client.get_all(f"{self.page_id}/scheduled_posts",
                                        {"fields": "id,message,scheduled_publish_time,created_time"}))

    def recent_posts(self, since: datetime | None = None) -> list[dict]:
        since = since or datetime.now(timezone.utc) - self.find_lookback
        return list(self.client.get_all(f"{self.page_id}/posts", {"fields": "id,message,created_time,permalink_url",
                                                                  "since": str(int(since.timestamp()))}))

    def update_post(self, post_id: str, *, message: str | None = None, publish_at: datetime | None = None,
                    publish_now: bool = False) -> None:
        data = {}
        if message is not None:
            data["message"] = normalize_text(message)
        if publish_now:
            data["is_published"] = "true"
        elif publish_at is not None:
            when = self.schedule_time(publish_at)
            if when is None:
                data["is_published"] = "true"
            else:
                data["scheduled_publish_time"] = str(int(when.timestamp()))
        if data:
            self.client.post(post_id, data)

    def cancel_scheduled_post(self, post_id: str) -> None:
        self.delete(RemoteRef(CHANNEL, post_id))

    # --- live video ------------------------------------------------------------------------------------------------
    def create_live_video(self, title: str, description: str = "", *, start_at: datetime | None = None) -> LiveVideo:
        """A scheduled live (SCHEDULED_UNPUBLISHED, start ≤ 7 days ahead) or, without a start far enough ahead, a
        preview (UNPUBLISHED). The returned `secure_stream_url` is used verbatim by the relay."""
        if len(title) > LIVE_TITLE_MAX_CHARS:
            raise RejectedInput(CHANNEL, f"The live video title has {len(title)} characters; Facebook takes at most "
                                         f"{LIVE_TITLE_MAX_CHARS}.", param="title")
        now = datetime.now(timezone.utc)
        if start_at is not None:
            if start_at.tzinfo is None:
                raise RejectedInput(CHANNEL, "start_at must be timezone-aware", param="start_at")
            if start_at - now > LIVE_SCHEDULE_MAX_LEAD:
                raise RejectedInput(CHANNEL, f"start_at {start_at.isoformat(timespec='minutes')} is more than 7 days "
                                             "ahead: Facebook schedules live videos at most 7 days ahead. Create it "
                                             "closer to the event.", param="start_at")
        scheduled = start_at is not None and start_at - now > LIVE_SCHEDULE_MIN_LEAD
        data = {"title": title, "description": description}
        if scheduled:
            data["status"] = "SCHEDULED_UNPUBLISHED"
            data["event_params"] = json.dumps({"start_time": int(start_at.timestamp())})
        else:
            data["status"] = "UNPUBLISHED"
            data["published"] = "false"
        result = self.client.post(f"{self.page_id}/live_videos", data)
        live_id = str(result["id"])
        log.info("fanpage live video %s created (%s)", live_id, data["status"])
        # Its permalink exists from now on (where viewers find it once it goes live): posts that link "the live"
        # read it from the ledger. A failed read leaves it unknown rather than failing the live.
        try:
            url = self._absolute(self.client.get(live_id, {"fields": "permalink_url"}).get("permalink_url"))
        except ChannelError as exc:
            log.warning("fanpage live video %s: permalink not read (%s)", live_id, exc.operator_message)
            url = None
        return LiveVideo(CHANNEL, live_id, url=url,
                         extra={"kind": "live", "status": data["status"],
                                "start_at": start_at.isoformat() if scheduled else None},
                         secure_stream_url=result.get("secure_stream_url") or result.get("stream_url") or "")

    def find_live_video(self, title: str) -> LiveVideo | None:
        """A live video with this exact title that has not ended (reconcile after an unrecorded create)."""
        statuses = json.dumps(list(OPEN_LIVE_STATUSES))
        for item in self.client.get_all(f"{self.page_id}/live_videos",
                                        {"fields": "id,title,status,permalink_url", "broadcast_status": statuses}):
            if normalize_text(item.get("title", "")) == normalize_text(title):
                return LiveVideo(CHANNEL, str(item["id"]), url=self._absolute(item.get("permalink_url")),
                                 extra={"kind": "live", "status": item["status"]})
        return None

    def live_stream_url(self, live_id: str) -> str:
        """The ingest URL with its stream key: a secret, to hand to the relay and nowhere else."""
        return self.client.get(live_id, {"fields": "secure_stream_url"})["secure_stream_url"]

    def live_status(self, live_id: str) -> dict:
        """Status and timing of a live video; `receiving` says whether stream data arrives (a preview exists).
        Stream URLs are left out: this dict may end up in XComs and logs."""
        item = self.client.get(live_id, {"fields": "id,status,title,planned_start_time,broadcast_start_time,"
                                                   "dash_preview_url,permalink_url,video"})
        return {"id": str(item["id"]), "status": item.get("status"), "title": item.get("title"),
                "planned_start_time": item.get("planned_start_time"),
                "broadcast_start_time": item.get("broadcast_start_time"),
                "receiving": bool(item.get("dash_preview_url")), "permalink_url": self._absolute(
                    item.get("permalink_url")), "video_id": (item.get("video") or {}).get("id")}

    def go_live(self, live_id: str) -> str:
        """Publish the live video now (LIVE_NOW); setting a status twice is harmless, so this call is retried."""
        self.client.post(live_id, {"status": "LIVE_NOW"}, idempotent=True)
        return self.live_status(live_id)["status"]

    def end_live_video(self, live_id: str) -> str:
        self.client.post(live_id, {"end_live_video": "true"}, idempotent=True)
        return self.live_status(live_id)["status"]

    def cancel_live_video(self, live_id: str) -> None:
        self.client.post(live_id, {"status": "SCHEDULED_CANCELED"}, idempotent=True)

    def live_errors(self, live_id: str) -> list[dict]:
        """Ingest errors Facebook reports for the stream (codec, keyframes, audio… against its recommendations)."""
        return list(self.client.get_all(f"{live_id}/errors"))

    # --- recorded video ---------------------------------------------------------------------------------------------
    def upload_video(self, video: MediaFile | str | os.PathLike, *, title: str = "", description: str = "",
                     publish_at: datetime | None = None, resume: ResumeStore | str | os.PathLike | None = None) -> str:
        """Upload with the chunked protocol (start / transfer / finish); chunks are streamed from disk. With `resume`
        (a JSON file path or a ResumeStore), an interrupted upload continues from the last acknowledged chunk."""
        when = self.schedule_time(publish_at)
        path = video.path if isinstance(video, MediaFile) else os.fspath(video)
        size = os.path.getsize(path)
        sha256 = video.sha256 if isinstance(video, MediaFile) else file_sha256(path)
        store = JsonResumeFile(resume) if isinstance(resume, (str, os.PathLike)) else resume
        state = store.load() if store else None
        if state and (state.get("sha256") != sha256 or state.get("file_size") != size
                      or state.get("page_id") != self.page_id):
            log.warning("the saved upload state belongs to another file or Page: starting a new upload")
            state = None
        resumed = state is not None
        if resumed:
            log.info("resuming video upload %s at byte %s of %s", state["video_id"], state["start_offset"], size)
        while True:
            if state is None:
                state = self._start_upload(size, sha256)
                if store:
                    store.save(state)
            try:
                self._transfer_all(path, state, store)
                break
            except RejectedInput as exc:
                if not resumed or exc.param not in ("upload_session_id", "start_offset"):
                    raise
                log.warning("Facebook refused the saved upload session (%s): starting the upload again", exc.param)
                resumed, state = False, None
                if store:
                    store.clear()
        data = {"upload_phase": "finish", "upload_session_id": state["upload_session_id"], "title": title,
                "description": description}
        if when is not None:
            data.update(published="false", scheduled_publish_time=str(int(when.timestamp())))
        self.client.post(f"{self.page_id}/videos", data, video=True)
        if store:
            store.clear()
        log.info("fanpage video %s uploaded (%d bytes)", state["video_id"], size)
        return str(state["video_id"])

    def _start_upload(self, size: int, sha256: str) -> dict:
        result = self.client.post(f"{self.page_id}/videos", {"upload_phase": "start", "file_size": str(size)},
                                  video=True)
        return {"page_id": self.page_id, "video_id": str(result["video_id"]),
                "upload_session_id": str(result["upload_session_id"]), "start_offset": int(result["start_offset"]),
                "end_offset": int(result["end_offset"]), "file_size": size, "sha256": sha256}

    def _transfer_all(self, path: str, state: dict, store: ResumeStore | None) -> None:
        while state["start_offset"] < state["end_offset"]:
            result = self._transfer_chunk(path, state)
            state["start_offset"], state["end_offset"] = int(result["start_offset"]), int(result["end_offset"])
            if store:
                store.save(state)

    def _transfer_chunk(self, path: str, state: dict) -> dict:
        """One chunk, chosen by Facebook's offsets, streamed from disk. Resending a chunk is safe (the session's
        offsets say what it holds), so it runs under the retry policy like a read."""
        start, end = state["start_offset"], state["end_offset"]
        fields = {"upload_phase": "transfer", "upload_session_id": state["upload_session_id"],
                  "start_offset": str(start)}

        def send_chunk() -> dict:
            with MultipartFile(path, file_field="video_file_chunk", filename="chunk.bin", fields=fields,
                               offset=start, length=end - start) as body:
                return self.client.post(f"{self.page_id}/videos", body=body, video=True, upload=True,
                                        headers={"Content-Type": body.content_type})

        return self.client.repeat(send_chunk, f"video chunk at byte {start}")

    def _publish_video(self, pub: Publication) -> RemoteRef:
        if pub.video is None:
            raise RejectedInput(CHANNEL, f"{pub.key}: a video publication needs its video file", param="video")
        when = self.schedule_time(pub.publish_at)
        video_id = self.upload_video(pub.video, title=pub.title, description=pub.body.strip(), publish_at=when,
                                     resume=self._resume_file(pub))
        return RemoteRef(CHANNEL, video_id, url=f"{self.web_url}/{self.page_id}/videos/{video_id}/",
                         extra={"kind": "video", "scheduled": when is not None,
                                "publish_at": when.isoformat() if when else None, "video_sha256": pub.video.sha256})

    def _find_video(self, pub: Publication) -> RemoteRef | None:
        title, description = normalize_text(pub.title), normalize_text(pub.body)
        for item in self.client.get_all(f"{self.page_id}/videos", {"fields": "id,title,description,created_time"}):
            if normalize_text(item.get("title", "")) == title and normalize_text(item.get("description", "")) == \
                    description:
                return RemoteRef(CHANNEL, str(item["id"]), url=f"{self.web_url}/{self.page_id}/videos/{item['id']}/",
                                 extra={"kind": "video"})
        return None

    def _resume_file(self, pub: Publication) -> ResumeStore:
        key = hashlib.sha256(f"{pub.event_id}/{pub.key}".encode()).hexdigest()[:20]
        if self.resume_dir is not None:
            return JsonResumeFile(self.resume_dir / f"{self.page_id}-{key}.json")
        from bridgecast.ledger import Ledger

        return Ledger().upload_session(f"fanpage:{self.page_id}:{key}")

    # --- helpers ------------------------------------------------------------------------------------------------------
    def _check_photos(self, media) -> None:
        if len(media) > MAX_PHOTOS:
            raise RejectedInput(CHANNEL, f"{len(media)} photos: a fanpage post holds at most {MAX_PHOTOS}; choose "
                                         "fewer.", param="media")
        for m in media:
            if m.content_type not in PHOTO_TYPES:
                raise RejectedInput(CHANNEL, f"{m.filename} is {m.content_type}: Facebook photos must be JPEG, PNG, "
                                             "GIF, BMP or TIFF.", param="media")

    def _post_extra(self, pub: Publication, when: datetime | None, media_ids: list[str]) -> dict:
        return {"kind": "post", "scheduled": when is not None, "publish_at": when.isoformat() if when else None,
                "media_ids": list(media_ids), "media_sha256": [m.sha256 for m in pub.media], "link": pub.link}

    def _permalink(self, object_id: str) -> str | None:
        """Best effort: the item already exists, so a failed read must not turn the publish into a failure."""
        try:
            return self._absolute(self.client.get(object_id, {"fields": "permalink_url"}).get("permalink_url"))
        except ChannelError as exc:
            log.info("no permalink for %s yet (%s)", object_id, type(exc).__name__)
            return None

    def _absolute(self, url: str | None) -> str | None:
        if url and url.startswith("/"):
            return self.web_url + url
        return url
