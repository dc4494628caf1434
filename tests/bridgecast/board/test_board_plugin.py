"""The plugin as Airflow sees it: a valid external view in the nav and on DAG runs, an app under a free prefix —
and loading it (as every task process does, for plugin macros) does not import the board's web stack."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_loading_the_plugin_in_a_task_process_does_not_import_fastapi_or_the_board():
    probe = ("import sys, json; import bridgecast_board; "
             "print(json.dumps([m in sys.modules for m in ('fastapi', 'bridgecast.board.app', 'av')]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={"PYTHONPATH": f"{REPO / 'plugins'}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False, False]


def test_the_external_views_and_the_app_are_what_airflow_3_3_accepts():
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse
    from fastapi import FastAPI

    from bridgecast_board import BridgecastBoardPlugin as plugin

    views = [ExternalViewResponse.model_validate(v) for v in plugin.external_views]
    assert {v.destination for v in views} == {"nav", "dag_run"}
    assert len({v.url_route for v in views}) == len(views) == 3  # Airflow drops a view whose route another one uses
    assert all(not v.href.startswith("/") for v in views)  # relative to the UI's base URL (sub-path deployments)
    assert "{RUN_ID}" in next(v.href for v in views if v.destination == "dag_run")
    nav = {v.name: v for v in views if v.destination == "nav"}
    assert set(nav) == {"Bảng điều khiển", "Lịch đăng bài"}  # the calendar beside the board, top level
    assert all(v.nav_top_level for v in nav.values())
    (entry,) = plugin.fastapi_apps
    assert isinstance(entry["app"], FastAPI)
    assert not any(entry["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    paths = {route.path for route in entry["app"].routes}
    assert {"/board/", "/api/board", "/api/thumbnails/{name}", "/calendar/", "/calendar/static/{name}",
            "/api/calendar"} <= paths
    prefix = entry["url_prefix"].strip("/")
    assert all(v.href.startswith(f"{prefix}/board/") for v in views if v.name == "Bảng điều khiển")
    assert nav["Lịch đăng bài"].href == f"{prefix}/calendar/"
    # each view's icon is a file the app serves
    from bridgecast.board import app, calendar

    served = {"board": app.STATIC_FILES, "calendar": calendar.STATIC_FILES}
    for view in views:
        area, _, name = view.icon.removeprefix(f"{prefix}/").partition("/static/")
        assert name in served[area] and f"/{area}/static/{{name}}" in paths, view.icon
    # every route behind Airflow's own authorization (who may read bridgecast_launch's runs)
    guards = [d.dependency.__qualname__ for d in entry["app"].router.dependencies]
    assert guards == ["requires_access_dag.<locals>.inner"]
