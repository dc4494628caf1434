"""The addresses staff follow from mails and from the Airflow UI: the board, Airflow's own pages, and the files
the board serves behind Airflow's login (post previews, processed photos, the results report).

Never a presigned S3 link: it carries the storage's access key id and internal address into mails, task logs and
XCom, and works for whoever holds it, logged in or not. Press and public get public addresses (the portal's media),
staff get these.
"""
from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

BOARD_PATH = "/bridgecast/board/"
MEDIA_PATH = "/bridgecast/api/media/"  # + an object key (`objects.is_staff_media_key`)
REPORT_PATH = "/bridgecast/api/report/"  # + html | pdf


_CACHE_S = 60.0  # a preview names two links per photo: one Connection lookup, not two dozen
_cached: tuple[float, str] | None = None


def ui_base() -> str:
    """The Airflow UI's address for a mail: `[api] base_url`, else the `bridgecast_airflow` Connection's; "" when
    neither is known (links are then paths, relative to the UI)."""
    global _cached
    if _cached and time.monotonic() - _cached[0] < _CACHE_S:
        return _cached[1]
    _cached = (time.monotonic(), _lookup_ui_base())
    return _cached[1]


def _lookup_ui_base() -> str:
    base = ""
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # outside Airflow: the Connection below
        base = ""
    if not base or base.rstrip("/").endswith(("localhost:8080", "localhost")):  # Airflow's default, not ours
        try:
            from bridgecast.connections import get_connection

            base = get_connection("bridgecast_airflow").base_url()
        except Exception:  # noqa: BLE001 - no Connection either: relative links
            base = base or ""
    return base.rstrip("/")


def ui_url(path: str) -> str:
    """An absolute address of a UI path ("/dags/…", "/bridgecast/…") for a mail; the path itself if it already is."""
    return path if urlsplit(path).scheme else ui_base() + path


def board_url(event_id: str | None = None) -> str:
    return ui_url(BOARD_PATH) + (f"?event={quote(event_id)}" if event_id else "")


def media_path(key: str) -> str:
    """The UI-relative path of a stored file for the Airflow UI's own pages (the approval request's Markdown): same
    origin, so the browser sends the UI's login with it. Prefixed with the UI's path when it is not served at /."""
    prefix = urlsplit(ui_base()).path.rstrip("/")
    return f"{prefix}{MEDIA_PATH}{quote(key)}"


def media_url(key: str) -> str:
    """The absolute address of a stored file for a staff mail (opens after the staff member logs in)."""
    return ui_base() + MEDIA_PATH + quote(key)


def report_url(event_id: str, kind: str) -> str:
    return ui_url(f"{REPORT_PATH}{kind}?event={quote(event_id)}")
