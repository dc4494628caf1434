"""The embedded stack's servers write their output through the redacting pump: a secret the stack holds never
reaches a server log in clear (the LocalExecutor echoes task output, unmasked, to the scheduler's), the lines
around it are kept, and stopping the server's group stops the pump after its last line."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from devstack.stack.process import PidFile, spawn, stop_group

REPO = Path(__file__).resolve().parents[2]


def test_a_printed_connection_password_reaches_the_log_masked_and_nothing_else_is_lost(tmp_path):
    password = "Portal-App-Pw-" + os.urandom(6).hex()
    conn = json.dumps({"conn_type": "http", "host": "portal.example", "login": "bc", "password": password})
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'plugins'}"}
    script = ("import sys, time\n"
              f"print('password as the task got it: {password}', flush=True)\n"
              "print('ordinary line: 64 điểm cầu', flush=True)\n"
              "sys.stderr.write('stderr too: ' + " + repr(password) + " + '\\n'); sys.stderr.flush()\n"
              "time.sleep(60)\n")
    log, pidfile = tmp_path / "server.log", PidFile(tmp_path / "server.pid")
    spawn([sys.executable, "-c", script], pidfile=pidfile, log_path=log, env=env,
          redact_env={**env, "AIRFLOW_CONN_BRIDGECAST_PORTAL": conn})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "stderr too" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    pid = pidfile.read()
    pgid = os.getpgid(pid)
    assert stop_group(pidfile, grace_s=5)
    text = log.read_text(encoding="utf-8")
    assert password not in text
    assert "password as the task got it: " in text and "ordinary line: 64 điểm cầu" in text and "stderr too" in text
    members = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == pgid]
    assert members == []  # the pump went with the server (a zombie waiting for its parent does not count)


def _pgid(proc: Path) -> int | None:
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[2])
