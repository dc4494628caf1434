"""The control room inside Airflow's UI: the Bridgecast board as an Airflow 3 plugin.

A FastAPI app mounted by the api-server at /bridgecast (the board's code: `bridgecast.board`), shown in the UI as
external views — the board in the navigation bar and as a tab on every DAG run (it follows the run when it is one
of bridgecast_launch), and the staff's calendar of posts in the navigation bar. Behind Airflow's own login and
roles; see `bridgecast.board.app`. This file is where the board meets the posts feature: the calendar's posts are
read by `bridgecast.posts.agenda`, handed to the app here (features never import each other).
"""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

NAME = "Bảng điều khiển"
ICON = "bridgecast/board/static/icon.svg"
CALENDAR_NAME = "Lịch đăng bài"
CALENDAR_ICON = "bridgecast/calendar/static/calendar.svg"


class _BoardApp:
    """`fastapi_apps`, built when first asked for. Only the api-server asks, but every task process loads the
    plugins too (for their macros): importing FastAPI and Airflow's security module there would cost each task
    about a second of CPU."""

    def __init__(self):
        self._apps: list[dict] | None = None

    def __get__(self, instance, owner) -> list[dict]:
        if self._apps is None:
            from bridgecast.board.app import create_app
            from bridgecast.posts.agenda import read_agenda

            self._apps = [{"app": create_app(agenda=read_agenda), "url_prefix": "/bridgecast",
                           "name": "Bridgecast board"}]
        return self._apps


class BridgecastBoardPlugin(AirflowPlugin):
    name = "bridgecast_board"
    fastapi_apps = _BoardApp()
    # hrefs are relative to the UI's base URL, so a deployment under a sub-path works too.
    external_views = [
        {"name": NAME, "href": "bridgecast/board/", "url_route": "bridgecast-board", "destination": "nav",
         "icon": ICON, "nav_top_level": True},
        {"name": NAME, "href": "bridgecast/board/?dag_id={DAG_ID}&run_id={RUN_ID}",
         "url_route": "bridgecast-board-run", "destination": "dag_run", "icon": ICON},
        {"name": CALENDAR_NAME, "href": "bridgecast/calendar/", "url_route": "bridgecast-calendar",
         "destination": "nav", "icon": CALENDAR_ICON, "nav_top_level": True},
    ]
