"""Where the board's facts come from, read cheaply enough to be asked every few seconds by every open board.

- the ingest gateway's live journal (`/api/live?event=`): who publishes, since when, sessions, stored segments;
- nginx-rtmp's `/stat` XML: bitrate, declared frame rate and size of each stream (one fetch per refresh);
- S3 (keys from `bridgecast.objects`): the launch's preflight table, the event's manifests (photos), the
  thumbnails the thumbnailer keeps;
- S3 again: the results report's `latest.json` and the `numbers.json` it points at (written by `bridgecast_report`);
- the publication ledger: what went out, what failed, with links; a staff post's frozen media list tells which
  points it shows.

Each read is cached for a few seconds (`TTLCache`), so ten boards open at once cost what one does; a manifest is
re-read only when its ETag changes. A source that fails is reported as such (`SourceError`), never guessed.
"""
from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import requests

from bridgecast.objects import board_key, is_manifest_key, launch_key, manifest_prefix, post_key, report_latest_key

LIVE_TTL_S = 2.0  # the board refreshes every 4 s: a 2 s cache keeps a drop visible within ~6 s
STORAGE_TTL_S = 5.0
HTTP_TIMEOUT_S = 4.0
THUMBNAILS_PREFIX = board_key("thumbnails/")
REPORT_TTL_S = 30.0  # the report is remade once a day: no need to look more often
REPORT_KINDS = {"html": "html_key", "pdf": "pdf_key"}  # what the board links to, and latest.json's field for it
SNAPSHOT_RETRY_S = 60.0  # a post without a frozen media list yet is looked at again after this long


class SourceError(RuntimeError):
    """One source of the board could not be read; the message says which and why (never a credential)."""


class TTLCache:
    """`get(key, ttl, load)`: the value loaded at most `ttl` seconds ago, else `load()` again. Failures are not
    cached, so a source that comes back is seen at the next refresh."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._values: dict = {}
        self._lock = threading.Lock()

    def get(self, key, ttl: float, load):
        now = self._clock()
        with self._lock:
            hit = self._values.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def forget(self, key) -> None:
        """Drop `key`: the next `get` loads it (after a change made here, like a steering decision)."""
        with self._lock:
            self._values.pop(key, None)


# --- nginx /stat ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stream:
    name: str
    publishing: bool
    bitrate_kbps: float
    fps: float | None  # what the publisher declared in its metadata (nginx does not count frames)
    width: int | None
    height: int | None


def parse_stat(xml_text: str, app: str = "live") -> dict[str, Stream]:
    """The streams of application `app` in nginx-rtmp's `/stat` XML (`rtmp_stat all`)."""
    out = {}
    for application in ET.fromstring(xml_text).iter("application"):
        if application.findtext("name") != app:
            continue
        for node in application.iter("stream"):
            video = node.find("meta/video")
            name = node.findtext("name") or ""
            out[name] = Stream(name=name, publishing=node.find("publishing") is not None,
                               bitrate_kbps=_number(node, "bw_in", float, 0.0) / 1000,
                               fps=_number(video, "frame_rate", float), width=_number(video, "width", int),
                               height=_number(video, "height", int))
    return out


def _number(node, tag: str, kind, default=None):
    text = node.findtext(tag) if node is not None else None
    try:
        return kind(text) if text not in (None, "") else default
    except ValueError:
        return default


