"""Shared fixtures. `stack` brings up a private embedded stack (its own var/ and ports) once per session."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_VAR = Path(os.environ.get("BRIDGECAST_TEST_VAR", REPO / "var" / "test-stack"))
TEST_PORT_BASE = int(os.environ.get("BRIDGECAST_TEST_PORT_BASE", "28000"))
ARTIFACTS = REPO / "test-artifacts"


@contextlib.contextmanager
def running_stack(var: Path, port_base: int, executor: str | None = None, launch_event: Path | None = None):
    """A private embedded stack, up (idempotent `up`) for the `with` block, stopped after it unless
    BRIDGECAST_KEEP_TEST_STACK=1 (handy while iterating).

    This process talks to the stack like a task does: the stack's environment is exported for the block, and
    the environment is put back whole afterwards (the rehearsal driver exports the stack's variables too).
    `launch_event`: the stack's Airflow reads its event from this copy of config/event.yaml (the timetable test
    rewrites it); this process keeps config/event.yaml."""
    from devstack.stack.manager import Stack

    saved = dict(os.environ)
    stack = Stack.from_env(var=var, port_base=port_base, executor=executor)
    if launch_event is not None:
        launch_event.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "config" / "event.yaml", launch_event)
        stack.env["BRIDGECAST_EVENT"] = str(launch_event)
    stack.up(echo=lambda line: print(line, file=sys.stderr))
    os.environ.update({k: v for k, v in stack.env.items() if k != "BRIDGECAST_EVENT"})
    try:
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if os.environ.get("BRIDGECAST_KEEP_TEST_STACK") != "1":
            stack.down(echo=lambda line: None)


@pytest.fixture(scope="session")
def stack():
    """The real embedded stack: PostgreSQL, SeaweedFS, ingest gateway, nginx-rtmp, sandboxes, Airflow.

    Started once, left running between tests, stopped at the end of the session (`running_stack`)."""
    with running_stack(TEST_VAR, TEST_PORT_BASE, launch_event=TEST_VAR / "launch-event.yaml") as stack:
        yield stack


@pytest.fixture(scope="session")
def start_stack():
    """`running_stack`, for a module that needs a stack of its own beside the suite's (the Celery rehearsal)."""
    return running_stack


@pytest.fixture(scope="session")
def airflow_api(stack):
    from bridgecast.airflow_api import AirflowAPI
    from devstack.stack.env import airflow_passwords

    return AirflowAPI(f"http://127.0.0.1:{stack.layout.ports.airflow}", "bridgecast-service",
                      airflow_passwords(stack.layout, stack.secrets)["bridgecast-service"])


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
