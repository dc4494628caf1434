"""The publication ledger: exactly-once publishing across reruns, retries, crashes and concurrent attempts.

Protocol (DESIGN.md, issue 11). One row per (event, channel, publication key) holds the status and a **lease**:
- Every attempt that may call the channel first takes the row's lease (owner = host/pid/nonce + Airflow try, expiry),
  atomically: an INSERT, or an UPDATE that compares the lease version it read. While another attempt holds an
  unexpired lease it waits (bounded), then fails with `PublicationInProgress` (retryable) — it never calls the
  channel. A live holder renews its lease from a heartbeat thread; a killed one stops renewing, and on this host a
  dead owner is recognised at once (its process is gone).
- Status moves only by compare-and-set under the lease (`UPDATE … WHERE lease_owner = me AND status IN …`):
  claimed → pending (write the intent, then call) → published | failed | unknown; cancelled is final.
- Before re-creating after an attempt whose outcome is unknown we reconcile with the channel (`Channel.reconcile`:
  find the item, remove twins, finish a half-made one), and we never re-create before the earlier attempt's
  server-side deadline (`call_deadline_at`: its lease expiry or the end of its failed call, plus the channel's
  `server_window_s`) has passed: a timed-out or killed request may still be creating the item on the server.

SQLite file by default, PostgreSQL by URL — same SQLAlchemy code; an older table gains the lease columns on open.
Times come from this machine's clock (UTC): hosts sharing a ledger must keep NTP time, and the windows carry margin.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import (JSON, Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint,
                        create_engine, event, inspect, select, text, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from bridgecast.channels.base import (AuthError, Channel, ChannelError, DuplicateRejected, PermissionMissing,
                                      PolicyBlocked, Publication, RateLimited, RejectedInput, RemoteRef,
                                      may_still_be_running)

log = logging.getLogger(__name__)

PENDING, PUBLISHED, FAILED, UNKNOWN, CANCELLED = "pending", "published", "failed", "unknown", "cancelled"

# The launch's live video, as other features find it in the ledger (a post that links "the live"): its row's `url`
# is the live's permalink, recorded when it is created.
LIVE_VIDEO_CHANNEL, LIVE_VIDEO_KEY = "fanpage", "launch/live-video"
CLAIMED = "claimed"  # a new row whose lease holder has not sent anything yet

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
    # --- the lease (added in place to older tables by `_add_missing_columns`) ---
    Column("lease_owner", String(200)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("call_deadline_at", DateTime(timezone=True)),  # before this, an earlier call may still act on the server
    Column("lease_version", Integer, nullable=False, default=0, server_default="0"),  # bumped by every lease write
    UniqueConstraint("event_id", "channel", "pub_key", name="uq_publication"),
)


# Where an interrupted upload (the fanpage's chunked video protocol) keeps its session id and offset, so a retry —
# on whichever worker picks it up — continues it instead of sending gigabytes again. Never a worker's disk.
upload_sessions = Table(
    "bridgecast_upload_sessions",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def default_url() -> str:
    """`BRIDGECAST_LEDGER_URL`; without it a SQLite file in this machine's var/ — which only a LocalExecutor (every
    task on this machine) can share, so it is refused when tasks may run on other workers."""
    url = os.environ.get("BRIDGECAST_LEDGER_URL")
    if url:
        return url
    executor = _executor()
    if executor and "LocalExecutor" not in executor:
        raise RuntimeError(f"the publication ledger needs BRIDGECAST_LEDGER_URL (a PostgreSQL URL) with {executor}: "
                           "a SQLite file on one worker is invisible to the others, and a rerun there would post "
                           "again")
    var = Path(os.environ.get("BRIDGECAST_VAR", "var"))
    var.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(var / 'ledger.sqlite').resolve()}"


def _executor() -> str:
    """The configured Airflow executor ("" outside Airflow)."""
    try:
        from airflow.configuration import conf

        return conf.get("core", "executor", fallback="") or ""
    except Exception:  # noqa: BLE001 - no Airflow here: the environment says it, or nothing does
        return os.environ.get("AIRFLOW__CORE__EXECUTOR", "")


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
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    call_deadline_at: datetime | None = None
    lease_version: int = 0

    def ref(self) -> RemoteRef:
        return RemoteRef(channel=self.channel, remote_id=self.remote_id or "", url=self.url, extra=self.extra or {})


@dataclass(frozen=True)
class Outcome:
    """What `publish_once` did: created | existing | updated | reconciled | cancelled."""

    action: str
    ref: RemoteRef | None
    row: LedgerRow


# --- typed errors ---------------------------------------------------------------------------------------------------
class PublicationInProgress(ChannelError):
    """Another attempt holds this publication, or an earlier attempt's call may still be running on the server:
    nothing was sent. Retry after `retry_after_s`."""

    retryable = True

    def __init__(self, channel: str, operator_message: str, *, retry_after_s: float, holder: str | None = None):
        super().__init__(channel, operator_message, code="in_progress")
        self.retry_after_s = retry_after_s
        self.holder = holder


class LeaseLost(ChannelError):
    """Our lease expired and another attempt took the publication over; it reconciles what we did."""

    retryable = True


# --- who holds a lease ----------------------------------------------------------------------------------------------
def _host_identity() -> str:
    """This machine AND this PID namespace: a pid can only be judged alive or dead from inside the same namespace
    (two containers may share a hostname and a kernel)."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            parts.append(Path(path).read_text().strip())
        except OSError:
            pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