# --- the sources ------------------------------------------------------------------------------------------------------
class Sources:
    """Every read the board makes, cached. `storage` is a `bridgecast.storage.Storage`; `ingest` the ingest
    Connection (gateway URL, admin token as password, `extra.stat_url`); `ledger` a `bridgecast.ledger.Ledger`."""

    def __init__(self, storage, ingest, ledger, *, cache: TTLCache | None = None):
        self.storage, self.ingest, self.ledger = storage, ingest, ledger
        self.cache = cache or TTLCache()
        self._http = requests.Session()
        self._manifests: dict[str, tuple[str, dict]] = {}  # key -> (ETag, manifest)
        self._snapshots: dict[str, tuple[float, list[str] | None]] = {}  # pub key -> (read at, media keys)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="board-s3")

    # ingest -----------------------------------------------------------------------------------------------------------
    def live(self, event_id: str) -> dict[str, dict]:
        def load():
            try:
                resp = self._http.get(f"{self.ingest.base_url()}/api/live", params={"event": event_id},
                                      headers={"Authorization": f"Bearer {self.ingest.password}"},
                                      timeout=HTTP_TIMEOUT_S)
                resp.raise_for_status()
                return {p["point_id"]: p for p in resp.json()["points"]}
            except (requests.RequestException, ValueError, KeyError) as exc:
                raise SourceError(f"ingest gateway {self.ingest.base_url()}: {type(exc).__name__}: "
                                  f"{_short(exc)}") from None

        return self.cache.get(("live", event_id), LIVE_TTL_S, load)

    def streams(self) -> dict[str, Stream]:
        def load():
            url = self.ingest.extra.get("stat_url")
            if not url:
                raise SourceError("the ingest Connection has no extra.stat_url (nginx /stat): bitrates unknown")
            try:
                resp = self._http.get(url, timeout=HTTP_TIMEOUT_S)
                resp.raise_for_status()
                return parse_stat(resp.text)
            except (requests.RequestException, ET.ParseError) as exc:
                raise SourceError(f"nginx /stat {url}: {type(exc).__name__}: {_short(exc)}") from None

        return self.cache.get("stat", LIVE_TTL_S, load)

    # S3 ----------------------------------------------------------------------------------------------------------------
    def preflight(self, event_id: str) -> dict | None:
        """The launch's go/no-go summary (`preflight.json`), None before the preflight has run."""
        def load():
            from botocore.exceptions import ClientError

            try:
                return self.storage.get_json(launch_key(event_id, "preflight.json"))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise SourceError(f"S3 preflight.json: {_short(exc)}") from None

        return self.cache.get(("preflight", event_id), STORAGE_TTL_S, load)

    def incidents(self, event_id: str) -> list[dict]:
        """The incidents `bridgecast.alerts` recorded (and mailed, once each) for the event."""
        def load():
            from bridgecast.alerts.incidents import incidents

            try:
                return incidents(self.storage, event_id)
            except Exception as exc:  # noqa: BLE001
                raise SourceError(f"S3 incidents of {event_id}: {type(exc).__name__}: {_short(exc)}") from None

        return self.cache.get(("incidents", event_id), STORAGE_TTL_S, load)

    def steering(self, event_id: str):
        """What staff decided from the board (`bridgecast.steering`): the T0, end and program point in force."""
        def load():
            from bridgecast import steering

            try:
                return steering.load(self.storage, event_id)
            except Exception as exc:  # noqa: BLE001
                raise SourceError(f"S3 steering of {event_id}: {type(exc).__name__}: {_short(exc)}") from None

        return self.cache.get(("steering", event_id), LIVE_TTL_S, load)

    def steering_changed(self, event_id: str) -> None:
        self.cache.forget(("steering", event_id))

    def relay(self, event_id: str) -> dict | None:
        """The fanpage relay's health (`relay.json`, written every 5 s by relay_program_feed)."""
        def load():
            try:
                return self.storage.get_json(launch_key(event_id, "relay.json"))
            except Exception:  # noqa: BLE001 - not started yet
                return None

        return self.cache.get(("relay", event_id), LIVE_TTL_S, load)

    def report(self, event_id: str) -> dict:
        """The newest results report: `{"latest": latest.json, "numbers": its numbers.json}`, both None before
        `bridgecast_report` has run for the event."""
        def load():
            latest = self._json_or_none(report_latest_key(event_id), "latest.json")
            if latest is None:
                return {"latest": None, "numbers": None}
            numbers = self._json_or_none(latest["numbers_key"], "numbers.json") if latest.get("numbers_key") else None
            return {"latest": latest, "numbers": numbers}

        return self.cache.get(("report", event_id), REPORT_TTL_S, load)

    def report_file(self, event_id: str, kind: str) -> tuple[dict, object] | None:
        """The newest report's HTML or PDF as S3 answers it (`Body` a stream, `ContentType`, `ContentLength`);
        None when there is no such report yet."""
        latest = self.report(event_id)["latest"]
        key = (latest or {}).get(REPORT_KINDS[kind])
        if not key:
            return None
        from botocore.exceptions import ClientError

        try:
            return self.storage.client.get_object(Bucket=self.storage.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise SourceError(f"S3 report {kind}: {_short(exc)}") from None

    def media_file(self, key: str) -> dict | None:
        """A stored file as S3 answers it (`Body` a stream); None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            return self.storage.client.get_object(Bucket=self.storage.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise SourceError(f"S3 {key}: {_short(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - unreachable S3
            raise SourceError(f"S3 {key}: {type(exc).__name__}: {_short(exc)}") from None

    def _json_or_none(self, key: str, label: str):
        from botocore.exceptions import ClientError

        try:
            return self.storage.get_json(key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise SourceError(f"S3 {label} of the report: {_short(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - unreachable S3, or a file that is not JSON
            raise SourceError(f"S3 {label} of the report: {type(exc).__name__}: {_short(exc)}") from None

    def manifests(self, event_id: str) -> list[dict]:
        """Every manifest of the event (one listing; only new or changed manifests are fetched)."""
        return self.cache.get(("manifests", event_id), STORAGE_TTL_S, lambda: self._load_manifests(event_id))

    def _load_manifests(self, event_id: str) -> list[dict]:
        try:
            listed = {o["Key"]: o["ETag"] for o in self.storage.list_keys(manifest_prefix(event_id))
                      if is_manifest_key(o["Key"])}
            stale = [k for k, etag in listed.items() if self._manifests.get(k, ("",))[0] != etag]
            for key, manifest in zip(stale, self._pool.map(self.storage.get_json, stale)):
                self._manifests[key] = (listed[key], manifest)
        except Exception as exc:  # noqa: BLE001 - boto3/botocore raise many types; all mean "S3 not readable now"
            raise SourceError(f"S3 manifests of {event_id}: {type(exc).__name__}: {_short(exc)}") from None
        return [self._manifests[k][1] for k in listed]

    def thumbnails(self) -> dict[str, datetime]:
        """When each stream's latest thumbnail was taken (S3 LastModified)."""
        def load():
            try:
                return {o["Key"][len(THUMBNAILS_PREFIX):].removesuffix(".jpg"): o["LastModified"]
                        for o in self.storage.list_keys(THUMBNAILS_PREFIX) if o["Key"].endswith(".jpg")}
            except Exception as exc:  # noqa: BLE001
                raise SourceError(f"S3 thumbnails: {type(exc).__name__}: {_short(exc)}") from None

        return self.cache.get("thumbnails", LIVE_TTL_S, load)

    def thumbnail(self, stream: str, version: str = "") -> bytes:
        """The stream's latest picture. Cached per `version` (the page's `?v=`): a newer version is never answered
        with the bytes of an older one, which the browser would then keep under the new URL."""
        return self.cache.get(("thumb", stream, version), LIVE_TTL_S,
                              lambda: self.storage.get_bytes(board_key(f"thumbnails/{stream}.jpg")))

    # the ledger -------------------------------------------------------------------------------------------------------
    def publications(self, event_id: str) -> list[dict]:
        """The event's ledger rows, each with `media_points`: the points whose photos the post carries."""
        return self.cache.get(("ledger", event_id), STORAGE_TTL_S, lambda: self._load_publications(event_id))

    def _load_publications(self, event_id: str) -> list[dict]:
        try:
            rows = self.ledger.rows(event_id)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors: the ledger database is unreachable
            raise SourceError(f"publication ledger: {type(exc).__name__}: {_short(exc)}") from None
        out = []
        for r in rows:
            media = self._post_media(event_id, r.pub_key)
            out.append({"channel": r.channel, "key": r.pub_key, "status": r.status, "url": r.url,
                        "error": r.last_error, "attempts": r.attempts,
                        "at": (r.published_at or r.updated_at).isoformat() if (r.published_at or r.updated_at)
                        else None,
                        "media_points": sorted({_point_of(event_id, k) for k in media or []} - {None})})
        return out

    def _post_media(self, event_id: str, pub_key: str) -> list[str] | None:
        """The media keys a staff post froze when it was published (`_posts/<key>/content.json`), cached."""
        cached = self._snapshots.get(pub_key)
        if cached and (cached[1] is not None or time.monotonic() - cached[0] < SNAPSHOT_RETRY_S):
            return cached[1]
        from botocore.exceptions import ClientError

        try:
            snapshot = self.storage.get_json(post_key(event_id, pub_key, "content.json"))
            media = [m.get("key") for m in snapshot.get("media", []) if isinstance(m, dict) and m.get("key")]
        except ClientError:
            media = None  # not a staff post (a launch publication), or not frozen yet
        except (ValueError, AttributeError):
            media = None
        self._snapshots[pub_key] = (time.monotonic(), media)
        return media


def _point_of(event_id: str, key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == event_id and not parts[1].startswith("_") else None


def _missing(exc) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
