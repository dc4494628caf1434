"""The publication ledger: exactly-once publishing across reruns, retries and crashes.

Protocol (DESIGN.md): write `pending` before the side effect and the remote id after it. On a rerun a
`published` row is returned as is (or updated in place when the payload changed); a `pending`/`unknown`
row means an earlier attempt may have reached the channel, so we reconcile with the channel before trying
again. SQLite file by default, PostgreSQL by URL — same SQLAlchemy code.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (JSON, Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint,
                        create_engine, event, select, update)
from sqlalchemy.engine import Engine

from bridgecast.channels.base import (AuthError, Channel, ChannelError, DuplicateRejected, PermissionMissing,
                                      PolicyBlocked, Publication, RateLimited, RejectedInput, RemoteRef)

log = logging.getLogger(__name__)

PENDING, PUBLISHED, FAILED, UNKNOWN, CANCELLED = "pending", "published", "failed", "unknown", "cancelled"

# Errors raised before anything could have reached the audience: safe to mark `failed` and retry blindly later.
_NOT_SENT = (AuthError, PermissionMissing, PolicyBlocked, RateLimited, RejectedInput)

metadata = MetaData()
publications = Table(
    "bridgecast_publications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(120), nullable=False),
    Column("channel", String(40), nullable=False),
    Column("pub_key", String(300), nullable=False),
    Column("status", String(20), nullable=False),
    Column("remote_id", String(200)),
    Column("url", Text),
    Column("payload_hash", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("extra", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    UniqueConstraint("event_id", "channel", "pub_key", name="uq_publication"),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def default_url() -> str:
    url = os.environ.get("BRIDGECAST_LEDGER_URL")
    if url:
        return url
    var = Path(os.environ.get("BRIDGECAST_VAR", "var"))
    var.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(var / 'ledger.sqlite').resolve()}"


@dataclass(frozen=True)
class LedgerRow:
    event_id: str
    channel: str
    pub_key: str
    status: str
    remote_id: str | None
    url: str | None
    payload_hash: str | None
    attempts: int
    last_error: str | None
    extra: dict
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None

    def ref(self) -> RemoteRef:
        return RemoteRef(channel=self.channel, remote_id=self.remote_id or "", url=self.url, extra=self.extra or {})


@dataclass(frozen=True)
class Outcome:
    """What `publish_once` did: created | existing | updated | reconciled | cancelled."""

    action: str
    ref: RemoteRef | None
    row: LedgerRow


class Ledger:
    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.engine = engine or _engine(url or default_url())
        metadata.create_all(self.engine)

    # --- reads -------------------------------------------------------------------------------------------
    def get(self, event_id: str, channel: str, key: str) -> LedgerRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(publications).where(*_match(event_id, channel, key))).mappings().first()
        return _row(row) if row else None

    def rows(self, event_id: str | None = None, channel: str | None = None) -> list[LedgerRow]:
        query = select(publications).order_by(publications.c.id)
        if event_id:
            query = query.where(publications.c.event_id == event_id)
        if channel:
            query = query.where(publications.c.channel == channel)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).mappings()]

    # --- state transitions --------------------------------------------------------------------------------
    def mark_pending(self, event_id: str, channel: str, key: str, payload_hash: str) -> LedgerRow:
        """Record the intent before the side effect; counts the attempt."""
        now = _now()
        with self.engine.begin() as conn:
            existing = conn.execute(select(publications.c.id).where(*_match(event_id, channel, key))).first()
            if existing is None:
                conn.execute(publications.insert().values(
                    event_id=event_id, channel=channel, pub_key=key, status=PENDING, payload_hash=payload_hash,
                    attempts=1, extra={}, created_at=now, updated_at=now))
            else:
                conn.execute(update(publications).where(publications.c.id == existing.id).values(
                    status=PENDING, payload_hash=payload_hash, attempts=publications.c.attempts + 1,
                    updated_at=now))
        return self.get(event_id, channel, key)

    def mark_published(self, event_id: str, channel: str, key: str, ref: RemoteRef, payload_hash: str) -> LedgerRow:
        now = _now()
        self._set(event_id, channel, key, status=PUBLISHED, remote_id=ref.remote_id, url=ref.url,
                  extra=dict(ref.extra), payload_hash=payload_hash, last_error=None, published_at=now)
        return self.get(event_id, channel, key)

    def mark(self, event_id: str, channel: str, key: str, status: str, error: str | None = None) -> LedgerRow:
        self._set(event_id, channel, key, status=status, last_error=error)
        return self.get(event_id, channel, key)

    def _set(self, event_id, channel, key, **values):
        values["updated_at"] = _now()
        with self.engine.begin() as conn:
            conn.execute(update(publications).where(*_match(event_id, channel, key)).values(**values))


def publish_once(ledger: Ledger, channel: Channel, pub: Publication) -> Outcome:
    """Publish `pub` on `channel` at most once, whatever happened to earlier attempts."""
    payload_hash = pub.payload_hash()
    row = ledger.get(pub.event_id, channel.name, pub.key)

    if row and row.status == CANCELLED:
        return Outcome("cancelled", None, row)

    if row and row.status in (PENDING, UNKNOWN):
        # An earlier attempt may have reached the channel and died before recording it.
        found = channel.find(pub)
        if found is not None:
            log.info("reconciled %s/%s with remote item %s", channel.name, pub.key, found.remote_id)
            row = ledger.mark_published(pub.event_id, channel.name, pub.key, found, row.payload_hash or payload_hash)
            if row.payload_hash == payload_hash:
                return Outcome("reconciled", found, row)

    if row and row.status == PUBLISHED:
        if row.payload_hash == payload_hash:
            return Outcome("existing", row.ref(), row)
        if not channel.supports_update:
            log.warning("%s cannot update published items; %s keeps its first version", channel.name, pub.key)
            return Outcome("existing", row.ref(), row)
        ref = channel.update(row.ref(), pub)
        row = ledger.mark_published(pub.event_id, channel.name, pub.key, ref, payload_hash)
        return Outcome("updated", ref, row)

    ledger.mark_pending(pub.event_id, channel.name, pub.key, payload_hash)
    try:
        ref = channel.publish(pub)
    except DuplicateRejected:
        ref = channel.find(pub)
        if ref is None:
            ledger.mark(pub.event_id, channel.name, pub.key, UNKNOWN, "channel reported a duplicate it cannot show")
            raise
    except _NOT_SENT as exc:
        ledger.mark(pub.event_id, channel.name, pub.key, FAILED, exc.operator_message)
        raise
    except ChannelError as exc:
        ledger.mark(pub.event_id, channel.name, pub.key, UNKNOWN, exc.operator_message)
        raise
    except BaseException as exc:  # timeouts, crashes, kills: we cannot know whether it went out
        ledger.mark(pub.event_id, channel.name, pub.key, UNKNOWN, f"{type(exc).__name__}: {exc}"[:500])
        raise
    row = ledger.mark_published(pub.event_id, channel.name, pub.key, ref, payload_hash)
    return Outcome("created", ref, row)


def cancel_once(ledger: Ledger, channel: Channel, pub: Publication) -> Outcome | None:
    """Withdraw a publication (e.g. a calendar post removed before its time). Idempotent."""
    row = ledger.get(pub.event_id, channel.name, pub.key)
    if row is None:
        return None
    if row.status == CANCELLED:
        return Outcome("cancelled", None, row)
    ref = row.ref() if row.status == PUBLISHED else channel.find(pub)
    if ref is not None and ref.remote_id:
        channel.delete(ref)
    row = ledger.mark(pub.event_id, channel.name, pub.key, CANCELLED)
    return Outcome("cancelled", ref, row)


def _match(event_id, channel, key):
    c = publications.c
    return c.event_id == event_id, c.channel == channel, c.pub_key == key


def _row(m) -> LedgerRow:
    def aware(value):
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value

    return LedgerRow(
        event_id=m["event_id"], channel=m["channel"], pub_key=m["pub_key"], status=m["status"],
        remote_id=m["remote_id"], url=m["url"], payload_hash=m["payload_hash"], attempts=m["attempts"],
        last_error=m["last_error"], extra=m["extra"] or {}, created_at=aware(m["created_at"]),
        updated_at=aware(m["updated_at"]), published_at=aware(m["published_at"]))


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record):  # concurrent task processes: readers must not block the writer
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

        return engine
    return create_engine(url, pool_pre_ping=True)
