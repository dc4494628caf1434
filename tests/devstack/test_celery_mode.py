"""Celery mode of the embedded stack (devstack/stack/celery.py): which mode a stack runs in, and the settings it
gives Airflow and Redis. The mode itself runs end to end in tests/e2e/test_celery_rehearsal.py."""
from __future__ import annotations

import os

import pytest

from devstack.stack.celery import WORKERS, Redis, celery_env, choose_executor, claim_mode, running_executor
from devstack.stack.layout import Layout, Ports
from devstack.stack.process import PidFile


@pytest.fixture
def layout(tmp_path, monkeypatch):
    monkeypatch.delenv("BRIDGECAST_EXECUTOR", raising=False)
    layout = Layout(var=tmp_path, ports=Ports(40000))
    layout.ensure()
    return layout


def test_up_refuses_to_start_celery_workers_beside_a_running_local_executor_scheduler(layout):
    scheduler = PidFile(layout.run / "airflow-scheduler.pid")
    scheduler.write(os.getpid())  # a live process stands for the running scheduler
    claim_mode(layout, "local")
    assert running_executor(layout) == "local" and choose_executor(layout) == "local"
    with pytest.raises(RuntimeError, match="runs with --executor local.*bridgecast down"):
        claim_mode(layout, "celery")
    scheduler.clear()  # stopped: any mode may start
    assert running_executor(layout) is None
    claim_mode(layout, "celery")
    scheduler.write(os.getpid())
    assert choose_executor(layout) == "celery"  # `down`/`status` without --executor find the running mode
    assert choose_executor(layout, "local") == "local"


def test_celery_settings_use_every_worker_slot_and_keep_the_broker_password_private(layout):
    env = celery_env(layout, {"airflow_db_password": "db-secret"})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) == sum(w.concurrency for w in WORKERS)
    password = (layout.secrets / "redis.password").read_text().strip()
    assert (layout.secrets / "redis.password").stat().st_mode & 0o077 == 0
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{password}@127.0.0.1:40379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://airflow:db-secret@")
    redis = Redis(layout, env, {})
    redis.prepare()
    assert f"requirepass {password}\n" in redis.conf_path.read_text()  # in a 0600 file, never on argv
    assert redis.conf_path.stat().st_mode & 0o077 == 0
