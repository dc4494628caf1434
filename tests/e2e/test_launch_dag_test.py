"""`dag.test()` of the launch with 3 points on compressed time (preflight T-30 s, a one-minute event): every
stage runs in one process against the real stack — S3, nginx-rtmp, the gateway and the channel sandboxes.
Timing (go-live vs T0, live detection) is the scheduler rehearsal's job: dag.test runs tasks one at a time.
And the preflight's channel check against the same stack with a broken fanpage Connection."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bridgecast.event import default_event_path, load_event
from devstack.rehearsal import Publishers, RehearsalOptions, encode_feeds, rehearsal_event

HERE = Path(__file__).parent


@pytest.mark.timeout(900)
def test_launch_dag_test_with_three_points(stack, airflow_api, tmp_path, artifacts_dir):
    from bridgecast.ingest.keys import issue_point_keys
    from bridgecast.storage import Storage

    opts = RehearsalOptions(points=3, event_minutes=1, preflight_min=0.5, live_setup_min=0.25)
    t0 = (datetime.now(timezone.utc) + timedelta(seconds=75)).replace(microsecond=0)
    raw = rehearsal_event(default_event_path(), opts, t0)
    raw["id"] = raw["id"].replace("rehearsal-", "dagtest-")
    event_file = tmp_path / "event.yaml"
    event_file.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    event = load_event(event_file)
    keys = json.loads(issue_point_keys(stack.layout.secrets, event.id, [p.id for p in event.points],
                                       event_file=str(event_file)).read_text())["points"]
    storage = Storage.from_connection()
    event_key = f"tests/{event.id}/event.yaml"
    storage.put_bytes(event_key, event_file.read_bytes())
    feeds = encode_feeds(list(event.connection_points), stack.layout.var / "rehearsals" / "feeds")
    publishers = Publishers(f"rtmp://127.0.0.1:{stack.layout.ports.rtmp}/live", keys, feeds, tmp_path / "pub")
    for point in event.connection_points:
        publishers.start(point.id)
    # the feeds stop at the end of the event, so that each point's last recording segment is closed and stored
    stop_at_end = threading.Timer((event.end - datetime.now(timezone.utc)).total_seconds(), publishers.stop_all)
    stop_at_end.start()
    # dag.test drives the run itself: the stack's scheduler must leave this DAG alone meanwhile
    was_paused = airflow_api.wait_for_dag("bridgecast_launch", timeout_s=180)["is_paused"]  # a fresh stack parses first
    airflow_api.set_paused("bridgecast_launch", True)
    log = artifacts_dir / "launch-dag-test.log"
    try:  # the child's output goes to a file: after a timeout it still shows which task it was stuck in
        with open(log, "w", encoding="utf-8") as out:
            subprocess.run([sys.executable, str(HERE / "launch_dag_test_child.py"), event_key], stdout=out,
                           stderr=subprocess.STDOUT, text=True, env={**os.environ, **stack.env}, timeout=780)
    finally:
        stop_at_end.cancel()
        publishers.stop_all()
        for run in airflow_api.active_runs("bridgecast_launch"):  # a child that died leaves its run "running":
            if (run.get("conf") or {}).get("event_key") == event_key:  # it would hold the one active-run slot
                airflow_api.set_run_state("bridgecast_launch", run["dag_run_id"], "failed")
        airflow_api.set_paused("bridgecast_launch", was_paused)
    output = log.read_text(encoding="utf-8")
    lines = [line for line in output.splitlines() if line.startswith("DAG_TEST_RESULT ")]
    assert lines, output[-3000:]
    result = json.loads(lines[0].split(" ", 1)[1])
    assert result["state"].endswith("success"), output[-3000:]
    summary = storage.get_json(f"{event.id}/_launch/summary.json")
    assert summary["points_total"] == 3
    assert all(p["segments"] >= 1 for p in summary["points"] if p["kind"] == "point")
    # dag.test runs one task at a time, and a deferred sensor blocks it until it fires: go-live's timing against T0
    # is measured in the rehearsal through the scheduler, here only that it was called and recorded
    assert summary["go_live_delta_s"] is not None
    # live video, portal article, recap video, press kit (no team photos here, so no photo post is expected)
    assert summary["publications_made"] == summary["publications_expected"] == 4, summary["publications_missing"]
    assert summary["recap"]["points"] == 3


def test_check_channels_reports_a_broken_fanpage_connection_and_still_checks_the_portal(stack, tmp_path,
                                                                                       monkeypatch):
    from bridgecast.launch.plan import plan_launch
    from bridgecast.launch.preflight import check_channels
    from bridgecast.storage import Storage

    raw = rehearsal_event(default_event_path(), RehearsalOptions(points=3), datetime.now(timezone.utc))
    raw["id"] = raw["id"].replace("rehearsal-", "preflight-")
    event_key = f"tests/{raw['id']}/event.yaml"
    Storage.from_connection().put_bytes(event_key, yaml.safe_dump(raw, allow_unicode=True).encode())
    plan = plan_launch({"event_key": event_key})
    # the Page id missing from the Connection's extra: the fanpage cannot even be built
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_FANPAGE", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9",
                                                                      "password": "EAAB-not-a-real-token"}))

    results = check_channels(plan)

    assert results["fanpage"]["ok"] is False and "bridgecast_fanpage" in results["fanpage"]["detail"]
    assert results["portal"]["ok"] is True, results["portal"]
    assert results["press"]["ok"] is True, results["press"]
    assert results["storage"]["ok"] is True and results["ingest"]["ok"] is True
