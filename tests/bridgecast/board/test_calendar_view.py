"""The staff's calendar: every planned post of the days asked for — from a calendar file and from the form's runs —
per channel with its state from the ledger, the approval and the time (no I/O: a temporary calendar file, ledger
rows and run records made here); the range a request may ask for; the routes behind the app's access check."""
from __future__ import annotations

import unicodedata
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from bridgecast.board.calendar import MAX_DAYS, RangeError, parse_range, week_of
from bridgecast.event import default_event_path, load_event
from bridgecast.ledger import CANCELLED, CLAIMED, FAILED, PUBLISHED, LedgerRow
from bridgecast.posts.agenda import (AWAITING_APPROVAL, REJECTED, SCHEDULED, STATE_LABELS, FormRun, agenda,
                                     read_agenda)
from bridgecast.posts.calendar import load_calendar
from bridgecast.posts.content import PostContent, form_key
from bridgecast.posts.planner import EXPIRED

EVENT = load_event(default_event_path())
VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)  # 10:00 Tuesday 01/12/2026 in Vietnam
WEEK = (date(2026, 11, 30), date(2026, 12, 6))

CALENDAR = f"""event: {EVENT.id}
timezone: Asia/Ho_Chi_Minh
late_limit_minutes: 60
posts:
  - {{id: da-dang, channels: both, publish_at: "2026-11-30 08:00", title: "Đã đăng", body: "Bài đã lên."}}
  - {{id: loi-fanpage, channels: both, publish_at: "2026-11-30 20:00", title: "Lỗi fanpage", body: "Một kênh lỗi."}}
  - {{id: qua-gio, channels: [portal], publish_at: "2026-12-01 07:00", title: "Quá giờ", body: "Không ai đăng."}}
  - {{id: can-duyet, channels: [portal], publish_at: "2026-12-02 08:00", approval_required: true,
      title: "Cần duyệt", body: "Chờ người duyệt."}}
  - {{id: hen-gio, channels: [fanpage], publish_at: "2026-12-05 08:00", title: "Hẹn giờ", body: "Facebook đăng.",
      media: ["{EVENT.id}/vinh-yen/processed/web/a.jpg"]}}
  - {{id: da-rut, channels: [fanpage], publish_at: "2026-12-06 09:00", title: "Đã rút", body: "Rút rồi."}}
  - {{id: tuan-sau, channels: both, publish_at: "2026-12-07 08:00", title: "Tuần sau", body: "Ngoài tuần này."}}
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN).astimezone(timezone.utc)


def row(key: str, channel: str, status: str, *, url=None, error=None, extra=None) -> LedgerRow:
    t = NOW - timedelta(hours=1)
    return LedgerRow(EVENT.id, channel, key, status, "1" if url else None, url, "h", 1, error, extra or {}, t, t,
                     t if status == PUBLISHED else None)


@pytest.fixture
def posts(tmp_path):
    path = tmp_path / "posts" / "lich.yaml"
    path.parent.mkdir()
    path.write_text(CALENDAR, encoding="utf-8")
    return load_calendar([path], EVENT.id, {p.id for p in EVENT.points}).posts


def form_post(title: str, local: str, channels=("portal", "fanpage"), **extra) -> dict:
    at = utc(local)
    content = PostContent(key=form_key(title, at), label=title, channels=tuple(channels), title=title,
                          body=f"Nội dung {title}", publish_at=at, approval_required=True)
    return {**content.to_json(), "source": "form", "refs": {}, **extra}


def run(run_id: str, post: dict | None, *, state="running", created=NOW - timedelta(hours=2), ended=None,
        decision=None, task=None, assignees=(), preview=None) -> FormRun:
    return FormRun(run_id=run_id, state=state, created_at=created, ended_at=ended, post=post, preview=preview,
                   decision={"decision": decision, "by": "approver"} if decision else None, approval_task=task,
                   assignees=tuple(assignees))


def by_label(entries: list[dict]) -> dict[str, dict]:
    return {e["label"]: e for e in entries}


def states(entry: dict) -> dict[str, str]:
    return {c["channel"]: c["state"] for c in entry["channels"]}


def test_calendar_posts_of_the_week_with_their_state_per_channel_from_the_ledger(posts):
    rows = [row("calendar/da-dang", "portal", PUBLISHED, url="https://portal.example/da-dang"),
            row("calendar/da-dang", "fanpage", PUBLISHED, url="https://facebook.com/1_2"),
            row("calendar/loi-fanpage", "portal", CLAIMED),
            row("calendar/loi-fanpage", "fanpage", FAILED, error="Facebook: (#200) thiếu quyền pages_manage_posts"),
            row("calendar/hen-gio", "fanpage", PUBLISHED, url="https://facebook.com/1_9",
                extra={"scheduled": True, "publish_at": utc("2026-12-05 08:00").isoformat()}),
            row("calendar/da-rut", "fanpage", CANCELLED, error="withdrawn from the calendar")]
    entries = agenda(EVENT, posts=posts, runs=[], rows=rows, now=NOW, start=WEEK[0], end=WEEK[1],
                     approvers=["approver"])
    got = by_label(entries)
    assert list(got) == ["da-dang", "loi-fanpage", "qua-gio", "can-duyet", "hen-gio", "da-rut"]  # by time; not next week
    assert states(got["da-dang"]) == {"portal": PUBLISHED, "fanpage": PUBLISHED}
    assert [c["url"] for c in got["da-dang"]["channels"]] == ["https://portal.example/da-dang",
                                                              "https://facebook.com/1_2"]
    assert states(got["loi-fanpage"]) == {"portal": SCHEDULED, "fanpage": FAILED}  # claimed: not sent yet
    assert got["loi-fanpage"]["state"] == FAILED  # the state that needs someone shows on the card
    assert got["loi-fanpage"]["channels"][1]["reason"] == "Facebook: (#200) thiếu quyền pages_manage_posts"
    assert states(got["qua-gio"]) == {"portal": EXPIRED}  # never attempted, and past its late_limit
    assert "late_limit_minutes" in got["qua-gio"]["channels"][0]["reason"]
    waiting = got["can-duyet"]["channels"][0]
    assert waiting["state"] == AWAITING_APPROVAL and waiting["approvers"] == ["approver"]
    assert got["can-duyet"]["approval"]["state"] == "not_asked"  # bridgecast_publish asks 3 days ahead
    assert states(got["hen-gio"]) == {"fanpage": SCHEDULED}  # a Facebook scheduled post has not gone out yet
    assert "hẹn giờ" in got["hen-gio"]["channels"][0]["reason"]
    assert states(got["da-rut"]) == {"fanpage": CANCELLED}
    assert got["da-rut"]["state_label"] == "đã rút"


def test_times_are_vietnam_time_in_words_and_the_day_is_the_vietnamese_day(posts):
    got = by_label(agenda(EVENT, posts=posts, runs=[], rows=[], now=NOW, start=WEEK[0], end=WEEK[1]))
    evening = got["loi-fanpage"]  # 20:00 on Monday in Vietnam is 13:00 UTC the same day
    assert (evening["date"], evening["time"]) == ("2026-11-30", "20:00")
    assert evening["time_words"] == "20:00 thứ Hai 30/11/2026, giờ Việt Nam"
    assert evening["publish_at"] == "2026-11-30T13:00:00+00:00"
    early = by_label(agenda(EVENT, posts=posts, runs=[], rows=[], now=NOW, start=date(2026, 12, 7),
                            end=date(2026, 12, 7)))["tuan-sau"]
    assert early["date"] == "2026-12-07" and early["publish_at"] == "2026-12-07T01:00:00+00:00"
    for text in (evening["time_words"], evening["state_label"], *STATE_LABELS.values()):
        assert unicodedata.is_normalized("NFC", text)


def test_a_calendar_post_says_it_is_edited_in_its_file_and_shows_its_chosen_photos(posts):
    got = by_label(agenda(EVENT, posts=posts, runs=[], rows=[], now=NOW, start=WEEK[0], end=WEEK[1]))
    edit = got["hen-gio"]["edit"]
    assert edit["kind"] == "file" and edit["post_id"] == "hen-gio" and edit["path"].endswith("posts/lich.yaml")
    (photo,) = got["hen-gio"]["media"]["photos"]
    assert photo["url"] == f"/bridgecast/api/media/{EVENT.id}/vinh-yen/processed/web/a.jpg"
    assert photo["thumb_url"] == f"/bridgecast/api/media/{EVENT.id}/vinh-yen/processed/thumb/a.jpg"
    assert photo["caption"] == "Thành phố Vĩnh Yên"


def test_form_posts_waiting_for_approval_name_their_approvers_and_link_the_request():
    waiting = form_post("Chờ duyệt", "2026-12-03 08:00")
    preview = {"artefacts": {"portal": f"{EVENT.id}/_posts/{waiting['key']}/preview/r1/portal.html",
                             "fanpage": f"{EVENT.id}/_posts/{waiting['key']}/preview/r1/fanpage.txt"},
               "photos": []}
    runs = [run("manual__r1", waiting, task="awaiting_input", assignees=["truong-phong"], preview=preview)]
    (entry,) = agenda(EVENT, posts=[], runs=runs, rows=[], now=NOW, start=WEEK[0], end=WEEK[1],
                      approvers=["approver"])
    assert entry["source"] == "form" and entry["time_words"] == "08:00 thứ Năm 03/12/2026, giờ Việt Nam"
    assert states(entry) == {"portal": AWAITING_APPROVAL, "fanpage": AWAITING_APPROVAL}
    assert entry["channels"][0]["approvers"] == ["truong-phong"]  # whom the open request names
    assert entry["approval"]["path"] == ("dags/bridgecast_schedule_post/runs/manual__r1/tasks/approve_post/"
                                         "required_actions")
    assert [p["url"] for p in entry["previews"]] == [f"/bridgecast/api/media/{k}"
                                                     for k in preview["artefacts"].values()]
    assert entry["edit"] == {"kind": "form", "run_id": "manual__r1", "path": "dags/bridgecast_schedule_post/runs/"
                             "manual__r1", "repost": False}


def test_form_outcomes_rejected_expired_called_off_failed_and_published():
    rejected, expired = form_post("Bị từ chối", "2026-12-01 08:30"), form_post("Hết hạn", "2026-12-01 09:00")
    called_off, failed = form_post("Đã dừng", "2026-12-01 09:30"), form_post("Lỗi đăng", "2026-12-01 09:40")
    published = form_post("Đã lên", "2026-12-01 09:50", channels=("portal",))
    done = dict(state="failed")
    runs = [run("r-rejected", rejected, state="success", decision="rejected"),
            run("r-expired", expired, decision="expired", **done),
            run("r-off", called_off, decision="approved", ended=utc("2026-12-01 09:00"), **done),
            run("r-failed", failed, decision="approved", ended=utc("2026-12-01 09:45"), **done),
            run("r-published", published, state="success", decision="approved")]
    rows = [row(published["key"], "portal", PUBLISHED, url="https://portal.example/p/9")]
    got = {e["title"]: e for e in agenda(EVENT, posts=[], runs=runs, rows=rows, now=NOW, start=WEEK[0],
                                         end=WEEK[1])}
    assert got["Bị từ chối"]["state"] == REJECTED and "approver" in got["Bị từ chối"]["channels"][0]["reason"]
    assert got["Hết hạn"]["state"] == EXPIRED and "hết hạn duyệt" in got["Hết hạn"]["channels"][0]["reason"]
    assert got["Đã dừng"]["state"] == CANCELLED  # Mark run as → Failed before its time: nothing went out
    assert got["Lỗi đăng"]["state"] == FAILED and "r-failed" in got["Lỗi đăng"]["channels"][0]["reason"]
    assert got["Đã lên"]["state"] == PUBLISHED and got["Đã lên"]["channels"][0]["url"] == "https://portal.example/p/9"


def test_the_same_post_submitted_twice_is_one_entry_and_a_live_approved_submission_counts_first():
    post = form_post("Hai lần", "2026-12-04 08:00")
    runs = [run("first", post, created=NOW - timedelta(hours=3), decision="approved"),
            run("second", post, created=NOW - timedelta(hours=1), state="success", decision="rejected")]
    (entry,) = agenda(EVENT, posts=[], runs=runs, rows=[], now=NOW, start=WEEK[0], end=WEEK[1])
    assert entry["state"] == SCHEDULED and entry["approval"]["state"] == "approved"
    assert [r["run_id"] for r in entry["runs"]] == ["first", "second"]


def test_a_calendar_post_in_approval_shows_its_form_run_not_a_second_entry(posts):
    post = {**form_post("Cần duyệt", "2026-12-02 08:00", channels=("portal",)), "key": "calendar/can-duyet",
            "label": "can-duyet", "source": "calendar"}
    runs = [run("calendar__can-duyet__20261202T0800", post, task="awaiting_input", assignees=["approver"])]
    got = agenda(EVENT, posts=posts, runs=runs, rows=[], now=NOW, start=WEEK[0], end=WEEK[1])
    (entry,) = [e for e in got if e["key"] == "calendar/can-duyet"]
    assert entry["approval"]["open"] and entry["state"] == AWAITING_APPROVAL
    assert entry["edit"]["kind"] == "file"


def test_published_posts_show_the_photos_they_froze():
    post = form_post("Có ảnh", "2026-12-01 08:00", channels=("fanpage",))
    key = f"{EVENT.id}/phuc-yen/processed/web/b.jpg"
    (entry,) = agenda(EVENT, posts=[], runs=[run("r", post, state="success", decision="approved")],
                      rows=[row(post["key"], "fanpage", PUBLISHED, url="https://facebook.com/1_3")], now=NOW,
                      start=WEEK[0], end=WEEK[1], frozen={post["key"]: [{"key": key}]}.get)
    assert [p["key"] for p in entry["media"]["photos"]] == [key]


def test_the_range_is_a_monday_week_by_default_and_at_most_six_weeks():
    assert week_of(date(2026, 12, 1)) == (date(2026, 11, 30), date(2026, 12, 6))
    assert week_of(date(2020, 5, 24)) == (date(2020, 5, 18), date(2020, 5, 24))  # a Sunday ends its week
    assert parse_range(None, None, date(2026, 12, 1)) == WEEK
    assert parse_range("2020-04-27", "2020-06-07", date(2026, 12, 1)) == (date(2020, 4, 27), date(2020, 6, 7))
    assert parse_range("2020-05-23", None, date(2026, 12, 1)) == (date(2020, 5, 23), date(2020, 5, 23))
    for bad, phrase in ((("23/05/2020", "2020-05-24"), "YYYY-MM-DD"), (("2020-05-24", "2020-05-23"), "trước"),
                        (("2020-05-01", "2020-06-12"), str(MAX_DAYS))):
        with pytest.raises(RangeError, match=phrase):
            parse_range(*bad, date(2026, 12, 1))


# --- the routes ------------------------------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path, monkeypatch, posts):
    from fastapi.testclient import TestClient

    from bridgecast.board.app import Board, _session_dependency, create_app
    from bridgecast.ledger import Ledger

    monkeypatch.setenv("BRIDGECAST_CALENDAR_DIR", str(tmp_path / "posts"))
    monkeypatch.setattr("bridgecast.posts.agenda.form_runs", lambda session, since, until: [])
    monkeypatch.setattr("bridgecast.posts.operators.approver_names", lambda: ["approver"])
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.mark_pending(EVENT.id, "portal", "calendar/da-dang", "h")
    board = Board(sources_factory=lambda: SimpleNamespace(storage=None, ledger=ledger))
    app = create_app(board, access=lambda: None, thumbnailer=False, agenda=read_agenda)
    app.dependency_overrides[_session_dependency()] = lambda: None
    return TestClient(app)


def test_the_calendar_routes_answer_the_page_its_files_and_the_json_of_a_range(client):
    page = client.get("/calendar/")
    assert page.status_code == 200 and "Lịch đăng bài" in page.text and "giờ Việt Nam" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name in ("calendar.js", "calendar.css", "calendar.svg"):
        assert client.get(f"/calendar/static/{name}").status_code == 200
    assert client.get("/calendar/static/app.py").status_code == 404
    data = client.get("/api/calendar", params={"from": "2026-11-30", "to": "2026-12-06"}).json()
    assert data["event"]["id"] == EVENT.id and data["days"][0] == "2026-11-30" and len(data["days"]) == 7
    assert data["weekdays"][0] == "thứ Hai" and data["states"][AWAITING_APPROVAL] == "chờ duyệt"
    first = data["posts"][0]
    assert first["label"] == "da-dang" and first["channels"][0]["state"] == "pending"  # from the ledger
    assert data["problems"] == []
    bad = client.get("/api/calendar", params={"from": "2020-05-01", "to": "2020-07-01"})
    assert bad.status_code == 422 and "tối đa" in bad.json()["detail"]


def test_an_app_without_the_posts_feature_has_no_calendar():
    from fastapi.testclient import TestClient

    from bridgecast.board.app import create_app

    app = create_app(access=lambda: None, thumbnailer=False)
    assert {"/calendar/", "/api/calendar"}.isdisjoint({r.path for r in app.routes})
    assert TestClient(app).get("/api/calendar").status_code == 404
