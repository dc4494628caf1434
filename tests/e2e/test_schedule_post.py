"""The staff form through the running Airflow, as staff and approver use it (REST API v2 = what the UI calls):
approve → published once at the chosen minute; reject → nothing; no answer → expired at the publish time;
bad input → refused, or stopped at the first task with a Vietnamese message naming the field; clearing the
publishing ten times → still one post per channel; a deliberate re-post only with the «Đăng lại» box.

Every scenario is started at once by the module fixture (they share the same ~80 s wait for the publish time)."""
from __future__ import annotations

import io
import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bridgecast.airflow_api import AirflowAPI, AirflowAPIError

import kit

DAG = "bridgecast_schedule_post"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
LEAD_S = 80  # the form wants ≥ 1 min; the runs need a few seconds to reach the approval


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 40 % 255, 120, 200)).save(buf, "JPEG")
    return buf.getvalue()


def _mark_failed(api: AirflowAPI, run_id: str, attempts: int = 3) -> None:
    """Mark as → Failed, as a person would: clicked again when Airflow answers 500 (seen here: a PostgreSQL
    deadlock between this update and the scheduler touching the same run)."""
    for attempt in range(1, attempts + 1):
        try:
            api.set_run_state(DAG, run_id, "failed")
            break
        except AirflowAPIError as exc:
            if exc.status != 500 or attempt == attempts:
                raise
            time.sleep(2)
    # Seen once here: marked while the scheduler was finishing the approval task, the run was turned "success" by
    # the scheduler a second later (its tasks were skipped: nothing posted). A person sees it green and marks it
    # again; so does the test. Whether anything was posted is asserted on the channels.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(2)
        if api.run(DAG, run_id)["state"] != "failed":
            api.set_run_state(DAG, run_id, "failed")


@pytest.fixture(scope="module")
def event(stack):
    from bridgecast.event import default_event_path, load_event

    return load_event(default_event_path())


@pytest.fixture(scope="module")
def approver(stack):
    return kit.airflow_client(stack, "approver")


