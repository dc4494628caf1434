"""Portal channel: articles (text, photo gallery, recap video) on the agency's WordPress through its REST API.

`WordPressClient` owns the REST routes and the mapping of WordPress errors onto the typed errors of `base.py`, over
the shared `HttpTransport` (session, timeouts, retries, streamed uploads); `PortalChannel` turns a `Publication`
into media + a post and finds it again by slug.
"""
from __future__ import annotations

import email.utils
import html
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from bridgecast.channels.base import (AuthError, Channel, ChannelError, HealthReport, MediaFile, NotFound,
                                      PermissionMissing, Publication, RateLimited, RejectedInput, RemoteRef,
                                      Transient)
from bridgecast.channels.transport import HeaderAuth, HttpTransport, MultipartFile, checked_base_url
from bridgecast.text import ascii_name

log = logging.getLogger(__name__)

CHANNEL = "portal"
DEFAULT_CONN_ID = "bridgecast_portal"
# Raw-body uploads are held whole in PHP memory (≈1.1× the file): above this size we send multipart/form-data,
# which PHP spools to disk (media-notes §7: a 200 MB raw upload died with an HTML 500, multipart took ≈50 MiB).
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
# wp_insert_post only turns `publish` into `future` when the date is at least a minute ahead; closer than that
# we publish now instead of creating a post WordPress might publish or not.
SCHEDULE_MARGIN = timedelta(seconds=60)
# After our client gave up on a call, PHP (and nginx's fastcgi_read_timeout in front of it) may still run it this
# long: an attempt's server-side deadline is our timeout plus this margin.
SERVER_MARGIN_S = 60.0
TWIN_SLUGS = 8  # `<slug>-2` … `<slug>-9`: the twins a reconcile looks for (one per lost attempt)
ALL_STATUSES = "publish,future,draft,pending,private"
REQUIRED_CAPABILITIES = ("upload_files", "edit_posts", "publish_posts", "edit_published_posts", "delete_posts",
                         "delete_published_posts", "manage_categories")
_AUTH_CODES = frozenset({"rest_not_logged_in", "invalid_username", "incorrect_password", "invalid_email",
                         "rest_cookie_invalid_nonce", "application_passwords_disabled",
                         "application_passwords_disabled_for_user", "rest_application_password_check_errors"})
_UPLOAD_INPUT_CODES = frozenset({"rest_upload_no_data", "rest_upload_no_content_type",
                                 "rest_upload_no_content_disposition", "rest_upload_invalid_disposition",
                                 "rest_upload_sideload_error", "rest_upload_file_too_big", "rest_upload_limited_space",
                                 "rest_upload_user_quota_exceeded"})
_NOT_FOUND_CODES = frozenset({"rest_post_invalid_id", "rest_term_invalid", "rest_user_invalid_id"})
_GONE_CODES = frozenset({"rest_already_trashed"})


def ascii_filename(name: str) -> str:
    """WordPress accepts only `filename="…"` (not `filename*=`): transliterate and drop what would break the header."""
    return ascii_name(name, "upload.bin")


def media_slug(media: MediaFile) -> str:
    """Content-addressed slug: a rerun (or another article using the same photo) finds the upload instead of
    uploading it again, like the S3 object keys."""
    return f"bc-media-{media.sha256[:20].lower()}"


@dataclass(frozen=True)
class UploadedMedia:
    id: int
    source_url: str
    mime_type: str
    caption: str = ""
    alt_text: str = ""


@dataclass
class _Response:
    data: Any
    headers: CaseInsensitiveDict = field(default_factory=CaseInsensitiveDict)


def _retry_after_s(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, (parsed - datetime.now(timezone.utc)).total_seconds())


def _html_title(text: str) -> str:
    """A one-line summary of an HTML error page: its title plus its first heading or paragraph."""
    def first(tag: str) -> str:
        match = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", text, re.I | re.S)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html.unescape(match.group(1)))).strip() if match else ""

    title = first("title")
    detail = next((found for found in (first("h1"), first("p")) if found and found != title), "")
    return ": ".join(part for part in (title, detail) if part)[:200]


