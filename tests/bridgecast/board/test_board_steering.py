"""The board's steering routes (the app as Airflow mounts it, Airflow's auth replaced by a stand-in user): a
decision is recorded with who took it, a refused one says why in Vietnamese, and the waits a moved time must
wake are cleared for the running launch only."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from bridgecast import steering
from bridgecast.event import load_event

REPO = Path(__file__).resolve().parents[3]
EVENT = load_event(REPO / "config" / "event.yaml")


@pytest.fixture
def steer(monkeypatch, memory_storage):
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.core_api.security import get_user
    from bridgecast.board import app as board_app
    from bridgecast.board import server, steer as steer_module

    storage, cleared = memory_storage, []
    run = server.LaunchRun("scheduled__2020", "running", {})
    monkeypatch.setattr(server, "launch_run", lambda session, run_id=None: run)
    monkeypatch.setattr(steer_module, "_waiting", lambda session, run_id: ["wait_for_t0", "wait_for_end"])
    monkeypatch.setattr(board_app, "_file_event", lambda board, path: EVENT)
    clock = {"now": EVENT.start - timedelta(minutes=10)}
    real_datetime = datetime

    class Clock(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return clock["now"]

    monkeypatch.setattr(steer_module, "datetime", Clock)
    monkeypatch.setattr(steer_module, "clear_waits_through_airflow",  # Airflow's REST clear: the e2e test's
                        lambda request, run_id, task_ids, note: cleared.append((run_id, task_ids, note)) or task_ids)
    board = board_app.Board(sources_factory=lambda: SimpleNamespace(storage=storage,
                                                                    steering_changed=lambda event_id: None))
    app = board_app.create_app(board, access=lambda: None, thumbnailer=False)
    app.dependency_overrides[board_app._session_dependency()] = lambda: None
    app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: "operator")
    return SimpleNamespace(client=TestClient(app), storage=storage, cleared=cleared, clock=clock)


def test_a_postpone_is_recorded_with_who_and_wakes_the_running_launchs_waits(steer):
    answer = steer.client.post("/api/steer", json={"action": "postpone", "minutes": 10})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["done"] == "Lùi giờ G 10 phút: từ 08:00:00 sang 08:10:00"
    assert data["in_force"]["t0"] == (EVENT.start + timedelta(minutes=10)).isoformat()
    assert data["log"][0]["by"] == "operator" and data["log"][0]["label"] == "Lùi giờ G"
    assert steer.cleared == [("scheduled__2020", ["wait_for_t0", "wait_for_end"],
                              "Bridgecast — Lùi giờ G: " + data["done"] + " (operator)")]
    shown = steer.client.get("/api/steering").json()
    assert shown["revision"] == 1 and shown["planned"]["t0"] == EVENT.start.isoformat()


def test_a_refused_decision_says_why_and_changes_nothing(steer):
    answer = steer.client.post("/api/steer", json={"action": "end_early"})
    assert answer.status_code == 409 and "Chưa đến giờ G" in answer.json()["detail"]
    assert steering.load(steer.storage, EVENT.id) == steering.Steering() and steer.cleared == []


def test_switching_the_program_point_clears_no_wait_and_a_form_post_is_not_a_command(steer):
    answer = steer.client.post("/api/steer", json={"action": "switch_program", "point": "vinh-phuc"})
    assert answer.status_code == 200 and answer.json()["in_force"]["program_name"] == "Vĩnh Phúc"
    assert steer.cleared == []
    forged = steer.client.post("/api/steer", data={"action": "end_early"})
    assert forged.status_code in (415, 422)


def test_a_board_opened_for_an_event_shows_that_events_latest_run(monkeypatch):
    """The alert mails link the board with ?event=: it must still show the run under way, not "no run"."""
    from bridgecast.board import app as board_app
    from bridgecast.board import server

    run = server.LaunchRun("scheduled__2020", "running", {})  # no conf: the configured event's run
    monkeypatch.setattr(server, "launch_run", lambda session, run_id=None: run)
    monkeypatch.setattr(board_app, "_file_event", lambda board, path: EVENT)
    board = board_app.Board(sources_factory=lambda: SimpleNamespace(storage=None))
    assert board_app.latest_run_of(board, None, EVENT.id) is run
    assert board_app.latest_run_of(board, None, "another-event") is None
