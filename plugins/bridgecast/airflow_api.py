"""A small client for Airflow's REST API v2 (JWT from /auth/token), used outside task code.

The ingest gateway posts asset events with it; the CLI and the end-to-end tests trigger runs, wait, clear
tasks and answer approval (HITL) steps with it — the same calls an operator's UI makes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import requests

from bridgecast.connections import get_connection

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowAPIError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, detail):
        super().__init__(f"Airflow API {method} {path} → HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class AirflowAPI:
    base_url: str
    username: str
    password: str
    timeout_s: float = 30.0

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self._session = requests.Session()
        self._token: str | None = None

    def __repr__(self) -> str:  # never show the password
        return f"AirflowAPI({self.base_url!r}, user={self.username!r})"

    @classmethod
    def from_connection(cls, conn_id: str = "bridgecast_airflow") -> "AirflowAPI":
        conn = get_connection(conn_id)
        return cls(conn.base_url(), conn.login, conn.password)

    # --- plumbing ---------------------------------------------------------------------------------------
    def _login(self) -> str:
        resp = self._session.post(f"{self.base_url}/auth/token", json={"username": self.username,
                                                                      "password": self.password},
                                  timeout=self.timeout_s)
        if resp.status_code >= 300:
            raise AirflowAPIError("POST", "/auth/token", resp.status_code,
                                  "login refused — check the Airflow user in Connection bridgecast_airflow")
        return resp.json()["access_token"]

    def request(self, method: str, path: str, *, ok=(200, 201, 204), accept: str | None = None, **kw):
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            resp = self._session.request(method, f"{self.base_url}{path}", timeout=self.timeout_s,
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  **({"Accept": accept} if accept else {})}, **kw)
            if resp.status_code == 401 and attempt == 1:
                self._token = None  # expired JWT: log in again once
                continue
            if resp.status_code not in ok:
                try:
                    detail = resp.json().get("detail", resp.text)
                except ValueError:
                    detail = resp.text[:300]
                raise AirflowAPIError(method, path, resp.status_code, detail)
            return resp.json() if resp.content else None
        raise AssertionError("unreachable")

    def fetch(self, path: str, **kw) -> requests.Response:
        """An authenticated GET of any page of the api-server (the board's files, say), answered as it is."""
        if self._token is None:
            self._token = self._login()
        return self._session.get(f"{self.base_url}{path}", timeout=self.timeout_s,
                                 headers={"Authorization": f"Bearer {self._token}"}, **kw)

    # --- DAGs and runs ------------------------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}")

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> dict:
        """Wait until the dag-processor has parsed `dag_id` (fresh stacks parse on a short interval)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.dag(dag_id)
            except AirflowAPIError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)

    def reparse(self, dag_id: str) -> None:
        """Ask the dag-processor to parse `dag_id`'s file now (Airflow's "Reparse" button): after its event file
        changed, say, since the file itself did not."""
        token = self.request("GET", f"/api/v2/dags/{dag_id}/details")["file_token"]
        self.request("PUT", f"/api/v2/parseDagFile/{token}", ok=(200, 201, 204))

    def import_errors(self) -> list[dict]:
        return self.request("GET", "/api/v2/importErrors")["import_errors"]

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None, *, run_id: str | None = None,
                logical_date: datetime | None = None) -> dict:
        body = {"conf": conf or {}, "logical_date": logical_date.astimezone(timezone.utc).isoformat()
                if logical_date else None}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def active_runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                            params={"state": ["queued", "running"], "limit": 100})["dag_runs"]

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict:
        """Mark a run success/failed/queued (as the UI's "Mark as" does)."""
        return self.request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str, limit: int = 100) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                            params={"limit": limit, "order_by": "-run_after"})["dag_runs"]

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 600, poll_s: float = 2.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {dag_id}/{run_id} still {run['state']} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        out, offset = [], 0
        while True:
            page = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                params={"limit": 100, "offset": offset})
            out.extend(page["task_instances"])
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                return out

    def task_error(self, dag_id: str, run_id: str, task_id: str, *, map_index: int = -1) -> str | None:
        """Why a task failed, in one line, from its last try's log (the error and the exception's type and
        message, as the task log holds them — masked by Airflow); None when its log says nothing."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        ti = self.request("GET", f"{path}/{map_index}" if map_index >= 0 else path)
        if not ti.get("try_number"):
            return None  # never ran (upstream failed, skipped): no log to read
        page = self.request("GET", f"{path}/logs/{ti['try_number']}", accept="application/json",
                            params={"full_content": True, **({"map_index": map_index} if map_index >= 0 else {})})
        events = [e for e in (page or {}).get("content", []) if isinstance(e, dict)]
        errors = [e for e in events if str(e.get("level", "")).lower() in ("error", "critical")]
        if not errors:
            return None
        last = errors[-1]
        detail = " ".join(f"{d.get('exc_type')}: {d.get('exc_value')}" for d in last.get("error_detail") or []
                          if isinstance(d, dict))
        return f"{last.get('event')} {detail}".strip()[:600]

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str], *, downstream: bool = False) -> dict:
        return self.request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json={
            "dag_run_id": run_id, "task_ids": task_ids, "dry_run": False, "only_failed": False,
            "include_downstream": downstream, "reset_dag_runs": True})

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
        entry = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                                    f"/xcomEntries/{key}", params={"map_index": map_index, "deserialize": True})
        return entry["value"]

    # --- assets -------------------------------------------------------------------------------------------
    def asset_id(self, uri: str) -> int:
        assets = self.request("GET", "/api/v2/assets", params={"uri_pattern": uri, "limit": 100})["assets"]
        for asset in assets:
            if asset["uri"] == uri:
                return asset["id"]
        raise AirflowAPIError("GET", "/api/v2/assets", 404,
                              f"asset {uri!r} is unknown to Airflow — is the DAG that consumes it parsed?")

    def create_asset_event(self, uri: str, extra: dict) -> dict:
        return self.request("POST", "/api/v2/assets/events", json={"asset_id": self.asset_id(uri), "extra": extra})

    # --- human in the loop ------------------------------------------------------------------------------
    def hitl_details(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails")["hitl_details"]

    def answer_hitl(self, dag_id: str, run_id: str, task_id: str, chosen: list[str], *, map_index: int = -1,
                    params_input: dict | None = None) -> dict:
        return self.request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                                     f"/{map_index}/hitlDetails",
                            json={"chosen_options": chosen, "params_input": params_input or {}})
