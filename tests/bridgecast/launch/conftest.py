"""The fanpage sandbox, started through its real entry point, for the launch's live video through the ledger."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[3]


@dataclass
class FanpageSandbox:
    base_url: str
    page_id: str
    token: str = field(repr=False)
    app_secret: str = field(repr=False)

    def channel(self):
        from bridgecast.channels.fanpage import FanpageChannel

        return FanpageChannel(self.page_id, self.token, graph_version="v25.0", base_url=self.base_url)

    def fault(self, **rule) -> None:
        """Make matching Graph calls fail (mode "after": the work is done, then the answer is an error)."""
        response = requests.post(f"{self.base_url}/_sandbox/faults", json=rule, timeout=10,
                                 headers={"Authorization": f"Bearer {self.app_secret}"})
        assert response.status_code < 300, response.text

    def live_videos(self, title: str) -> list[dict]:
        """Every live video on the Page with this title, read with the Page token (whatever its status)."""
        response = requests.get(f"{self.base_url}/v25.0/{self.page_id}/live_videos", timeout=10,
                                params={"fields": "id,title,status", "limit": 100},
                                headers={"Authorization": f"OAuth {self.token}"})
        return [v for v in response.json()["data"] if v.get("title") == title]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fanpage_sandbox(tmp_path_factory) -> FanpageSandbox:
    root = tmp_path_factory.mktemp("launch-fanpage")
    page_id = str(100000000000000 + secrets.randbelow(10 ** 14))
    token, app_secret = "EAAB" + secrets.token_urlsafe(40), secrets.token_hex(16)
    secrets_file = root / "secrets.json"
    secrets_file.write_text(json.dumps({"fanpage_page_token": token, "fanpage_app_secret": app_secret}))
    secrets_file.chmod(0o600)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    with open(root / "sandbox.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.sandboxes.fanpage", "--port", str(port),
                                 "--data", str(root / "data"), "--rtmp-base", f"rtmp://127.0.0.1:{_free_port()}/live",
                                 "--page-id", page_id, "--secrets-file", str(secrets_file)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (root / "sandbox.log").read_text(errors="replace")
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the fanpage sandbox did not start in 30 s"
            time.sleep(0.1)
        yield FanpageSandbox(f"http://127.0.0.1:{port}", page_id, token, app_secret)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
