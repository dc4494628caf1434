"""Portal sandbox: the WordPress REST subset Bridgecast uses, with WordPress's rules, errors and auth, plus a reader view.

Behaviour follows WordPress 6.1 as measured on Debian 12 (media-notes §4/§7 and the contract suite, which runs the
same tests against this sandbox and a real WordPress). State lives in `--data` (state.json + uploads/) and survives
restarts; `/__sandbox/faults` makes the next calls fail or hang, for crash tests.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import html
import json
import logging
import os
import re
import threading
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from bridgecast.text import fold_ascii
from devstack.sandboxes.faults import FaultRules

log = logging.getLogger(__name__)

STATUSES = ("publish", "future", "draft", "pending", "private")
QUERY_STATUSES = STATUSES + ("trash", "any")
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
# What WordPress's default upload_mimes lets an administrator upload (subset; extension → MIME type).
ALLOWED_UPLOADS = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "png": "image/png", "gif": "image/gif",
    "webp": "image/webp", "mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/quicktime", "webm": "video/webm",
    "mp3": "audio/mpeg", "m4a": "audio/mpeg", "wav": "audio/wav", "pdf": "application/pdf", "txt": "text/plain",
    "zip": "application/zip", "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
CAPABILITIES = ("read", "upload_files", "edit_posts", "edit_others_posts", "edit_published_posts", "publish_posts",
                "delete_posts", "delete_others_posts", "delete_published_posts", "edit_private_posts",
                "read_private_posts", "manage_categories", "unfiltered_html", "manage_options", "list_users")
SCHEDULE_THRESHOLD = timedelta(seconds=60)  # wp_insert_post: publish ⇄ future only at ≥ 60 s ahead
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$")


# --- WordPress-shaped errors ------------------------------------------------------------------------------------
class WPError(Exception):
    def __init__(self, code: str, message: str, status: int, **data):
        super().__init__(message)
        self.code, self.message, self.status, self.data = code, message, status, data

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}},
                            status_code=self.status)


def invalid_params(problems: dict[str, tuple[str, str]]) -> WPError:
    """rest_invalid_param as WordPress builds it: one message per parameter plus per-parameter details."""
    return WPError("rest_invalid_param", "Invalid parameter(s): " + ", ".join(problems), 400,
                   params={k: msg for k, (_, msg) in problems.items()},
                   details={k: {"code": code, "message": msg, "data": None} for k, (code, msg) in problems.items()})


def _nginx_page(status: int, reason: str) -> HTMLResponse:
    # What the web server in front of a real WordPress answers (413, 502…): HTML, not JSON.
    return HTMLResponse(f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} "
                        f"{reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                        status_code=status)


def _php_fatal_page() -> HTMLResponse:
    return HTMLResponse("<!DOCTYPE html><html lang=\"en-US\"><head><meta charset=\"UTF-8\"><title>WordPress "
                        "&rsaquo; Error</title></head><body id=\"error-page\"><div class=\"wp-die-message\"><p>There "
                        "has been a critical error on this website.</p></div></body></html>", status_code=500)


# --- text helpers -----------------------------------------------------------------------------------------------
def remove_accents(text: str) -> str:
    return fold_ascii(text)


def sanitize_title(text: str) -> str:
    """WordPress's sanitize_title for slugs: accents removed, lower case, dashes."""
    text = remove_accents(html.unescape(text or "")).lower()
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"[^a-z0-9_\-\s]+", "", text.replace(".", "-"))
    return re.sub(r"[\s-]+", "-", text).strip("-")


def sanitize_file_name(name: str) -> str:
    stem, dot, ext = remove_accents(name).rpartition(".")
    if not dot:
        stem, ext = ext, ""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "file"
    return f"{stem}.{ext.lower()}" if ext else stem


def esc_attr(text: str) -> str:
    """WordPress's esc_html/esc_attr: special characters escaped, existing entities left alone (no double
    encoding) — so a title we sent escaped shows as text, and a raw one as text here but markup elsewhere."""
    text = re.sub(r"&(?!#\d+;|#x[0-9A-Fa-f]+;|[A-Za-z][A-Za-z0-9]*;)", "&amp;", text or "")
    return text.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#039;")


def strip_block_comments(content: str) -> str:
    return re.sub(r"<!--\s*/?wp:[^>]*-->\n?", "", content or "")


def _parse_wp_date(value: str, *, gmt: bool, tz: ZoneInfo) -> datetime | None:
    """rest_get_date_with_gmt: an explicit offset wins; otherwise `date` is site-local and `date_gmt` is UTC."""
    if not isinstance(value, str) or not _DATE_RE.match(value.strip()):
        return None
    text = value.strip().replace("t", "T").replace(" ", "T")
    text = re.sub(r"[Zz]$", "+00:00", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc if gmt else tz)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