HOST = _host_identity()


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a reused pid from the original), "Z" for a zombie, None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return "Z" if fields[0] in ("Z", "X") else fields[19]


def _airflow_try() -> str:
    """`dag/task/run/try` of the Airflow task running this code, when Airflow says so in the environment."""
    names = ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_TASK_ID", "AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TRY_NUMBER")
    values = [os.environ.get(n, "") for n in names]
    return "/".join(values) if any(values) else ""


def new_owner(label: str | None = None) -> str:
    """A lease owner: `<host>:<pid>:<process start>:<nonce> <airflow try>` — unique per attempt, readable by staff."""
    pid = os.getpid()
    label = label if label is not None else _airflow_try()
    owner = f"{HOST}:{pid}:{_process_start(pid) or 0}:{uuid.uuid4().hex[:12]}"
    return f"{owner} {label}"[:200] if label else owner


def owner_is_dead(owner: str) -> bool:
    """True only when `owner` is provably gone: same host and PID namespace, and its process no longer runs."""
    try:
        host, pid, started, _nonce = owner.split(" ", 1)[0].split(":")
    except ValueError:
        return False
    if host != HOST or not Path("/proc/self/stat").exists():
        return False
    now_started = _process_start(int(pid))
    return now_started is None or now_started == "Z" or now_started != started


@dataclass(frozen=True)
class LeasePolicy:
    ttl_s: float = 60.0  # a lease not renewed for this long is abandoned; the heartbeat renews it every ttl/3
    wait_s: float = 60.0  # how long an attempt waits for another one (or an earlier call's deadline) before failing
    poll_s: float = 0.5
    lookback_s: float = 600.0  # twins are searched from the row's creation minus this (clock skew between hosts)


