"""The staff's calendar of posts in the real Airflow api-server, in headless Chromium with the browser's clock in
UTC: two posts scheduled through the form (the REST API, as the UI's trigger form sends it) show in their week at
their Vietnam time — one waiting for the approver, then called off (withdrawn); one approved and published, with
its links — the 2020 calendar file's posts show in May 2020's month view, a post opens its details (time in words,
channels, body, previews), «Thêm bài» leads to the form; laptop and phone widths, and inside Airflow's own UI.
Screenshots: test-artifacts/calendar/."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import requests

import kit
from kit import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

DAG = "bridgecast_schedule_post"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
LEAD_S = 80  # the form wants ≥ 1 min; the run needs a few seconds to reach its approval
CARDS_JS = """JSON.stringify([...document.querySelectorAll('#grid .post')].map(b => ({
  key: b.dataset.key, day: b.closest('.day').dataset.day, time: b.querySelector('.time').textContent,
  title: b.querySelector('.title').textContent, state: (b.querySelector('.pill') || {}).textContent || null,
  cls: b.className})))"""


def cards(browser) -> list[dict]:
    return json.loads(browser.evaluate(CARDS_JS))


def card(browser, title: str) -> dict | None:
    return next((c for c in cards(browser) if c["title"] == title), None)


@pytest.fixture(scope="module")
def approver(stack):
    return kit.airflow_client(stack, "approver")


@pytest.fixture(scope="module")
def shots(artifacts_dir) -> Path:
    path = artifacts_dir / "calendar"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def posts(stack, airflow_api):
    """Two form posts: one for tomorrow 08:00 (Vietnam) left waiting for approval; one at the next minute + 80 s,
    approved by the approver (its publishing is awaited by the test that needs it)."""
    from bridgecast.posts.form import publish_fields

    airflow_api.wait_for_dag(DAG, timeout_s=180)
    airflow_api.set_paused(DAG, False)
    tag = uuid.uuid4().hex[:6]
    tomorrow = (datetime.now(VN) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    soon = kit.next_minute(datetime.now(timezone.utc) + timedelta(seconds=LEAD_S))
    body = "Các đội tuyên truyền lưu động ra quân.\n\nHãy tham gia BHXH tự nguyện!"
    titles = {"waiting": f"Lịch thử chờ duyệt {tag}", "published": f"Lịch thử đã đăng {tag}"}
    runs = {name: airflow_api.trigger(DAG, {"channels": ["portal", "fanpage"], "title": titles[name], "body": body,
                                            "photos": [], **publish_fields(at)})["dag_run_id"]
            for name, at in (("waiting", tomorrow), ("published", soon))}
    return {"titles": titles, "runs": runs, "at": {"waiting": tomorrow.astimezone(timezone.utc), "published": soon}}


def _browser(tmp_path: Path, shots: Path, width: int, height: int, *, mobile: bool) -> kit.HeadlessChromium:
    """Every PC here is left in UTC: the calendar must show Vietnam time by itself."""
    return kit.open_chromium(tmp_path, shots, width, height, mobile=mobile, clock_in_utc=True)


def _open_calendar(browser, airflow_url: str, query: str) -> None:
    loads = 0
    browser.open(f"{airflow_url}/bridgecast/calendar/{query}")
    wait_for(lambda: browser.evaluate("window.__calendar.loads") > loads, timeout_s=30, what="the calendar's data")


def _wait_card(browser, title: str, state: str, timeout_s: float = 90) -> dict:
    def shown():
        _reload_data(browser)
        found = card(browser, title)
        return found if found and found["state"] == state else None

    return wait_for(shown, timeout_s=timeout_s, interval_s=2, what=f"«{title}» on the calendar as «{state}»")


def _open_details(browser, title: str) -> dict:
    """Click the post's card, as a person does; what its details show."""
    return json.loads(browser.evaluate(
        f"(() => {{ const d = document.querySelector('#details'); if (d.open) d.close(); "
        f"const b = [...document.querySelectorAll('#grid .post')].find(b => "
        f"b.querySelector('.title').textContent === {json.dumps(title)}); b.click(); "
        "return JSON.stringify({open: document.querySelector('#details').open, "
        "previews: document.querySelectorAll('#d-previews a').length}); })()"))


