"""Staff posting as staff do it: the real Airflow UI in headless Chromium on a PC whose clock is in UTC.

Two field photos go through the real ingest (gateway → bridgecast_ingest → processed) and reach the form's photo
list through the processed-photos asset; a communications officer (user `admin`) fills the trigger form in a
browser set to UTC — 08:00 tomorrow, the two photos — and the post is planned for 01:00 UTC, i.e. 08:00 in
Vietnam; the approver, in another browser, finds it under Required Actions, sees the time in words and the photo
thumbnails, and rejects it. A second post typed for a minute a few minutes ahead is approved in the browser and
lands on the channels at that Vietnam minute.

Screenshots go to test-artifacts/staff/ (scaled, 128-colour PNGs); with BRIDGECAST_DOCS_SCREENSHOTS=1 the ones
the staff guide shows are also written to docs/images/ (docs/staff-guide.md).
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "ingest"))  # the suite's Chromium driver lives there
from ingest_testkit import EVENT_ID, Gateway, HeadlessChromium, wait_for  # noqa: E402

pytestmark = [pytest.mark.stack]

DAG = "bridgecast_schedule_post"
PICKER_DAG = "bridgecast_photo_picker"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
REPO = Path(__file__).resolve().parents[2]
DOC_IMAGES = REPO / "docs" / "images"
POINTS = ("vinh-tuong", "tam-dao")


# --- the browser ---------------------------------------------------------------------------------------------------
class StaffBrowser:
    """A person at a desktop browser in the Airflow UI: types, picks, clicks, and takes the guide's screenshots."""

    def __init__(self, chromium: HeadlessChromium, base_url: str, shots: Path):
        self.chromium, self.base_url, self.shots = chromium, base_url, shots
        chromium.call("Emulation.setDeviceMetricsOverride",
                      {"width": 1280, "height": 1700, "deviceScaleFactor": 1, "mobile": False})
        chromium.call("Emulation.setTimezoneOverride", {"timezoneId": "UTC"})  # and TZ=UTC in its environment

    def js(self, expression: str):
        return self.chromium.evaluate(expression)

    def zone(self) -> dict:
        return json.loads(self.js("JSON.stringify({zone: Intl.DateTimeFormat().resolvedOptions().timeZone, "
                                  "offset: new Date().getTimezoneOffset()})"))

    def open(self, path: str) -> None:
        self.chromium.open(self.base_url + path)

    def wait_js(self, expression: str, what: str, timeout_s: float = 30):
        return wait_for(lambda: self.js(expression), timeout_s=timeout_s, interval_s=0.3, what=what)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field, select what is there and type `text` (DevTools' insertText: React sees real input)."""
        self.wait_js(f"!!document.querySelector({json.dumps(selector)})", f"the field {selector}")
        self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); "
                "e.select && e.select(); })()")
        self.chromium.call("Input.insertText", {"text": text})

    def press(self, key: str, code: int) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            self.chromium.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                                          "windowsVirtualKeyCode": code})

    def pick(self, select_id: str, label: str) -> None:
        """Choose `label` in a react-select multi-select, as a person does: type part of it, press Enter."""
        self.type_into(f"#{select_id} input", label)
        self.wait_js(f"[...document.querySelectorAll('[id*=-option-]')].some(o => o.textContent === "
                     f"{json.dumps(label)})", f"the option {label!r}")
        self.press("Enter", 13)
        self.wait_js(f"document.querySelector('#{select_id}').innerText.includes({json.dumps(label)})",
                     f"{label!r} to be chosen")

    def click(self, text: str, within: str = "body") -> None:
        """Click the enabled button labelled `text`, once the page has rendered it."""
        self.wait_js(f"(() => {{ const b = [...document.querySelectorAll({json.dumps(within + ' button')})]"
                     f".find(e => e.textContent.trim() === {json.dumps(text)} && !e.disabled); "
                     "if (b) b.click(); return !!b; })()", f"an enabled button {text!r} in {within}")

    def login(self, user: str, password: str) -> None:
        self.open("/auth/login/")
        self.type_into("input[name=username]", user)
        self.type_into("input[name=password]", password)
        self.js("document.querySelector('button[type=submit]').click()")
        self.wait_js("!location.pathname.startsWith('/auth/')", f"{user} to be signed in")

    def bottom_of(self, selector: str, text: str | None = None) -> float:
        """Where (page y) the element matching `selector` (and `text`) ends: screenshots stop below it."""
        return self.js(f"(() => {{ const e = [...document.querySelectorAll({json.dumps(selector)})].find(e => "
                       f"{json.dumps(text)} === null || e.textContent.trim() === {json.dumps(text)}); "
                       "return e.getBoundingClientRect().bottom + scrollY; })()")

    def screenshot(self, name: str, *, selector: str | None = None, box: tuple | None = None, width: int = 1000,
                   docs: bool = False) -> Path:
        """A small PNG of one element (`selector`) or region (`box` = x, y, width, height), scaled to `width`,
        128 colours (the UI is flat colour): a few tens of kB for the guide."""
        from PIL import Image

        params = {"format": "png", "captureBeyondViewport": True}
        if selector:
            found = json.loads(self.js(f"JSON.stringify((() => {{ const r = document.querySelector("
                                       f"{json.dumps(selector)}).getBoundingClientRect(); return {{x: r.x + scrollX, "
                                       "y: r.y + scrollY, width: r.width, height: r.height}; })())"))
            params["clip"] = {**found, "scale": 1}
        elif box:
            params["clip"] = dict(zip(("x", "y", "width", "height"), box), scale=1)
        shot = self.chromium.call("Page.captureScreenshot", params, timeout_s=60)
        image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        small = image.quantize(colors=128)
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        small.save(path, optimize=True)
        if docs and os.environ.get("BRIDGECAST_DOCS_SCREENSHOTS") == "1":
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            small.save(DOC_IMAGES / f"{name}.png", optimize=True)
        return path


