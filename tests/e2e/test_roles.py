"""The production auth manager for real: an api-server under FAB (devstack.stack.fab) on the suite's stack, with the
office's roles (bridgecast.roles) and a user in each, driven through the REST API and the board as those people.

An editor schedules a post and reads the board, but gets 403 deleting a DAG, clearing or pausing the launch and
answering an approval — the approval of the post they just wrote included; the approver answers it; the operator
clears and pauses the launch; the admin may do all of it, except answer an approval that names someone else. The
launch is cleared as a dry run and paused to the state it has: the permission check is the one of the real thing,
and the suite's stack is left as it was."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote
from unittest.mock import ANY

import pytest
import requests

from bridgecast.airflow_api import AirflowAPI, AirflowAPIError
from bridgecast.roles import APPROVER, EDITOR, OPERATOR

import kit

DAG = "bridgecast_schedule_post"
LAUNCH = "bridgecast_launch"
NO_SUCH_DAG = "bridgecast_no_such_dag"


def answer(call) -> tuple[int, str]:
    """An API call as that user: (200, "") when it went through, else the refusal's status and detail."""
    try:
        call()
    except AirflowAPIError as exc:
        return exc.status, str(exc.detail)
    return 200, ""


def status_of(call) -> int:
    return answer(call)[0]


def _steer(api: AirflowAPI) -> tuple[int, str]:
    """Press «Kết thúc sớm» on the board as that user (the board's steering route)."""
    return answer(lambda: api.request("POST", "/bridgecast/api/steer", json={"action": "end_early"}))


NOT_A_RESPONDENT = "is not a respondent"  # Airflow's refusal of a user the approval does not list


@pytest.fixture(scope="module")
def fab(stack, airflow_api):
    """The FAB api-server (FAB's tables migrated, the roles and users written before it starts) and a REST client
    per workshop user: bientap (editor), approver, dieuhanh (operator), admin."""
    from devstack.stack.fab import FabApiServer

    airflow_api.wait_for_dag(DAG, timeout_s=180)
    airflow_api.wait_for_dag(LAUNCH, timeout_s=180)
    airflow_api.set_paused(DAG, False)
    server = FabApiServer(stack.layout, stack.env, stack.secrets)
    t0 = time.monotonic()
    if not server.start():
        server.apply()  # left running by an earlier session: its roles brought up to date
    print(f"FAB api-server ready in {time.monotonic() - t0:.1f}s (migrate, roles, start)")
    users = {u["username"]: AirflowAPI(server.url(), u["username"], u["password"]) for u in server.users}
    yield server, users
    server.stop()


@pytest.fixture(scope="module")
def editors_post(fab, airflow_api):
    """A post scheduled by the editor through the FAB api-server (its run's author is the editor)."""
    from bridgecast.posts.form import publish_fields

    _, users = fab
    at = kit.next_minute(datetime.now(timezone.utc) + timedelta(seconds=80))  # the form wants ≥ 1 min ahead
    run = users["bientap"].trigger(DAG, {"channels": ["portal"], "title": f"Bài của biên tập {uuid.uuid4().hex[:6]}",
                                         **publish_fields(at), "photos": [],
                                         "body": "Hãy tham gia BHXH tự nguyện!"})
    return run["dag_run_id"]


def _launch_clear(api: AirflowAPI) -> int:
    return status_of(lambda: api.request("POST", f"/api/v2/dags/{LAUNCH}/clearTaskInstances",
                                         json={"dry_run": True, "only_failed": True}))


def _launch_pause(api: AirflowAPI, airflow_api: AirflowAPI) -> int:
    return status_of(lambda: api.set_paused(LAUNCH, airflow_api.dag(LAUNCH)["is_paused"]))


