"""End-to-end tests: everything here runs against the real embedded stack (Airflow's scheduler, PostgreSQL,
SeaweedFS, nginx-rtmp, the gateway, the sandboxes and WordPress). Marked `e2e`, so the fast layer runs alone
with `./bridgecast test -m "not e2e"`."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def airflow_url(stack) -> str:
    """The stack's Airflow UI and API (what a browser opens)."""
    import kit

    return kit.airflow_url(stack)


@pytest.fixture(scope="module")
def admin_token(stack) -> str:
    """The JWT a browser signed in as `admin` holds (one per module: tokens expire)."""
    import kit

    return kit.ui_token(stack, "admin")