# --- the ledger -----------------------------------------------------------------------------------------------------
class Ledger:
    def __init__(self, url: str | None = None, engine: Engine | None = None, *, policy: LeasePolicy | None = None):
        self.engine = engine or _engine(url or default_url())
        self.policy = policy or LeasePolicy()
        _create_table(self.engine)
        _add_missing_columns(self.engine)

    def upload_session(self, name: str) -> "UploadSession":
        """The resume state of one interrupted upload (`name`: channel, page and publication), in this database."""
        return UploadSession(self.engine, name)

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

    def remote_ids(self, channel: str, *, except_for: tuple[str, str]) -> frozenset[str]:
        """Remote ids recorded for the channel's other publications: a reconcile must never take one as its own."""
        c = publications.c
        event_id, key = except_for
        query = select(c.remote_id, c.event_id, c.pub_key).where(c.channel == channel, c.remote_id.is_not(None))
        with self.engine.connect() as conn:
            return frozenset(r.remote_id for r in conn.execute(query) if (r.event_id, r.pub_key) != (event_id, key))

    # --- state transitions --------------------------------------------------------------------------------
    # Without `owner` these write unconditionally (tools, tests, the posts feature's withdrawal under its own lock);
    # with it they are compare-and-set under that owner's lease and raise LeaseLost when it is not held any more.
    def mark_pending(self, event_id: str, channel: str, key: str, payload_hash: str, *, owner: str | None = None,
                     call_deadline_at: datetime | None = None) -> LedgerRow:
        """Record the intent before the side effect; counts the attempt."""
        now = _now()
        values = dict(status=PENDING, payload_hash=payload_hash, attempts=publications.c.attempts + 1,
                      updated_at=now)
        if owner is not None:
            values["call_deadline_at"] = call_deadline_at
            self._cas(event_id, channel, key, owner, (CLAIMED, FAILED, UNKNOWN, PENDING), **values)
            return self.get(event_id, channel, key)
        with self.engine.begin() as conn:
            existing = conn.execute(select(publications.c.id).where(*_match(event_id, channel, key))).first()
            if existing is None:
                conn.execute(publications.insert().values(
                    event_id=event_id, channel=channel, pub_key=key, status=PENDING, payload_hash=payload_hash,
                    attempts=1, extra={}, created_at=now, updated_at=now, lease_version=0))
            else:
                conn.execute(update(publications).where(publications.c.id == existing.id).values(**values))
        return self.get(event_id, channel, key)

    def mark_published(self, event_id: str, channel: str, key: str, ref: RemoteRef, payload_hash: str, *,
                       owner: str | None = None) -> LedgerRow:
        values = dict(status=PUBLISHED, remote_id=ref.remote_id, url=ref.url, extra=dict(ref.extra),
                      payload_hash=payload_hash, last_error=None, published_at=_now())
        if owner is not None:
            self._cas(event_id, channel, key, owner, (PENDING, UNKNOWN, PUBLISHED), **values)
        else:
            self._set(event_id, channel, key, **values)
        return self.get(event_id, channel, key)

    def mark(self, event_id: str, channel: str, key: str, status: str, error: str | None = None, *,
             owner: str | None = None) -> LedgerRow:
        if owner is not None:
            allowed = (CLAIMED, PENDING, UNKNOWN, FAILED, PUBLISHED) if status == CANCELLED else (PENDING,)
            self._cas(event_id, channel, key, owner, allowed, status=status, last_error=error)
        else:
            self._set(event_id, channel, key, status=status, last_error=error)
        return self.get(event_id, channel, key)

    def _set(self, event_id, channel, key, **values):
        values["updated_at"] = _now()
        with self.engine.begin() as conn:
            conn.execute(update(publications).where(*_match(event_id, channel, key)).values(**values))

    def _cas(self, event_id, channel, key, owner: str, statuses: tuple[str, ...], **values) -> None:
        values["updated_at"] = _now()
        c = publications.c
        with self.engine.begin() as conn:
            done = conn.execute(update(publications).where(
                *_match(event_id, channel, key), c.lease_owner == owner, c.status.in_(statuses)).values(**values))
        if done.rowcount != 1:
            row = self.get(event_id, channel, key)
            raise LeaseLost(channel, f"{key}: cannot move to {values.get('status')}: the row is "
                                     f"{row.status if row else 'gone'} and its lease is held by "
                                     f"{(row.lease_owner if row else None) or 'nobody'}, not by this attempt "
                                     f"({owner}); the attempt holding it reconciles")

    # --- leases -------------------------------------------------------------------------------------------
    @contextmanager
    def lease(self, event_id: str, channel: str, key: str, *, window_s: float, owner: str | None = None,
              wait_s: float | None = None):
        """Hold the publication's lease for the block (renewed by a heartbeat), released at the end."""
        held = self.acquire(event_id, channel, key, window_s=window_s, owner=owner, wait_s=wait_s)
        heartbeat = _Heartbeat(held)
        heartbeat.start()
        try:
            yield held
        finally:
            heartbeat.stop()
            held.release()

    def acquire(self, event_id: str, channel: str, key: str, *, window_s: float, owner: str | None = None,
                wait_s: float | None = None) -> "Lease":
        owner = owner or new_owner()
        wait_s = self.policy.wait_s if wait_s is None else wait_s
        give_up = time.monotonic() + wait_s
        while True:
            lease = self._try_claim(event_id, channel, key, owner, window_s)
            if isinstance(lease, Lease):
                return lease
            if lease is None:
                continue  # another attempt wrote the row between our read and our write: look again
            holder, expires = lease
            if time.monotonic() >= give_up:
                left = max(1.0, (expires - _now()).total_seconds()) if expires else self.policy.ttl_s
                raise PublicationInProgress(channel, f"{key} is being published by another attempt ({holder}) "
                                                     f"whose lease runs until {expires:%H:%M:%S} UTC: nothing was "
                                                     f"sent; retry after it", retry_after_s=left, holder=holder)
            time.sleep(self.policy.poll_s)

    def _try_claim(self, event_id, channel, key, owner, window_s):
        """One claim: a Lease, (holder, expiry) of the live lease that stands in the way, or None (lost a race)."""
        now = _now()
        c = publications.c
        with self.engine.connect() as conn:
            row = conn.execute(select(publications).where(*_match(event_id, channel, key))).mappings().first()
        expires = now + timedelta(seconds=self.policy.ttl_s)
        if row is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(publications.insert().values(
                        event_id=event_id, channel=channel, pub_key=key, status=CLAIMED, attempts=0, extra={},
                        created_at=now, updated_at=now, lease_owner=owner, lease_expires_at=expires,
                        lease_version=1))
            except IntegrityError:
                return None  # another attempt inserted first
            return Lease(self, self.get(event_id, channel, key), owner, window_s, taken_from=None)
        seen = _row(row)
        holder = seen.lease_owner
        dead = bool(holder) and owner_is_dead(holder)
        if holder and not dead and seen.lease_expires_at and seen.lease_expires_at > now:
            return holder, seen.lease_expires_at
        deadline = seen.call_deadline_at
        if dead and deadline is not None and seen.lease_expires_at is not None:
            # Its process is gone now, so every request it sent left before now: its deadline is at most now plus
            # its own window (which it recorded as deadline − lease expiry).
            its_window = max(timedelta(0), deadline - seen.lease_expires_at)
            deadline = min(deadline, now + its_window)
        with self.engine.begin() as conn:
            done = conn.execute(update(publications).where(c.id == row["id"], c.lease_version == seen.lease_version)
                                .values(lease_owner=owner, lease_expires_at=expires, call_deadline_at=deadline,
                                        lease_version=seen.lease_version + 1))
        if done.rowcount != 1:
            return None
        if holder:
            log.warning("%s/%s: took over the lease of %s (%s)", channel, key, holder,
                        "its process is gone" if dead else f"expired {seen.lease_expires_at:%H:%M:%S} UTC")
        return Lease(self, self.get(event_id, channel, key), owner, window_s, taken_from=holder)


