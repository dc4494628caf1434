"""Steering from the board: the routes behind its «Điều khiển» panel.

    GET  /bridgecast/api/steering?event=      what is in force (T0, end, program point) and every decision so far
    POST /bridgecast/api/steer                {"action": …, "minutes": …, "point": …, "event": …}

Who may clear the launch's tasks may steer it (`requires_access_dag("PUT", TASK_INSTANCE)` on bridgecast_launch):
the auth manager's roles decide, as for Airflow's own Clear button. A decision is recorded with the user's name
(`bridgecast.steering`: numbered, create-only), then the stage waits of the running launch that it moves are
cleared through Airflow's REST API *with the caller's own token* — so Airflow checks the permission again and its
audit log shows who cleared what, with the decision as the clear's note.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import requests
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bridgecast import steering
from bridgecast.board import server

log = logging.getLogger("bridgecast.board")

WAITING_STATES = {"deferred", "scheduled", "queued", "up_for_reschedule", "none", None}


class SteerRequest(BaseModel):
    action: str = Field(max_length=40)
    minutes: float | None = None
    point: str | None = Field(default=None, max_length=80)
    event: str | None = Field(default=None, max_length=120)


def _require_steer_access():
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("PUT", DagAccessEntity.TASK_INSTANCE, param_dag_id=server.LAUNCH_DAG_ID)


def _user_dependency():
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def steering_routes(app: FastAPI, board, *, event_of, run_of, session_dependency, require_steer=None,
                    user_dependency=None, clear_waits=None) -> None:
    """`event_of(board, event_id, run)` is the board's event lookup, `run_of(board, session, event_id)` the latest
    launch run of an event; `clear_waits(request, run_id, task_ids, note)` clears tasks of the launch run
    (Airflow's REST API with the caller's token by default)."""
    clear_waits = clear_waits or clear_waits_through_airflow

    @app.get("/api/steering")
    def steering_json(session=Depends(session_dependency), event: str | None = None):
        run = _run(session)
        shown = event_of(board, event, run if not event else None)
        storage = board.sources.storage
        try:
            record, entries = steering.load(storage, shown.id), steering.audit_log(storage, shown.id)
        except Exception as exc:  # noqa: BLE001 - S3 away: say so, never guess what is in force
            raise HTTPException(503, f"Không đọc được lệnh điều khiển từ kho lưu trữ, thử lại sau: "
                                     f"{type(exc).__name__}") from None
        return JSONResponse(_answer(shown, record, entries), headers={"Cache-Control": "no-store"})

    @app.post("/api/steer", dependencies=[Depends(require_steer or _require_steer_access())])
    def steer(body: SteerRequest, request: Request, session=Depends(session_dependency),
              user=Depends(user_dependency or _user_dependency())):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "Lệnh điều khiển phải gửi dạng JSON từ bảng theo dõi.")
        shown = event_of(board, body.event, _run(session) if not body.event else None)
        run = _active(_guarded(lambda: run_of(board, session, shown.id)))
        storage, now = board.sources.storage, datetime.now(timezone.utc)
        before = steering.load(storage, shown.id)
        planned = steering.Times(shown.start, shown.end, shown.program_point)
        points = {p.id: p.display_name for p in shown.connection_points}
        try:
            after, said = steering.decide(before, planned, body.action, now=now, streaming_points=points,
                                          minutes=body.minutes, point=body.point, tz=shown.tz)
            entry = steering.record(storage, shown.id, before, after, action=body.action, said=said,
                                    by=user.get_name(), now=now,
                                    details={"run_id": run.run_id if run else None})
        except steering.SteeringRefused as exc:
            raise HTTPException(409, str(exc)) from None
        log.warning("steering %s by %s: %s", body.action, user.get_name(), said)
        board.sources.steering_changed(shown.id)  # the board's next answer shows the new times
        cleared, clear_error = [], None
        if body.action in steering.MOVES_TIMES and run is not None:
            try:
                cleared = clear_waits(request, run.run_id, _waiting(session, run.run_id),
                                      f"Bridgecast — {entry['label']}: {said} ({user.get_name()})")
            except Exception as exc:  # noqa: BLE001 - recorded already: the waits read it when they wake
                clear_error = f"{type(exc).__name__}: {exc}"[:300]
                log.error("steering recorded, but the waits could not be cleared: %s", clear_error)
        answer = _answer(shown, after, steering.audit_log(storage, shown.id))
        answer.update({"done": said, "cleared": cleared, "clear_error": clear_error})
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _answer(event, record: steering.Steering, entries: list[dict]) -> dict:
    now = steering.in_force(steering.Times(event.start, event.end, event.program_point), record)
    points = {p.id: p.display_name for p in event.connection_points}
    return {"event_id": event.id, "revision": record.revision, "actions": steering.ACTIONS,
            "planned": {"t0": event.start.isoformat(), "end": event.end.isoformat(),
                        "program_point": event.program_point},
            "in_force": {"t0": now.t0.isoformat(), "end": now.end_at.isoformat(),
                         "program_point": now.program_point,
                         "program_name": points.get(now.program_point, now.program_point)},
            "points": [{"id": pid, "name": name} for pid, name in points.items()],
            "log": [{k: e.get(k) for k in ("revision", "at", "by", "action", "label", "said")} for e in entries]}


def _run(session):
    return _guarded(lambda: server.launch_run(session))


def _guarded(read):
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - the metadata DB is Airflow's; without it nothing can be steered safely
        raise HTTPException(503, f"Không đọc được lượt chạy của {server.LAUNCH_DAG_ID}: {type(exc).__name__}") \
            from None


def _active(run):
    """The run, if it is still going (its waits are what a moved time must wake)."""
    return run if run is not None and run.state in ("queued", "running") else None


def _waiting(session, run_id: str) -> list[str]:
    """The run's stage waits that have not passed yet (they are what a moved time must wake)."""
    from sqlalchemy import select

    from airflow.models.taskinstance import TaskInstance

    rows = session.execute(select(TaskInstance.task_id, TaskInstance.state).where(
        TaskInstance.dag_id == server.LAUNCH_DAG_ID, TaskInstance.run_id == run_id,
        TaskInstance.task_id.in_(list(steering.STAGE_WAITS)))).all()
    return [task_id for task_id, state in rows if (str(state.value) if hasattr(state, "value") else state)
            in WAITING_STATES]


def clear_waits_through_airflow(request: Request, run_id: str, task_ids: list[str], note: str) -> list[str]:
    """Clear `task_ids` of the launch run through Airflow's public REST API, as the caller (their JWT)."""
    if not task_ids:
        return []
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.configuration import conf

    auth = request.headers.get("authorization") or ""
    token = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    base = conf.get("api", "base_url", fallback="").rstrip("/") or str(request.base_url).rstrip("/")
    resp = requests.post(f"{base}/api/v2/dags/{server.LAUNCH_DAG_ID}/clearTaskInstances", timeout=15,
                         headers={"Authorization": f"Bearer {token}"},
                         json={"dry_run": False, "dag_run_id": run_id, "task_ids": task_ids, "only_failed": False,
                               "only_running": False, "reset_dag_runs": False, "include_downstream": False,
                               "include_upstream": False, "note": note[:1000]})
    if resp.status_code >= 300:
        raise RuntimeError(f"Airflow refused to clear {task_ids}: HTTP {resp.status_code} {resp.text[:200]}")
    return sorted({ti["task_id"] for ti in resp.json().get("task_instances", [])})
