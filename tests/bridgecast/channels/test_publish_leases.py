"""The ledger's publish leases on their own (SQLite file, several threads and processes): one holder at a time,
compare-and-set transitions, expiry and takeover, a dead holder recognised, the server-side deadline of an
unanswered call, and an older table migrated in place. The channel-level proofs are in the *_exactly_once tests."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy

from bridgecast.channels.base import RejectedInput, RemoteRef, Transient
from bridgecast.ledger import (CLAIMED, PENDING, PUBLISHED, UNKNOWN, LeaseLost, LeasePolicy, Ledger,
                               PublicationInProgress, new_owner, owner_is_dead)

REPO = Path(__file__).resolve().parents[3]
IDS = ("ev", "portal", "launch/article")
WINDOW_S = 1.0


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


def ledger_at(url: str, **policy) -> Ledger:
    return Ledger(url, policy=LeasePolicy(**{"poll_s": 0.05, **policy}))


def test_of_many_simultaneous_attempts_exactly_one_gets_the_lease(url):
    ledgers = [ledger_at(url) for _ in range(8)]  # one engine each, as separate task processes would have
    start, results = threading.Barrier(len(ledgers)), []

    def attempt(ledger):
        start.wait()
        try:
            results.append(ledger.acquire(*IDS, window_s=WINDOW_S, wait_s=0))
        except PublicationInProgress as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    holders = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, PublicationInProgress)]
    assert len(holders) == 1 and len(refused) == 7
    assert all(r.retryable and r.holder == holders[0].owner for r in refused)
    row = ledgers[0].get(*IDS)
    assert row.status == CLAIMED and row.lease_owner == holders[0].owner and row.attempts == 0


def test_status_moves_only_under_the_lease_of_the_attempt_that_holds_it(url):
    ledger = ledger_at(url)
    lease = ledger.acquire(*IDS, window_s=WINDOW_S)
    with pytest.raises(LeaseLost):
        ledger.mark_pending(*IDS, "hash", owner=new_owner())  # someone without the lease
    assert ledger.get(*IDS).status == CLAIMED
    assert lease.mark_pending("hash").status == PENDING
    with pytest.raises(LeaseLost):
        ledger.mark(*IDS, UNKNOWN, "not mine", owner=new_owner())
    lease.release()
    with pytest.raises(LeaseLost):  # released: even the former holder cannot write any more
        lease.mark_published(RemoteRef("portal", "7"), "hash")
    assert ledger.get(*IDS).status == PENDING and ledger.get(*IDS).lease_owner is None


def test_a_second_attempt_waits_for_the_holder_and_then_gets_the_lease(url):
    ledger = ledger_at(url)
    first = ledger.acquire(*IDS, window_s=WINDOW_S)
    threading.Timer(0.5, first.release).start()
    t0 = time.monotonic()
    second = ledger_at(url).acquire(*IDS, window_s=WINDOW_S, wait_s=30)
    assert 0.4 < time.monotonic() - t0 < 30
    assert second.taken_from is None and ledger.get(*IDS).lease_owner == second.owner


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_write(url):
    ledger = ledger_at(url, ttl_s=0.5)
    stale = ledger.acquire(*IDS, window_s=WINDOW_S)  # acquired, never renewed (no heartbeat): a hung attempt
    with pytest.raises(PublicationInProgress):
        ledger.acquire(*IDS, window_s=WINDOW_S, wait_s=0)
    time.sleep(0.7)
    fresh = ledger.acquire(*IDS, window_s=WINDOW_S, wait_s=0)
    assert fresh.taken_from == stale.owner
    with pytest.raises(LeaseLost):
        stale.mark_pending("hash")
    assert ledger.get(*IDS).status == CLAIMED


def test_a_live_holder_keeps_its_lease_by_heartbeat_past_its_ttl(url):
    ledger = ledger_at(url, ttl_s=0.6)
    with ledger.lease(*IDS, window_s=WINDOW_S) as held:
        time.sleep(2.0)  # more than three ttls
        with pytest.raises(PublicationInProgress):
            ledger_at(url, ttl_s=0.6).acquire(*IDS, window_s=WINDOW_S, wait_s=0)
        assert ledger.get(*IDS).lease_owner == held.owner
    assert ledger.get(*IDS).lease_owner is None  # released at the end of the block


def test_the_lease_of_a_killed_attempt_on_this_host_is_taken_over_at_once(url):
    code = ("import os, sys; from bridgecast.ledger import Ledger, LeasePolicy; "
            f"lease = Ledger({url!r}, policy=LeasePolicy(ttl_s=3600)).acquire(*{IDS!r}, window_s=1.0); "
            "lease.mark_pending('hash'); print(lease.owner, flush=True); os._exit(9)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={"PYTHONPATH": f"{REPO}:{REPO / 'plugins'}", "PATH": "/usr/bin:/bin"})
    dead_owner = child.stdout.strip()
    assert child.returncode == 9 and dead_owner, child.stderr
    assert owner_is_dead(dead_owner) and not owner_is_dead(new_owner())

    t0 = time.monotonic()
    lease = ledger_at(url).acquire(*IDS, window_s=WINDOW_S, wait_s=0)  # its lease had an hour to run

    assert lease.taken_from == dead_owner and time.monotonic() - t0 < 5
    # It died inside its pending state: whatever it sent left before now, so its deadline is at most one window.
    assert lease.deadline <= datetime.now(timezone.utc) + timedelta(seconds=WINDOW_S)


def test_an_unanswered_call_holds_off_the_next_create_until_its_server_side_deadline(url):
    ledger = ledger_at(url)
    first = ledger.acquire(*IDS, window_s=2.0)
    first.mark_pending("hash")
    with pytest.raises(Transient):
        with first.calling():
            error = Transient("portal", "No answer within 0.5 s", code="timeout")
            error.unanswered = True
            raise error
    first.mark(UNKNOWN, "timeout")
    first.release()

    second = ledger.acquire(*IDS, window_s=2.0, wait_s=0)
    assert second.deadline > datetime.now(timezone.utc) + timedelta(seconds=1)
    with pytest.raises(PublicationInProgress) as refused:
        second.wait_for_earlier_call(budget_s=0.5)
    assert refused.value.retryable and 0 < refused.value.retry_after_s <= 2.0
    t0 = time.monotonic()
    assert second.wait_for_earlier_call(budget_s=10) is True
    assert time.monotonic() - t0 > 1.0 and second.wait_for_earlier_call(budget_s=10) is False


def test_an_answered_failure_leaves_no_deadline_to_wait_for(url):
    ledger = ledger_at(url)
    first = ledger.acquire(*IDS, window_s=600.0)
    first.mark_pending("hash")
    with pytest.raises(RejectedInput):
        with first.calling():
            raise RejectedInput("portal", "the portal rejected parameter 'title'", status=400)
    first.release()
    second = ledger.acquire(*IDS, window_s=600.0, wait_s=0)
    assert second.deadline <= datetime.now(timezone.utc)
    assert second.wait_for_earlier_call(budget_s=0) is False


OLD_TABLE = """
CREATE TABLE bridgecast_publications (
    id INTEGER NOT NULL PRIMARY KEY, event_id VARCHAR(120) NOT NULL, channel VARCHAR(40) NOT NULL,
    pub_key VARCHAR(300) NOT NULL, status VARCHAR(20) NOT NULL, remote_id VARCHAR(200), url TEXT,
    payload_hash VARCHAR(64), attempts INTEGER NOT NULL, last_error TEXT, extra JSON,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, published_at DATETIME,
    CONSTRAINT uq_publication UNIQUE (event_id, channel, pub_key))
