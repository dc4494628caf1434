"""A supervised service of the embedded stack killed on purpose, and the seconds until publishers are accepted again,
timed from a publisher's side. The supervisor (`devstack.stack.manager supervise`) does the restarting; this only
kills and watches, so the rehearsal's "gateway killed before T0" and the hardening suite's kill test measure alike.
"""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from typing import Callable

import requests

GOAL_S = 5.0  # README, reliability: seconds from a gateway or nginx kill to publishers accepted again


def kill(stack, names: list[str]) -> float:
    """SIGKILL the process groups of the named services (a crash, not a stop: their pid files stay, so the
    supervisor restarts them; nginx's workers would go on serving if only the master died). Returns the moment
    (epoch seconds)."""
    pids = []
    for name in names:
        pid = next(s for s in stack.services() if s.name == name).pidfile.read()
        if not pid:
            raise RuntimeError(f"{name} is not running: nothing to kill")
        pids.append(pid)
    killed_at = time.time()
    for pid in pids:
        os.killpg(pid, signal.SIGKILL)
    return killed_at


def live_since(stack, event_id: str, point_id: str) -> float | None:
    """When the gateway last accepted a publish of `point_id` (epoch seconds), or None (not yet, or the gateway's
    upload API is still starting: it comes up after nginx's callbacks)."""
    try:
        answer = requests.get(f"http://127.0.0.1:{stack.layout.ports.gateway}/api/live", params={"event": event_id},
                              headers={"Authorization": f"Bearer {stack.secrets['gateway_admin_token']}"}, timeout=5)
    except requests.ConnectionError:
        return None
    if not answer.ok:
        return None
    point = next((p for p in answer.json()["points"] if p["point_id"] == point_id), None)
    return datetime.fromisoformat(point["live_since"]).timestamp() if point and point.get("live_since") else None


def accepted_again_after(stack, killed_at: float, publish: Callable[[], bool], *, event_id: str, point_id: str,
                         timeout_s: float = 60.0) -> float:
    """Publish as `event_id`/`point_id` until nginx takes a publish (`publish()` returns True: an encoder retrying,
    as OBS and vMix do), then the seconds from `killed_at` to the gateway's own record of it (`live_since`)."""
    deadline = time.monotonic() + timeout_s
    while not publish():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no publish accepted within {timeout_s:.0f} s of the kill")
        time.sleep(0.05)
    while time.monotonic() < deadline:
        since = live_since(stack, event_id, point_id)
        if since is not None and since > killed_at:
            return since - killed_at
        time.sleep(0.2)
    raise TimeoutError(f"the gateway never reported the publish it accepted after the kill ({timeout_s:.0f} s)")


def kill_and_time_recovery(stack, names: list[str], publish: Callable[[], bool], *, event_id: str, point_id: str,
                           timeout_s: float = 60.0) -> float:
    """`kill(names)`, then `accepted_again_after`: seconds from the kill to publishers accepted again."""
    killed_at = kill(stack, names)
    return accepted_again_after(stack, killed_at, publish, event_id=event_id, point_id=point_id, timeout_s=timeout_s)
