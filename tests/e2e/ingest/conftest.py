"""Fixtures for the ingest gateway tests, all against the real embedded stack (`stack` in tests/conftest.py)."""
from __future__ import annotations

import pytest
from ingest_testkit import EVENT_ID, Gateway, HeadlessChromium


@pytest.fixture(scope="session")
def gateway(stack) -> Gateway:
    return Gateway(f"http://127.0.0.1:{stack.layout.ports.gateway}",
                   stack.layout.secrets / "points" / f"{EVENT_ID}.json", stack.secrets["gateway_admin_token"])


@pytest.fixture(scope="session")
def storage(stack):
    from bridgecast.storage import Storage

    return Storage.from_connection()


@pytest.fixture(scope="session")
def manifests(storage):
    from bridgecast.manifest import ManifestStore

    return ManifestStore(storage)


@pytest.fixture(scope="session")
def event():
    from bridgecast.event import default_event_path, load_event

    return load_event(default_event_path())


@pytest.fixture
def chromium(tmp_path, artifacts_dir):
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = HeadlessChromium(profile, artifacts_dir / "chromium-upload-page.log")
    yield browser
    browser.close()