class Lease:
    """This attempt's hold on one publication: its transitions are compare-and-set on `owner`."""

    def __init__(self, ledger: Ledger, row: LedgerRow, owner: str, window_s: float, *, taken_from: str | None):
        self.ledger, self.row, self.owner, self.window_s = ledger, row, owner, window_s
        self.taken_from = taken_from
        self.expires_at = row.lease_expires_at
        self.deadline: datetime | None = row.call_deadline_at  # server-side deadline of the latest call
        self.in_call = False
        self.lock = threading.Lock()

    @property
    def ids(self) -> tuple[str, str, str]:
        return self.row.event_id, self.row.channel, self.row.pub_key

    def __repr__(self) -> str:
        return f"Lease({'/'.join(self.ids)}, owner={self.owner!r})"

    # --- transitions ---------------------------------------------------------------------------------------
    def mark_pending(self, payload_hash: str) -> LedgerRow:
        with self.lock:
            self.deadline = _later(self.deadline, self.expires_at + timedelta(seconds=self.window_s))
            deadline = self.deadline
        self.row = self.ledger.mark_pending(*self.ids, payload_hash, owner=self.owner, call_deadline_at=deadline)
        return self.row

    def mark_published(self, ref: RemoteRef, payload_hash: str) -> LedgerRow:
        self.row = self.ledger.mark_published(*self.ids, ref, payload_hash, owner=self.owner)
        return self.row

    def mark(self, status: str, error: str | None = None) -> LedgerRow:
        self.row = self.ledger.mark(*self.ids, status, error, owner=self.owner)
        return self.row

    @contextmanager
    def calling(self):
        """Around a call that creates something: while it runs the heartbeat keeps its server-side deadline ahead;
        after it, the deadline is now (an answer came) or now + the window (no answer: it may still run)."""
        with self.lock:
            self.in_call = True
        try:
            yield
        except BaseException as exc:
            self._end_call(window=may_still_be_running(exc))
            raise
        self._end_call(window=False)

    def _end_call(self, *, window: bool) -> None:
        with self.lock:
            self.in_call = False
            end = _now() + timedelta(seconds=self.window_s if window else 0)
            self.deadline = end if window else min(self.deadline or end, end)
            deadline = self.deadline
        # Recorded at once: if this process dies before releasing, the next attempt waits no longer than needed.
        c = publications.c
        try:
            with self.ledger.engine.begin() as conn:
                conn.execute(update(publications).where(*_match(*self.ids), c.lease_owner == self.owner)
                             .values(call_deadline_at=deadline))
        except Exception as exc:  # noqa: BLE001 - the heartbeat or the release writes it later
            log.debug("could not record the call deadline of %s yet (%s)", self.row.pub_key, type(exc).__name__)

    # --- lease upkeep --------------------------------------------------------------------------------------
    def renew(self) -> None:
        now = _now()
        with self.lock:
            expires = now + timedelta(seconds=self.ledger.policy.ttl_s)
            if self.in_call:
                self.deadline = _later(self.deadline, expires + timedelta(seconds=self.window_s))
            deadline = self.deadline
        c = publications.c
        with self.ledger.engine.begin() as conn:
            done = conn.execute(update(publications).where(*_match(*self.ids), c.lease_owner == self.owner).values(
                lease_expires_at=expires, call_deadline_at=deadline, lease_version=c.lease_version + 1))
        if done.rowcount != 1:
            raise LeaseLost(self.row.channel, f"{self.row.pub_key}: the lease of {self.owner} was taken over")
        with self.lock:
            self.expires_at = expires

    def release(self) -> None:
        """Give the lease back, keeping the server-side deadline of our last call for whoever comes next."""
        c = publications.c
        try:
            with self.ledger.engine.begin() as conn:
                conn.execute(update(publications).where(*_match(*self.ids), c.lease_owner == self.owner).values(
                    lease_owner=None, lease_expires_at=None, call_deadline_at=self.deadline,
                    lease_version=c.lease_version + 1))
        except Exception as exc:  # noqa: BLE001 - the lease then simply expires; never mask the task's own error
            log.warning("could not release the lease on %s (%s): it expires by itself", "/".join(self.ids),
                        type(exc).__name__)

    def wait_for_earlier_call(self, budget_s: float) -> bool:
        """If an earlier attempt's call may still act on the server, sleep until its deadline (within the budget)
        and return True; False when there is nothing to wait for. PublicationInProgress when it is too far off."""
        left = (self.deadline - _now()).total_seconds() if self.deadline else 0.0
        if left <= 0:
            return False
        if left > budget_s:
            raise PublicationInProgress(self.row.channel, f"{self.row.pub_key}: an earlier attempt's call may still "
                                                          f"be creating it on the server until "
                                                          f"{self.deadline:%H:%M:%S} UTC and it is not there yet: "
                                                          "nothing was sent; retry after that time",
                                        retry_after_s=left)
        log.info("%s: not on the channel yet, and an earlier call may still act until %s UTC: waiting %.1f s",
                 "/".join(self.ids), f"{self.deadline:%H:%M:%S}", left)
        time.sleep(left + 0.05)
        return True


