"""Shared fixtures. `stack` brings up a private embedded stack (its own var/ and ports) once per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_VAR = Path(os.environ.get("BRIDGECAST_TEST_VAR", REPO / "var" / "test-stack"))
TEST_PORT_BASE = int(os.environ.get("BRIDGECAST_TEST_PORT_BASE", "28000"))
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def stack():
    """The real embedded stack: PostgreSQL, SeaweedFS, ingest gateway, nginx-rtmp, sandboxes, Airflow.

    Started once (idempotent `up`), left running between tests, stopped at the end of the session unless
    BRIDGECAST_KEEP_TEST_STACK=1 (handy while iterating)."""
    from devstack.stack.manager import Stack

    stack = Stack.from_env(var=TEST_VAR, port_base=TEST_PORT_BASE)
    stack.up(echo=lambda line: print(line, file=sys.stderr))
    patch = pytest.MonkeyPatch()
    for key, value in stack.env.items():
        patch.setenv(key, value)
    yield stack
    patch.undo()
    if os.environ.get("BRIDGECAST_KEEP_TEST_STACK") != "1":
        stack.down(echo=lambda line: None)


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
