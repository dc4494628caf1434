"""Exactly-once publishing to the portal with the real ledger (SQLite), on the sandbox AND a real WordPress: crashes,
reruns, concurrent attempts, and the twins and drafts that lost attempts leave behind."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from bridgecast.channels.base import NotFound, Publication
from bridgecast.ledger import PENDING, PUBLISHED, publish_once

CHILD = Path(__file__).with_name("crash_publish_child.py")


def article(event_id: str, token: str, **fields) -> Publication:
    return Publication(event_id=event_id, key="launch/article", kind="article",
                       title=fields.pop("title", f"Bài tổng hợp {token}"),
                       body=fields.pop("body", "Toàn bộ 64 điểm cầu đã kết nối."), **fields)


def test_rerun_after_crash_between_post_and_ledger_write_posts_once(portal_backend, ledger, event_id, photos):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token, media=(photos[0],))
    job = {"publication": pub, "base_url": portal_backend.base_url, "user": portal_backend.user,
           "app_password": portal_backend.app_password, "ledger_url": str(ledger.engine.url)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run([sys.executable, str(CHILD)], input=pickle.dumps(job), capture_output=True,
                           timeout=120, env=env)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode(errors="replace")[-2000:]
    assert ledger.get(event_id, "portal", pub.key).status == PENDING  # the crash left only the intent
    assert portal_backend.count_posts(token) == 1

    outcome = publish_once(ledger, portal_backend.channel(), pub)

    assert outcome.action == "reconciled"
    assert portal_backend.count_posts(token) == 1
    row = ledger.get(event_id, "portal", pub.key)
    assert row.status == PUBLISHED and row.remote_id == outcome.ref.remote_id
    assert publish_once(ledger, portal_backend.channel(), pub).action == "existing"
    assert portal_backend.count_posts(token) == 1


def test_twenty_reruns_of_a_published_item_keep_one_post(portal_backend, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    channel = portal_backend.channel()
    first = publish_once(ledger, channel, pub)
    outcomes = [publish_once(ledger, portal_backend.channel(), pub) for _ in range(20)]
    assert first.action == "created"
    assert {o.action for o in outcomes} == {"existing"}
    assert {o.ref.remote_id for o in outcomes} == {first.ref.remote_id}
    assert ledger.get(event_id, "portal", pub.key).attempts == 1
    assert portal_backend.count_posts(token) == 1


def test_changed_payload_updates_the_same_post(portal_backend, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    channel = portal_backend.channel()
    first = publish_once(ledger, channel, article(event_id, token))
    changed = article(event_id, token, title=f"Bài tổng hợp {token} — bản cuối", body="Số liệu đã cập nhật.")
    second = publish_once(ledger, channel, changed)
    assert second.action == "updated" and second.ref.remote_id == first.ref.remote_id
    post = channel.client.get_post(int(first.ref.remote_id))
    assert post["title"]["raw"].endswith("bản cuối") and "Số liệu đã cập nhật." in post["content"]["raw"]
    assert publish_once(ledger, channel, changed).action == "existing"
    assert portal_backend.count_posts(token) == 1


def test_two_attempts_at_once_make_one_post(portal_backend, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    start, outcomes = threading.Barrier(4), []

    def attempt():
        start.wait()
        outcomes.append(publish_once(ledger, portal_backend.channel(), pub, wait_s=120))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    assert sorted(o.action for o in outcomes) == ["created", "existing", "existing", "existing"]
    assert len({o.ref.remote_id for o in outcomes}) == 1
    assert portal_backend.count_posts(token) == 1
    assert ledger.get(event_id, "portal", pub.key).attempts == 1  # the others never called the portal


def test_twins_left_by_unrecorded_attempts_are_removed_and_the_earliest_kept(portal_backend, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    client = portal_backend.channel().client
    # Three attempts the ledger never heard of: WordPress made the later two `<slug>-2` and `<slug>-3`.
    earliest = client.create_post({"title": pub.title, "slug": pub.slug(), "status": "publish"})
    public_twin = client.create_post({"title": pub.title, "slug": pub.slug(), "status": "publish"})
    draft_twin = client.create_post({"title": pub.title, "slug": pub.slug(), "status": "draft"})
    assert [public_twin["slug"], draft_twin["slug"]] == [f"{pub.slug()}-2", f"{pub.slug()}-3"]
    ledger.mark_pending(event_id, "portal", pub.key, pub.payload_hash())  # the run that made them died

    outcome = publish_once(ledger, portal_backend.channel(), pub)

    assert outcome.action == "reconciled" and outcome.ref.remote_id == str(earliest["id"])
    assert portal_backend.count_posts(token) == 1
    assert client.list_posts(status="trash", search=token)[0]["id"] == public_twin["id"]  # seen once: recoverable
    with pytest.raises(NotFound):
        client.get_post(draft_twin["id"])  # never seen: deleted for good


def test_a_draft_left_by_an_interrupted_attempt_is_finished_not_made_again(portal_backend, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    client = portal_backend.channel().client
    draft = client.create_post({"title": pub.title, "slug": pub.slug(), "status": "draft"})  # died before publish
    ledger.mark_pending(event_id, "portal", pub.key, pub.payload_hash())

    outcome = publish_once(ledger, portal_backend.channel(), pub)

    assert outcome.action == "reconciled" and outcome.ref.remote_id == str(draft["id"])
    post = client.get_post(draft["id"])
    assert post["status"] == "publish" and post["slug"] == pub.slug()
    assert "Toàn bộ 64 điểm cầu đã kết nối." in post["content"]["raw"]
    assert portal_backend.count_posts(token) == 1