"""


def test_a_ledger_table_from_before_leases_gains_the_columns_and_keeps_its_rows(url):
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # the table as the previous release created it, with one published row
        conn.execute(sqlalchemy.text(OLD_TABLE))
        conn.execute(sqlalchemy.text(
            "INSERT INTO bridgecast_publications (event_id, channel, pub_key, status, remote_id, payload_hash, "
            "attempts, extra, created_at, updated_at) VALUES ('ev', 'portal', 'launch/article', 'published', '42', "
            "'hash', 1, '{}', '2026-03-01 01:00:00', '2026-03-01 01:00:00')"))
    engine.dispose()

    ledger = ledger_at(url)

    columns = {c["name"] for c in sqlalchemy.inspect(ledger.engine).get_columns("bridgecast_publications")}
    assert {"lease_owner", "lease_expires_at", "call_deadline_at", "lease_version"} <= columns
    row = ledger.get(*IDS)
    assert row.status == PUBLISHED and row.remote_id == "42" and row.lease_version == 0 and row.lease_owner is None
    lease = ledger.acquire(*IDS, window_s=WINDOW_S, wait_s=0)
    assert ledger.get(*IDS).lease_owner == lease.owner
    assert Ledger(url).get(*IDS).remote_id == "42"  # opening it again changes nothing