@pytest.fixture(scope="module")
def scenario(stack, airflow_api, approver, event):
    from bridgecast.storage import Storage

    airflow_api.wait_for_dag(DAG, timeout_s=180)
    airflow_api.set_paused(DAG, False)
    tag = uuid.uuid4().hex[:6]
    storage = Storage.from_connection()
    photos = []
    for i, point in enumerate(("vinh-yen", "phuc-yen")):
        key = f"{event.id}/{point}/processed/web/test-{tag}-{i}.jpg"
        storage.put_bytes(key, _jpeg(i), content_type="image/jpeg")
        photos.append(key)
    # the first photo has its thumbnail rendition, as the ingest makes them; the second shows at full size
    storage.put_bytes(photos[0].replace("/processed/web/", "/processed/thumb/"), _jpeg(7), content_type="image/jpeg")
    from bridgecast.posts.form import publish_fields

    t0 = datetime.now(timezone.utc)
    at = kit.next_minute(t0 + timedelta(seconds=LEAD_S))

    def conf(title: str, **kw) -> dict:
        return {"channels": ["portal", "fanpage"], "title": title, **publish_fields(at), "photos": [],
                "body": "Các đội tuyên truyền lưu động đã ra quân.\n\nHãy tham gia BHXH tự nguyện!", **kw}

    titles = {name: f"Bài thử {name} {tag}" for name in ("approved", "rejected", "expired", "invalid", "cancelled")}
    runs = {
        # staff text is never a template: "{{ ds }}" must reach the channels as typed
        "approved": airflow_api.trigger(DAG, conf(titles["approved"], photos=photos,
                                                  body="Mã chiến dịch: {{ ds }}."))["dag_run_id"],
        # the same post submitted again (same title and minute) while the first waits: the same post, once
        "again": airflow_api.trigger(DAG, conf(titles["approved"], photos=photos,
                                               body="Mã chiến dịch: {{ ds }}."))["dag_run_id"],
        # a deliberate re-post of it on the portal (Facebook itself refuses an identical text posted twice)
        "repost": airflow_api.trigger(DAG, conf(titles["approved"], photos=photos, channels=["portal"],
                                                repost=True))["dag_run_id"],
        "rejected": airflow_api.trigger(DAG, conf(titles["rejected"]))["dag_run_id"],
        # approved, then called off before its time (staff guide: Mark run as → Failed)
        "cancelled": airflow_api.trigger(DAG, conf(titles["cancelled"]))["dag_run_id"],
        "expired": airflow_api.trigger(DAG, conf(titles["expired"]))["dag_run_id"],
        "past": airflow_api.trigger(DAG, conf(titles["invalid"], publish_date="23/05/2020",
                                              publish_time="08:00"))["dag_run_id"],
        "bad_date": airflow_api.trigger(DAG, conf(titles["invalid"], publish_date="29/02/2027"))["dag_run_id"],
        "blank_body": airflow_api.trigger(DAG, conf(titles["invalid"], body="  \n  "))["dag_run_id"],
        "no_photo": airflow_api.trigger(DAG, conf(titles["invalid"], photos=[
            f"{event.id}/vinh-yen/processed/web/khong-co-{tag}.jpg"]))["dag_run_id"],
        "no_channel": airflow_api.trigger(DAG, conf(titles["invalid"], channels=[]))["dag_run_id"],
    }
    refused = {}
    for name, bad in {"unknown_channel": {"channels": ["portal", "tiktok"]}, "empty_body": {"body": ""}}.items():
        try:
            airflow_api.trigger(DAG, conf(titles["invalid"], **bad))
            refused[name] = None
        except AirflowAPIError as exc:
            refused[name] = exc
    requests = {}
    for name, option in (("approved", "Approve"), ("again", "Approve"), ("repost", "Approve"),
                         ("rejected", "Reject"), ("cancelled", "Approve")):
        requests[name] = kit.answer_approval_when_open(approver, airflow_api, runs[name], option, timeout_s=90)
    _mark_failed(airflow_api, runs["cancelled"])
    wait_s = (at - datetime.now(timezone.utc)).total_seconds() + 120
    finished = {name: airflow_api.wait_run(DAG, run_id, timeout_s=wait_s) for name, run_id in runs.items()}
    return {"runs": runs, "finished": finished, "refused": refused, "titles": titles, "at": at, "t0": t0,
            "photos": photos, "tag": tag, "requests": requests}


def _states(api, run_id) -> dict:
    return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in api.task_instances(DAG, run_id)}


def _on_channels(event, title):
    from bridgecast.posts.audit import on_channels

    return on_channels(event, title)


@pytest.mark.timeout(400)
def test_bad_form_input_is_refused_or_stops_at_the_first_task_naming_the_field(scenario, airflow_api, event):
    refused = scenario["refused"]
    assert refused["unknown_channel"] is not None and refused["unknown_channel"].status == 400
    assert "channels" in str(refused["unknown_channel"].detail) and "tiktok" in str(refused["unknown_channel"].detail)
    assert refused["empty_body"] is not None and "body" in str(refused["empty_body"].detail)
    expected = {"past": "«Ngày đăng», «Giờ đăng» (publish_date, publish_time): 08:00 thứ Bảy 23/05/2020, giờ Việt "
                        "Nam đã qua",
                "bad_date": "«Ngày đăng» (publish_date): «29/02/2027»: năm 2027 không phải năm nhuận",
                "blank_body": "«Nội dung» (body): đang trống",
                "no_photo": "«Ảnh» (photos): không tìm thấy ảnh",
                "no_channel": "«Kênh đăng» (channels): chưa chọn kênh nào"}
    for name, phrase in expected.items():
        run_id = scenario["runs"][name]
        assert scenario["finished"][name]["state"] == "failed", name
        states = _states(airflow_api, run_id)
        assert states[("validate_form", -1)] == "failed", (name, states)
        assert states[("approve_post", -1)] == "upstream_failed", (name, states)
        assert phrase in kit.task_log(airflow_api, DAG, run_id, "validate_form"), name
    assert _on_channels(event, scenario["titles"]["invalid"]) == {"fanpage": [], "portal": []}


