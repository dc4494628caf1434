"""A district team's sign-up form on its upload page, through a real gateway app (FastAPI TestClient): who sees the
form, what the route refuses (Vietnamese, naming the field, 4xx), what it answers when Airflow is away (503, «thử lại
sau») — and that the conf it sends is what bridgecast_import_signups records (its task body run on that conf)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import requests
from fastapi.testclient import TestClient

from bridgecast.airflow_api import AirflowAPIError
from bridgecast.event import default_event_path, load_event
from bridgecast.ingest.api import create_app
from bridgecast.ingest.gateway import Gateway
from bridgecast.ingest.keys import KeyStore, issue_point_keys

EVENT = load_event(default_event_path())
TEAM = next(p for p in EVENT.points if p.kind == "district")
PROVINCE = next(p for p in EVENT.points if p.kind == "province")
DAY = EVENT.campaign_start


class Triggers:
    """Stands where Airflow's REST API is: records what the gateway would send, or fails the way requests does."""

    def __init__(self, error: Exception | None = None):
        self.sent: list[tuple[str, dict]] = []
        self.error = error

    def __call__(self, dag_id: str, conf: dict) -> dict:
        if self.error:
            raise self.error
        self.sent.append((dag_id, conf))
        return {"dag_run_id": f"manual__{len(self.sent)}"}


@pytest.fixture
def tokens(tmp_path) -> dict[str, str]:
    keys = issue_point_keys(tmp_path / "secrets", EVENT.id, [p.id for p in EVENT.points],
                            event_file=str(default_event_path()))
    return {pid: p["upload_token"] for pid, p in json.loads(keys.read_text())["points"].items()}


def client(tmp_path, triggers: Triggers) -> TestClient:
    gateway = Gateway(tmp_path / "var", KeyStore(tmp_path / "secrets" / "points"))
    return TestClient(create_app(gateway, trigger=triggers))


def post(c: TestClient, token: str, body: dict):
    return c.post("/api/signups", json=body, headers={"Authorization": f"Bearer {token}"})


def test_only_district_teams_see_the_form_and_its_day_defaults_to_today_in_vietnam(tmp_path, tokens):
    c = client(tmp_path, Triggers())
    team_page = c.get(f"/u/{tokens[TEAM.id]}").text
    assert 'id="signup-form"' in team_page and "Số người tham gia mới" in team_page and "Số tờ khai" in team_page
    today = datetime.now(EVENT.tz).date()
    expected = max(EVENT.campaign_start, min(today, EVENT.campaign_last_day)).isoformat()
    assert f'value="{expected}"' in team_page
    assert 'id="signup-form"' not in c.get(f"/u/{tokens[PROVINCE.id]}").text


def test_a_team_report_triggers_the_import_with_the_conf_the_dag_records(tmp_path, tokens, monkeypatch):
    triggers = Triggers()
    answer = post(client(tmp_path, triggers), tokens[TEAM.id], {"day": DAY.isoformat(), "count": 12, "forms": 11})
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["accepted"] and receipt["run_id"] == "manual__1" and receipt["count"] == 12
    assert f"{DAY:%d/%m/%Y}" in receipt["message"] and "12 người" in receipt["message"]
    (dag_id, conf), = triggers.sent
    assert dag_id == "bridgecast_import_signups"
    assert conf == {"team_report": {"district_id": TEAM.id, "day": DAY.isoformat(), "count": 12, "forms": 11,
                                    "source": f"team_page:{TEAM.id}"},
                    "event_id": EVENT.id, "event_file": str(default_event_path())}

    # the DAG's own task body on that conf records 12 for that district and day
    monkeypatch.setenv("BRIDGECAST_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    from bridgecast.results.store import SignupStore
    from bridgecast.results.tasks import import_signups_task

    outcome = import_signups_task({}, json.loads(json.dumps(conf)))
    assert outcome["action"] == "recorded" and outcome["count"] == 12
    (stored,) = [r for r in SignupStore().current(EVENT.id) if r.district_id == TEAM.id]
    assert (stored.day, stored.count, stored.forms) == (DAY, 12, 11)


@pytest.mark.parametrize("body, field", [
    ({"day": DAY.isoformat(), "count": -1}, "Số người tham gia mới"),
    ({"day": DAY.isoformat(), "count": "mười"}, "Số người tham gia mới"),
    ({"day": DAY.isoformat()}, "Số người tham gia mới"),
    ({"day": DAY.isoformat(), "count": 3, "forms": 2.5}, "Số tờ khai"),
    ({"day": "23/13/2020", "count": 3}, "Ngày"),
    ({"day": (datetime.now(EVENT.tz).date() + timedelta(days=1)).isoformat(), "count": 3}, "Ngày"),
    ({"day": (EVENT.campaign_start - timedelta(days=1)).isoformat(), "count": 3}, "Ngày"),
])
def test_a_wrong_value_is_refused_naming_its_field_and_nothing_is_triggered(tmp_path, tokens, body, field):
    triggers = Triggers()
    answer = post(client(tmp_path, triggers), tokens[TEAM.id], body)
    assert answer.status_code == 422
    assert f"«{field}" in answer.json()["detail"]
    assert triggers.sent == []


def test_a_connection_point_or_a_bad_token_cannot_report_sign_ups(tmp_path, tokens):
    triggers = Triggers()
    c = client(tmp_path, triggers)
    assert post(c, tokens[PROVINCE.id], {"day": DAY.isoformat(), "count": 3}).status_code == 403
    assert post(c, "not-a-token", {"day": DAY.isoformat(), "count": 3}).status_code == 403
    assert triggers.sent == []


@pytest.mark.parametrize("error, status", [
    (requests.ConnectionError("connection refused"), 503),
    (AirflowAPIError("POST", "/api/v2/dags/x/dagRuns", 503, "down"), 503),
    (AirflowAPIError("POST", "/auth/token", 401, "login refused"), 502),
])
def test_when_airflow_is_away_the_team_is_told_to_try_again_later(tmp_path, tokens, error, status):
    answer = post(client(tmp_path, Triggers(error)), tokens[TEAM.id], {"day": DAY.isoformat(), "count": 12})
    assert answer.status_code == status
    assert "thử lại sau" in answer.json()["detail"]
    if status == 503:
        assert answer.headers["Retry-After"]
