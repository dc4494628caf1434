"""What every channel shares: the item to publish, the remote reference, the interface and typed errors.

Tasks never talk HTTP/SMTP themselves: they build a `Publication` and hand it to `bridgecast.ledger.publish_once`,
which drives a `Channel` so that reruns, retries and crashes never publish twice.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class MediaFile:
    """A file on the task's local disk (fetched from S3 inside the same task), ready to upload."""

    path: str
    filename: str  # ASCII, slugged: WordPress rejects filename*= and non-ASCII is a risk elsewhere
    content_type: str
    sha256: str
    caption: str = ""

    @classmethod
    def from_path(cls, path, content_type: str, caption: str = "") -> "MediaFile":
        """A local file as an upload: its name and its content hash (which channels use to find it again)."""
        return cls(path=str(path), filename=os.path.basename(path), content_type=content_type,
                   sha256=file_sha256(path), caption=caption)


def file_sha256(path) -> str:
    """SHA-256 of a file, read 1 MiB at a time (a recap video is gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Publication:
    """One thing to publish on one channel, identified by (event_id, key) forever."""

    event_id: str
    key: str  # stable publication key, e.g. "launch/recap-article" or "calendar/pre-announce-1"
    kind: str  # "article" (portal), "post" (text/link/photos), "video", "email"
    title: str
    body: str  # plain text with blank-line paragraphs; channels render it (HTML for portal/email)
    excerpt: str = ""
    media: tuple[MediaFile, ...] = ()
    video: MediaFile | None = None
    link: str | None = None
    publish_at: datetime | None = None  # aware; None = publish now
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()  # email only
    links: tuple[tuple[str, str], ...] = ()  # (label, url) pairs: the press kit's public media links

    def __post_init__(self):
        if self.publish_at is not None and self.publish_at.tzinfo is None:
            raise ValueError(f"publish_at of {self.key!r} must be timezone-aware, got a naive datetime")

    @property
    def publish_at_utc(self) -> datetime | None:
        return self.publish_at.astimezone(timezone.utc) if self.publish_at else None

    def payload_hash(self) -> str:
        """Hash of what the audience sees; a different hash on a published key means "update", never "post again"."""
        data = asdict(self)
        data["media"] = [m.sha256 for m in self.media]
        data["video"] = self.video.sha256 if self.video else None
        data["publish_at"] = self.publish_at_utc.isoformat() if self.publish_at else None
        return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def slug(self) -> str:
        """Deterministic, ASCII slug used by channels as a reconcile fallback (the ledger is the truth)."""
        digest = hashlib.sha256(f"{self.event_id}/{self.key}".encode()).hexdigest()[:10]
        return f"bc-{digest}"


@dataclass(frozen=True)
class RemoteRef:
    channel: str
    remote_id: str
    url: str | None = None
    extra: dict = field(default_factory=dict)  # e.g. media ids, scheduled=True


@dataclass(frozen=True)
class HealthReport:
    channel: str
    ok: bool
    detail: str  # operator-facing sentence
    permissions: tuple[str, ...] = ()
    missing_permissions: tuple[str, ...] = ()
    expires_at: datetime | None = None  # when the credential stops working (None: not known to expire)


class Channel(ABC):
    """A place we publish to. Implementations own their HTTP/SMTP session and map errors to the types below."""

    name: str
    supports_update: bool = True
    # True when `reconcile` lists the channel and removes twins: the ledger then re-checks after every create.
    compensates: bool = False

    @abstractmethod
    def publish(self, pub: Publication) -> RemoteRef:
        """Create the item remotely (scheduled if `pub.publish_at` is in the future and the channel schedules)."""

    @abstractmethod
    def find(self, pub: Publication) -> RemoteRef | None:
        """Reconcile: look for an item created for this publication by an earlier, unrecorded attempt."""

    @abstractmethod
    def update(self, ref: RemoteRef, pub: Publication) -> RemoteRef:
        """Bring an existing remote item in line with a changed payload."""

    @abstractmethod
    def delete(self, ref: RemoteRef) -> None:
        """Remove or cancel the remote item (e.g. a scheduled post that staff withdrew)."""

    @abstractmethod
    def check(self) -> HealthReport:
        """Preflight: credentials valid, permissions present. Never raises for an auth problem; reports it."""

    # --- exactly once (driven by bridgecast.ledger) ---------------------------------------------------------------
    def reconcile(self, pub: Publication, *, since: datetime | None = None, exclude: frozenset[str] = frozenset(),
                  complete: bool = True) -> RemoteRef | None:
        """After an attempt whose outcome is unknown: the ONE remote item of this publication, or None.

        Channels that can list what they hold override this to also compensate — remove the twins an earlier,
        unrecorded attempt left (keeping the oldest) and, when `complete`, finish a half-made item. `since`: no
        twin can be older than the publication's first attempt (minus clock skew); `exclude`: remote ids the
        ledger records for OTHER publications, never taken (nor deleted) as ours."""
        found = self.find(pub)
        return None if found is None or found.remote_id in exclude else found

    def server_window_s(self, pub: Publication) -> float:
        """How long after a request left us the service may still act on it: the longest client timeout of the
        calls `publish(pub)` makes plus a margin. The ledger never re-creates an item before an earlier attempt's
        window has passed (a timed-out or killed attempt may still be creating it on the server)."""
        return DEFAULT_SERVER_WINDOW_S


DEFAULT_SERVER_WINDOW_S = 120.0


# --- typed errors -----------------------------------------------------------------------------------------
class ChannelError(Exception):
    """Base: `operator_message` says what happened and what to do; never contains a secret. `unanswered`: the
    request left but no answer came back (timeout, connection lost) — the service may still be working on it."""

    retryable = False
    unanswered = False

    def __init__(self, channel: str, operator_message: str, *, code: str | int | None = None, status: int | None = None):
        super().__init__(f"[{channel}] {operator_message}")
        self.channel = channel
        self.operator_message = operator_message
        self.code = code
        self.status = status


class AuthError(ChannelError):
    """Token/password expired, revoked or wrong: renew the credential in the Airflow Connection."""


class PermissionMissing(ChannelError):
    def __init__(self, channel, operator_message, *, permission: str | None = None, **kw):
        super().__init__(channel, operator_message, **kw)
        self.permission = permission


class RateLimited(ChannelError):
    retryable = True

    def __init__(self, channel, operator_message, *, retry_after_s: float = 60.0, **kw):
        super().__init__(channel, operator_message, **kw)
        self.retry_after_s = retry_after_s


class RejectedInput(ChannelError):
    def __init__(self, channel, operator_message, *, param: str | None = None, **kw):
        super().__init__(channel, operator_message, **kw)
        self.param = param


class PolicyBlocked(ChannelError):
    """The platform blocked the action for policy reasons; a human must look at the account."""


class DuplicateRejected(ChannelError):
    """The platform says this was already posted: reconcile, do not treat as failure."""


class NotFound(ChannelError):
    pass


class Transient(ChannelError):
    retryable = True


def may_still_be_running(exc: BaseException) -> bool:
    """Can the request that raised `exc` still be acted on by the service? Yes when no answer came back, and for
    anything that is not a channel's typed answer (a kill, a signal, a bug mid-call): we cannot know."""
    return exc.unanswered if isinstance(exc, ChannelError) else True
