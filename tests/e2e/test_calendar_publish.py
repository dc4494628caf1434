"""The content calendar through the running Airflow: a private event and calendar folder (conf), one run that
publishes due posts at their minute, schedules tomorrow's 08:00 post on the fanpage for 01:00 UTC, waits for photos
that arrive late, fails clearly on photos that never come and hands a post that needs approval to the form's
approval step; then the calendar is edited — the published post becomes an update, the removed post's fanpage
scheduled post is deleted — and the publishing is cleared and rerun without a second post."""
from __future__ import annotations

import io
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import kit

DAG = "bridgecast_publish"
FORM_DAG = kit.FORM_DAG
VN = ZoneInfo("Asia/Ho_Chi_Minh")
REPO = Path(__file__).resolve().parents[2]
LEAD_S = 70  # the post that needs approval must get through validation, preview and the approval before it


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 50 % 255, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


def _calendar(event_id: str, tag: str, at: datetime, *, edited: bool = False) -> str:
    local = at.astimezone(VN).strftime("%Y-%m-%d %H:%M:%S")
    tomorrow = (at.astimezone(VN) + timedelta(days=1)).strftime("%Y-%m-%d 08:00")
    after = (at.astimezone(VN) + timedelta(days=2)).strftime("%Y-%m-%d 08:00")
    body = "Lễ ra quân đang diễn ra tại 9/9 huyện, thành phố." + (" Cập nhật: đã có 120 người đăng ký." if edited
                                                                    else "")
    posts = [
        f'  - {{id: len-song, channels: both, publish_at: "{local}", title: "Lên sóng {tag}", body: "{body}"}}',
        f'  - {{id: anh-moi-nhat, channels: [fanpage], publish_at: "{local}", title: "Ảnh mới nhất {tag}", '
        f'body: "Hình ảnh đội Vĩnh Yên.", media: {{point: vinh-yen, newest: 2}}, media_wait_minutes: 0.5}}',
        f'  - {{id: sang-mai, channels: [fanpage], publish_at: "{tomorrow}", title: "Sáng mai 8 giờ {tag}", '
        'body: "Hẹn gặp lúc 08:00."}',
        f'  - {{id: can-duyet, channels: [portal], publish_at: "{local}", approval_required: true, '
        f'title: "Cần duyệt {tag}", body: "Bài này cần được duyệt."}}',
    ]
    if not edited:
        posts += [
            f'  - {{id: se-rut, channels: [fanpage], publish_at: "{after}", title: "Sẽ rút {tag}", '
            'body: "Bài này sẽ bị rút khỏi lịch."}',
            f'  - {{id: thieu-anh, channels: [portal], publish_at: "{local}", title: "Thiếu ảnh {tag}", '
            f'body: "Ảnh không bao giờ đến.", media: ["{event_id}/tam-dao/processed/web/khong-co.jpg"], '
            'media_wait_minutes: 0.25}',
        ]
    return f"event: {event_id}\ntimezone: Asia/Ho_Chi_Minh\nlate_limit_minutes: 60\nposts:\n" + "\n".join(posts) + "\n"


def _instances(api, run_id: str) -> dict[str, dict]:
    """publish_post instances by label: '<post> · <channel> · <action>'."""
    return {ti["rendered_map_index"]: ti for ti in api.task_instances(DAG, run_id) if ti["task_id"] == "publish_post"}