class WordPressClient:
    """The WordPress REST API (wp/v2) subset Bridgecast uses, over the shared transport: reads under its retry
    policy, writes sent once. Transport options (timeout, upload_timeout, read_attempts, first_wait_s,
    max_retry_wait_s, sleep, session) go through to `HttpTransport`."""

    timeout = (5.0, 60.0)
    upload_timeout = (5.0, 900.0)  # a recap video through PHP

    def __init__(self, base_url: str, user: str, app_password: str, *, conn_id: str = DEFAULT_CONN_ID,
                 multipart_threshold: int = MULTIPART_THRESHOLD_BYTES, **transport_options):
        self.base_url = checked_base_url(base_url, service="portal", conn_id=conn_id)
        self.user = user
        self.conn_id = conn_id
        self.multipart_threshold = multipart_threshold
        transport_options = {"timeout": self.timeout, "upload_timeout": self.upload_timeout, **transport_options}
        self.transport = HttpTransport(HeaderAuth.basic(user, app_password, "application password"),
                                       service="the portal", channel=CHANNEL, conn_id=conn_id,
                                       headers={"Accept": "application/json"}, **transport_options)

    def __repr__(self) -> str:
        return f"WordPressClient({self.base_url!r}, user={self.user!r})"

    def api_url(self, route: str) -> str:
        return f"{self.base_url}/wp-json/wp/v2/{route.lstrip('/')}"

    # --- answers -----------------------------------------------------------------------------------------
    def _send(self, method: str, route: str, action: str, **kw) -> _Response:
        response = self.transport.send(method, self.api_url(route), action, **kw)
        if response.status_code >= 400:
            raise self.error_for(response, action)
        if 300 <= response.status_code < 400:
            raise RejectedInput(CHANNEL, f"the portal redirected {action} to {response.headers.get('Location')!r}; "
                                         f"redirects are not followed (a POST would turn into a GET): set the host "
                                         f"of Airflow Connection {self.conn_id} to the address it redirects to",
                                code=f"http_{response.status_code}", status=response.status_code, param="base_url")
        try:
            data = response.json() if response.content else None
        except ValueError:
            raise Transient(CHANNEL, f"the portal answered {action} with HTTP {response.status_code} but not JSON "
                                     f"({_html_title(response.text) or 'no title'}): is {self.base_url} a WordPress "
                                     f"site root?", status=response.status_code) from None
        return _Response(data, response.headers)

    def _read(self, route: str, action: str, params: dict | None = None) -> _Response:
        """A GET: reading twice has no side effect, so it runs under the retry policy."""
        return self.transport.repeat(lambda: self._send("GET", route, action, params=params), action)

    def error_for(self, response: requests.Response, action: str) -> ChannelError:
        """Map a WordPress error (JSON `{code, message, data: {status}}` or an HTML page) to a typed error."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            return self._error_for_page(response, action)
        code = str(body.get("code"))
        message = str(body.get("message") or "")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        where = f"while trying to {action}: {message} ({code})"
        if code in _AUTH_CODES or status == 401:
            # WordPress answers 401 for anonymous requests whatever the code (rest_authorization_required_code):
            # a wrong or revoked Application Password makes every request anonymous.
            return AuthError(CHANNEL, f"the portal did not accept the Application Password of user '{self.user}' "
                                      f"{where}. Renew the Application Password (WordPress → Users → Profile → "
                                      f"Application Passwords) and store it in Airflow Connection {self.conn_id}",
                             code=code, status=status)
        if status == 403 or code.startswith("rest_cannot") or code in ("rest_forbidden", "rest_forbidden_status"):
            return PermissionMissing(CHANNEL, f"user '{self.user}' lacks a WordPress permission {where}; give the "
                                              f"user the Editor or Administrator role", code=code, status=status,
                                     permission=code)
        if status == 429:
            return RateLimited(CHANNEL, f"the portal is rate limiting {where}", code=code, status=status,
                               retry_after_s=_retry_after_s(response.headers.get("Retry-After"), 60.0))
        if code in ("rest_invalid_param", "rest_missing_callback_param"):
            params = data.get("params") or {}
            names = list(params) if isinstance(params, (dict, list)) else []
            param = str(names[0]) if names else None
            detail = "; ".join(f"{k}: {v}" for k, v in params.items()) if isinstance(params, dict) else message
            return RejectedInput(CHANNEL, f"the portal rejected parameter {param!r} while trying to {action}: "
                                          f"{detail}", code=code, status=status, param=param)
        if code in _UPLOAD_INPUT_CODES:
            return RejectedInput(CHANNEL, f"the portal refused the file {where}", code=code, status=status,
                                 param="file")
        if code == "term_exists":
            error = RejectedInput(CHANNEL, f"the term already exists {where}", code=code, status=status, param="name")
            error.term_id = int(data["term_id"]) if str(data.get("term_id", "")).isdigit() else None
            return error
        if code == "rest_upload_hash_mismatch":
            return Transient(CHANNEL, f"the upload arrived damaged {where}", code=code, status=status)
        if code == "rest_invalid_json":
            return RejectedInput(CHANNEL, f"the portal could not read our request {where}", code=code,
                                 status=status, param="body")
        if code == "rest_no_route":
            return RejectedInput(CHANNEL, f"{self.base_url} has no such REST route {where}; the Connection's host "
                                          f"must be the WordPress site root", code=code, status=status,
                                 param="base_url")
        if status == 404 or code in _NOT_FOUND_CODES or code in _GONE_CODES:
            return NotFound(CHANNEL, f"the portal has no such item {where}", code=code, status=status)
        if status == 408 or status >= 500:
            return Transient(CHANNEL, f"the portal failed {where}", code=code, status=status)
        return RejectedInput(CHANNEL, f"the portal rejected the request {where}", code=code, status=status,
                             param=data.get("param"))

    def _error_for_page(self, response: requests.Response, action: str) -> ChannelError:
        # nginx (413, 502/504) and PHP fatals (500) answer with HTML, not WordPress JSON.
        status = response.status_code
        title = _html_title(response.text) or response.reason or "no details"
        if status == 413:
            return RejectedInput(CHANNEL, f"the file is larger than the portal's web server accepts (HTTP 413, "
                                          f"{title}) while trying to {action}: raise nginx client_max_body_size and "
                                          f"PHP upload_max_filesize/post_max_size, or send a smaller rendition",
                                 code="http_413", status=status, param="file")
        if status == 429:
            return RateLimited(CHANNEL, f"the portal is rate limiting (HTTP 429) {action}", code="http_429",
                               status=status,
                               retry_after_s=_retry_after_s(response.headers.get("Retry-After"), 60.0))
        if status == 401:
            return AuthError(CHANNEL, f"the portal's web server refused the credentials (HTTP 401, {title}) while "
                                      f"trying to {action}; check Airflow Connection {self.conn_id}",
                             code="http_401", status=status)
        if status == 403:
            return PermissionMissing(CHANNEL, f"the portal's web server forbids {action} (HTTP 403, {title})",
                                     code="http_403", status=status)
        if status == 404:
            return RejectedInput(CHANNEL, f"{self.base_url} answered HTTP 404 ({title}) while trying to {action}: "
                                          f"check the host of Airflow Connection {self.conn_id}",
                                 code="http_404", status=status, param="base_url")
        if status == 408 or status >= 500:
            return Transient(CHANNEL, f"the portal failed with HTTP {status} ({title}) while trying to {action}",
                             code=f"http_{status}", status=status)
        return RejectedInput(CHANNEL, f"the portal answered HTTP {status} ({title}) while trying to {action}",
                             code=f"http_{status}", status=status)

    # --- users ---------------------------------------------------------------------------------------------
    def me(self) -> dict:
        return self._read("users/me", "read the portal user", {"context": "edit"}).data

    # --- media ---------------------------------------------------------------------------------------------
    def find_media(self, slugs: Iterable[str]) -> dict[str, dict]:
        slugs = sorted(set(slugs))
        found: dict[str, dict] = {}
        for start in range(0, len(slugs), 100):
            batch = slugs[start:start + 100]
            items = self._read("media", "look up uploaded media", {
                "slug": ",".join(batch), "per_page": 100, "context": "edit"}).data or []
            for item in items:
                found[item["slug"]] = item
        return found

    def upload(self, media: MediaFile, *, slug: str | None = None, title: str = "", caption: str = "",
               alt_text: str = "") -> dict:
        """Upload one file from disk (never read whole into memory) and return WordPress's attachment JSON."""
        filename = ascii_filename(media.filename)
        fields = {k: v for k, v in (("slug", slug), ("title", title), ("caption", caption),
                                    ("alt_text", alt_text)) if v}
        action = f"upload {filename}"
        size = os.path.getsize(media.path)
        if size >= self.multipart_threshold:
            with MultipartFile(media.path, file_field="file", filename=filename, content_type=media.content_type,
                               fields=fields) as body:
                response = self._send("POST", "media", action, data=body, upload=True,
                                      headers={"Content-Type": body.content_type})
        else:
            with open(media.path, "rb") as fh:
                response = self._send("POST", "media", action, data=fh, params=fields, upload=True,
                                      headers={"Content-Type": media.content_type,
                                               "Content-Disposition": f'attachment; filename="{filename}"'})
        item = response.data
        log.info("portal: uploaded %s (%d bytes, %s) as media %s", filename, size,
                 "multipart" if size >= self.multipart_threshold else "raw", item.get("id"))
        return item

    # --- posts ---------------------------------------------------------------------------------------------
    def find_posts(self, *slugs: str) -> list[dict]:
        """Posts (any status but trash) carrying one of `slugs` exactly."""
        return self._read("posts", f"look up post {slugs[0]}", {
            "slug": ",".join(slugs), "status": ALL_STATUSES, "context": "edit", "per_page": 100}).data or []

    def list_posts(self, **params) -> list[dict]:
        """Posts matching WordPress collection parameters (search=…, status=…, slug=…), edit context."""
        return self._read("posts", "list posts", {"context": "edit", "per_page": 100, **params}).data or []

    def get_post(self, post_id: int) -> dict:
        return self._read(f"posts/{int(post_id)}", f"read post {post_id}", {"context": "edit"}).data

    def create_post(self, fields: dict) -> dict:
        return self._send("POST", "posts", f"create post {fields.get('slug') or fields.get('title')!r}",
                          json=fields, params={"context": "edit"}).data

    def update_post(self, post_id: int, fields: dict) -> dict:
        return self._send("POST", f"posts/{int(post_id)}", f"update post {post_id}", json=fields,
                          params={"context": "edit"}).data

    def trash_post(self, post_id: int) -> dict:
        return self._send("DELETE", f"posts/{int(post_id)}", f"move post {post_id} to the trash",
                          params={"context": "edit"}).data

    def delete_post(self, post_id: int) -> dict:
        """Delete for good (no trash): only for drafts nobody has seen, e.g. a twin made by a retry."""
        return self._send("DELETE", f"posts/{int(post_id)}", f"delete post {post_id}",
                          params={"context": "edit", "force": "true"}).data

    # --- taxonomy ------------------------------------------------------------------------------------------
    def term_ids(self, taxonomy: str, names: Iterable[str]) -> list[int]:
        """IDs of categories/tags by name, creating the missing ones (WordPress posts take IDs, not names)."""
        ids: list[int] = []
        for raw in names:
            name = unicodedata.normalize("NFC", raw).strip()
            if not name:
                continue
            ids.append(self._term_id(taxonomy, name))
        return list(dict.fromkeys(ids))

    def _term_id(self, taxonomy: str, name: str) -> int:
        wanted = name.casefold()
        candidates = self._read(taxonomy, f"look up {taxonomy} {name!r}", {
            "search": name, "per_page": 100, "context": "edit", "hide_empty": "false"}).data or []
        for term in candidates:
            if unicodedata.normalize("NFC", html.unescape(term.get("name", ""))).casefold() == wanted:
                return int(term["id"])
        try:
            return int(self._send("POST", taxonomy, f"create {taxonomy} {name!r}", json={"name": name}).data["id"])
        except RejectedInput as exc:
            # Created meanwhile by someone else (or differing only in case): WordPress says which one it is.
            term_id = self._term_exists_id(exc)
            if term_id is None:
                raise
            return term_id

    @staticmethod
    def _term_exists_id(exc: RejectedInput) -> int | None:
        return getattr(exc, "term_id", None) if exc.code == "term_exists" else None