class _Heartbeat(threading.Thread):
    """Renews a lease every ttl/3 while its attempt runs (a killed attempt stops renewing, and its lease expires)."""

    def __init__(self, lease: Lease):
        super().__init__(name=f"lease-{lease.row.pub_key}", daemon=True)
        self.lease = lease
        self.interval = max(0.2, lease.ledger.policy.ttl_s / 3)
        self._stopped = threading.Event()  # not `_stop`: threading.Thread has a method of that name

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.lease.renew()
            except LeaseLost as exc:
                log.error("%s", exc.operator_message)
                return
            except Exception as exc:  # noqa: BLE001 - a ledger hiccup: the next beat tries again before expiry
                log.warning("could not renew the lease on %s (%s)", self.lease.row.pub_key, type(exc).__name__)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=30)


# --- publishing -----------------------------------------------------------------------------------------------------
def publish_once(ledger: Ledger, channel: Channel, pub: Publication, *, owner: str | None = None,
                 wait_s: float | None = None) -> Outcome:
    """Publish `pub` on `channel` at most once, whatever happened to earlier or concurrent attempts.

    `wait_s` (default: the ledger's policy) bounds each wait — for another attempt's lease, and for an earlier
    call's server-side deadline; past it, `PublicationInProgress` (retryable, nothing sent)."""
    payload_hash = pub.payload_hash()
    row = ledger.get(pub.event_id, channel.name, pub.key)
    if row and row.status == CANCELLED:
        return Outcome("cancelled", None, row)
    if row and row.status == PUBLISHED and row.payload_hash == payload_hash:
        return Outcome("existing", row.ref(), row)  # nothing to call: no lease needed
    with ledger.lease(pub.event_id, channel.name, pub.key, window_s=channel.server_window_s(pub), owner=owner,
                      wait_s=wait_s) as lease:
        return _publish_leased(ledger, channel, pub, payload_hash, lease, wait_s)


