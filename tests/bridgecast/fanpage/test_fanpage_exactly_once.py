"""Exactly once with the real ledger: a crash between the Graph call and the ledger write, reruns, a changed payload,
Facebook's own duplicate refusal (opt-in in the sandbox, as Meta does not promise it), publishing calls whose answer
never came back, twins left by lost attempts, and concurrent attempts."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
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
    sandbox.knobs(duplicate_window_s=600)  # Meta may refuse a repeated status message (#506); not promised
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


def test_without_a_duplicate_refusal_an_unrecorded_twin_is_deleted_after_the_create(sandbox, fanpage, ledger,
                                                                                   photos, event_id, marker):
    """What real Facebook does for photo posts: it takes the same message twice. The ledger's re-check after the
    create finds the earlier, unrecorded post and the channel deletes the newer twin."""
    pub = Publication(event_id, "launch/photos", "post", f"Ảnh buổi lễ {marker}", "64 điểm cầu.",
                      media=(photos[0],))
    earlier = fanpage.create_post(post_message(pub))  # an attempt the ledger never heard of
    seq = sandbox.last_seq()

    outcome = publish_once(ledger, fanpage, pub)

    assert [c["code"] for c in sandbox.requests_since(seq) if c["endpoint"] == "feed"] == [None]  # accepted
    assert outcome.ref.remote_id == earlier
    assert [p["id"] for p in sandbox.posts_with(marker)] == [earlier]


def test_a_post_held_open_after_it_was_made_is_reconciled_not_posted_again(sandbox, ledger, photos, event_id,
                                                                          marker):
    impatient = sandbox.channel(timeout=(2.0, 0.5))
    pub = Publication(event_id, "launch/photos", "post", f"Ảnh {marker}", "Nội dung.", media=tuple(photos[:2]))
    sandbox.fault(endpoint="feed", method="POST", hang_after_s=2.0)  # the post exists; the answer is held
    with pytest.raises(Transient):
        publish_once(ledger, impatient, pub)
    assert ledger.get(event_id, "fanpage", pub.key).status == UNKNOWN
    [made] = sandbox.posts_with(marker)

    outcome = publish_once(ledger, impatient, pub)  # the retry, at once

    assert outcome.action == "reconciled" and outcome.ref.remote_id == made["id"]
    assert len(sandbox.posts_with(marker)) == 1


def test_twins_left_by_lost_attempts_are_deleted_and_the_earliest_kept(sandbox, fanpage, ledger, event_id, marker):
    pub = Publication(event_id, "calendar/twins", "post", f"Sinh đôi {marker}", "Nội dung.")
    earliest = fanpage.create_post(post_message(pub))  # two attempts that died before the ledger heard of them
    fanpage.create_post(post_message(pub))
    ledger.mark_pending(event_id, "fanpage", pub.key, pub.payload_hash())

    outcome = publish_once(ledger, fanpage, pub)

    assert outcome.action == "reconciled" and outcome.ref.remote_id == earliest
    assert [p["id"] for p in sandbox.posts_with(marker)] == [earliest]


def test_a_post_recorded_for_another_publication_is_never_taken_nor_deleted(sandbox, fanpage, ledger, event_id,
                                                                           marker):
    """Two calendar entries may carry the same text; each keeps its own post."""
    monday = Publication(event_id, "calendar/monday", "post", f"Nhắc lịch {marker}", "8 giờ sáng.")
    tuesday = Publication(event_id, "calendar/tuesday", "post", f"Nhắc lịch {marker}", "8 giờ sáng.")
    first = publish_once(ledger, fanpage, monday)
    ledger.mark_pending(event_id, "fanpage", tuesday.key, tuesday.payload_hash())  # an attempt that died early

    second = publish_once(ledger, fanpage, tuesday)

    assert second.action == "created" and second.ref.remote_id != first.ref.remote_id
    assert {p["id"] for p in sandbox.posts_with(marker)} == {first.ref.remote_id, second.ref.remote_id}


def test_two_attempts_at_once_make_one_post(sandbox, ledger, photos, event_id, marker):
    pub = Publication(event_id, "launch/photos", "post", f"Cùng lúc {marker}", "Nội dung.", media=(photos[0],))
    start, outcomes = threading.Barrier(4), []

    def attempt():
        start.wait()
        outcomes.append(publish_once(ledger, sandbox.channel(), pub, wait_s=120))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    assert sorted(o.action for o in outcomes) == ["created", "existing", "existing", "existing"]
    assert len(sandbox.posts_with(marker)) == 1
    assert ledger.get(event_id, "fanpage", pub.key).attempts == 1