# --- state ------------------------------------------------------------------------------------------------------
class PortalState:
    """Posts, attachments and terms in one JSON file (rewritten atomically after every change) plus uploads/."""

    def __init__(self, data_dir: Path, tz: ZoneInfo):
        self.dir = Path(data_dir)
        self.uploads = self.dir / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.tz = tz
        self.lock = threading.RLock()
        self.path = self.dir / "state.json"
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
        else:
            # A fresh WordPress: post ids and term ids are separate sequences; "Uncategorized" is category 1.
            data = {"next_post_id": 1, "next_term_id": 2, "posts": {},
                    "terms": {"1": {"id": 1, "taxonomy": "category", "name": "Uncategorized",
                                    "slug": "uncategorized", "parent": 0, "description": ""}}}
        self.next_post_id: int = data["next_post_id"]
        self.next_term_id: int = data["next_term_id"]
        self.posts: dict[int, dict] = {int(k): v for k, v in data["posts"].items()}
        self.terms: dict[int, dict] = {int(k): v for k, v in data["terms"].items()}
        if not self.path.exists():
            self.save()

    def save(self) -> None:
        data = {"next_post_id": self.next_post_id, "next_term_id": self.next_term_id,
                "posts": {str(k): v for k, v in self.posts.items()}, "terms": {str(k): v for k, v in self.terms.items()}}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def new_post_id(self) -> int:
        self.next_post_id += 1
        return self.next_post_id - 1

    def new_term_id(self) -> int:
        self.next_term_id += 1
        return self.next_term_id - 1

    def unique_slug(self, slug: str, post_id: int | None, post_type: str) -> str:
        """wp_unique_post_slug: -2, -3… among posts of the type (attachments: among everything), any status."""
        def taken(candidate: str) -> bool:
            return any(p["slug"] == candidate and p["id"] != post_id
                       and (post_type == "attachment" or p["type"] in (post_type, "attachment"))
                       for p in self.posts.values())

        if not taken(slug):
            return slug
        suffix = 2
        while taken(f"{slug}-{suffix}"):
            suffix += 1
        return f"{slug}-{suffix}"

    def unique_term_slug(self, slug: str, taxonomy: str) -> str:
        existing = {t["slug"] for t in self.terms.values() if t["taxonomy"] == taxonomy}
        if slug not in existing:
            return slug
        suffix = 2
        while f"{slug}-{suffix}" in existing:
            suffix += 1
        return f"{slug}-{suffix}"


class Faults(FaultRules):
    """Injected failures: each rule fires for the next `count` matching calls.

    mode "before": answer 500 without doing anything; "after": do the work, then answer 500 (the client cannot tell
    whether it happened — the case the ledger's reconcile exists for); "hang": wait `hang_s`, then do the work (a
    slow server: the item appears late); "hang_after": do the work, then hold the answer `hang_s` (the item exists
    while the client times out — the dangerous one for a blind retry).
    Rules come from `POST /__sandbox/faults` (JSON, same auth as the API) or, at start, from the environment
    variable BRIDGECAST_PORTAL_FAULTS (a JSON list), e.g. `[{"mode": "after", "methods": ["POST"], "count": 1,
    "path_prefix": "/wp-json/wp/v2/posts"}]`."""

    def parse(self, rule: dict) -> dict:
        rule = {"count": int(rule.get("count", 1)), "mode": rule.get("mode", "before"),
                "status": int(rule.get("status", 500)), "hang_s": float(rule.get("hang_s", 30.0)),
                "methods": [m.upper() for m in rule.get("methods", [])],
                "path_prefix": rule.get("path_prefix", "/wp-json/"), "json": bool(rule.get("json", False))}
        if rule["mode"] not in ("before", "after", "hang", "hang_after"):
            raise ValueError("mode must be before, after, hang or hang_after")
        return rule

    def matches(self, rule: dict, method: str, path: str) -> bool:
        return path.startswith(rule["path_prefix"]) and (not rule["methods"] or method in rule["methods"])


class FaultMiddleware:
    """Pure ASGI, so request bodies keep streaming to the endpoints untouched."""

    def __init__(self, app, faults: Faults):
        self.app, self.faults = app, faults

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/__sandbox/"):
            return await self.app(scope, receive, send)
        rule = self.faults.take(scope["method"], scope["path"])
        if rule is None:
            return await self.app(scope, receive, send)
        log.warning("sandbox fault %s on %s %s", rule["mode"], scope["method"], scope["path"])
        failure = (WPError("internal_server_error", "Injected failure.", rule["status"]).response()
                   if rule["json"] else _php_fatal_page())
        failure.status_code = rule["status"]
        if rule["mode"] == "hang":
            # Like nginx in front of PHP: the whole request is received first, then the slow server works on it,
            # and finishes the work even if the client gave up waiting meanwhile.
            received = []
            while True:
                message = await receive()
                received.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
            await asyncio.sleep(rule["hang_s"])

            async def replay():
                return received.pop(0) if received else await receive()

            return await self.app(scope, replay, send)
        if rule["mode"] == "hang_after":
            answer = []

            async def hold(message):
                answer.append(message)

            await self.app(scope, receive, hold)  # done and saved; the client hears nothing for hang_s
            await asyncio.sleep(rule["hang_s"])
            try:
                for message in answer:
                    await send(message)
            except OSError:  # the client gave up meanwhile
                pass
            return
        if rule["mode"] == "before":
            return await failure(scope, receive, send)

        async def swallow(message):  # "after": the work is done and committed, the client only sees a failure
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await failure(scope, receive, send)

        await self.app(scope, receive, swallow)