def _publish_leased(ledger: Ledger, channel: Channel, pub: Publication, payload_hash: str, lease: Lease,
                    wait_s: float | None) -> Outcome:
    row = lease.row
    if row.status == CANCELLED:
        return Outcome("cancelled", None, row)

    if row.status in (PENDING, UNKNOWN):
        # An earlier attempt may have reached the channel (or may still be reaching it) and died unrecorded.
        found = _reconcile(ledger, channel, pub, lease, wait_s)
        if found is not None:
            log.info("reconciled %s/%s with remote item %s", channel.name, pub.key, found.remote_id)
            row = lease.mark_published(found, row.payload_hash or payload_hash)
            if row.payload_hash == payload_hash:
                return Outcome("reconciled", found, row)

    if row.status == PUBLISHED:
        if row.payload_hash == payload_hash:
            return Outcome("existing", row.ref(), row)
        if not channel.supports_update:
            log.warning("%s cannot update published items; %s keeps its first version", channel.name, pub.key)
            return Outcome("existing", row.ref(), row)
        ref = channel.update(row.ref(), pub)
        row = lease.mark_published(ref, payload_hash)
        return Outcome("updated", ref, row)

    lease.mark_pending(payload_hash)
    try:
        with lease.calling():
            ref = channel.publish(pub)
    except DuplicateRejected:
        ref = channel.reconcile(pub, since=_since(ledger, lease), exclude=_others(ledger, channel, pub))
        if ref is None:
            _mark_after_failure(lease, UNKNOWN, "channel reported a duplicate it cannot show")
            raise
    except _NOT_SENT as exc:
        _mark_after_failure(lease, FAILED, exc.operator_message)
        raise
    except ChannelError as exc:
        _mark_after_failure(lease, UNKNOWN, exc.operator_message)
        raise
    except BaseException as exc:  # timeouts, crashes, kills: we cannot know whether it went out
        _mark_after_failure(lease, UNKNOWN, f"{type(exc).__name__}: {exc}"[:500])
        raise
    ref = _verify_created(ledger, channel, pub, lease, ref)
    row = lease.mark_published(ref, payload_hash)
    return Outcome("created", ref, row)


def _verify_created(ledger: Ledger, channel: Channel, pub: Publication, lease: Lease, ref: RemoteRef) -> RemoteRef:
    """Re-check after a create: if an earlier attempt's item surfaced meanwhile (a call that outlived its window),
    the channel keeps the earliest and removes the rest. Best effort: our item exists, so a failed check must not
    turn the publish into a failure."""
    if not channel.compensates:
        return ref
    try:
        kept = channel.reconcile(pub, since=_since(ledger, lease), exclude=_others(ledger, channel, pub))
    except ChannelError as exc:
        log.warning("%s/%s: created %s; the twin check failed (%s)", channel.name, pub.key, ref.remote_id,
                    exc.operator_message)
        return ref
    if kept is None or kept.remote_id == ref.remote_id:
        return ref
    log.warning("%s/%s: an earlier item %s surfaced while we created %s; kept %s", channel.name, pub.key,
                kept.remote_id, ref.remote_id, kept.remote_id)
    return kept


def _reconcile(ledger: Ledger, channel: Channel, pub: Publication, lease: Lease, wait_s: float | None, *,
               complete: bool = True) -> RemoteRef | None:
    """The channel's item for `pub`, or None once no earlier call can still create it (we wait that out)."""
    budget = ledger.policy.wait_s if wait_s is None else wait_s
    since, exclude = _since(ledger, lease), _others(ledger, channel, pub)
    while True:
        found = channel.reconcile(pub, since=since, exclude=exclude, complete=complete)
        if found is not None or not lease.wait_for_earlier_call(budget):
            return found


def _since(ledger: Ledger, lease: Lease) -> datetime:
    return lease.row.created_at - timedelta(seconds=ledger.policy.lookback_s)


def _others(ledger: Ledger, channel: Channel, pub: Publication) -> frozenset[str]:
    return ledger.remote_ids(channel.name, except_for=(pub.event_id, pub.key))


