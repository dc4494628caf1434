"""One post on one channel through the ledger — publish, update or withdraw — under a per-publication lock.

The ledger makes a rerun safe; the lock makes two *concurrent* attempts safe (a cleared task starting while a
retry still runs, two runs of the calendar, the calendar and an approved form run for the same calendar post): the
second one waits, then finds the first one's row and returns it. PostgreSQL: a transaction-scoped advisory lock
(released by the server if the holder dies). SQLite: an flock'ed file next to the database.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

from bridgecast.channels.base import PolicyBlocked
from bridgecast.ledger import CANCELLED, PUBLISHED, Ledger, cancel_once, publish_once
from bridgecast.posts.content import LIVE_LINK, PostContent, live_video_url, local_text, parse_utc, publication
from bridgecast.posts.media import artefact_key
from bridgecast.posts.planner import EXPIRED
from bridgecast.storage import Storage

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 600  # longer than the slowest publish (a 10-photo post on a slow link)


@contextlib.contextmanager
def publication_lock(ledger: Ledger, event_id: str, channel: str, key: str, timeout_s: float = LOCK_TIMEOUT_S):
    digest = hashlib.sha256(f"{event_id}\x00{channel}\x00{key}".encode()).digest()
    if ledger.engine.dialect.name == "postgresql":
        ident = int.from_bytes(digest[:8], "big", signed=True)
        with ledger.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ident})
            yield
        return
    folder = Path(os.environ.get("BRIDGECAST_VAR", "var")) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"publication-{digest.hex()[:24]}.lock", "w") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{channel}:{key} stayed locked by another attempt for {timeout_s:.0f}s")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def snapshot_key(event_id: str, pub_key: str) -> str:
    return artefact_key(event_id, pub_key, "content.json")


def save_snapshot(storage: Storage, event_id: str, content: PostContent, media: list[dict]) -> None:
    """What we are about to publish, kept so a later withdrawal can find it on the channel even after the post
    has disappeared from the calendar (reconcile needs the exact text)."""
    storage.put_json(snapshot_key(event_id, content.key), {"content": content.to_json(), "media": media})


def outcome_dict(outcome, content: PostContent, channel: str) -> dict:
    row = outcome.row
    published_at = row.published_at
    late = (published_at - content.publish_at).total_seconds() if published_at and outcome.action == "created" \
        else None
    ref = outcome.ref
    return {"key": content.key, "label": content.label, "channel": channel, "action": outcome.action,
            "status": row.status, "remote_id": ref.remote_id if ref else row.remote_id,
            "url": (ref.url if ref else None) or row.url, "scheduled": bool((ref.extra if ref else row.extra or {})
                                                                              .get("scheduled")),
            "publish_at": content.publish_at.isoformat(),
            "published_at": published_at.isoformat() if published_at else None,
            "late_s": round(late, 3) if late is not None else None}


class PastLateLimit(PolicyBlocked):
    """The post's `late_limit` has passed: it must not be created any more (raised before anything is sent)."""


class NotAfter:
    """`channel`, except that creating a post after `deadline` raises PastLateLimit instead of sending it.

    The one check that sees every row state: the ledger calls `publish` only once it has reconciled an earlier
    attempt in doubt (pending, unknown) and found nothing, so a post that did go out is recorded, and one that did
    not is never created late — whether the first try hit an outage, a retry came hours later or a wait ran long.
    Everything else (reconcile, update, delete…) is the channel's own."""

    def __init__(self, channel, deadline: datetime):
        self._channel, self.deadline = channel, deadline

    def __getattr__(self, name):
        return getattr(self._channel, name)

    def publish(self, pub):
        if datetime.now(timezone.utc) > self.deadline:
            raise PastLateLimit(self._channel.name, f"{pub.key}: past its late limit ({self.deadline.isoformat()}); "
                                                    "not published")
        return self._channel.publish(pub)


LIVE_WAIT_S = 60.0  # the live video is created at live setup, well before T0: a short wait covers a slow launch


def _live_url(ledger: Ledger, event, content: PostContent, wait_s: float = LIVE_WAIT_S) -> str | None:
    """For a `link: live` post, the live video's permalink from the ledger; nothing is sent without it (the task
    fails, says why and is retried)."""
    if content.link != LIVE_LINK:
        return None
    deadline = time.monotonic() + wait_s
    while (url := live_video_url(ledger.rows(event.id))) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"«{content.label}» links the launch's live video (link: live), which does not exist "
                               f"in the ledger for {event.id} yet — bridgecast_launch creates it at live setup; "
                               "nothing was posted, the task is retried")
        time.sleep(2)
    return url