@pytest.fixture
def browsers(tmp_path, artifacts_dir, stack, monkeypatch):
    """Two PCs left in UTC: the communications officer's and the approver's."""
    monkeypatch.setenv("TZ", "UTC")
    opened = []

    def open_browser(name: str) -> StaffBrowser:
        profile = tmp_path / f"chromium-{name}"
        profile.mkdir()
        chromium = HeadlessChromium(profile, artifacts_dir / f"chromium-staff-{name}.log", width=1280, height=900)
        opened.append(chromium)
        return StaffBrowser(chromium, f"http://127.0.0.1:{stack.layout.ports.airflow}", artifacts_dir / "staff")

    yield open_browser
    for chromium in opened:
        chromium.close()


# --- the stack -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def passwords(stack) -> dict:
    from devstack.stack.env import airflow_passwords

    return airflow_passwords(stack.layout, stack.secrets)


@pytest.fixture(scope="module")
def event(stack):
    from bridgecast.event import default_event_path, load_event

    return load_event(default_event_path())


def form_photos(api) -> dict[str, str]:
    """key → label, as the trigger form offers them (the DAG's params as the UI reads them)."""
    schema = api.request("GET", f"/api/v2/dags/{DAG}/details")["params"]["photos"]["schema"]
    return {key: (schema.get("values_display") or {}).get(key, key) for key in schema.get("examples") or []}


@pytest.fixture(scope="module")
def fresh_photos(stack, airflow_api, event, tmp_path_factory):
    """Two field photos through the real ingest; returns their processed keys, labels and timings."""
    import hashlib

    from bridgecast.objects import processed_key
    from bridgecast.storage import Storage
    from devstack.synthetic import field_photo

    for dag_id in ("bridgecast_ingest", DAG, PICKER_DAG):
        airflow_api.wait_for_dag(dag_id, timeout_s=180)
    for dag_id in ("bridgecast_ingest", DAG):
        airflow_api.set_paused(dag_id, False)
    gateway = Gateway(f"http://127.0.0.1:{stack.layout.ports.gateway}",
                      stack.layout.secrets / "points" / f"{EVENT_ID}.json", stack.secrets["gateway_admin_token"])
    folder = tmp_path_factory.mktemp("field-photos")
    names = {p.id: p.display_name for p in event.points}
    seed = uuid.uuid4().int % 100000
    keys = {}
    for i, point in enumerate(POINTS):
        path = field_photo(folder / f"{point}.jpg", f"Ra quân {names[point]}", size=(1200, 900), seed=seed + i)
        data = path.read_bytes()
        answer = gateway.upload_multipart(point, [(path.name, data, "image/jpeg")])
        assert answer.status_code < 300, answer.text
        keys[point] = processed_key(EVENT_ID, point, "web", f"{hashlib.sha256(data).hexdigest()[:16]}.jpg")
    storage = Storage.from_connection()
    wait_for(lambda: all(storage.exists(k) for k in keys.values()), timeout_s=240, interval_s=1,
             what="the ingest to process both photos")
    processed_at = max(next(storage.list_keys(k))["LastModified"] for k in keys.values())
    offered = wait_for(lambda: (lambda found: found if set(keys.values()) <= set(found) else None)(
        form_photos(airflow_api)), timeout_s=180, interval_s=1, what="the form to offer the new photos")
    in_form_at = datetime.now(timezone.utc)
    return {"keys": keys, "labels": {p: offered[k] for p, k in keys.items()}, "names": names,
            "processed_at": processed_at, "in_form_s": (in_form_at - processed_at).total_seconds()}