def _reload_data(browser) -> None:
    """Ask the page for fresh data now (as its 30 s refresh would), and wait for it."""
    before = browser.evaluate("window.__calendar.loads")
    browser.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    wait_for(lambda: browser.evaluate("window.__calendar.loads") > before, timeout_s=30, what="fresh calendar data")


# --- the tests ----------------------------------------------------------------------------------------------------------
def test_the_calendar_is_refused_without_a_login_and_answers_json_with_one(airflow_url, admin_token):
    for path in ("/bridgecast/calendar/", "/bridgecast/calendar/static/calendar.js", "/bridgecast/api/calendar"):
        assert requests.get(f"{airflow_url}{path}", timeout=30).status_code == 401, path
    data = requests.get(f"{airflow_url}/bridgecast/api/calendar", params={"from": "2020-05-18", "to": "2020-05-31"},
                        headers={"Authorization": f"Bearer {admin_token}"}, timeout=60).json()
    assert [p["label"] for p in data["posts"]] == ["thong-bao-le-ra-quan", "nhac-lich-truoc-mot-ngay",
                                                  "dang-truc-tiep", "hinh-anh-doi-luu-dong", "tong-ket-tuan-dau"]
    assert data["posts"][2]["time_words"] == "08:00 thứ Bảy 23/05/2020, giờ Việt Nam"
    assert data["problems"] == []


def test_form_posts_show_in_their_week_with_their_vietnam_time_and_state(stack, posts, airflow_api, approver,
                                                                         airflow_url, admin_token, shots, tmp_path):
    from bridgecast.posts.content import time_in_words

    titles, at = posts["titles"], posts["at"]
    waiting_day = at["waiting"].astimezone(VN).date().isoformat()
    laptop = _browser(tmp_path, shots, 1366, 900, mobile=False)
    phone = _browser(tmp_path, shots, 390, 844, mobile=True)
    try:
        for browser in (laptop, phone):
            kit.sign_in(browser, airflow_url, admin_token)
        assert laptop.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"
        # the default view is this week (in Vietnam), Monday first
        _open_calendar(laptop, airflow_url, "")
        first, last = laptop.evaluate("window.__calendar.range")
        today = datetime.now(VN).date()
        assert first == (today - timedelta(days=today.weekday())).isoformat() and first <= today.isoformat() <= last
        assert laptop.evaluate("document.querySelector('.day .wd').textContent") == "thứ Hai"

        _open_calendar(laptop, airflow_url, f"?view=week&date={waiting_day}")
        shown = _wait_card(laptop, titles["waiting"], "chờ duyệt")  # once validate_form has checked it
        assert shown["day"] == waiting_day and shown["time"] == "08:00 giờ Việt Nam"  # not 01:00: the browser is UTC
        # its details: the time in words, the channels waiting for the approver, the body, the previews
        wait_for(lambda: _reload_data(laptop) or _open_details(laptop, titles["waiting"]).get("previews"),
                 timeout_s=60, interval_s=2, what="the post's previews (render_preview) in its details")
        details = laptop.evaluate("document.querySelector('#details').innerText")
        assert laptop.evaluate("document.querySelector('#details').open")
        assert f"Giờ đăng: {time_in_words(at['waiting'])}" in details
        assert "Cổng thông tin điện tử" in details and "Fanpage" in details
        assert "Chờ người duyệt: approver" in details
        assert "Hãy tham gia BHXH tự nguyện!" in details
        previews = json.loads(laptop.evaluate("JSON.stringify([...document.querySelectorAll('#d-previews a')]"
                                              ".map(a => a.href))"))
        page = requests.get(previews[0], cookies={"_token": admin_token}, timeout=30)
        assert page.status_code == 200 and titles["waiting"] in page.text
        edit = laptop.evaluate("document.querySelector('#d-edit a').href")
        assert edit == f"{airflow_url}/dags/{DAG}/runs/{quote(posts['runs']['waiting'], safe='')}"
        kit.screenshot(laptop, shots / "calendar-post-details.png", height=900)
        laptop.evaluate("document.querySelector('#details').close()")

        # the approved post goes out at its minute: published, with its links
        kit.answer_approval_when_open(approver, airflow_api, posts["runs"]["published"])
        wait_s = (at["published"] - datetime.now(timezone.utc)).total_seconds() + 120
        assert airflow_api.wait_run(DAG, posts["runs"]["published"], timeout_s=wait_s)["state"] == "success"
        published_day = at["published"].astimezone(VN).date().isoformat()
        _open_calendar(laptop, airflow_url, f"?view=week&date={published_day}")
        done = card(laptop, titles["published"])
        assert done["state"] == "đã đăng" and done["time"] == f"{at['published'].astimezone(VN):%H:%M} giờ Việt Nam"
        _open_details(laptop, titles["published"])
        links = json.loads(laptop.evaluate("JSON.stringify([...document.querySelectorAll('#d-channels a')]"
                                           ".map(a => a.textContent))"))
        assert links == ["Xem bài đã đăng", "Xem bài đã đăng"]
        laptop.evaluate("document.querySelector('#details').close()")

        # the waiting post called off (Mark run as → Failed) before its time: withdrawn
        airflow_api.set_run_state(DAG, posts["runs"]["waiting"], "failed")
        _open_calendar(laptop, airflow_url, f"?view=week&date={waiting_day}")
        assert card(laptop, titles["waiting"])["state"] == "đã rút"
        kit.screenshot(laptop, shots / "calendar-week-laptop.png")

        _open_calendar(phone, airflow_url, f"?view=week&date={published_day}")
        assert card(phone, titles["published"])["state"] == "đã đăng"
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        kit.screenshot(phone, shots / "calendar-week-phone.png", height=1600)
        assert laptop.exceptions == [] and phone.exceptions == []
        csp = [e for e in laptop.log_entries + phone.log_entries if "Content Security Policy" in e.get("text", "")]
        assert csp == []
    finally:
        laptop.close()
        phone.close()