# --- the app ----------------------------------------------------------------------------------------------------
def create_app(data_dir: str | os.PathLike, user: str, app_password: str, *, timezone_name: str = DEFAULT_TIMEZONE,
               max_body_bytes: int = 512 * 1024 * 1024, site_title: str = "Cổng thông tin (sandbox)",
               faults: list[dict] | None = None) -> FastAPI:
    """A portal sandbox app; `app.state.faults` and `/__sandbox/faults` control injected failures."""
    tz = ZoneInfo(timezone_name)
    state = PortalState(Path(data_dir), tz)
    fault_rules = Faults(faults)
    expected_password = re.sub(r"[^A-Za-z0-9]", "", app_password)
    if not user or not expected_password:
        raise ValueError("the portal sandbox needs a user and an application password")

    app = FastAPI(title="Bridgecast portal sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = state
    app.state.faults = fault_rules
    app.add_middleware(FaultMiddleware, faults=fault_rules)

    @app.exception_handler(WPError)
    async def _wp_error(_request, exc: WPError):
        return exc.response()

    # --- auth ----------------------------------------------------------------------------------------------
    def current_user(request: Request) -> str | None:
        """Basic auth with the application password; a wrong one leaves the request anonymous, as in WordPress."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            login, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        # WordPress strips everything but letters and digits before checking (the password shows in groups).
        given = re.sub(r"[^A-Za-z0-9]", "", password)
        if login == user and hmac.compare_digest(given.encode(), expected_password.encode()):
            return login
        return None

    def require(request: Request, code: str, message: str) -> str:
        who = current_user(request)
        if who is None:
            raise WPError(code, message, 401)
        return who

    def now() -> datetime:
        return datetime.now(timezone.utc).replace(microsecond=0)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # --- serialisers ---------------------------------------------------------------------------------------
    def local(moment_iso: str) -> str:
        return _iso(datetime.fromisoformat(moment_iso).replace(tzinfo=timezone.utc).astimezone(tz))

    def post_link(post: dict, root: str) -> str:
        if post["type"] == "attachment":
            return f"{root}/?attachment_id={post['id']}"
        if post["status"] == "publish" and post["slug"]:
            return f"{root}/{post['slug']}/"
        return f"{root}/?p={post['id']}"

    def post_json(post: dict, root: str, edit: bool) -> dict:
        data = {
            "id": post["id"], "date": local(post["date_gmt"]), "date_gmt": post["date_gmt"],
            "guid": {"rendered": f"{root}/?p={post['id']}"},
            "modified": local(post["modified_gmt"]), "modified_gmt": post["modified_gmt"],
            "slug": post["slug"], "status": post["status"], "type": post["type"], "link": post_link(post, root),
            # WordPress renders what it stored (get_the_title → texturize only): markup in a title stays markup.
            "title": {"rendered": post["title"]}, "author": 1, "meta": [],
        }
        if post["type"] == "attachment":
            url = f"{root}/wp-content/uploads/{post['file']}"
            data.update({
                "caption": {"rendered": f"<p>{post['caption']}</p>\n" if post["caption"] else ""},
                "alt_text": post["alt_text"], "media_type": post["mime_type"].split("/")[0] if
                post["mime_type"].startswith("image/") else "file", "mime_type": post["mime_type"],
                "media_details": {"file": post["file"], "filesize": post["filesize"], **post.get("dimensions", {}),
                                  "sizes": {}},
                "source_url": url, "post": None})
            data["guid"] = {"rendered": url}
            if edit:
                data["caption"]["raw"] = post["caption"]
        else:
            data.update({
                "content": {"rendered": strip_block_comments(post["content"]), "protected": False},
                "excerpt": {"rendered": f"<p>{post['excerpt']}</p>\n" if post["excerpt"] else "",
                            "protected": False},
                "featured_media": post["featured_media"], "comment_status": "open", "ping_status": "open",
                "sticky": False, "template": "", "format": "standard",
                "categories": post["categories"], "tags": post["tags"]})
            if edit:
                data["content"]["raw"] = post["content"]
                data["excerpt"]["raw"] = post["excerpt"]
                data["generated_slug"] = sanitize_title(post["title"]) or str(post["id"])
        if edit:
            data["title"]["raw"] = post["title"]
            data["guid"]["raw"] = data["guid"]["rendered"]
            data["permalink_template"] = f"{root}/%postname%/"
        return data

    def term_json(term: dict, root: str) -> dict:
        count = sum(1 for p in state.posts.values() if p["type"] == "post" and p["status"] == "publish"
                    and term["id"] in p[("categories" if term["taxonomy"] == "category" else "tags")])
        base_path = "category" if term["taxonomy"] == "category" else "tag"
        data = {"id": term["id"], "count": count, "description": term.get("description", ""),
                "link": f"{root}/{base_path}/{term['slug']}/", "name": term["name"], "slug": term["slug"],
                "taxonomy": term["taxonomy"], "meta": []}
        if term["taxonomy"] == "category":
            data["parent"] = term.get("parent", 0)
        return data

    # --- request parsing -----------------------------------------------------------------------------------
    async def params_of(request: Request) -> dict:
        """WordPress merges URL query, form body and JSON body (JSON wins)."""
        params: dict = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        if body and "application/json" in content_type:
            try:
                data = json.loads(body)
            except ValueError:
                raise WPError("rest_invalid_json", "Invalid JSON body passed.", 400, json_error_code=4,
                              json_error_message="Syntax error") from None
            if isinstance(data, dict):
                params.update(data)
        elif body and "application/x-www-form-urlencoded" in content_type:
            params.update(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
        return params

    def list_param(value) -> list[str]:
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) for v in value]
        return [v for v in str(value).split(",") if v != ""]

    def int_param(params: dict, name: str, default: int, low: int, high: int, problems: dict) -> int:
        value = params.get(name, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            problems[name] = ("rest_invalid_type", f"{name} is not of type integer.")
            return default
        if not low <= number <= high:
            problems[name] = ("rest_out_of_bounds",
                              f"{name} must be between {low} (inclusive) and {high} (inclusive)")
        return number

    def collection_params(request: Request, who: str | None, *, statuses: bool, edit_code: str) -> dict:
        params = dict(request.query_params)
        for key in ("slug", "status", "include"):
            repeated = request.query_params.getlist(key) or request.query_params.getlist(f"{key}[]")
            if repeated:
                params[key] = ",".join(repeated)
        problems: dict[str, tuple[str, str]] = {}
        per_page = int_param(params, "per_page", 10, 1, 100, problems)
        page = int_param(params, "page", 1, 1, 10 ** 6, problems)
        context = params.get("context", "view")
        if context not in ("view", "edit", "embed"):
            problems["context"] = ("rest_not_in_enum", "context is not one of view, embed, and edit.")
        wanted = list_param(params.get("status")) or (["publish"] if statuses else [])
        if statuses:
            bad = [s for s in wanted if s not in QUERY_STATUSES]
            if bad:
                problems["status"] = ("rest_not_in_enum", "status[0] is not one of publish, future, draft, pending, "
                                                          "private, trash, auto-draft, inherit, request-pending, "
                                                          "request-confirmed, request-failed, request-completed, "
                                                          "and any.")
            elif who is None and any(s != "publish" for s in wanted):
                problems["status"] = ("rest_forbidden_status", "Status is forbidden.")
        if problems:
            raise invalid_params(problems)
        if context == "edit" and who is None:
            raise WPError("rest_forbidden_context", edit_code, 401)
        return {"per_page": per_page, "page": page, "edit": context == "edit", "status": wanted,
                "slug": list_param(params.get("slug")), "search": params.get("search", ""),
                "include": [int(i) for i in list_param(params.get("include")) if i.isdigit()]}

    def paginate(items: list, query: dict, render) -> JSONResponse:
        total = len(items)
        start = (query["page"] - 1) * query["per_page"]
        page_items = items[start:start + query["per_page"]]
        pages = max(1, -(-total // query["per_page"])) if total else 0
        if query["page"] > 1 and start >= total:
            raise WPError("rest_post_invalid_page_number",
                          "The page number requested is larger than the number of pages available.", 400)
        return JSONResponse([render(i) for i in page_items],
                            headers={"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)})

    # --- REST index and users ------------------------------------------------------------------------------
    @app.get("/wp-json/")
    @app.get("/wp-json")
    async def rest_index(request: Request):
        return {"name": site_title, "description": "", "url": base(request), "home": base(request),
                "gmt_offset": tz.utcoffset(datetime.now()).total_seconds() / 3600, "timezone_string": timezone_name,
                "namespaces": ["wp/v2"], "authentication": {"application-passwords": {}}}

    @app.get("/wp-json/wp/v2/users/me")
    async def users_me(request: Request):
        who = current_user(request)
        if who is None:
            raise WPError("rest_not_logged_in", "You are not currently logged in.", 401)
        data = {"id": 1, "name": who, "slug": who, "url": "", "description": "",
                "link": f"{base(request)}/author/{who}/"}
        if request.query_params.get("context") == "edit":
            data.update({"username": who, "roles": ["administrator"],
                         "capabilities": {cap: True for cap in CAPABILITIES}})
        return data

    # --- posts ---------------------------------------------------------------------------------------------
    def find_post(post_id: int, post_type: str) -> dict:
        post = state.posts.get(post_id)
        if post is None or post["type"] != post_type:
            raise WPError("rest_post_invalid_id", "Invalid post ID.", 404)
        return post

    def text_field(params: dict, name: str, problems: dict) -> str | None:
        if name not in params:
            return None
        value = params[name]
        if isinstance(value, dict):
            value = value.get("raw", "")
        if not isinstance(value, (str, int, float)):
            problems[name] = ("rest_invalid_type", f"{name} is not of type object.")
            return None
        return unicodedata.normalize("NFC", str(value))

    def ids_field(params: dict, name: str, problems: dict) -> list[int] | None:
        if name not in params:
            return None
        values = params[name]
        values = values if isinstance(values, list) else list_param(values)
        ids = []
        for index, value in enumerate(values):
            if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
                problems[name] = ("rest_invalid_type", f"{name}[{index}] is not of type integer.")
                return None
            ids.append(int(value))
        return ids

    def apply_post_params(post: dict, params: dict, creating: bool) -> None:
        problems: dict[str, tuple[str, str]] = {}
        title = text_field(params, "title", problems)
        content = text_field(params, "content", problems)
        excerpt = text_field(params, "excerpt", problems)
        status = params.get("status")
        if status is not None and status not in STATUSES:
            problems["status"] = ("rest_not_in_enum", "status is not one of publish, future, draft, pending, "
                                                      "and private.")
        featured = params.get("featured_media")
        if featured is not None and (isinstance(featured, bool) or not str(featured).isdigit()):
            problems["featured_media"] = ("rest_invalid_type", "featured_media is not of type integer.")
        categories = ids_field(params, "categories", problems)
        tags = ids_field(params, "tags", problems)
        dates = {}
        for name in ("date", "date_gmt"):
            if params.get(name) not in (None, ""):
                parsed = _parse_wp_date(params[name], gmt=name == "date_gmt", tz=tz)
                if parsed is None:
                    problems[name] = ("rest_invalid_date", "Invalid date.")
                dates[name] = parsed
        slug = params.get("slug")
        if slug is not None and not isinstance(slug, str):
            problems["slug"] = ("rest_invalid_type", "slug is not of type string.")
        if problems:
            raise invalid_params(problems)

        if title is not None:
            post["title"] = title
        if content is not None:
            post["content"] = content
        if excerpt is not None:
            post["excerpt"] = excerpt
        if featured is not None:
            # WordPress silently ignores a featured image that is not an attachment (set_post_thumbnail fails).
            candidate = state.posts.get(int(featured))
            post["featured_media"] = int(featured) if candidate and candidate["type"] == "attachment" else 0
        for name, ids in (("categories", categories), ("tags", tags)):
            if ids is not None:
                taxonomy = "category" if name == "categories" else "post_tag"
                post[name] = [i for i in dict.fromkeys(ids) if i in state.terms
                              and state.terms[i]["taxonomy"] == taxonomy]
        if not post["categories"]:
            post["categories"] = [1]
        if status is not None:
            post["status"] = status

        # `date` wins over `date_gmt` when both are sent (rest_get_date_with_gmt on `date` first).
        moment = dates.get("date") or dates.get("date_gmt")
        current = now()
        if moment is not None:
            post["date_gmt"] = _iso(moment)
            post["date_floating"] = False
        elif post.get("date_floating") and post["status"] not in ("draft", "pending"):
            post["date_gmt"] = _iso(current)  # a draft's date floats until it is published
            post["date_floating"] = False
        when = datetime.fromisoformat(post["date_gmt"]).replace(tzinfo=timezone.utc)
        if post["status"] == "publish" and when - current >= SCHEDULE_THRESHOLD:
            post["status"] = "future"
        elif post["status"] == "future" and when - current < SCHEDULE_THRESHOLD:
            post["status"] = "publish"

        # Slugs: the REST API makes an explicit slug unique even for drafts (it checks as if publishing); a post
        # without one gets none while draft/pending and one from its title once it goes public.
        if isinstance(slug, str) and slug.strip():
            post["slug"] = state.unique_slug(sanitize_title(slug) or str(post["id"]), post["id"], "post")
        elif not post["slug"] and post["status"] not in ("draft", "pending"):
            post["slug"] = state.unique_slug(sanitize_title(post["title"]) or str(post["id"]), post["id"], "post")
        post["modified_gmt"] = _iso(current)

    def listing(request: Request, items: list[dict], query: dict, searched: tuple[str, ...]):
        """A collection answer as WordPress gives it: slug/include/search filters, newest first, paginated."""
        if query["slug"]:
            items = [p for p in items if p["slug"] in query["slug"]]
        if query["include"]:
            items = [p for p in items if p["id"] in query["include"]]
        if query["search"]:
            needle = query["search"].casefold()
            items = [p for p in items if any(needle in p[field].casefold() for field in searched)]
        items.sort(key=lambda p: (p["date_gmt"], p["id"]), reverse=True)
        root = base(request)
        return paginate(items, query, lambda p: post_json(p, root, query["edit"]))

    @app.get("/wp-json/wp/v2/posts")
    async def list_posts(request: Request):
        who = current_user(request)
        query = collection_params(request, who, statuses=True,
                                  edit_code="Sorry, you are not allowed to edit posts in this post type.")
        statuses = set(STATUSES) if "any" in query["status"] else set(query["status"])
        items = [p for p in state.posts.values() if p["type"] == "post" and p["status"] in statuses]
        return listing(request, items, query, ("title", "content"))

    @app.get("/wp-json/wp/v2/posts/{post_id}")
    async def get_post(post_id: int, request: Request):
        who = current_user(request)
        post = find_post(post_id, "post")
        if who is None and post["status"] != "publish":
            raise WPError("rest_forbidden", "Sorry, you are not allowed to do that.", 401)
        edit = request.query_params.get("context") == "edit"
        if edit and who is None:
            raise WPError("rest_forbidden_context", "Sorry, you are not allowed to edit this post.", 401)
        return post_json(post, base(request), edit)

    @app.post("/wp-json/wp/v2/posts")
    async def create_post(request: Request):
        require(request, "rest_cannot_create", "Sorry, you are not allowed to create posts as this user.")
        params = await params_of(request)
        if "id" in params:
            raise WPError("rest_post_exists", "Cannot create existing post.", 400)
        with state.lock:
            current = _iso(now())
            post = {"id": state.next_post_id, "type": "post", "status": "draft", "slug": "", "title": "",
                    "content": "", "excerpt": "", "featured_media": 0, "categories": [], "tags": [],
                    "date_gmt": current, "date_floating": True, "modified_gmt": current}
            apply_post_params(post, params, creating=True)
            state.new_post_id()
            state.posts[post["id"]] = post
            state.save()
        return JSONResponse(post_json(post, base(request), edit=True), status_code=201,
                            headers={"Location": f"{base(request)}/wp-json/wp/v2/posts/{post['id']}"})

    @app.api_route("/wp-json/wp/v2/posts/{post_id}", methods=["POST", "PUT", "PATCH"])
    async def update_post(post_id: int, request: Request):
        require(request, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
        params = await params_of(request)
        with state.lock:
            post = find_post(post_id, "post")
            draft = json.loads(json.dumps(post))  # validate on a copy: a rejected update changes nothing
            apply_post_params(draft, params, creating=False)
            state.posts[post_id] = draft
            state.save()
        return post_json(draft, base(request), edit=True)

    @app.delete("/wp-json/wp/v2/posts/{post_id}")
    async def delete_post(post_id: int, request: Request):
        require(request, "rest_cannot_delete", "Sorry, you are not allowed to delete this post.")
        force = str(request.query_params.get("force", "false")).lower() in ("1", "true")
        with state.lock:
            post = find_post(post_id, "post")
            root = base(request)
            if force:
                previous = post_json(post, root, edit=True)
                del state.posts[post_id]
                state.save()
                return {"deleted": True, "previous": previous}
            if post["status"] == "trash":
                raise WPError("rest_already_trashed", "The post has already been deleted.", 410)
            post["trashed_from"] = {"status": post["status"], "slug": post["slug"]}
            post["status"] = "trash"
            if post["slug"]:
                post["slug"] = f"{post['slug']}__trashed"  # frees the slug, as wp_trash_post does
            post["modified_gmt"] = _iso(now())
            state.save()
            return post_json(post, root, edit=True)

    # --- media ---------------------------------------------------------------------------------------------
    def destination(filename: str) -> tuple[Path, str]:
        month = now().strftime("%Y/%m")
        folder = state.uploads / month
        folder.mkdir(parents=True, exist_ok=True)
        name = sanitize_file_name(filename)
        stem, dot, ext = name.rpartition(".")
        stem, ext = (stem, f".{ext}") if dot else (name, "")
        candidate, n = name, 1
        while (folder / candidate).exists():  # wp_unique_filename: name-1.jpg, name-2.jpg…
            candidate = f"{stem}-{n}{ext}"
            n += 1
        return folder / candidate, f"{month}/{candidate}"

    def disposition_filename(header: str | None) -> str | None:
        """WordPress's get_filename_from_disposition: only a `filename=` attribute counts (not `filename*=`)."""
        for part in (header or "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "filename" and value.strip():
                return value.strip().strip('"').strip("'") or None
        return None

    def dimensions(path: Path, mime: str) -> dict:
        if not mime.startswith("image/"):
            return {}
        try:
            from PIL import Image

            with Image.open(path) as image:
                return {"width": image.width, "height": image.height}
        except Exception:  # a broken image still uploads in WordPress; it just has no sizes
            return {}

    async def drain(request: Request) -> None:
        async for _chunk in request.stream():
            pass

    @app.post("/wp-json/wp/v2/media")
    async def upload_media(request: Request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            await drain(request)  # read and drop it, as nginx does, so the client gets the answer, not a reset
            return _nginx_page(413, "Request Entity Too Large")
        if current_user(request) is None:
            await drain(request)
            raise WPError("rest_cannot_create", "Sorry, you are not allowed to upload media on this site.", 401)
        content_type = request.headers.get("content-type", "")
        fields: dict = dict(request.query_params)
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_part_size=1024 * 1024)
            upload = form.get("file")
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
            if upload is None or isinstance(upload, str):
                raise WPError("rest_upload_no_data", "No data supplied.", 400)
            filename, mime_declared = upload.filename or "", upload.content_type or ""
            target, relative = destination(filename or "file")
            size, md5 = 0, hashlib.md5()
            with open(target, "wb") as out:
                while chunk := await upload.read(1024 * 1024):
                    out.write(chunk)
                    md5.update(chunk)
                    size += len(chunk)
            await upload.close()
        else:
            if not content_type:
                raise WPError("rest_upload_no_content_type", "No Content-Type supplied.", 400)
            disposition = request.headers.get("content-disposition")
            if not disposition:
                raise WPError("rest_upload_no_content_disposition", "No Content-Disposition supplied.", 400)
            filename = disposition_filename(disposition)
            if not filename:
                raise WPError("rest_upload_invalid_disposition", "Invalid Content-Disposition supplied. "
                              "Content-Disposition needs to be formatted as `attachment; filename=\"image.png\"` "
                              "or similar.", 400)
            mime_declared = content_type.split(";")[0].strip()
            target, relative = destination(filename)
            size, md5 = 0, hashlib.md5()
            # Streamed to disk as it arrives: the sandbox must not hold a recap video in memory either.
            with open(target, "wb") as out:
                async for chunk in request.stream():
                    out.write(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                    if size > max_body_bytes:
                        break
            if size > max_body_bytes:
                target.unlink(missing_ok=True)
                await drain(request)
                return _nginx_page(413, "Request Entity Too Large")
        if size == 0:
            target.unlink(missing_ok=True)
            raise WPError("rest_upload_no_data", "No data supplied.", 400)
        expected_md5 = request.headers.get("content-md5")
        if expected_md5 and expected_md5.strip().lower() != md5.hexdigest():
            target.unlink(missing_ok=True)
            raise WPError("rest_upload_hash_mismatch", "Content hash did not match expected.", 412)
        ext = target.suffix.lstrip(".").lower()
        if ext not in ALLOWED_UPLOADS:
            target.unlink(missing_ok=True)
            # WordPress reports a forbidden type from wp_handle_sideload as a 500, measured on 6.1.
            raise WPError("rest_upload_sideload_error", "Sorry, you are not allowed to upload this file type.", 500)
        mime = ALLOWED_UPLOADS[ext]
        problems: dict[str, tuple[str, str]] = {}
        title = text_field(fields, "title", problems)
        caption = text_field(fields, "caption", problems) or ""
        alt_text = text_field(fields, "alt_text", problems) or ""
        if problems:
            target.unlink(missing_ok=True)
            raise invalid_params(problems)
        with state.lock:
            post_id = state.new_post_id()
            title = title if title else Path(filename).stem
            wanted_slug = fields.get("slug") if isinstance(fields.get("slug"), str) and fields.get("slug") else title
            current = _iso(now())
            post = {"id": post_id, "type": "attachment", "status": "inherit", "title": title,
                    "slug": state.unique_slug(sanitize_title(wanted_slug) or str(post_id), post_id, "attachment"),
                    "caption": caption, "alt_text": alt_text, "file": relative, "mime_type": mime,
                    "declared_mime_type": mime_declared, "filesize": size, "md5": md5.hexdigest(),
                    "dimensions": dimensions(target, mime), "date_gmt": current, "modified_gmt": current}
            state.posts[post_id] = post
            state.save()
        root = base(request)
        return JSONResponse(post_json(post, root, edit=True), status_code=201,
                            headers={"Location": f"{root}/wp-json/wp/v2/media/{post_id}"})

    @app.get("/wp-json/wp/v2/media")
    async def list_media(request: Request):
        who = current_user(request)
        query = collection_params(request, who, statuses=False,
                                  edit_code="Sorry, you are not allowed to edit posts in this post type.")
        items = [p for p in state.posts.values() if p["type"] == "attachment"]
        return listing(request, items, query, ("title",))

    @app.get("/wp-json/wp/v2/media/{media_id}")
    async def get_media(media_id: int, request: Request):
        edit = request.query_params.get("context") == "edit"
        if edit and current_user(request) is None:
            raise WPError("rest_forbidden_context", "Sorry, you are not allowed to edit this post.", 401)
        return post_json(find_post(media_id, "attachment"), base(request), edit)

    @app.api_route("/wp-json/wp/v2/media/{media_id}", methods=["POST", "PUT", "PATCH"])
    async def update_media(media_id: int, request: Request):
        require(request, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
        params = await params_of(request)
        problems: dict[str, tuple[str, str]] = {}
        values = {name: text_field(params, name, problems) for name in ("title", "caption", "alt_text")}
        if problems:
            raise invalid_params(problems)
        with state.lock:
            post = find_post(media_id, "attachment")
            post.update({k: v for k, v in values.items() if v is not None})
            post["modified_gmt"] = _iso(now())
            state.save()
        return post_json(post, base(request), edit=True)

    # --- categories and tags -------------------------------------------------------------------------------
    def term_routes(route: str, taxonomy: str) -> None:
        @app.get(f"/wp-json/wp/v2/{route}", name=f"list_{route}")
        async def list_terms(request: Request):
            who = current_user(request)
            query = collection_params(request, who, statuses=False,
                                      edit_code="Sorry, you are not allowed to edit terms in this taxonomy.")
            items = [t for t in state.terms.values() if t["taxonomy"] == taxonomy]
            if query["slug"]:
                items = [t for t in items if t["slug"] in query["slug"]]
            if query["include"]:
                items = [t for t in items if t["id"] in query["include"]]
            if query["search"]:
                needle = remove_accents(query["search"]).casefold()
                items = [t for t in items if needle in remove_accents(t["name"]).casefold() or needle in t["slug"]]
            items.sort(key=lambda t: t["name"].casefold())
            root = base(request)
            return paginate(items, query, lambda t: term_json(t, root))

        @app.post(f"/wp-json/wp/v2/{route}", name=f"create_{route}")
        async def create_term(request: Request):
            require(request, "rest_cannot_create", "Sorry, you are not allowed to create terms in this taxonomy.")
            params = await params_of(request)
            name = params.get("name")
            if name is None:
                raise WPError("rest_missing_callback_param", "Missing parameter(s): name", 400, params=["name"])
            if not isinstance(name, str) or not name.strip():
                raise WPError("empty_term_name", "A name is required for this term.", 400)
            name = unicodedata.normalize("NFC", name.strip())
            parent = int(params.get("parent") or 0) if taxonomy == "category" else 0
            with state.lock:
                for term in state.terms.values():
                    if (term["taxonomy"] == taxonomy and term["name"].casefold() == name.casefold()
                            and term.get("parent", 0) == parent):
                        raise WPError("term_exists", "A term with the name provided already exists with this "
                                                     "parent.", 400, term_id=term["id"])
                wanted = params.get("slug") if isinstance(params.get("slug"), str) and params.get("slug") else name
                term = {"id": state.new_term_id(), "taxonomy": taxonomy, "name": name,
                        "slug": state.unique_term_slug(sanitize_title(wanted) or "term", taxonomy),
                        "parent": parent, "description": str(params.get("description", ""))}
                state.terms[term["id"]] = term
                state.save()
            root = base(request)
            return JSONResponse(term_json(term, root), status_code=201,
                                headers={"Location": f"{root}/wp-json/wp/v2/{route}/{term['id']}"})

    term_routes("categories", "category")
    term_routes("tags", "post_tag")

    @app.api_route("/wp-json/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def no_route(rest: str):
        raise WPError("rest_no_route", "No route was found matching the URL and request method.", 404)

    # --- sandbox controls ----------------------------------------------------------------------------------
    @app.get("/__sandbox/faults")
    async def list_faults(request: Request):
        require(request, "rest_forbidden", "Sorry, you are not allowed to do that.")
        with fault_rules.lock:
            return {"rules": [dict(r) for r in fault_rules.rules]}

    @app.post("/__sandbox/faults")
    async def add_fault(request: Request):
        require(request, "rest_forbidden", "Sorry, you are not allowed to do that.")
        try:
            rule = fault_rules.add(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as exc:
            raise WPError("rest_invalid_param", f"Invalid fault rule: {exc}", 400) from None
        return JSONResponse({"rule": rule}, status_code=201)

    @app.delete("/__sandbox/faults")
    async def clear_faults(request: Request):
        require(request, "rest_forbidden", "Sorry, you are not allowed to do that.")
        fault_rules.clear()
        return {"rules": []}

    # --- what a reader sees --------------------------------------------------------------------------------
    @app.get("/wp-content/uploads/{path:path}")
    async def uploaded_file(path: str):
        target = (state.uploads / path).resolve()
        if not target.is_file() or state.uploads.resolve() not in target.parents:
            return _nginx_page(404, "Not Found")
        return FileResponse(target)

    def article_html(post: dict, root: str, *, single: bool) -> str:
        title = post["title"]  # a theme's the_title(): printed as stored
        heading = title if single else f'<a href="{html.escape(post_link(post, root), quote=True)}">{title}</a>'
        when = datetime.fromisoformat(post["date_gmt"]).replace(tzinfo=timezone.utc).astimezone(tz)
        featured = state.posts.get(post["featured_media"]) if post["featured_media"] else None
        image = ""
        if featured and featured["type"] == "attachment":
            src = html.escape(f"{root}/wp-content/uploads/{featured['file']}", quote=True)
            image = f'<img class="featured" src="{src}" alt="{esc_attr(featured["alt_text"])}">'
        terms = ", ".join(html.escape(state.terms[i]["name"]) for i in post["categories"] + post["tags"]
                          if i in state.terms)
        return (f'<article id="post-{post["id"]}"><h2>{heading}</h2>'
                f'<p class="meta">{when:%d/%m/%Y %H:%M} · {terms}</p>{image}'
                f'<div class="content">{strip_block_comments(post["content"])}</div></article>')

    def page(title: str, body: str) -> HTMLResponse:
        return HTMLResponse(
            f'<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>{esc_attr(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><style>'
            "body{font-family:'Noto Sans','DejaVu Sans',sans-serif;max-width:860px;margin:auto;padding:1em}"
            "img{max-width:100%}.featured{display:block;margin:.5em 0}.meta{color:#666}"
            ".wp-block-gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px}"
            ".wp-block-gallery figure{margin:0}video{width:100%}article{border-bottom:1px solid #ddd;"
            "padding-bottom:1em}</style></head>"
            f"<body><header><h1>{html.escape(site_title)}</h1></header>{body}</body></html>")

    def published() -> list[dict]:
        items = [p for p in state.posts.values() if p["type"] == "post" and p["status"] == "publish"]
        return sorted(items, key=lambda p: (p["date_gmt"], p["id"]), reverse=True)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request):
        root = base(request)
        post_id = request.query_params.get("p")
        if post_id is not None:
            post = state.posts.get(int(post_id)) if post_id.isdigit() else None
            if not post or post["type"] != "post" or post["status"] != "publish":
                return HTMLResponse(page("Không tìm thấy", "<p>Không tìm thấy bài viết.</p>").body, 404)
            return page(post["title"], article_html(post, root, single=True))
        articles = "".join(article_html(p, root, single=False) for p in published())
        return page(site_title, articles or "<p>Chưa có bài viết nào.</p>")

    @app.get("/{slug}/", response_class=HTMLResponse)
    async def article(slug: str, request: Request):
        for post in published():
            if post["slug"] == slug:
                return page(post["title"], article_html(post, base(request), single=True))
        return HTMLResponse(page("Không tìm thấy", "<p>Không tìm thấy bài viết.</p>").body, 404)

    return app


def _read_credentials(args) -> tuple[str, str]:
    """Credentials from a file or the environment, never argv (visible to every user in `ps`)."""
    if args.app_password_file:
        password = Path(args.app_password_file).read_text(encoding="utf-8").strip()
        return args.user or "bridgecast", password
    if os.environ.get("BRIDGECAST_PORTAL_APP_PASSWORD"):
        return args.user or "bridgecast", os.environ["BRIDGECAST_PORTAL_APP_PASSWORD"]
    # Same Airflow Connection the portal channel uses, so the sandbox accepts exactly what the stack publishes with.
    from bridgecast.connections import get_connection

    conn = get_connection(args.connection)
    return args.user or conn.login, conn.password


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m devstack.sandboxes.portal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True, help="state directory (state.json + uploads/)")
    parser.add_argument("--user", default=None, help="login that the application password belongs to")
    parser.add_argument("--app-password-file", default=None,
                        help="file holding the application password (else $BRIDGECAST_PORTAL_APP_PASSWORD, "
                             "else the password of Airflow Connection --connection)")
    parser.add_argument("--connection", default="bridgecast_portal")
    parser.add_argument("--timezone", default=DEFAULT_TIMEZONE)
    parser.add_argument("--max-body-mb", type=int, default=512)
    args = parser.parse_args(argv)
    user, password = _read_credentials(args)
    faults = json.loads(os.environ.get("BRIDGECAST_PORTAL_FAULTS", "[]"))
    app = create_app(args.data, user, password, timezone_name=args.timezone,
                     max_body_bytes=args.max_body_mb * 1024 * 1024, faults=faults)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