@pytest.mark.timeout(400)
def test_approved_post_is_published_once_at_its_minute_with_its_photos(scenario, airflow_api, event):
    from bridgecast.ledger import Ledger

    assert scenario["finished"]["approved"]["state"] == "success"
    assert scenario["finished"]["again"]["state"] == "success"
    report = airflow_api.xcom(DAG, scenario["runs"]["approved"], "notify_staff")
    key = report["key"]
    ledger = Ledger()
    # The two submissions of the same post race for it at the minute; the one that made the call is timed (the
    # other waited on the publication lock for that call to end, then found the post).
    made = [r for name in ("approved", "again") for r in airflow_api.xcom(DAG, scenario["runs"][name],
                                                                          "notify_staff")["results"]
            if r["action"] == "created"]
    assert sorted(r["channel"] for r in made) == ["fanpage", "portal"], made
    for result in made:
        row = ledger.get(event.id, result["channel"], key)
        assert row.status == "published"
        late = (row.published_at - scenario["at"]).total_seconds()
        print(f"{result['channel']}: call left {result['call_late_s']:+.3f} s after its minute, "
              f"recorded as published {late:+.2f} s after it")
        assert 0 <= result["call_late_s"] < 2, result
        assert 0 <= late < 10, late
    found = _on_channels(event, scenario["titles"]["approved"])
    # the original and the deliberate re-post (its own key) on the portal; nothing from the duplicate submission
    assert len(found["portal"]) == 2 and all("wp:gallery" in p["content"] for p in found["portal"])
    assert len(found["fanpage"]) == 1 and found["fanpage"][0]["state"] == "published"
    assert "Mã chiến dịch: {{ ds }}." in found["fanpage"][0]["message"]
    assert sum("Mã chiến dịch: {{ ds }}." in p["content"] for p in found["portal"]) == 1  # not the re-post
    actions = sorted(r["action"] for name in ("approved", "again")
                     for r in airflow_api.xcom(DAG, scenario["runs"][name], "notify_staff")["results"])
    assert actions == ["created", "created", "existing", "existing"], actions
    repost = airflow_api.xcom(DAG, scenario["runs"]["repost"], "notify_staff")
    assert repost["key"].startswith(key + "/dang-lai-") and repost["results"][0]["action"] == "created"


@pytest.mark.timeout(400)
def test_the_approval_request_says_the_time_in_words_and_shows_the_photos_as_thumbnails(scenario, airflow_api):
    import re

    import requests

    from bridgecast.posts.content import time_in_words

    words = time_in_words(scenario["at"])
    request = scenario["requests"]["approved"]
    assert request is not None
    assert request["subject"].startswith(f"Duyệt bài «{scenario['titles']['approved']}» — đăng {words}")
    assert f"- **Giờ đăng:** {words} ({scenario['at']:%H:%M %d/%m/%Y} UTC)" in request["body"]
    images = re.findall(r"!\[([^\]]*)\]\((\S+)\)", request["body"])
    assert [alt for alt, _ in images] == ["Thành phố Vĩnh Yên", "Thành phố Phúc Yên"]
    assert "/processed/thumb/" in images[0][1] and "/processed/web/" in images[1][1]
    for _, url in images:  # what the approver's browser loads, with the UI's login: the image itself
        assert url.startswith("/bridgecast/api/media/") and "X-Amz" not in url and "AWSAccessKeyId" not in url, url
        answer = airflow_api.fetch(url)
        assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8", url
        assert answer.headers["content-type"] == "image/jpeg"
        assert requests.get(airflow_api.base_url + url, timeout=10).status_code == 401  # nothing without a login
    preview = request["body"]  # the portal preview link opens the article as it will look, behind the login too
    (portal_link,) = re.findall(r"\((http\S+/preview/\S+/portal\.html)\)", preview) or [None]
    if portal_link:
        page = airflow_api.fetch(portal_link.removeprefix(airflow_api.base_url))
        assert page.status_code == 200 and "<h1>" in page.text and "sandbox" in page.headers["content-security-policy"]
    report = airflow_api.xcom(DAG, scenario["runs"]["approved"], "notify_staff")
    assert report["publish_at_local"] == words
    # the notifiers' hook was called when the request opened, with the approvers and the link to the request
    log = kit.task_log(airflow_api, DAG, scenario["runs"]["approved"], "approve_post")
    assert f"NOTICE approval_requested → approver: Cần duyệt: {scenario['titles']['approved']}" in log
    assert "/tasks/approve_post/required_actions" in log