@pytest.fixture
def started_runs(airflow_api):
    """Runs a test starts from the browser; one left waiting by a failed test is called off (Mark as failed), so
    the next run's Required Actions list is not cluttered."""
    runs: list[str] = []
    yield runs
    for run_id in runs:
        if airflow_api.run(DAG, run_id)["state"] not in ("success", "failed"):
            airflow_api.set_run_state(DAG, run_id, "failed")


def _next_minute(moment: datetime) -> datetime:
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


def _state(api, run_id: str, task_id: str) -> str | None:
    return next((t["state"] for t in api.task_instances(DAG, run_id) if t["task_id"] == task_id), None)


def _fill_and_trigger(staff: StaffBrowser, fields: dict, *, photos: list[str], shot: str | None = None) -> str:
    """The officer's part: DAG page → Trigger → the form → Trigger. Returns the new run's id (from the URL the UI
    goes to)."""
    staff.open(f"/dags/{DAG}")
    staff.wait_js("!!document.querySelector('[data-testid=trigger-dag-button]')", "the Trigger button")
    staff.js("document.querySelector('[data-testid=trigger-dag-button]').click()")
    staff.wait_js("!!document.querySelector('#element_publish_date')", "the trigger form")
    # the first field's help links to the approvers' list, wherever Airflow's UI is mounted
    href = staff.js("[...document.querySelectorAll('[role=dialog] a')].find(a => a.textContent.includes("
                    "'mở danh sách việc cần duyệt'))?.href || ''")
    assert href == f"{staff.base_url}/required_actions?response_received=false", href
    for name in ("publish_date", "publish_time", "title", "body"):
        staff.type_into(f"#element_{name}", fields[name])
    for label in photos:
        staff.pick("element_photos", label)
    if shot:
        staff.screenshot(shot, selector="[role=dialog]:has(#element_publish_date)", width=900, docs=True)
    staff.wait_js("!document.querySelector('[data-testid=trigger-dag-submit]').disabled", "the form to be complete")
    staff.js("document.querySelector('[data-testid=trigger-dag-submit]').click()")
    path = staff.wait_js(f"(location.pathname.match(/^\\/dags\\/{DAG}\\/runs\\/(.+)$/) || [])[1] || ''",
                         "the UI to open the new run")
    return urllib.parse.unquote(path)


def _approval_page(api, run_id: str) -> str:
    return f"/dags/{DAG}/runs/{urllib.parse.quote(run_id)}/tasks/approve_post/required_actions"


