"""Connections through Airflow's own lookup, on the real stack. `up` wrote the stack's Connections into the
metadata DB and no Airflow process carries an AIRFLOW_CONN_* variable, so a task reads the DB: a Connection edited
through the REST API (as in the UI) is the one the next task uses, and the SDK masks the secret in the task log.
Processes outside Airflow (the gateway, this test) keep the env form."""
from __future__ import annotations

import json
import uuid

import psutil
import pytest

from bridgecast.airflow_api import AirflowAPI
from bridgecast.connections import get_connection

DAG = "bridgecast_e2e_connections"
CONN = "bridgecast_portal"


@pytest.fixture(scope="module")
def connections_dag(stack, airflow_api) -> AirflowAPI:
    airflow_api.wait_for_dag(DAG, timeout_s=180)
    airflow_api.set_paused(DAG, False)
    return airflow_api


def run_dag(api: AirflowAPI) -> str:
    run_id = f"test_connections_{uuid.uuid4().hex[:8]}"
    api.trigger(DAG, run_id=run_id)
    run = api.wait_run(DAG, run_id, timeout_s=300)
    assert run["state"] == "success", run
    return run_id


def task_log(api: AirflowAPI, run_id: str, task_id: str) -> str:
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1"
    content = api.request("GET", path, params={"full_content": True})["content"]
    return "\n".join(str(line.get("event", "")) if isinstance(line, dict) else str(line) for line in content)


def set_password(api: AirflowAPI, password: str) -> None:
    """What an operator does in Admin → Connections → Edit: change the password field only."""
    api.request("PATCH", f"/api/v2/connections/{CONN}", params={"update_mask": ["password"]},
                json={"connection_id": CONN, "conn_type": "http", "password": password})


def test_a_connection_password_printed_by_a_task_shows_masked_in_its_log(stack, connections_dag):
    password = stack.wordpress().info().app_password
    run_id = run_dag(connections_dag)

    log = task_log(connections_dag, run_id, "print_connection_secret")
    assert "bridgecast_portal password as the task got it: ***" in log, log[-2000:]
    if password in log:
        pytest.fail("the portal password is readable in the task log", pytrace=False)
    assert "AIRFLOW_CONN_ variables in the task: []" in log  # the task read the metadata DB, not the environment
    health = connections_dag.xcom(DAG, run_id, "check_channels")
    assert all(health[name]["ok"] for name in ("portal", "fanpage", "press")), health


def test_a_connection_edited_through_the_rest_api_is_the_one_the_next_task_uses(stack, connections_dag):
    password = stack.wordpress().info().app_password
    wrong = f"wrong-{uuid.uuid4().hex}"
    set_password(connections_dag, wrong)
    try:
        edited_run = run_dag(connections_dag)
    finally:
        set_password(connections_dag, password)

    health = connections_dag.xcom(DAG, edited_run, "check_channels")
    assert health["portal"]["ok"] is False and CONN in health["portal"]["detail"], health["portal"]
    assert health["fanpage"]["ok"] and health["press"]["ok"], health  # only the edited Connection changed
    log = task_log(connections_dag, edited_run, "print_connection_secret")
    assert wrong not in log and "password as the task got it: ***" in log
    assert get_connection(CONN).password == password  # outside Airflow (this process): the env form, untouched

    restored_run = run_dag(connections_dag)
    assert connections_dag.xcom(DAG, restored_run, "check_channels")["portal"]["ok"] is True


def test_up_keeps_a_ui_edit_restores_a_deleted_connection_and_follows_its_own_changes(stack, airflow_api):
    from devstack.stack.env import CREATED, KEPT, UPDATED, sync_connections

    set_password(airflow_api, f"edited-{uuid.uuid4().hex}")
    airflow_api.request("DELETE", "/api/v2/connections/bridgecast_smtp")
    try:
        done = sync_connections(stack.layout, stack.secrets, echo=lambda _line: None)
        assert done[CONN] == KEPT and done["bridgecast_smtp"] == CREATED, done
        assert airflow_api.request("GET", "/api/v2/connections/bridgecast_smtp")["port"] == stack.layout.ports.smtp

        renewed = {**stack.secrets, "fanpage_page_id": "1" + stack.secrets["fanpage_page_id"]}
        assert sync_connections(stack.layout, renewed, echo=lambda _line: None)["bridgecast_fanpage"] == UPDATED
        extra = json.loads(airflow_api.request("GET", "/api/v2/connections/bridgecast_fanpage")["extra"])
        assert extra["page_id"] == renewed["fanpage_page_id"]
    finally:
        set_password(airflow_api, stack.wordpress().info().app_password)
        back = sync_connections(stack.layout, stack.secrets, echo=lambda _line: None)
    assert back["bridgecast_fanpage"] == UPDATED and back[CONN] == KEPT


def test_airflow_processes_carry_no_connection_variable_and_the_gateway_does(stack):
    def environment(name: str) -> dict:
        service = next(s for s in stack.services() if s.name == name)
        return psutil.Process(service.pidfile.read()).environ()

    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert not [k for k in environment(name) if k.startswith("AIRFLOW_CONN_")], name
    assert "AIRFLOW_CONN_BRIDGECAST_S3" in environment("ingest-gateway")
