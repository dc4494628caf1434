"""bridgecast_publish's plan: the calendar against the ledger, one rule per case (no stack, no channel)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridgecast.posts.calendar import load_calendar
from bridgecast.event import load_event
from bridgecast.ledger import CANCELLED, FAILED, PENDING, PUBLISHED, LedgerRow
from bridgecast.posts.content import from_planned, publication
from bridgecast.posts.planner import plan_calendar

REPO = Path(__file__).resolve().parents[2]
EVENT = load_event(REPO / "config" / "event.yaml")
NOW = datetime(2020, 5, 23, 0, 55, tzinfo=timezone.utc)  # 07:55 in Vĩnh Phúc
WINDOW = timedelta(minutes=7)


def posts(tmp_path, *entries: str):
    path = tmp_path / "lich.yaml"
    path.write_text(f"event: {EVENT.id}\ntimezone: Asia/Ho_Chi_Minh\nposts:\n" + "\n".join(entries) + "\n",
                    encoding="utf-8")
    return load_calendar([path], EVENT.id, {p.id for p in EVENT.points}).posts


def entry(post_id: str, when: str, channels: str = "both", **extra) -> str:
    fields = "".join(f", {k}: {v}" for k, v in extra.items())
    return f'  - {{id: {post_id}, channels: {channels}, title: "Tiêu đề {post_id}", body: "Nội dung", ' \
           f'publish_at: "{when}"{fields}}}'


def row(post, channel: str, status: str = PUBLISHED, *, payload_hash: str | None = None, extra=None,
        key: str | None = None) -> LedgerRow:
    if payload_hash is None and post is not None:
        payload_hash = publication(EVENT, from_planned(post), channel, []).payload_hash()
    return LedgerRow(event_id=EVENT.id, channel=channel, pub_key=key or post.publication_key, status=status,
                     remote_id="1", url=None, payload_hash=payload_hash, attempts=1, last_error=None,
                     extra=extra or {}, created_at=NOW, updated_at=NOW, published_at=NOW)


def actions(plan) -> dict[tuple[str, str], str]:
    return {(r["post"], r["channel"]): r["action"] for r in plan.report}


def test_0800_local_due_in_the_window_is_published_at_0100_utc(tmp_path):
    plan = plan_calendar(EVENT, posts(tmp_path, entry("dang-truc-tiep", "2020-05-23 08:00")), [], {}, NOW, WINDOW)
    assert actions(plan) == {("dang-truc-tiep", "portal"): "publish", ("dang-truc-tiep", "fanpage"): "publish"}
    assert {i["publish_at"] for i in plan.publish} == {"2020-05-23T01:00:00+00:00"}
    labels = [i["label"] for i in plan.items()]
    assert labels == ["dang-truc-tiep · portal · đăng", "dang-truc-tiep · fanpage · đăng"]


def test_a_post_after_the_window_waits_for_a_later_run(tmp_path):
    plan = plan_calendar(EVENT, posts(tmp_path, entry("sau", "2020-05-23 08:00", "[portal]")), [], {},
                         NOW - timedelta(minutes=20), WINDOW)
    assert actions(plan) == {("sau", "portal"): "later"} and plan.items() == []


def test_a_fanpage_post_with_fixed_media_days_ahead_becomes_a_facebook_scheduled_post(tmp_path):
    calendar = posts(tmp_path, entry("ngay-mai", "2020-05-24 08:00"),
                     entry("anh-ngay-mai", "2020-05-24 09:00", "[fanpage]", media="{point: vinh-yen, newest: 3}"))
    plan = plan_calendar(EVENT, calendar, [], {}, NOW, WINDOW)
    assert actions(plan) == {("ngay-mai", "portal"): "later", ("ngay-mai", "fanpage"): "schedule",
                             ("anh-ngay-mai", "fanpage"): "later"}  # a selector is resolved when it goes out
    assert plan.schedule[0]["publish_at"] == "2020-05-24T01:00:00+00:00"


def test_a_published_post_is_left_alone_unless_its_text_changed(tmp_path):
    original = posts(tmp_path, entry("bai", "2020-05-23 07:00"))[0]
    rows = [row(original, "portal"), row(original, "fanpage")]
    assert {a for a in actions(plan_calendar(EVENT, [original], rows, {}, NOW, WINDOW)).values()} == {"done"}
    edited = posts(tmp_path, entry("bai", "2020-05-23 07:00").replace("Nội dung", "Nội dung đã sửa"))
    plan = plan_calendar(EVENT, edited, rows, {}, NOW, WINDOW)
    assert [(i["post_id"], i["channel"], i["action"]) for i in plan.items()] == [("bai", "portal", "update"),
                                                                                ("bai", "fanpage", "update")]


def test_published_photos_are_compared_through_their_frozen_record(tmp_path):
    post = posts(tmp_path, entry("anh", "2020-05-23 07:00", "[fanpage]", media="{point: vinh-yen, newest: 2}"))[0]
    frozen = [{"key": f"{EVENT.id}/vinh-yen/processed/web/a.jpg", "sha256": "ab" * 32, "filename": "a.jpg",
               "content_type": "image/jpeg", "caption": "Vĩnh Yên"}]
    payload = publication(EVENT, from_planned(post), "fanpage", frozen).payload_hash()
    rows = [row(post, "fanpage", payload_hash=payload)]
    assert actions(plan_calendar(EVENT, [post], rows, {post.publication_key: frozen}, NOW, WINDOW)) == {
        ("anh", "fanpage"): "done"}
    # without the record nothing can be compared, and nothing is touched
    assert actions(plan_calendar(EVENT, [post], rows, {}, NOW, WINDOW)) == {("anh", "fanpage"): "done"}


def test_a_post_removed_before_it_went_out_is_withdrawn_and_one_already_out_is_not(tmp_path):
    kept = posts(tmp_path, entry("giu", "2020-05-23 07:00", "[portal]"))
    rows = [
        row(None, "fanpage", extra={"scheduled": True, "publish_at": "2020-05-24T01:00:00+00:00"},
            payload_hash="x", key="calendar/hen-gio"),
        row(None, "portal", status=CANCELLED, payload_hash="x", key="calendar/da-rut"),
        row(None, "fanpage", status=PENDING, payload_hash="x", key="calendar/dang-do"),
        row(kept[0], "portal"),
        row(None, "portal", payload_hash="x", key="launch/portal-article"),  # not the calendar's
    ]
    plan = plan_calendar(EVENT, kept, rows, {}, NOW, WINDOW)
    assert [(i["key"], i["channel"]) for i in plan.withdraw] == [("calendar/hen-gio", "fanpage"),
                                                                 ("calendar/dang-do", "fanpage")]
    assert all(i["action"] == "withdraw" for i in plan.items())


def test_a_channel_removed_from_a_post_is_withdrawn_on_that_channel(tmp_path):
    both = posts(tmp_path, entry("hai-kenh", "2020-05-24 08:00"))[0]
    rows = [row(both, "fanpage", extra={"scheduled": True, "publish_at": "2020-05-24T01:00:00+00:00"})]
    portal_only = posts(tmp_path, entry("hai-kenh", "2020-05-24 08:00", "[portal]"))
    plan = plan_calendar(EVENT, portal_only, rows, {}, NOW, WINDOW)
    assert [(i["post_id"], i["channel"]) for i in plan.withdraw] == [("hai-kenh", "fanpage")]


@pytest.mark.parametrize("status,expected", [(None, "missed"), (FAILED, "missed"), (PENDING, "publish")])
def test_a_post_later_than_its_limit_is_missed_unless_an_attempt_must_be_reconciled(tmp_path, status, expected):
    post = posts(tmp_path, entry("tre", "2020-05-23 04:00", "[portal]"))[0]  # almost 4 h late, limit 2 h
    rows = [row(post, "portal", status=status, payload_hash="old")] if status else []
    assert actions(plan_calendar(EVENT, [post], rows, {}, NOW, WINDOW)) == {("tre", "portal"): expected}


@pytest.mark.parametrize("when,expected", [("2020-05-23 09:00", "approval"), ("2020-05-28 09:00", "later"),
                                           ("2020-05-23 07:00", "done")])
def test_a_post_that_needs_approval_is_asked_for_three_days_ahead_and_never_published_unapproved(
        tmp_path, when, expected):
    post = posts(tmp_path, entry("duyet", when, "[portal]", approval_required="true"))[0]
    assert actions(plan_calendar(EVENT, [post], [], {}, NOW, WINDOW)) == {("duyet", "portal"): expected}


def test_a_withdrawn_id_is_not_published_again(tmp_path):
    post = posts(tmp_path, entry("rut", "2020-05-23 08:00", "[fanpage]"))[0]
    plan = plan_calendar(EVENT, [post], [row(post, "fanpage", status=CANCELLED)], {}, NOW, WINDOW)
    assert actions(plan) == {("rut", "fanpage"): "done"} and plan.items() == []


@pytest.mark.parametrize("status", ["expired"])
def test_an_expired_post_stays_missed(tmp_path, status):
    post = posts(tmp_path, entry("het-han", "2020-05-23 04:00", "[portal]"))[0]
    plan = plan_calendar(EVENT, [post], [row(post, "portal", status=status, payload_hash="old")], {}, NOW, WINDOW)
    assert actions(plan) == {("het-han", "portal"): "missed"} and plan.items() == []


# --- the limit at the moment of the call: a retry hours after an outage never posts --------------------------------
@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """The portal sandbox through its real entry point (a WordPress REST API on a free port)."""
    import secrets
    import subprocess
    import sys
    import time

    import requests

    from devstack.sandboxes.smtp import free_port

    root = tmp_path_factory.mktemp("portal")
    password_file = root / "app-password"
    password_file.write_text(secrets.token_urlsafe(24))
    port = free_port()
    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("AIRFLOW_CONN_")},
           "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"}
    proc = subprocess.Popen([sys.executable, "-m", "devstack.sandboxes.portal", "--host", "127.0.0.1", "--port",
                             str(port), "--data", str(root / "data"), "--user", "bridgecast", "--app-password-file",
                             str(password_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{url}/wp-json/", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    from bridgecast.channels.portal import PortalChannel

    yield PortalChannel(url, "bridgecast", password_file.read_text())
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("status", [None, PENDING, "unknown", FAILED])
def test_a_post_past_its_late_limit_is_expired_and_told_whatever_its_ledger_row_says(tmp_path, portal, status):
    from bridgecast.ledger import Ledger, publish_once
    from bridgecast.posts import notices
    from bridgecast.posts.publishing import NotAfter, PastLateLimit, expire

    post = posts(tmp_path, entry(f"sau-su-co-{(status or 'moi').lower()}", "2020-05-23 04:00", "[portal]"))[0]
    content = from_planned(post)  # 04:00 with a 2 h limit: the retry after the outage comes ~4 h late
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    pub = publication(EVENT, content, "portal", [])
    if status is not None:  # the first try, at 04:00, hit the outage
        ledger.mark_pending(EVENT.id, "portal", content.key, pub.payload_hash())
        if status != PENDING:
            ledger.mark(EVENT.id, "portal", content.key, status, "ConnectionError: portal unreachable")
    told = []
    notices.subscribe(told.append)
    try:
        with pytest.raises(PastLateLimit):
            publish_once(ledger, NotAfter(portal, content.publish_at + content.late_limit), pub)
        result = expire(EVENT, content, "portal", ledger=ledger, run_id="scheduled__test")
    finally:
        notices.unsubscribe(told.append)
    assert portal.reconcile(pub, since=NOW - timedelta(days=1), exclude=frozenset()) is None  # nothing went out
    assert result["action"] == "expired" and ledger.get(EVENT.id, "portal", content.key).status == "expired"
    assert len(told) == 1 and "QUÁ GIỜ" in told[0].subject and content.title in told[0].body
    again = plan_calendar(EVENT, [post], ledger.rows(EVENT.id), {}, datetime.now(timezone.utc), WINDOW)
    assert again.items() == []  # and no later run tries again


def test_a_post_within_its_late_limit_is_still_published_through_the_guard(tmp_path, portal):
    from bridgecast.ledger import Ledger, publish_once
    from bridgecast.posts.publishing import NotAfter

    when = datetime.now(timezone.utc).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Ho_Chi_Minh"))
    post = posts(tmp_path, entry("kip-gio", f"{when - timedelta(minutes=30):%Y-%m-%d %H:%M}", "[portal]"))[0]
    content = from_planned(post)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    outcome = publish_once(ledger, NotAfter(portal, content.publish_at + content.late_limit),
                           publication(EVENT, content, "portal", []))
    assert outcome.action == "created" and outcome.row.status == PUBLISHED