@pytest.mark.timeout(400)
def test_rejected_post_is_not_posted(scenario, airflow_api, event):
    run_id = scenario["runs"]["rejected"]
    assert scenario["finished"]["rejected"]["state"] == "success"
    states = _states(airflow_api, run_id)
    assert states[("approve_post", -1)] == "success" and states[("publish_post", -1)] == "skipped", states
    assert airflow_api.xcom(DAG, run_id, "notify_staff")["outcome"] == "rejected"
    assert _on_channels(event, scenario["titles"]["rejected"]) == {"fanpage": [], "portal": []}


@pytest.mark.timeout(400)
def test_an_approved_post_called_off_before_its_time_is_not_posted(scenario, airflow_api, event):
    assert scenario["finished"]["cancelled"]["state"] == "failed"
    assert datetime.now(timezone.utc) > scenario["at"] + timedelta(seconds=5)
    assert _on_channels(event, scenario["titles"]["cancelled"]) == {"fanpage": [], "portal": []}


@pytest.mark.timeout(400)
def test_unanswered_approval_expires_at_the_publish_time_and_staff_are_told(scenario, airflow_api, event):
    from bridgecast.storage import Storage

    run_id = scenario["runs"]["expired"]
    assert scenario["finished"]["expired"]["state"] == "failed"  # a red run: nobody decided
    states = _states(airflow_api, run_id)
    assert states[("approve_post", -1)] == "skipped" and states[("publish_post", -1)] == "skipped", states
    assert states[("notify_staff", -1)] == "failed"
    assert "HẾT HẠN DUYỆT" in kit.task_log(airflow_api, DAG, run_id, "notify_staff")
    assert _on_channels(event, scenario["titles"]["expired"]) == {"fanpage": [], "portal": []}
    storage = Storage.from_connection()
    outcomes = [o["Key"] for o in storage.list_keys(f"{event.id}/_posts/form/") if o["Key"].endswith("outcome.json")
                and scenario["tag"] in o["Key"] and "expired" in storage.get_json(o["Key"])["outcome"]]
    assert len(outcomes) == 1


@pytest.mark.timeout(400)
def test_clearing_the_publishing_ten_times_posts_nothing_new(scenario, airflow_api, event):
    run_id = scenario["runs"]["approved"]
    before = _on_channels(event, scenario["titles"]["approved"])
    for _ in range(10):
        airflow_api.clear_tasks(DAG, run_id, ["publish_post"])
        assert airflow_api.wait_run(DAG, run_id, timeout_s=120, poll_s=1)["state"] == "success"
        actions = [airflow_api.xcom(DAG, run_id, "publish_post", map_index=i)["action"] for i in (0, 1)]
        assert actions == ["existing", "existing"], actions
    after = _on_channels(event, scenario["titles"]["approved"])
    assert [p["id"] for p in after["fanpage"]] == [p["id"] for p in before["fanpage"]]
    assert [p["id"] for p in after["portal"]] == [p["id"] for p in before["portal"]]
