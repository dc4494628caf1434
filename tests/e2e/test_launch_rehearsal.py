"""The launch DAG through the real scheduler: an 8-point dress rehearsal with one point failing preflight (it
comes late) and one dropping mid-event, then the wrap-up publishing cleared and rerun from the API as an operator
would from the UI — the channels must still hold exactly one of each publication."""
from __future__ import annotations

import pytest

from bridgecast.launch import publications
from devstack.rehearsal import DAG_ID, RehearsalOptions, count_on_channels, run

PUBLISH_TASKS = ["publish_portal_article", "publish_fanpage_post", "send_press_kit", "create_live_video"]


@pytest.fixture(scope="module")
def rehearsal(stack):
    return run(stack, RehearsalOptions(points=8, event_minutes=1.5, late_point="ha-giang", drop_point="ha-noi",
                                       photos_per_team=2, timeout_min=20))


@pytest.mark.timeout(1500)
def test_eight_point_rehearsal_meets_its_figures(rehearsal):
    failed = [(name, detail) for name, passed, detail in rehearsal.checks
              if not passed and not name.startswith("rehearsal wall time")]
    assert not failed, failed
    summary = rehearsal.summary
    assert summary["points_total"] == 8 and summary["preflight_no_go"] == ["ha-giang"]
    teams = [p for p in summary["points"] if p["kind"] == "team"]
    assert len(teams) == 9
    # every team's photos processed; the one broken file quarantined, nothing lost
    assert sum(p["photos_processed"] for p in teams) == 9 * 2
    assert sum(p["photos_quarantined"] for p in teams) == 1
    assert summary["recap"]["points"] == 8


@pytest.mark.timeout(900)
def test_rerunning_the_wrap_up_publishing_posts_nothing_new(rehearsal, stack, airflow_api):
    from bridgecast.event import load_event

    event = load_event(stack.layout.var / "rehearsals" / rehearsal.event_id / "event.yaml")
    before = count_on_channels(stack, event)
    assert set(before) == {d.label for d in publications.ALL}  # counted by the launch's own definitions
    assert set(before.values()) == {1}, before
    for _ in range(2):
        airflow_api.clear_tasks(DAG_ID, rehearsal.run_id, PUBLISH_TASKS)
        run = airflow_api.wait_run(DAG_ID, rehearsal.run_id, timeout_s=600)
        assert run["state"] == "success"
    states = {ti["task_id"]: ti["state"] for ti in airflow_api.task_instances(DAG_ID, rehearsal.run_id)
              if ti["task_id"] in PUBLISH_TASKS}
    assert set(states.values()) == {"success"}, states
    outcome = airflow_api.xcom(DAG_ID, rehearsal.run_id, "publish_portal_article")
    assert outcome["action"] == "existing"
    assert count_on_channels(stack, event) == before