def publish_content(event, content: PostContent, channel_name: str, media: list[dict], paths: dict[str, str], *,
                    ledger: Ledger, channel, storage: Storage, run_id: str | None = None) -> dict:
    pub = publication(event, content, channel_name, media, paths, live_url=_live_url(ledger, event, content))
    save_snapshot(storage, event.id, content, media)
    if content.late_limit is not None:
        channel = NotAfter(channel, content.publish_at + content.late_limit)
    with publication_lock(ledger, event.id, channel_name, content.key):
        called_at = datetime.now(timezone.utc)
        try:
            outcome = publish_once(ledger, channel, pub)
        except PastLateLimit:
            return expire(event, content, channel_name, ledger=ledger, run_id=run_id)
    result = outcome_dict(outcome, content, channel_name)
    # `call_late_s`: when the call to the channel left, against the minute (the precision of our timing);
    # `late_s`: when the channel had answered (adds uploads and the channel's own time).
    result["call_late_s"] = round((called_at - content.publish_at).total_seconds(), 3)
    log.info("%s '%s': %s (%s)", channel_name, content.label, outcome.action, result["url"] or result["remote_id"])
    return result


def expire(event, content: PostContent, channel_name: str, *, ledger: Ledger, run_id: str | None) -> dict:
    """Mark the publication `expired` (the plan reports it as missed from now on) and tell staff."""
    from bridgecast.posts.content import CHANNEL_LABELS
    from bridgecast.posts.notices import outcome_reported

    limit_min = content.late_limit.total_seconds() / 60
    why = (f"quá {limit_min:.0f} phút sau giờ đăng ({content.publish_at_words}) mà bài chưa lên được "
           f"{CHANNEL_LABELS.get(channel_name, channel_name)}, nên không đăng nữa (late_limit_minutes)")
    ledger.mark(event.id, channel_name, content.key, EXPIRED, why)
    log.error("%s '%s' expired: %s", channel_name, content.label, why)
    outcome_reported(content, outcome="late", outcome_text="QUÁ GIỜ — không đăng", run_id=run_id or "",
                     lines=[f"Bài «{content.title}» — QUÁ GIỜ, không đăng trên "
                            f"{CHANNEL_LABELS.get(channel_name, channel_name)}.",
                            f"Giờ đăng: {content.publish_at_words}; hạn chót: "
                            f"{local_text(content.publish_at + content.late_limit)}.",
                            "Nếu vẫn cần đăng, hãy thêm bài với id mới và giờ đăng mới."])
    return {"key": content.key, "label": content.label, "channel": channel_name, "action": "expired",
            "status": EXPIRED, "publish_at": content.publish_at.isoformat(), "reason": why}


def is_out(row, now: datetime | None = None) -> bool:
    """Has the audience seen it? A channel-scheduled item whose time has not come has not gone out."""
    if row.status != PUBLISHED:
        return False
    now = now or datetime.now(timezone.utc)
    extra = row.extra or {}
    if extra.get("scheduled") and extra.get("publish_at"):
        return parse_utc(extra["publish_at"]) <= now
    if extra.get("status") == "future" and extra.get("date_gmt"):
        return parse_utc(extra["date_gmt"] + "+00:00") <= now
    return True


def withdraw(event, key: str, channel_name: str, *, ledger: Ledger, channel, storage: Storage) -> dict:
    """Cancel a publication that has not gone out (a fanpage scheduled post is deleted); leave one that has."""
    base = {"key": key, "channel": channel_name}
    with publication_lock(ledger, event.id, channel_name, key):
        row = ledger.get(event.id, channel_name, key)
        if row is None:
            return {**base, "action": "nothing"}
        if row.status == CANCELLED:
            return {**base, "action": "cancelled", "status": CANCELLED}
        if is_out(row):
            log.warning("%s %s was removed from the calendar but is already published (%s): it is left as it is — "
                        "delete it on the channel by hand if it must go", channel_name, key, row.url or row.remote_id)
            return {**base, "action": "already-out", "status": row.status, "url": row.url}
        # No snapshot: never attempted through this code, so there is no text to look for on the channel.
        found = storage.exists(snapshot_key(event.id, key))
        snapshot = storage.get_json(snapshot_key(event.id, key)) if found else None
        if snapshot is None:
            if row.status == PUBLISHED:
                channel.delete(row.ref())
            elif row.status != "failed":
                raise RuntimeError(f"{channel_name} {key} is {row.status} and its content snapshot is missing: check "
                                   "the channel by hand, then clear this task")
            ledger.mark(event.id, channel_name, key, CANCELLED, "withdrawn from the calendar")
            return {**base, "action": "cancelled", "status": CANCELLED, "remote_id": row.remote_id}
        content = PostContent.from_json(snapshot["content"])
        outcome = cancel_once(ledger, channel, publication(event, content, channel_name, snapshot["media"]))
    log.info("%s %s withdrawn (%s)", channel_name, key, outcome.ref.remote_id if outcome and outcome.ref else "-")
    return {**base, "action": "cancelled", "status": CANCELLED,
            "remote_id": outcome.ref.remote_id if outcome and outcome.ref else None}