def test_the_2020_calendar_file_shows_in_may_2020_and_says_where_it_is_edited(stack, airflow_url, admin_token,
                                                                              shots, tmp_path):
    laptop = _browser(tmp_path, shots, 1366, 900, mobile=False)
    phone = _browser(tmp_path, shots, 390, 844, mobile=True)
    try:
        for browser in (laptop, phone):
            kit.sign_in(browser, airflow_url, admin_token)
        _open_calendar(laptop, airflow_url, "?view=month&date=2020-05-23")
        assert laptop.evaluate("document.querySelector('#range-title').textContent") == "Tháng 5/2020"
        assert laptop.evaluate("window.__calendar.range") == ["2020-04-27", "2020-05-31"]
        shown = {(c["day"], c["time"], c["title"][:22]) for c in cards(laptop)}
        assert shown == {("2020-05-20", "09:00 giờ Việt Nam", "Thông báo: Lễ ra quân "),
                         ("2020-05-22", "17:00 giờ Việt Nam", "Ngày mai: Lễ ra quân T"),
                         ("2020-05-23", "08:00 giờ Việt Nam", "ĐANG TRỰC TIẾP: Lễ ra "),
                         ("2020-05-23", "11:30 giờ Việt Nam", "Hình ảnh các đội tuyên"),
                         ("2020-05-30", "16:00 giờ Việt Nam", "Tuần đầu Tháng vận độn")}
        assert "giờ Việt Nam" in laptop.evaluate("document.querySelector('.zone').textContent")
        # never published on this stack, and long past: not posted any more
        assert {c["state"] for c in cards(laptop)} == {"quá giờ, không đăng"}
        kit.screenshot(laptop, shots / "calendar-month-2020-laptop.png")
        laptop.evaluate("[...document.querySelectorAll('#grid .post')].find(b => b.closest('.day').dataset.day === "
                        "'2020-05-23').click()")
        details = laptop.evaluate("document.querySelector('#details').innerText")
        assert "Giờ đăng: 08:00 thứ Bảy 23/05/2020, giờ Việt Nam" in details
        assert "config/posts/bhxh-vinhphuc-2020.yaml" in details and "dang-truc-tiep" in details
        kit.screenshot(laptop, shots / "calendar-calendar-post-details.png", height=900)
        laptop.evaluate("document.querySelector('#details').close()")
        # the navigation: a month back and forth, and back to today
        laptop.evaluate("document.querySelector('#next').click()")
        wait_for(lambda: laptop.evaluate("window.__calendar.range")[0] == "2020-06-01", timeout_s=30,
                 what="June 2020")
        laptop.evaluate("document.querySelector('#today').click()")
        today = datetime.now(VN).date().isoformat()
        wait_for(lambda: (lambda r: r[0] <= today <= r[1])(laptop.evaluate("window.__calendar.range")), timeout_s=30,
                 what="this month")

        _open_calendar(phone, airflow_url, "?view=month&date=2020-05-01")
        assert len(cards(phone)) == 5 and phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.evaluate("getComputedStyle(document.querySelector('#grid .post .pill')).display") != "none"
        kit.screenshot(phone, shots / "calendar-month-2020-phone.png")
        assert laptop.exceptions == [] and phone.exceptions == []
    finally:
        laptop.close()
        phone.close()