# --- content -------------------------------------------------------------------------------------------------
def _paragraphs(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n")
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _paragraph_block(inner_html: str) -> str:
    return f"<!-- wp:paragraph -->\n<p>{inner_html}</p>\n<!-- /wp:paragraph -->"


def _image_block(image: UploadedMedia) -> str:
    alt = html.escape(image.alt_text or image.caption, quote=True)
    caption = (f'<figcaption class="wp-element-caption">{html.escape(image.caption)}</figcaption>'
               if image.caption else "")
    return (f'<!-- wp:image {{"id":{image.id},"sizeSlug":"large","linkDestination":"none"}} -->\n'
            f'<figure class="wp-block-image size-large"><img src="{html.escape(image.source_url, quote=True)}" '
            f'alt="{alt}" class="wp-image-{image.id}"/>{caption}</figure>\n<!-- /wp:image -->')


def escape_text(text: str) -> str:
    """Plain text as the HTML WordPress stores and renders: NFC, then `& < > " '` escaped."""
    return html.escape(unicodedata.normalize("NFC", text or ""), quote=True)


def render_content(pub: Publication, images: list[UploadedMedia], video: UploadedMedia | None) -> str:
    """Block-editor markup: paragraphs, then the recap video, the other videos (`pub.media` of a video type, e.g.
    the teams'), then a core gallery of every photo. Every piece of our
    data is escaped where it is inserted; a link must be http(s) (a `javascript:` href would run in readers)."""
    blocks = [_paragraph_block(html.escape(p).replace("\n", "<br>")) for p in _paragraphs(pub.body)]
    if pub.link and urlsplit(pub.link).scheme.lower() not in ("http", "https"):
        raise RejectedInput(CHANNEL, f"{pub.key}: the link {pub.link[:80]!r} is not an http(s) address",
                            param="link")
    if pub.link:
        url = html.escape(pub.link, quote=True)
        blocks.append(_paragraph_block(f'<a href="{url}">{html.escape(pub.link)}</a>'))
    if video is not None:
        blocks.append(f'<!-- wp:video {{"id":{video.id}}} -->\n<figure class="wp-block-video"><video controls '
                      f'preload="metadata" src="{html.escape(video.source_url, quote=True)}"></video></figure>\n'
                      f'<!-- /wp:video -->')
    for clip in (m for m in images if m.mime_type.startswith("video/")):  # the teams' own videos, captioned
        caption = (f'<figcaption class="wp-element-caption">{html.escape(clip.caption)}</figcaption>'
                   if clip.caption else "")
        blocks.append(f'<!-- wp:video {{"id":{clip.id}}} -->\n<figure class="wp-block-video"><video controls '
                      f'preload="metadata" src="{html.escape(clip.source_url, quote=True)}"></video>{caption}'
                      f'</figure>\n<!-- /wp:video -->')
    images = [m for m in images if not m.mime_type.startswith("video/")]
    if images:
        inner = "\n".join(_image_block(image) for image in images)
        blocks.append('<!-- wp:gallery {"linkTo":"none"} -->\n<figure class="wp-block-gallery has-nested-images '
                      f'columns-default is-cropped">\n{inner}\n</figure>\n<!-- /wp:gallery -->')
    return "\n\n".join(blocks)


def _wp_datetime(moment: datetime) -> str:
    """WordPress's `date_gmt`: ISO 8601 without offset, meaning UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class PortalChannel(Channel):
    """`PortalChannel(base_url, user, app_password).publish(pub)`, or `PortalChannel.from_connection()`."""

    name = CHANNEL
    supports_update = True
    compensates = True
    kinds = ("article", "post", "video")

    def __init__(self, base_url: str, user: str, app_password: str, *, conn_id: str = DEFAULT_CONN_ID,
                 clock=lambda: datetime.now(timezone.utc), server_margin_s: float = SERVER_MARGIN_S,
                 **client_options):
        self.client = WordPressClient(base_url, user, app_password, conn_id=conn_id, **client_options)
        self.clock = clock
        self.server_margin_s = server_margin_s

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **options) -> "PortalChannel":
        """Connection: host = site URL with scheme (port optional), login = user, password = Application Password."""
        from bridgecast.connections import get_connection

        conn = get_connection(conn_id)
        return cls(conn.base_url(), conn.login, conn.password, conn_id=conn_id, **options)

    def __repr__(self) -> str:
        return f"PortalChannel({self.client.base_url!r}, user={self.client.user!r})"

    # --- Channel interface ---------------------------------------------------------------------------------
    def publish(self, pub: Publication) -> RemoteRef:
        """Created as a draft under the publication's slug (readers never see a draft), the slug re-checked, then
        published by id. If another post already holds the slug — an attempt the ledger did not record, or one that
        landed late — WordPress gave our draft `<slug>-2`: that draft is deleted unseen and the earlier post is
        brought up to date instead, so the portal keeps one."""
        self._check_kind(pub)
        images, video = self._ensure_media(pub)
        fields = self._post_fields(pub, images, video, creating=True)
        draft = self.client.create_post({**fields, "slug": pub.slug(), "status": "draft"})
        if draft.get("slug") != pub.slug():
            log.warning("portal: draft %s got slug %s: post(s) with %s already exist; keeping the earliest",
                        draft.get("id"), draft.get("slug"), pub.slug())
            self._remove_twin(draft)
            earlier = self._canonical(pub)
            if earlier is None:
                raise Transient(CHANNEL, f"{pub.key}: the post holding slug {pub.slug()} disappeared while we "
                                         "created ours (moved to the trash?); run the task again", code="slug_race")
            post = self._finish(earlier, pub, images, video)
        else:
            post = self.client.update_post(int(draft["id"]), self._going_public(draft, self._schedule(pub)))
        log.info("portal: post %s (%s, %s) for %s", post["id"], post.get("status"), post.get("slug"), pub.key)
        return self._ref(post, images, video)

    def find(self, pub: Publication) -> RemoteRef | None:
        posts = sorted(self.client.find_posts(pub.slug()), key=lambda p: int(p["id"]))
        if not posts:
            return None
        if len(posts) > 1:
            log.warning("portal: %d posts carry slug %s; using the oldest (%s)", len(posts), pub.slug(), posts[0]["id"])
        return self._ref(posts[0])

    def reconcile(self, pub: Publication, *, since: datetime | None = None, exclude: frozenset[str] = frozenset(),
                  complete: bool = True) -> RemoteRef | None:
        """The one post of `pub`: found by its slug and its `-N` twins (all statuses but trash), the earliest kept
        and the others removed (an unseen draft deleted, anything else moved to the trash); a draft left by an
        interrupted attempt is finished with this publication's content (unless `complete` is False: a withdrawal
        must not publish what it is about to delete). `exclude` is not needed here: the slug is derived from the
        publication's own key, so no other publication's post carries it — and post ids are only unique within
        one site, so another site's ids in the ledger must not hide ours."""
        post = self._canonical(pub)
        if post is None:
            return None
        if complete and post.get("status") in ("draft", "pending"):
            log.info("portal: finishing draft %s left by an interrupted attempt for %s", post["id"], pub.key)
            images, video = self._ensure_media(pub)
            return self._ref(self._finish(post, pub, images, video), images, video)
        return self._ref(post)

    def server_window_s(self, pub: Publication) -> float:
        """Our longest timeout for `pub` (uploads when it carries media) plus the margin PHP may run past it."""
        transport = self.client.transport
        connect, read = transport.upload_timeout if (pub.media or pub.video) else transport.timeout
        return connect + read + self.server_margin_s

    def update(self, ref: RemoteRef, pub: Publication) -> RemoteRef:
        self._check_kind(pub)
        images, video = self._ensure_media(pub)
        fields = self._post_fields(pub, images, video, creating=False)
        if fields["status"] == "publish" and ref.extra.get("status") == "future":
            # No longer scheduled: without a new date WordPress would keep it `future` at the old date.
            fields["date_gmt"] = _wp_datetime(self.clock())
        post = self.client.update_post(int(ref.remote_id), fields)
        log.info("portal: updated post %s (%s) for %s", post["id"], post.get("status"), pub.key)
        return self._ref(post, images, video)

    def delete(self, ref: RemoteRef) -> None:
        """Move the post to the trash (recoverable by an editor); already trashed or gone counts as done."""
        try:
            self.client.trash_post(int(ref.remote_id))
        except NotFound as exc:
            log.info("portal: post %s already deleted (%s)", ref.remote_id, exc.code)
            return
        log.info("portal: moved post %s to the trash", ref.remote_id)

    def check(self) -> HealthReport:
        try:
            me = self.client.me()
        except ChannelError as exc:
            return HealthReport(CHANNEL, ok=False, detail=exc.operator_message)
        granted = tuple(sorted(cap for cap, on in (me.get("capabilities") or {}).items() if on))
        missing = tuple(cap for cap in REQUIRED_CAPABILITIES if cap not in granted)
        who = f"user '{me.get('slug') or self.client.user}' on {self.client.base_url}"
        if missing:
            return HealthReport(CHANNEL, ok=False, permissions=granted, missing_permissions=missing,
                                detail=f"{who} lacks {', '.join(missing)}: give it the Editor or Administrator role")
        return HealthReport(CHANNEL, ok=True, permissions=granted,
                            detail=f"{who} can upload media and publish posts")

    # --- extras --------------------------------------------------------------------------------------------
    def publish_now(self, ref: RemoteRef) -> RemoteRef:
        """Publish a scheduled (`future`) post at once, dated now: WP-cron only fires on a visit to the site."""
        post = self.client.update_post(int(ref.remote_id), {"status": "publish", "date_gmt": _wp_datetime(self.clock())})
        return self._ref(post)

    # --- exactly once: one post per slug --------------------------------------------------------------------
    def _canonical(self, pub: Publication) -> dict | None:
        """The earliest post with `pub`'s slug or a `-N` twin of it; the others are removed."""
        slug = pub.slug()
        slugs = [slug] + [f"{slug}-{n}" for n in range(2, TWIN_SLUGS + 2)]
        posts = sorted(self.client.find_posts(*slugs), key=lambda p: int(p["id"]))
        if not posts:
            return None
        keep, twins = posts[0], posts[1:]
        for twin in twins:
            log.warning("portal: post %s (%s, %s) is a twin of post %s for %s: removing it", twin["id"],
                        twin.get("status"), twin.get("slug"), keep["id"], pub.key)
            self._remove_twin(twin)
        return keep

    def _remove_twin(self, post: dict) -> None:
        try:
            if post.get("status") in ("draft", "pending"):
                self.client.delete_post(int(post["id"]))  # never seen by a reader: no trash clutter
            else:
                self.client.trash_post(int(post["id"]))  # it was public: recoverable by an editor
        except NotFound:
            log.info("portal: twin %s is already gone", post["id"])

    def _finish(self, post: dict, pub: Publication, images: list[UploadedMedia],
                video: UploadedMedia | None) -> dict:
        """Bring `post` (our draft, or an earlier post of the same publication) to this publication's content and
        status; publish by id."""
        return self.client.update_post(int(post["id"]), self._going_public(
            post, self._post_fields(pub, images, video, creating=False)))

    def _going_public(self, post: dict, fields: dict) -> dict:
        if fields["status"] == "publish" and post.get("status") != "publish":
            # Publishing a draft (or a no-longer-scheduled post): dated now, not when the draft was made.
            return {**fields, "date_gmt": _wp_datetime(self.clock())}
        return fields

    # --- helpers -------------------------------------------------------------------------------------------
    def _check_kind(self, pub: Publication) -> None:
        if pub.kind not in self.kinds:
            raise RejectedInput(CHANNEL, f"{pub.key}: the portal publishes {', '.join(self.kinds)}, not {pub.kind!r}",
                                param="kind")

    def _ensure_media(self, pub: Publication) -> tuple[list[UploadedMedia], UploadedMedia | None]:
        files = list(pub.media) + ([pub.video] if pub.video else [])
        existing = self.client.find_media(media_slug(f) for f in files) if files else {}
        uploaded: list[UploadedMedia] = []
        for media in files:
            caption = unicodedata.normalize("NFC", media.caption)
            item = existing.get(media_slug(media))
            if item is None:
                # WordPress stores and renders these as HTML: plain text goes in escaped.
                item = self.client.upload(media, slug=media_slug(media), title=html.escape(caption or media.filename),
                                          caption=html.escape(caption), alt_text=html.escape(caption))
                existing[media_slug(media)] = item
            else:
                log.info("portal: %s already uploaded as media %s", media.filename, item["id"])
            uploaded.append(UploadedMedia(id=int(item["id"]), source_url=item["source_url"],
                                          mime_type=item.get("mime_type", media.content_type),
                                          caption=caption, alt_text=caption))
        video = uploaded.pop() if pub.video else None
        return uploaded, video

    def _post_fields(self, pub: Publication, images: list[UploadedMedia], video: UploadedMedia | None, *,
                     creating: bool) -> dict:
        # WordPress renders title and excerpt as HTML as they are stored (an administrator's `unfiltered_html`
        # keeps any markup): our plain text is escaped, or a title with <script> is a stored XSS on the portal.
        fields = {
            "title": escape_text(pub.title),
            "content": render_content(pub, images, video),
            "excerpt": escape_text(pub.excerpt),
            **self._schedule(pub),
        }
        pictures = [image for image in images if not image.mime_type.startswith("video/")]
        if pictures:
            fields["featured_media"] = pictures[0].id
        elif not creating:
            fields["featured_media"] = 0  # the new version has no photo: drop the old featured image
        # On an update an empty list is meaningful (WordPress then falls back to the default category / no tags);
        # on a create it is just noise.
        for taxonomy, names in (("categories", pub.categories), ("tags", pub.tags)):
            if names or not creating:
                fields[taxonomy] = self.client.term_ids(taxonomy, names)
        return fields

    def _schedule(self, pub: Publication) -> dict:
        at = pub.publish_at_utc
        if at is not None and at - self.clock() >= SCHEDULE_MARGIN:
            return {"status": "future", "date_gmt": _wp_datetime(at)}
        return {"status": "publish"}

    def _ref(self, post: dict, images: list[UploadedMedia] | None = None,
             video: UploadedMedia | None = None) -> RemoteRef:
        extra = {"status": post.get("status"), "slug": post.get("slug"), "date_gmt": post.get("date_gmt"),
                 "scheduled": post.get("status") == "future"}
        if images is not None:
            extra["media_ids"] = [image.id for image in images]
            extra["video_id"] = video.id if video else None
            # the files' public addresses on the portal, in the article's order (the press kit links to these)
            extra["media"] = [{"id": m.id, "url": m.source_url, "mime_type": m.mime_type, "role": role}
                              for m, role in [*((i, "media") for i in images),
                                              *(((video, "main_video"),) if video else ())]]
        return RemoteRef(channel=CHANNEL, remote_id=str(post["id"]), url=post.get("link"), extra=extra)
