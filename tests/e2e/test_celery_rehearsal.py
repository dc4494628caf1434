"""The 8-point dress rehearsal on CeleryExecutor (`--executor celery`): Debian's Redis as the broker, the stack's
PostgreSQL as the result backend, two Celery workers as separate processes, each with its own scratch directory.
It must meet the same figures as on the LocalExecutor (test_launch_rehearsal.py), and the work must really have run
on both workers, each task on the worker of its queue.

Its own stack, beside the suite's LocalExecutor one: BRIDGECAST_TEST_CELERY_VAR (default `<BRIDGECAST_TEST_VAR>-celery`)
and BRIDGECAST_TEST_CELERY_PORT_BASE (default BRIDGECAST_TEST_PORT_BASE + 1000).
"""
from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from bridgecast.ingest.assets import INGEST_LANES
from devstack.rehearsal import DAG_ID, RehearsalOptions, run

REPO = Path(__file__).resolve().parents[2]
TEST_VAR = Path(os.environ.get("BRIDGECAST_TEST_VAR", REPO / "var" / "test-stack"))
TEST_PORT_BASE = int(os.environ.get("BRIDGECAST_TEST_PORT_BASE", "28000"))
CELERY_VAR = Path(os.environ.get("BRIDGECAST_TEST_CELERY_VAR", f"{TEST_VAR}-celery"))
CELERY_PORT_BASE = int(os.environ.get("BRIDGECAST_TEST_CELERY_PORT_BASE", TEST_PORT_BASE + 1000))
WORKER_OF_QUEUE = {"default": "worker-default", "live": "worker-default", "media": "worker-media"}


@pytest.fixture(scope="module")
def celery_stack(start_stack):
    with start_stack(CELERY_VAR, CELERY_PORT_BASE, executor="celery") as stack:
        yield stack


@pytest.fixture(scope="module")
def api(celery_stack):
    from bridgecast.airflow_api import AirflowAPI
    from devstack.stack.env import airflow_passwords

    return AirflowAPI(f"http://127.0.0.1:{celery_stack.layout.ports.airflow}", "bridgecast-service",
                      airflow_passwords(celery_stack.layout, celery_stack.secrets)["bridgecast-service"])


@pytest.fixture(scope="module")
def rehearsal(celery_stack):
    started_at = time.time()
    result = run(celery_stack, RehearsalOptions.for_suite())  # the LocalExecutor test's, without its faults
    result.started_at = started_at
    return result


@pytest.mark.timeout(1800)
def test_eight_point_rehearsal_on_celery_meets_the_local_executor_figures(rehearsal):
    failed = [(name, detail) for name, passed, detail in rehearsal.checks
              if not passed and not name.startswith("rehearsal wall time")]
    assert not failed, failed
    summary = rehearsal.summary
    assert summary["points_total"] == 8 and summary["preflight_no_go"] == ["ha-giang"]
    teams = [p for p in summary["points"] if p["kind"] == "team"]
    assert len(teams) == 9
    assert sum(p["photos_processed"] for p in teams) == 9 * 2  # every photo processed on the media worker
    assert sum(p["photos_quarantined"] for p in teams) == 1
    assert summary["recap"]["points"] == 8


def test_tasks_ran_in_their_own_workers_scratch_not_the_stacks_var(rehearsal, celery_stack):
    from bridgecast.storage import Storage
    from devstack.stack.celery import WORKERS, running_executor

    assert running_executor(celery_stack.layout) == "celery"
    scratch = celery_stack.layout.var / "workers"
    # check_channels (default queue) reports the free space of the temp directory it ran with: its worker's own
    preflight = Storage.from_connection().get_json(f"{rehearsal.event_id}/_launch/preflight.json")
    assert preflight["channels"]["disk"]["detail"].startswith(f"{scratch / 'worker-default' / 'tmp'}:")
    # and each worker's temp directory was written while the rehearsal ran (media: ingest, highlights, recaps)
    for spec in WORKERS:
        assert (scratch / spec.name / "tmp").stat().st_mtime >= rehearsal.started_at, spec.name


def test_every_launch_task_ran_on_the_worker_of_its_queue_and_both_workers_worked(rehearsal, api):
    tis = [ti for ti in api.task_instances(DAG_ID, rehearsal.run_id) if ti.get("hostname")]
    queues = {ti["task_id"]: ti["queue"] for ti in tis}
    # the event-long tasks have a queue of their own, so they never hold a media slot for the whole morning
    assert queues["relay_program_feed"] == queues["monitor_points"] == "live"
    assert queues["build_highlights"] == queues["build_recap"] == "media"
    wrong = [(ti["task_id"], ti["queue"], ti["hostname"]) for ti in tis
             if ti["hostname"].split(".")[0] != WORKER_OF_QUEUE[ti["queue"]]]
    assert not wrong, wrong
    workers = {ti["hostname"].split(".")[0] for ti in tis}
    assert workers == {"worker-default", "worker-media"}, workers


def test_the_teams_photos_and_recordings_were_processed_on_the_media_worker(rehearsal, api):
    batches = []  # both ingest lanes: photos; videos and recording segments
    for dag_id in INGEST_LANES:
        runs = [run for run in api.runs(dag_id, limit=100)
                if datetime.fromisoformat(run["run_after"]).timestamp() >= rehearsal.started_at]  # this rehearsal's
        batches += [ti for run in runs for ti in api.task_instances(dag_id, run["dag_run_id"])
                    if ti["task_id"] == "process_batch" and ti["state"] == "success"]
    assert batches, "no ingest batch ran"
    assert {ti["hostname"].split(".")[0] for ti in batches} == {"worker-media"}
