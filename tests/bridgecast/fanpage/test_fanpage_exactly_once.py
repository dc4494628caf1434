"""Exactly once with the real ledger: a crash between the Graph call and the ledger write, reruns, a changed payload,
Facebook's own duplicate refusal, and a publishing call whose answer never came back."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridgecast.channels.base import Publication, Transient
from bridgecast.channels.fanpage import post_message
from bridgecast.ledger import PENDING, UNKNOWN, publish_once

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def test_rerun_after_a_crash_between_the_post_and_the_ledger_write_posts_once(sandbox, fanpage, ledger, photos,
                                                                             event_id, marker, tmp_path):
    pub = Publication(event_id, "launch/fanpage-post", "post", f"Kết quả {marker}", "Cảm ơn 64 điểm cầu.",
                      media=tuple(photos[:2]))
    job = {"publication": pub, "base_url": sandbox.base_url, "page_id": sandbox.page_id, "page_token": sandbox.token,
           "ledger_url": str(ledger.engine.url), "resume_dir": str(tmp_path / "uploads")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    child = subprocess.run([sys.executable, str(HERE / "fanpage_crash_child.py")], input=pickle.dumps(job),
                           capture_output=True, env=env, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode(errors="replace")
    assert ledger.get(event_id, "fanpage", pub.key).status == PENDING
    [posted] = sandbox.posts_with(marker)

    outcome = publish_once(ledger, fanpage, pub)

    assert outcome.action == "reconciled" and outcome.ref.remote_id == posted["id"]
    assert ledger.get(event_id, "fanpage", pub.key).remote_id == posted["id"]
    assert len(sandbox.posts_with(marker)) == 1


def test_twenty_reruns_leave_one_post(sandbox, fanpage, ledger, event_id, marker):
    pub = Publication(event_id, "calendar/thank-you", "post", f"Cảm ơn {marker}", "Hẹn gặp lại.")
    seq = sandbox.last_seq()
    actions = [publish_once(ledger, fanpage, pub).action for _ in range(20)]
    assert actions == ["created"] + ["existing"] * 19
    assert len([c for c in sandbox.requests_since(seq) if c["endpoint"] == "feed"]) == 1
    assert len(sandbox.posts_with(marker)) == 1


def test_a_changed_payload_updates_the_same_published_post(sandbox, fanpage, ledger, event_id, marker):
    first = Publication(event_id, "launch/summary", "post", f"Tổng kết {marker}", "Bản nháp số liệu.")
    created = publish_once(ledger, fanpage, first)
    corrected = Publication(event_id, "launch/summary", "post", f"Tổng kết {marker}", "Số liệu chính thức: 12.500.")
    updated = publish_once(ledger, fanpage, corrected)

    assert updated.action == "updated" and updated.ref.remote_id == created.ref.remote_id
    assert sandbox.graph(created.ref.remote_id, fields="message")["message"] == post_message(corrected)
    assert publish_once(ledger, fanpage, corrected).action == "existing"
    assert len(sandbox.posts_with(marker)) == 1


def test_facebooks_duplicate_refusal_is_reconciled_not_an_error(sandbox, fanpage, ledger, event_id, marker):
    pub = Publication(event_id, "calendar/reminder", "post", f"Nhắc lịch {marker}", "8 giờ sáng mai.")
    earlier = fanpage.create_post(post_message(pub))  # an attempt the ledger never heard of
    seq = sandbox.last_seq()

    outcome = publish_once(ledger, fanpage, pub)

    feed = [c for c in sandbox.requests_since(seq) if c["endpoint"] == "feed"]
    assert [c["code"] for c in feed] == [506]
    assert outcome.ref.remote_id == earlier
    assert ledger.get(event_id, "fanpage", pub.key).remote_id == earlier
    assert len(sandbox.posts_with(marker)) == 1


def test_a_publish_whose_answer_never_came_is_reconciled_on_rerun(sandbox, ledger, event_id, marker, wait):
    impatient = sandbox.channel(timeout=(2.0, 0.5))
    pub = Publication(event_id, "calendar/slow", "post", f"Mạng chậm {marker}", "Nội dung.")
    sandbox.fault(endpoint="feed", method="POST", latency_s=1.0)  # Graph still creates the post, just late
    with pytest.raises(Transient):
        publish_once(ledger, impatient, pub)
    assert ledger.get(event_id, "fanpage", pub.key).status == UNKNOWN
    wait(lambda: sandbox.posts_with(marker), timeout_s=10, what="the late post to appear")

    outcome = publish_once(ledger, impatient, pub)

    assert outcome.action == "reconciled"
    assert len(sandbox.posts_with(marker)) == 1