def _wait_for_approval(airflow_api: AirflowAPI, run_id: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = next((t["state"] for t in airflow_api.task_instances(DAG, run_id) if t["task_id"] == "approve_post"),
                     None)
        if state == "awaiting_input":
            return
        assert state not in ("failed", "upstream_failed", "skipped"), f"approve_post of {run_id} is {state}"
        time.sleep(1)
    raise AssertionError(f"approve_post of {run_id} did not open within {timeout_s:.0f}s")


def test_the_fab_api_server_refuses_requests_without_a_login(fab):
    server, _ = fab
    assert requests.get(f"{server.url()}bridgecast/board/", timeout=30).status_code == 401
    assert requests.get(f"{server.url()}api/v2/dags", timeout=30).status_code == 401


def test_an_editor_schedules_and_reads_the_board_but_cannot_delete_clear_pause_or_approve(fab, airflow_api,
                                                                                           editors_post):
    _, users = fab
    editor, approver = users["bientap"], users["approver"]
    assert airflow_api.run(DAG, editors_post)["triggering_user_name"] == "bientap"
    assert editor.fetch("/bridgecast/board/").status_code == 200
    assert editor.fetch("/bridgecast/calendar/").status_code == 200
    assert editor.dag(LAUNCH)["dag_id"] == LAUNCH  # reads every DAG
    assert status_of(lambda: editor.request("DELETE", f"/api/v2/dags/{DAG}")) == 403
    assert _launch_clear(editor) == 403
    assert _launch_pause(editor, airflow_api) == 403
    assert _steer(editor) == (403, ANY)  # steering the morning is the clear permission on the launch

    _wait_for_approval(airflow_api, editors_post)
    request = editor.hitl_details(DAG, editors_post)[0]  # editors see the request (Required Actions)…
    assert [u["id"] for u in request["assigned_users"]] == ["approver"]
    # …but cannot answer it: not their own post, not any post — the role refuses them before the approval's list
    # of respondents is even looked at (the admin below gets that far)
    for who in ("bientap", "dieuhanh"):
        status, detail = answer(lambda: users[who].answer_hitl(DAG, editors_post, "approve_post", ["Approve"]))
        assert status == 403 and NOT_A_RESPONDENT not in detail, (who, detail)
    # only the approval's respondents answer it, even an admin, who may do everything else
    status, detail = answer(lambda: users["admin"].answer_hitl(DAG, editors_post, "approve_post", ["Approve"]))
    assert status == 403 and NOT_A_RESPONDENT in detail, detail

    kit.answer_approval_when_open(approver, airflow_api, editors_post, "Reject", timeout_s=90)
    run = airflow_api.wait_run(DAG, editors_post, timeout_s=120)
    decision = airflow_api.xcom(DAG, editors_post, "approve_post", key="decision")
    assert (run["state"], decision["decision"], decision["by"]) == ("success", "rejected", "approver")


def test_an_approver_answers_but_cannot_schedule_nor_run_the_launch(fab, airflow_api):
    _, users = fab
    approver = users["approver"]
    assert approver.fetch("/bridgecast/board/").status_code == 200
    assert status_of(lambda: approver.trigger(DAG, {})) == 403  # writing posts is the editors' (give both roles)
    assert _launch_clear(approver) == 403
    assert _launch_pause(approver, airflow_api) == 403
    assert _steer(approver) == (403, ANY)


def test_an_operator_clears_and_pauses_the_launch_but_cannot_delete_or_schedule(fab, airflow_api):
    _, users = fab
    operator = users["dieuhanh"]
    assert operator.fetch("/bridgecast/board/").status_code == 200
    assert _launch_clear(operator) == 200
    assert _launch_pause(operator, airflow_api) == 200
    # let through to the decision, which the configured (2020) event refuses: it is over — nothing is recorded
    status, detail = _steer(operator)
    assert status == 409 and "đã kết thúc" in detail, detail
    assert status_of(lambda: operator.request("DELETE", f"/api/v2/dags/{LAUNCH}")) == 403
    assert status_of(lambda: operator.trigger(DAG, {})) == 403


def test_an_admin_may_do_all_of_it(fab, airflow_api):
    _, users = fab
    admin, editor = users["admin"], users["bientap"]
    assert admin.fetch("/bridgecast/board/").status_code == 200
    assert _launch_clear(admin) == 200
    assert _launch_pause(admin, airflow_api) == 200
    # deleting: the admin passes the permission check and is told the DAG does not exist; the editor is stopped first
    assert status_of(lambda: admin.request("DELETE", f"/api/v2/dags/{NO_SUCH_DAG}")) == 404
    assert status_of(lambda: editor.request("DELETE", f"/api/v2/dags/{NO_SUCH_DAG}")) == 403
    # the roles as FAB serves them are the ones declared in bridgecast.roles, and only an admin reads them
    for role in (EDITOR, APPROVER, OPERATOR):
        served = admin.request("GET", f"/auth/fab/v1/roles/{quote(role.name)}")["actions"]
        assert {(p["action"]["name"], p["resource"]["name"]) for p in served} == role.permissions
    assert status_of(lambda: editor.request("GET", "/auth/fab/v1/roles")) == 403