def test_the_calendar_is_in_airflow_s_navigation_and_add_and_edit_lead_to_the_form(stack, posts, airflow_url,
                                                                                    admin_token, shots, tmp_path):
    browser = _browser(tmp_path, shots, 1366, 900, mobile=False)
    try:
        kit.sign_in(browser, airflow_url, admin_token)
        frame = "document.querySelector('iframe[title=\"Lịch đăng bài\"]')"
        browser.open(f"{airflow_url}/plugin/bridgecast-calendar")
        wait_for(lambda: browser.evaluate(f"!!{frame}?.contentWindow?.__calendar?.loads"), timeout_s=60,
                 what="the calendar inside Airflow's UI")
        nav = browser.evaluate("Array.from(document.querySelectorAll('a')).filter(a => "
                               "a.textContent.includes('Lịch đăng bài')).map(a => a.getAttribute('href'))")
        assert any(href.endswith("plugin/bridgecast-calendar") for href in nav), nav
        kit.screenshot(browser, shots / "airflow-nav-calendar.png", height=900)
        add = browser.evaluate(f"{frame}.contentDocument.querySelector('#add').href")
        assert add == f"{airflow_url}/dags/bridgecast_schedule_post"
        # the form it leads to: the DAG's page, whose Trigger button opens the staff form
        browser.open(add)
        wait_for(lambda: browser.evaluate("!!document.querySelector('[data-testid=trigger-dag-button]')"),
                 timeout_s=60, what="the Trigger button of the staff form's DAG")
        browser.evaluate("document.querySelector('[data-testid=trigger-dag-button]').click()")
        wait_for(lambda: browser.evaluate("!!document.querySelector('#element_publish_date')"), timeout_s=60,
                 what="the staff form")
        kit.screenshot(browser, shots / "calendar-add-opens-the-form.png", height=900)
        # «Sửa» on a form post: its run's page, whose Trigger offers the form again with the post's own values
        day = posts["at"]["published"].astimezone(VN).date().isoformat()
        _open_calendar(browser, airflow_url, f"?view=week&date={day}")
        _open_details(browser, posts["titles"]["published"])
        browser.open(browser.evaluate("document.querySelector('#d-edit a').href"))
        wait_for(lambda: browser.evaluate("!!document.querySelector('[data-testid=trigger-dag-button]')"),
                 timeout_s=60, what="the Trigger button on the post's run")
        browser.evaluate("document.querySelector('[data-testid=trigger-dag-button]').click()")
        wait_for(lambda: browser.evaluate("(() => { const m = [...document.querySelectorAll('[role=menuitem]')]"
                                          ".find(e => e.textContent.trim() === 'Trigger again with this config'); "
                                          "if (m) m.click(); return !!m; })()"), timeout_s=30,
                 what="«Trigger again with this config»")
        wait_for(lambda: browser.evaluate("(document.querySelector('#element_title') || {}).value") ==
                 posts["titles"]["published"], timeout_s=60, what="the form filled with the post's title")
        kit.screenshot(browser, shots / "calendar-edit-opens-the-filled-form.png", height=900)
    finally:
        browser.close()
