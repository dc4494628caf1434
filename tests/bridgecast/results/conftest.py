"""Fixtures for the results feature: the 2020 event, a private sign-up store, the day the import checks run on, and
the fanpage sandbox for the insights contract."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import requests

from bridgecast.channels.fanpage import FanpageChannel
from bridgecast.event import load_event
from bridgecast.results.store import SignupStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def event():
    return load_event(REPO / "config" / "event.yaml")


@pytest.fixture
def store(tmp_path) -> SignupStore:
    return SignupStore(f"sqlite:///{tmp_path / 'signups.sqlite'}")


@pytest.fixture
def today():
    """Import checks refuse days still to come: the tests run «during» the 2020 month of action."""
    return date(2020, 6, 25)


# --- the fanpage sandbox, started through its real entry point (for the insights contract) -----------------------
@dataclass
class FanpageSandbox:
    base_url: str
    page_id: str
    token: str = field(repr=False)
    app_secret: str = field(repr=False)

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base_url}/_sandbox/{path}", json=body, timeout=10,
                                    headers={"Authorization": f"Bearer {self.app_secret}"})
        assert response.status_code < 300, response.text
        return response.json()

    def graph(self, path: str, **params) -> tuple[int, dict]:
        """A raw Graph read with the Page token, independent of the client under test."""
        response = requests.get(f"{self.base_url}/v25.0/{path}", params=params, timeout=10,
                                headers={"Authorization": f"OAuth {self.token}"})
        return response.status_code, response.json()

    def channel(self, tmp_path) -> FanpageChannel:
        return FanpageChannel(self.page_id, self.token, graph_version="v25.0", base_url=self.base_url,
                              resume_dir=tmp_path / "uploads", sleep=lambda _s: None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fanpage_sandbox(tmp_path_factory) -> FanpageSandbox:
    root = tmp_path_factory.mktemp("fanpage-insights")
    page_id = str(100000000000000 + secrets.randbelow(10 ** 14))
    token, app_secret = "EAAB" + secrets.token_urlsafe(40), secrets.token_hex(16)
    secrets_file = root / "secrets.json"
    secrets_file.write_text(json.dumps({"fanpage_page_token": token, "fanpage_app_secret": app_secret}))
    secrets_file.chmod(0o600)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "BRIDGECAST_FANPAGE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    log_path = root / "sandbox.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.sandboxes.fanpage", "--port", str(port),
                                 "--data", str(root / "data"), "--rtmp-base", "rtmp://127.0.0.1:9/fblive",
                                 "--page-id", page_id, "--secrets-file", str(secrets_file),
                                 "--upload-chunk-kb", "256"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the fanpage sandbox exited:\n{log_path.read_text(errors='replace')}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the fanpage sandbox did not answer within 30 s")
            time.sleep(0.1)
        yield FanpageSandbox(f"http://127.0.0.1:{port}", page_id, token, app_secret)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert token not in log_path.read_text(errors="replace")