def _mark_after_failure(lease: Lease, status: str, error: str) -> None:
    try:
        lease.mark(status, error)
    except Exception as exc:  # noqa: BLE001 - keep the channel's error; the row stays pending and is reconciled
        log.warning("could not record %s for %s (%s)", status, lease.row.pub_key, type(exc).__name__)


def cancel_once(ledger: Ledger, channel: Channel, pub: Publication, *, owner: str | None = None,
                wait_s: float | None = None) -> Outcome | None:
    """Withdraw a publication (e.g. a calendar post removed before its time). Idempotent; takes the lease, and
    waits out an earlier call that may still be creating the item, so nothing is left behind."""
    row = ledger.get(pub.event_id, channel.name, pub.key)
    if row is None:
        return None
    if row.status == CANCELLED:
        return Outcome("cancelled", None, row)
    with ledger.lease(pub.event_id, channel.name, pub.key, window_s=channel.server_window_s(pub), owner=owner,
                      wait_s=wait_s) as lease:
        row = lease.row
        if row.status == CANCELLED:
            return Outcome("cancelled", None, row)
        ref = row.ref() if row.status == PUBLISHED else _reconcile(ledger, channel, pub, lease, wait_s,
                                                                   complete=False)
        if ref is not None and ref.remote_id:
            channel.delete(ref)
        row = lease.mark(CANCELLED)
        return Outcome("cancelled", ref, row)


# --- plumbing -------------------------------------------------------------------------------------------------------
def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(d for d in (a, b) if d is not None) if (a or b) else None


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
        updated_at=aware(m["updated_at"]), published_at=aware(m["published_at"]),
        lease_owner=m["lease_owner"], lease_expires_at=aware(m["lease_expires_at"]),
        call_deadline_at=aware(m["call_deadline_at"]), lease_version=m["lease_version"] or 0)


_MIGRATED: set[str] = set()


class UploadSession:
    """`load` / `save` / `clear` of one upload's resume state (the channels' `ResumeStore`), one row per upload."""

    def __init__(self, engine: Engine, name: str):
        self.engine, self.name = engine, name

    def __repr__(self) -> str:
        return f"UploadSession({self.name!r})"

    def load(self) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(upload_sessions.c.state).where(upload_sessions.c.name == self.name)).first()
        return dict(row[0]) if row else None

    def save(self, state: dict) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(update(upload_sessions).where(upload_sessions.c.name == self.name)
                                   .values(state=state, updated_at=_now())).rowcount
            if not changed:
                conn.execute(upload_sessions.insert().values(name=self.name, state=state, updated_at=_now()))

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(upload_sessions.delete().where(upload_sessions.c.name == self.name))


def _create_table(engine: Engine) -> None:
    try:
        metadata.create_all(engine)
    except (IntegrityError, OperationalError, ProgrammingError):
        # Several task processes opening a new ledger at once: one of them created it first.
        if not all(inspect(engine).has_table(t.name) for t in metadata.sorted_tables):
            metadata.create_all(engine)  # the other process made only some: the rest, once more


def _add_missing_columns(engine: Engine) -> None:
    """Bring a table made by an older Bridgecast up to date in place (columns are only ever added)."""
    key = str(engine.url)
    if key in _MIGRATED:
        return
    existing = {c["name"] for c in inspect(engine).get_columns(publications.name)}
    for column in publications.columns:
        if column.name in existing:
            continue
        ddl = f"ALTER TABLE {publications.name} ADD COLUMN {column.name} {column.type.compile(engine.dialect)}"
        if column.server_default is not None:
            ddl += f" DEFAULT {column.server_default.arg}"
        if not column.nullable:
            ddl += " NOT NULL"
        try:
            with engine.begin() as conn:
                conn.execute(text(ddl))
            log.info("ledger: added column %s to %s", column.name, publications.name)
        except (OperationalError, ProgrammingError) as exc:  # another process added it meanwhile
            if column.name not in {c["name"] for c in inspect(engine).get_columns(publications.name)}:
                raise
            log.debug("ledger: column %s was added concurrently (%s)", column.name, type(exc).__name__)
    _MIGRATED.add(key)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record):  # concurrent task processes: readers must not block the writer
            dbapi_conn.execute("PRAGMA journal_mode=WAL")

        return engine
    return create_engine(url, pool_pre_ping=True)
