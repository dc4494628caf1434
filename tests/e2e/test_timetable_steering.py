"""The morning as it really starts and as staff steer it, on the real stack: no manual trigger.

The test stack's launch DAG reads its own event file (tests/conftest.py points `BRIDGECAST_EVENT` at a copy). Here
that file becomes a compressed two-point event; `arm()` (what `./bridgecast arm` does) has Airflow parse it again,
unpauses the DAG and reads back its next run — the preflight of this event — and the scheduler starts the run from
the timetable. Then on the board, as an operator signed into Airflow presses its buttons (the first one in headless
Chromium, the others through the same route): postpone T0 by a minute (nothing goes live at the planned T0), go
live now (the go-live call follows within seconds), switch the program point (the relay feeds the fanpage live from
the other point), end early (the live ends, the wrap-up runs on the shortened event). The audit trail names who did
what; the summary tells the T0 and the end that were, not the planned ones.
"""
from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

import kit
from kit import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "bridgecast_launch"
SECOND_POINT = "vinh-phuc"  # the rehearsal event keeps the program point (trung-uong) and Vĩnh Phúc
LEAD_S = 165  # T0 this far from now: the reparse and the arming fit before the preflight (T-75 s)


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def timetable_event(stack, artifacts_dir):
    """A compressed copy of the event, written where the stack's launch DAG reads its event, armed; the
    points streaming. Put back (and the DAG paused) afterwards, whatever happened."""
    from bridgecast.event import load_event
    from bridgecast.ingest.keys import issue_point_keys
    from bridgecast.launch.arming import arm
    from devstack.rehearsal import Publishers, RehearsalOptions, encode_feeds, rehearsal_event

    launch_file = Path(stack.env["BRIDGECAST_EVENT"])
    admin = kit.airflow_client(stack, "admin")
    opts = RehearsalOptions(points=2, event_minutes=3, preflight_min=1.25, live_setup_min=0.75, photos_per_team=0)
    t0 = (datetime.now(timezone.utc) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
    raw = rehearsal_event(REPO / "config" / "event.yaml", opts, t0)
    raw["id"] = f"lich-chay-{t0:%Y%m%d-%H%M%S}"
    raw["title"] = raw["title"].replace("[Diễn tập]", "[Chạy theo lịch]")
    raw["short_title"] = raw["short_title"].replace("Diễn tập", "Chạy theo lịch")
    launch_file.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    event = load_event(launch_file)
    keys_file = issue_point_keys(stack.layout.secrets, event.id, [p.id for p in event.points],
                                 event_file=str(launch_file))
    keys = json.loads(keys_file.read_text())["points"]
    work = stack.layout.var / "timetable" / event.id
    feeds = encode_feeds(list(event.connection_points), stack.layout.var / "rehearsals" / "feeds")
    publishers = Publishers(f"rtmp://127.0.0.1:{stack.layout.ports.rtmp}/live", keys, feeds, work / "publishers")
    try:
        for point in event.connection_points:
            publishers.start(point.id)
        armed = arm(launch_file, admin)
        print(armed.describe())
        yield {"event": event, "armed": armed, "admin": admin, "publishers": publishers, "work": work}
    finally:
        publishers.stop_all()
        for run in admin.active_runs(DAG_ID):
            if run.get("run_type") == "scheduled":
                admin.set_run_state(DAG_ID, run["dag_run_id"], "failed")
        admin.set_paused(DAG_ID, True)
        shutil.copyfile(REPO / "config" / "event.yaml", launch_file)
        admin.reparse(DAG_ID)


def steer(admin, action: str, **fields) -> dict:
    return admin.request("POST", "/bridgecast/api/steer", json={"action": action, **fields})


def test_the_launch_starts_from_its_timetable_and_staff_steer_it_from_the_board(stack, timetable_event,
                                                                              artifacts_dir, tmp_path):
    from bridgecast import steering
    from bridgecast.storage import Storage

    event, armed, admin = timetable_event["event"], timetable_event["armed"], timetable_event["admin"]
    storage = Storage.from_connection()
    preflight_at = event.start - timedelta(minutes=event.stages.preflight_before_min)
    # Armed: Airflow itself says the next run is this event's preflight (after re-reading the event file).
    assert armed.ok, armed.describe()
    assert "Đã kích hoạt" in armed.describe() and not admin.dag(DAG_ID)["is_paused"]

    # The scheduler starts the run from the timetable — nobody triggers it.
    run = wait_for(lambda: next((r for r in admin.runs(DAG_ID, limit=5) if r["run_type"] == "scheduled"
                                 and _moment(r["run_after"]) == preflight_at), None),
                   timeout_s=(preflight_at - datetime.now(timezone.utc)).total_seconds() + 90, interval_s=2,
                   what="the scheduled launch run")
    run_id = run["dag_run_id"]
    started_late_s = (_moment(run["start_date"]) - preflight_at).total_seconds() if run.get("start_date") else None
    print(f"scheduled run {run_id} started {started_late_s} s after its preflight time")

    # Postpone by a minute, 25 s before the planned T0 (the live is being set up) — pressed on the board page in
    # headless Chromium, signed in as the operator is in the Airflow UI.
    out = artifacts_dir / "steering"
    out.mkdir(exist_ok=True)
    browser = kit.open_chromium(tmp_path, out, 1366, 900, mobile=False)
    try:
        kit.sign_in(browser, kit.airflow_url(stack), kit.ui_token(stack, "admin"))
        browser.open(f"{kit.airflow_url(stack)}/bridgecast/board/?event={event.id}")
        wait_for(lambda: "Đang áp dụng" in browser.evaluate("document.getElementById('steer-state').textContent"),
                 timeout_s=30, interval_s=0.5, what="the steering panel")
        wait_until(event.start - timedelta(seconds=25))
        browser.evaluate("window.confirm = () => true; document.getElementById('steer-minutes').value = '1'; "
                         "document.querySelector('[data-steer=postpone]').click(); true")
        said = wait_for(lambda: (t := browser.evaluate("document.getElementById('steer-result').textContent"))
                        .startswith(("Đã thực hiện", "Không thực hiện")) and t, timeout_s=20, interval_s=0.3,
                        what="the board's answer to the postpone")
        assert said.startswith("Đã thực hiện: Lùi giờ G 1 phút"), said
        assert "Lùi giờ G 1 phút" in browser.evaluate("document.getElementById('steer-log').textContent")
        kit.screenshot(browser, out / "board-steering-postponed.png", height=700)
    finally:
        browser.close()
    postponed = admin.request("GET", "/bridgecast/api/steering", params={"event": event.id})
    assert postponed["in_force"]["t0"] == (event.start + timedelta(minutes=1)).isoformat()
    assert [e["by"] for e in postponed["log"]] == ["admin"]
    # Nothing goes live at the planned T0.
    wait_until(event.start + timedelta(seconds=8))
    assert not storage.exists(f"{event.id}/_launch/go-live.json"), "went live at the planned T0 despite the postpone"
    states = {t["task_id"]: t["state"] for t in admin.task_instances(DAG_ID, run_id)}
    assert states.get("go_live") in (None, "scheduled", "queued", "running"), states

    # Go live now: the go-live call follows the command within seconds, and the program is on the fanpage live.
    commanded = datetime.now(timezone.utc)
    now_live = steer(admin, "go_live_now")
    assert _moment(now_live["in_force"]["t0"]) - commanded < timedelta(seconds=2)
    went = wait_for(lambda: storage.exists(f"{event.id}/_launch/go-live.json")
                    and storage.get_json(f"{event.id}/_launch/go-live.json"), timeout_s=40, interval_s=0.5,
                    what="go-live.json after go-live-now")
    go_live_after_command_s = (_moment(went["called_at"]) - commanded).total_seconds()
    print(f"go-live-now → go-live call: {go_live_after_command_s:.1f} s; on air after T0: "
          f"{went['on_air_after_t0_s']} s")
    assert go_live_after_command_s <= 10, went
    assert went["status"] == "LIVE" and went["on_air_after_t0_s"] is not None, went

    # Switch the program point: the relay feeds the live from Vĩnh Phúc within seconds.
    time.sleep(10)
    switched_at = datetime.now(timezone.utc)
    switched = steer(admin, "switch_program", point=SECOND_POINT)
    assert switched["in_force"]["program_point"] == SECOND_POINT and switched["cleared"] == []
    # … and its frames reach the live (the sender's own clock of media sent runs)
    relay = wait_for(lambda: (r := storage.get_json(f"{event.id}/_launch/relay.json"))["program_point"] ==
                     SECOND_POINT and r["showing"] == "program" and r["run_out_time_s"] >= 2 and r,
                     timeout_s=25, interval_s=1, what="the relay sending the new program point's frames")
    assert relay["switch_log"][-1] == {"to": "program", "point": SECOND_POINT, "at": relay["switch_log"][-1]["at"]}
    switch_s = (_moment(relay["switch_log"][-1]["at"]) - switched_at).total_seconds()
    print(f"switch-program → relay on {SECOND_POINT}: {switch_s:.1f} s; relay {relay}")

    # End early: the live ends and the wrap-up runs on the shortened event.
    time.sleep(12)
    ended_at = datetime.now(timezone.utc)
    ended = steer(admin, "end_early")
    assert _moment(ended["in_force"]["end"]) - ended_at < timedelta(seconds=2)
    assert "wait_for_end" in ended["cleared"], ended
    end_task = wait_for(lambda: next((t for t in admin.task_instances(DAG_ID, run_id)
                                      if t["task_id"] == "end_live_video" and t["state"] == "success"), None),
                        timeout_s=60, interval_s=1, what="end_live_video after end-early")
    live_ended_after_s = (_moment(end_task["end_date"]) - ended_at).total_seconds()
    print(f"end-early → live ended: {live_ended_after_s:.1f} s")
    assert live_ended_after_s <= 30, end_task
    # The points hang up when the program ends (their recordings close, so the highlights need not wait for
    # nginx's next segment boundary).
    timetable_event["publishers"].stop_all()

    final = admin.wait_run(DAG_ID, run_id, timeout_s=900, poll_s=5)
    assert final["state"] == "success", kit_failures(admin, run_id)

    # What was recorded and told: who did what, and the T0 and end that were.
    log = steering.audit_log(storage, event.id)
    assert [e["action"] for e in log] == ["postpone", "go_live_now", "switch_program", "end_early"]
    assert {e["by"] for e in log} == {"admin"} and all(e["run_id"] == run_id for e in log)
    summary = storage.get_json(f"{event.id}/_launch/summary.json")
    assert summary["t0"] == now_live["in_force"]["t0"] and summary["end"] == ended["in_force"]["end"]
    assert summary["program_point"] == SECOND_POINT and len(summary["steering"]) == 4
    assert summary["points_live"] == 2 and summary["publications_made"] == summary["publications_expected"]
    markdown = storage.get_bytes(f"{event.id}/_launch/summary.md").decode()
    assert "Điều khiển từ bảng theo dõi" in markdown and "Kết thúc sớm lúc" in markdown
    shown = admin.request("GET", "/bridgecast/api/board", params={"event": event.id})
    assert shown["event"]["steered"] and shown["event"]["t0"] == summary["t0"]
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    (out / "figures.txt").write_text(
        f"scheduled run started {started_late_s} s after its preflight time\n"
        f"go-live-now → go-live call {go_live_after_command_s:.1f} s (goal ≤ 10 s)\n"
        f"switch-program → relay sending from {SECOND_POINT} {switch_s:.1f} s\n"
        f"end-early → live ended {live_ended_after_s:.1f} s\n", encoding="utf-8")


def wait_until(moment: datetime) -> None:
    remaining = (moment - datetime.now(timezone.utc)).total_seconds()
    if remaining > 0:
        time.sleep(remaining)


def kit_failures(admin, run_id: str) -> dict:
    return {t["task_id"]: t["state"] for t in admin.task_instances(DAG_ID, run_id)
            if t["state"] not in ("success", "skipped")}
