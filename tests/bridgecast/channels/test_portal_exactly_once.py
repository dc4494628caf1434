"""Exactly-once publishing to the portal with the real ledger (SQLite), on the sandbox AND a real WordPress."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from bridgecast.channels.base import Publication
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