def _answer_in_browser(approver: StaffBrowser, api, run_id: str, button: str, timeout_s: float = 120) -> None:
    """Click Approve/Reject on the approval page; again if Airflow asks again (the retry on «Chờ duyệt»)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = _state(api, run_id, "approve_post")
        if state in ("success", "skipped", "failed"):
            return
        if state == "awaiting_input":
            approver.open(_approval_page(api, run_id))
            approver.wait_js(f"[...document.querySelectorAll('button')].some(b => b.textContent.trim() === "
                             f"{json.dumps(button)})", f"the {button} button")
            time.sleep(1)  # a person reads before clicking
            approver.click(button)
            wait_for(lambda: _state(api, run_id, "approve_post") != "awaiting_input", timeout_s=30,
                     what=f"the answer {button} to reach Airflow")
        time.sleep(1)
    raise AssertionError(f"approve_post of {run_id} did not finish after {button}")


# --- the tests -------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_processed_photos_reach_the_form_seconds_later_labelled_by_point_and_vietnam_time(fresh_photos,
                                                                                          airflow_api):
    print(f"\nprocessed → offered by the form: {fresh_photos['in_form_s']:.1f} s", file=sys.stderr)
    assert fresh_photos["in_form_s"] < 90
    when = fresh_photos["processed_at"].astimezone(VN)
    for point, label in fresh_photos["labels"].items():
        found = re.fullmatch(r"(.+) — (\d\d):(\d\d) (\d\d)/(\d\d)(?: \(\d+\))?", label)
        assert found and found.group(1) == fresh_photos["names"][point], label
        shown = datetime(when.year, int(found.group(5)), int(found.group(4)), int(found.group(2)),
                         int(found.group(3)), tzinfo=VN)
        assert abs((shown - when).total_seconds()) < 180, (label, when)  # local time, not UTC
    triggered = [r for r in airflow_api.runs(PICKER_DAG, limit=20) if r["run_type"] == "asset_triggered"]
    assert triggered, "the photo list was not refreshed by the processed-photos asset"


@pytest.mark.timeout(600)
def test_a_browser_in_utc_schedules_0800_as_0800_vietnam_time_and_the_approver_finds_it(
        fresh_photos, browsers, started_runs, airflow_api, passwords, event):
    from bridgecast.posts.audit import on_channels
    from bridgecast.posts.content import time_in_words

    staff = browsers("staff")
    assert staff.zone() == {"zone": "UTC", "offset": 0}
    staff.login("admin", passwords["admin"])
    day = (datetime.now(VN) + timedelta(days=1)).date()
    title = f"Ra quân 8 giờ sáng mai {uuid.uuid4().hex[:6]}"
    fields = {"publish_date": f"{day:%d/%m/%Y}", "publish_time": "08:00", "title": title,
              "body": "Sáng mai các đội tuyên truyền lưu động ra quân.\n\nHãy tham gia BHXH tự nguyện!"}
    labels = [fresh_photos["labels"][p] for p in POINTS]
    run_id = _fill_and_trigger(staff, fields, photos=labels, shot="staff-form")
    started_runs.append(run_id)

    conf = airflow_api.run(DAG, run_id)["conf"]
    assert {k: conf[k] for k in ("publish_date", "publish_time")} == {"publish_date": f"{day:%d/%m/%Y}",
                                                                    "publish_time": "08:00"}
    assert conf["photos"] == [fresh_photos["keys"][p] for p in POINTS]
    wait_for(lambda: _state(airflow_api, run_id, "approve_post") == "awaiting_input", timeout_s=120,
             what="the approval request to open")
    post = airflow_api.xcom(DAG, run_id, "validate_form", key="post")
    planned = datetime(day.year, day.month, day.day, 1, 0, tzinfo=timezone.utc)
    assert datetime.fromisoformat(post["publish_at"]) == planned  # 08:00 in Vietnam, whatever the browser said
    words = time_in_words(planned)
    assert words.startswith("08:00 ") and words.endswith(f"{day:%d/%m/%Y}, giờ Việt Nam")
    request = airflow_api.hitl_details(DAG, run_id)[0]
    assert words in request["subject"] and f"- **Giờ đăng:** {words} (01:00" in request["body"]
    assert [u["id"] for u in request["assigned_users"]] == ["approver"]

    approver = browsers("approver")
    approver.login("approver", passwords["approver"])
    approver.open("/dags")
    approver.click("Browse")  # where the approver finds the request: Browse → Required Actions
    approver.wait_js("[...document.querySelectorAll('[role=menuitem]')].some(m => m.textContent.trim() === "
                     "'Required Actions')", "the Browse menu")
    approver.screenshot("staff-browse-menu", box=(0, 120, 240, 260), width=240, docs=True)
    approver.open("/required_actions?response_received=false")
    approver.wait_js(f"document.body.innerText.includes({json.dumps(title)})", "the post in Required Actions")
    approver.screenshot("staff-required-actions", box=(0, 0, 1280, 240), width=1000, docs=True)
    approver.open(_approval_page(airflow_api, run_id))
    photos = "[...document.querySelectorAll('img')].filter(i => i.src.includes('/processed/'))"
    approver.wait_js(f"{photos}.filter(i => i.complete && i.naturalWidth > 0).length === 2",
                     "both thumbnails to load in the approval request")
    page = approver.js("document.body.innerText")
    assert words in page and "Approve" in page and "Reject" in page
    widths = approver.js(f"{photos}.map(i => i.naturalWidth)")
    assert all(w <= 400 for w in widths), widths  # the thumb rendition, not the full photo
    approver.screenshot("staff-approval", box=(0, 0, 1280, approver.bottom_of("button", "Approve") + 16),
                        width=1000, docs=True)

    _answer_in_browser(approver, airflow_api, run_id, "Reject")
    finished = airflow_api.wait_run(DAG, run_id, timeout_s=120)
    assert finished["state"] == "success"
    assert airflow_api.xcom(DAG, run_id, "notify_staff")["outcome"] == "rejected"
    assert on_channels(event, title) == {"fanpage": [], "portal": []}


@pytest.mark.timeout(900)
def test_a_post_typed_in_a_utc_browser_and_approved_there_goes_out_at_that_vietnam_minute(
        fresh_photos, browsers, started_runs, airflow_api, passwords, event):
    from bridgecast.channels.factory import channels_for
    from bridgecast.ledger import Ledger
    from bridgecast.posts.audit import on_channels
    from bridgecast.posts.form import publish_fields

    at = _next_minute(datetime.now(timezone.utc) + timedelta(seconds=150))
    title = f"Đang trực tiếp lễ ra quân {uuid.uuid4().hex[:6]}"
    fields = {**publish_fields(at), "title": title,
              "body": "Lễ ra quân đang diễn ra tại các điểm cầu.\n\nMời bà con theo dõi trực tiếp!"}
    staff = browsers("staff")
    assert staff.zone() == {"zone": "UTC", "offset": 0}
    staff.login("admin", passwords["admin"])
    run_id = _fill_and_trigger(staff, fields, photos=[fresh_photos["labels"][POINTS[0]]])
    started_runs.append(run_id)

    approver = browsers("approver")
    approver.login("approver", passwords["approver"])
    wait_for(lambda: _state(airflow_api, run_id, "approve_post") == "awaiting_input", timeout_s=120,
             what="the approval request to open")
    _answer_in_browser(approver, airflow_api, run_id, "Approve")
    left = (at - datetime.now(timezone.utc)).total_seconds()
    finished = airflow_api.wait_run(DAG, run_id, timeout_s=max(left, 0) + 180)
    assert finished["state"] == "success", finished

    report = airflow_api.xcom(DAG, run_id, "notify_staff")
    assert report["outcome"] == "published" and datetime.fromisoformat(report["publish_at"]) == at
    ledger = Ledger()
    for channel in ("portal", "fanpage"):
        row = ledger.get(event.id, channel, report["key"])
        late = (row.published_at - at).total_seconds()
        print(f"\n{channel}: published {late:+.2f} s after {at.astimezone(VN):%H:%M} Vietnam time",
              file=sys.stderr)
        assert row.status == "published" and 0 <= late < 10, (channel, late)
    found = on_channels(event, title)
    assert len(found["portal"]) == 1 and len(found["fanpage"]) == 1
    portal_time = datetime.fromisoformat(found["portal"][0]["date_gmt"]).replace(tzinfo=timezone.utc)
    assert 0 <= (portal_time - at).total_seconds() < 10, portal_time
    fanpage = channels_for(event)["fanpage"]
    created = next(datetime.strptime(p["created_time"], "%Y-%m-%dT%H:%M:%S%z")
                   for p in fanpage.client.get_all(f"{fanpage.page_id}/feed", {"fields": "id,created_time"})
                   if p["id"] == found["fanpage"][0]["id"])
    assert 0 <= (created - at).total_seconds() < 10, created  # the audience sees it at the Vietnam minute typed

    staff.open(f"/dags/{DAG}/runs/{urllib.parse.quote(run_id)}")
    staff.wait_js("document.body.innerText.includes('Báo kết quả') && document.body.innerText.includes('Success')",
                  "the finished run")
    staff.screenshot("staff-run-published", box=(0, 0, 1280, 560), width=1000)
