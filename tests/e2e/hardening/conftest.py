"""Fixtures of the adversarial suite (tests/e2e/hardening): one insider, one fault or one bad file at a time,
against the real embedded stack (`stack` in tests/conftest.py).

The log scan for secrets runs last, whatever order the rest ran in: it proves nothing was written by the others."""
from __future__ import annotations

from pathlib import Path

import pytest
from hardening_kit import Kit

SYSTEM_NGINX_LOGS = [Path("/var/log/nginx/access.log"), Path("/var/log/nginx/error.log")]


def _sizes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_size if p.exists() else 0 for p in paths}


# The system's nginx logs are shared by every stack on this machine (and hold what earlier, unfixed runs wrote):
# only what is appended from the collection of this suite on counts.
_system_log_offsets = _sizes(SYSTEM_NGINX_LOGS)


def pytest_collection_modifyitems(config, items):
    last = [i for i in items if "secret_scan" in i.nodeid]
    items[:] = [i for i in items if i not in last] + last


@pytest.fixture(scope="session")
def kit(stack) -> Kit:
    return Kit(stack)


@pytest.fixture(scope="session")
def system_log_offsets() -> dict[Path, int]:
    return dict(_system_log_offsets)


@pytest.fixture(scope="session")
def storage_manifests(stack):
    from bridgecast.manifest import ManifestStore
    from bridgecast.storage import Storage

    return ManifestStore(Storage.from_connection())
