"""What several end-to-end modules do alike: reach the stack's Airflow as a given user, answer the post approval
(HITL) as the approver does, and drive headless Chromium signed into the Airflow UI.

Plain functions, no fixtures: each module keeps its own fixtures, with their scope and artefact folder. The stack
itself (bring-up, environment, teardown) is `running_stack` in tests/conftest.py.
"""
from __future__ import annotations

import base64
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import requests

from bridgecast.airflow_api import AirflowAPI, AirflowAPIError

# The suite's Chromium driver and poller live with the ingest tests; re-exported so the modules here need no
# sys.path line of their own.
sys.path.insert(0, str(Path(__file__).resolve().parent / "ingest"))
from ingest_testkit import HeadlessChromium, jpeg_bytes, wait_for  # noqa: E402,F401

FORM_DAG = "bridgecast_schedule_post"  # every post needing approval goes through this DAG's approve_post
_SETTLED = ("success", "skipped", "failed", "upstream_failed")


# --- the stack's Airflow ------------------------------------------------------------------------------------------
def airflow_url(stack) -> str:
    return f"http://127.0.0.1:{stack.layout.ports.airflow}"


def airflow_client(stack, user: str) -> AirflowAPI:
    """The REST client as one of the stack's users (`approver`, `admin`…): what that person may see and do."""
    from devstack.stack.env import airflow_passwords

    return AirflowAPI(airflow_url(stack), user, airflow_passwords(stack.layout, stack.secrets)[user])


def ui_token(stack, user: str = "admin") -> str:
    """The JWT the UI's login page gets for `user`: a browser holding it is signed in."""
    from devstack.stack.env import airflow_passwords

    resp = requests.post(f"{airflow_url(stack)}/auth/token", timeout=30,
                         json={"username": user, "password": airflow_passwords(stack.layout, stack.secrets)[user]})
    resp.raise_for_status()
    return resp.json()["access_token"]


def task_log(api: AirflowAPI, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1,
             try_number: int = 1) -> str:
    """A task's log as text, as the UI shows it: what a person reads to learn why a run stopped."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    content = api.request("GET", path, params={"full_content": True, "map_index": map_index})["content"]
    return "\n".join(str(line.get("event", "")) if isinstance(line, dict) else str(line) for line in content)


def run_story(api: AirflowAPI, dag_id: str, run_id: str, *, log_lines: int = 6) -> str:
    """Each task's state and, for a task that failed or was skipped, the last lines of its log: an assertion on a
    run's state says why in CI, where nobody can open the UI afterwards."""
    lines = []
    for ti in api.task_instances(dag_id, run_id):
        task = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
        lines.append(f"{task}: {ti['state']} (try {ti.get('try_number')})")
        if ti["state"] in ("failed", "skipped", "upstream_failed") and ti.get("try_number"):
            try:
                log = task_log(api, dag_id, run_id, ti["task_id"], map_index=ti.get("map_index", -1),
                               try_number=ti["try_number"])
            except AirflowAPIError as exc:
                log = f"(no log: {exc})"
            lines += ["    " + line for line in log.splitlines()[-log_lines:]]
    return "\n".join(lines)


def next_minute(moment: datetime) -> datetime:
    """The form takes minutes: the first whole minute at or after `moment`."""
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


# --- the approver -------------------------------------------------------------------------------------------------
def answer_approval_when_open(approver: AirflowAPI, service: AirflowAPI, run_id: str, option: str = "Approve", *,
                              timeout_s: float = 120) -> dict | None:
    """Answer a post's approval like a person: once the request has been open a moment, and again if Airflow asks
    again (the retry on approve_post). The run may not exist yet (a calendar run starts it). Returns the request
    as the approver saw it (subject, body…), or None if it was settled before it could be seen."""
    deadline = time.monotonic() + timeout_s
    open_since = None
    seen = None
    while time.monotonic() < deadline:
        try:
            tis = service.task_instances(FORM_DAG, run_id)
        except AirflowAPIError as exc:
            if exc.status != 404:
                raise
            tis = []  # not started yet
        state = next((t["state"] for t in tis if t["task_id"] == "approve_post"), None)
        if state in _SETTLED:
            return seen
        if state == "awaiting_input":
            open_since = open_since or time.monotonic()
            seen = seen or next(iter(approver.hitl_details(FORM_DAG, run_id)), None)
            if time.monotonic() - open_since >= 2:
                try:
                    approver.answer_hitl(FORM_DAG, run_id, "approve_post", [option])
                except AirflowAPIError as exc:
                    if exc.status != 409:  # already answered
                        raise
                open_since = None
        else:
            open_since = None
        time.sleep(1)
    raise AssertionError(f"approve_post of {run_id} did not finish after answering {option}")


# --- headless Chromium in the Airflow UI --------------------------------------------------------------------------
def open_chromium(tmp_path: Path, log_dir: Path, width: int, height: int, *, mobile: bool,
                  clock_in_utc: bool = False) -> HeadlessChromium:
    """A laptop (`mobile=False`) or a phone (`mobile=True`, 2× pixels) of this width; `clock_in_utc`: a PC left in
    UTC, so the page must show Vietnam time by itself. Its log goes to `log_dir`/chromium.log."""
    profile = tmp_path / f"chromium-{width}"
    profile.mkdir()
    browser = HeadlessChromium(profile, log_dir / "chromium.log", width=width, height=height)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile})
    if clock_in_utc:
        browser.call("Emulation.setTimezoneOverride", {"timezoneId": "UTC"})
    return browser


def sign_in(browser: HeadlessChromium, airflow_url: str, token: str) -> None:
    """What the Airflow UI holds after its login page: the JWT in the `_token` cookie."""
    browser.call("Network.setCookie", {"name": "_token", "value": token, "url": f"{airflow_url}/", "path": "/"})


def screenshot(browser: HeadlessChromium, path: Path, height: int | None = None) -> Path:
    """The page from its top, the browser's width and `height` px tall (the whole page when None)."""
    height = height or browser.evaluate("document.documentElement.scrollHeight")
    shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": browser.width, "height": height, "scale": 1}}, timeout_s=60)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