@pytest.fixture(scope="module")
def calendar_runs(stack, airflow_api, tmp_path_factory):
    from bridgecast.event import load_event
    from bridgecast.storage import Storage

    approver = kit.airflow_client(stack, "approver")
    for dag_id in (DAG, FORM_DAG):
        airflow_api.wait_for_dag(dag_id, timeout_s=180)
        airflow_api.set_paused(dag_id, False)
    tag = uuid.uuid4().hex[:6]
    folder = tmp_path_factory.mktemp("calendar")
    event_id = f"bc-lich-{tag}"
    event_file = folder / "event.yaml"
    event_file.write_text(re.sub(r"(?m)^id: .*$", f"id: {event_id}",
                                 (REPO / "config" / "event.yaml").read_text(encoding="utf-8"), count=1),
                          encoding="utf-8")
    event = load_event(event_file)
    posts = folder / "posts"
    posts.mkdir()
    at = (datetime.now(timezone.utc) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
    (posts / "lich.yaml").write_text(_calendar(event_id, tag, at), encoding="utf-8")
    conf = {"event_file": str(event_file), "calendar_dir": str(posts)}

    first = airflow_api.trigger(DAG, conf)["dag_run_id"]
    kit.answer_approval_when_open(approver, airflow_api, f"calendar__can-duyet__{at.astimezone(VN):%Y%m%dT%H%M}")
    while datetime.now(timezone.utc) < at + timedelta(seconds=3):
        time.sleep(0.5)
    storage = Storage.from_connection()
    photos = []
    for i in range(3):  # after the minute: the post waits for them (newest 2 of these 3)
        key = f"{event_id}/vinh-yen/processed/web/{tag}-{i}.jpg"
        storage.put_bytes(key, _jpeg(i), content_type="image/jpeg")
        photos.append(key)
        time.sleep(1.1)
    first_run = airflow_api.wait_run(DAG, first, timeout_s=240)
    snapshot = {"after_first": _instances(airflow_api, first)}

    (posts / "lich.yaml").write_text(_calendar(event_id, tag, at, edited=True), encoding="utf-8")
    second = airflow_api.trigger(DAG, conf)["dag_run_id"]
    second_run = airflow_api.wait_run(DAG, second, timeout_s=180)
    return {"event": event, "tag": tag, "at": at, "conf": conf, "photos": photos, "first": first,
            "first_run": first_run, "second": second, "second_run": second_run, **snapshot}


def _result(api, run_id, ti):
    return api.xcom(DAG, run_id, "publish_post", map_index=ti["map_index"])


def _found(event, title):
    from bridgecast.posts.audit import on_channels

    return on_channels(event, title)


@pytest.mark.timeout(600)
def test_due_posts_go_out_once_at_their_minute(calendar_runs, airflow_api):
    run, tis = calendar_runs["first"], calendar_runs["after_first"]
    for channel in ("portal", "fanpage"):
        ti = tis[f"len-song · {channel} · đăng"]
        assert ti["state"] == "success"
        result = _result(airflow_api, run, ti)
        print(f"len-song on {channel}: call {result['call_late_s']:+.3f} s, recorded {result['late_s']:+.2f} s "
              "after its minute")
        assert result["action"] == "created" and 0 <= result["call_late_s"] < 2
    found = _found(calendar_runs["event"], f"Lên sóng {calendar_runs['tag']}")
    assert len(found["portal"]) == 1 and len(found["fanpage"]) == 1


@pytest.mark.timeout(600)
def test_0800_local_is_scheduled_on_the_fanpage_for_0100_utc(calendar_runs, airflow_api):
    from bridgecast.ledger import Ledger

    event, at = calendar_runs["event"], calendar_runs["at"]
    ti = calendar_runs["after_first"]["sang-mai · fanpage · hẹn giờ fanpage"]
    assert ti["state"] == "success"
    tomorrow_local = (at.astimezone(VN) + timedelta(days=1)).date()
    expected = datetime(tomorrow_local.year, tomorrow_local.month, tomorrow_local.day, 1, 0, tzinfo=timezone.utc)
    found = _found(event, f"Sáng mai 8 giờ {calendar_runs['tag']}")["fanpage"]
    assert [(p["state"], p["scheduled_publish_time"]) for p in found] == [("scheduled", expected)]
    row = Ledger().get(event.id, "fanpage", "calendar/sang-mai")
    assert row.status == "published" and row.extra["scheduled"] is True


@pytest.mark.timeout(600)
def test_photos_are_chosen_when_the_post_goes_out_and_missing_ones_fail_clearly(calendar_runs, airflow_api):
    from bridgecast.posts.media import record_key
    from bridgecast.storage import Storage

    event, run, tis = calendar_runs["event"], calendar_runs["first"], calendar_runs["after_first"]
    waited = tis["anh-moi-nhat · fanpage · đăng"]
    assert waited["state"] == "success"
    result = _result(airflow_api, run, waited)
    assert result["action"] == "created" and result["late_s"] > 3  # it waited for the photos
    frozen = Storage.from_connection().get_json(record_key(event.id, "calendar/anh-moi-nhat"))
    assert [m["key"] for m in frozen["media"]] == calendar_runs["photos"][1:]  # the newest two, oldest first
    missing = tis["thieu-anh · portal · đăng"]
    assert missing["state"] == "failed" and calendar_runs["first_run"]["state"] == "failed"
    text = kit.task_log(airflow_api, DAG, run, "publish_post", map_index=missing["map_index"],
                        try_number=missing["try_number"])
    assert "vẫn chưa có trong kho" in text and f"{event.id}/tam-dao/processed/web/khong-co.jpg" in text
    assert _found(event, f"Thiếu ảnh {calendar_runs['tag']}")["portal"] == []


@pytest.mark.timeout(600)
def test_a_post_that_needs_approval_goes_out_once_approved(calendar_runs, airflow_api):
    from bridgecast.ledger import Ledger

    event, at = calendar_runs["event"], calendar_runs["at"]
    ti = calendar_runs["after_first"]["can-duyet · portal · xin duyệt"]
    assert ti["state"] == "success"
    form_run = _result(airflow_api, calendar_runs["first"], ti)["run_id"]
    assert airflow_api.wait_run(FORM_DAG, form_run, timeout_s=120)["state"] == "success"
    row = Ledger().get(event.id, "portal", "calendar/can-duyet")
    assert row.status == "published" and 0 <= (row.published_at - at).total_seconds() < 10
    assert len(_found(event, f"Cần duyệt {calendar_runs['tag']}")["portal"]) == 1


@pytest.mark.timeout(600)
def test_an_edited_post_is_updated_and_a_removed_one_withdrawn(calendar_runs, airflow_api):
    from bridgecast.ledger import Ledger

    event, tag, run = calendar_runs["event"], calendar_runs["tag"], calendar_runs["second"]
    assert calendar_runs["second_run"]["state"] == "success"
    tis = _instances(airflow_api, run)
    assert set(tis) == {"len-song · portal · cập nhật", "len-song · fanpage · cập nhật", "se-rut · fanpage · rút bài"}
    assert {_result(airflow_api, run, ti)["action"] for label, ti in tis.items() if "len-song" in label} == {"updated"}
    found = _found(event, f"Lên sóng {tag}")
    assert len(found["portal"]) == 1 and "120 người đăng ký" in found["portal"][0]["content"]
    assert len(found["fanpage"]) == 1 and "120 người đăng ký" in found["fanpage"][0]["message"]
    assert _found(event, f"Sẽ rút {tag}")["fanpage"] == []  # the Facebook scheduled post is deleted
    assert Ledger().get(event.id, "fanpage", "calendar/se-rut").status == "cancelled"


@pytest.mark.timeout(600)
def test_clearing_the_publishing_posts_nothing_new(calendar_runs, airflow_api):
    event, tag, run = calendar_runs["event"], calendar_runs["tag"], calendar_runs["first"]
    before = _found(event, f"Lên sóng {tag}")
    labels = [f"len-song · {channel} · đăng" for channel in ("portal", "fanpage")]
    indexes = [calendar_runs["after_first"][label]["map_index"] for label in labels]
    for _ in range(3):  # the calendar now holds the edited text: the rerun finds it published as it is
        airflow_api.clear_tasks(DAG, run, [["publish_post", i] for i in indexes])
        airflow_api.wait_run(DAG, run, timeout_s=180, poll_s=1)
        tis = _instances(airflow_api, run)
        assert [_result(airflow_api, run, tis[label])["action"] for label in labels] == ["existing", "existing"]
    after = _found(event, f"Lên sóng {tag}")
    assert [p["id"] for p in after["portal"] + after["fanpage"]] == [p["id"] for p in before["portal"] +
                                                                     before["fanpage"]]
