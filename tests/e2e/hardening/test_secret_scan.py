"""After the suite (this file runs last): no stream key, upload token, stack secret, callback secret or fanpage stream
key appears in any log the stack wrote — its own logs, nginx's, Airflow's task logs and the scheduler's echo of them —
nor in any XCom or approval request in the metadata DB, any mail the mailbox received, or what this run appended
to the system's nginx logs. It also provokes the lines most likely to leak first: publishes whose stream name *is* a
secret, refused publishes with keys in their URL, and a gateway storage error."""
from __future__ import annotations

import sys
from pathlib import Path

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


def _xcom_and_approvals(stack, out_dir: Path) -> list[Path]:
    """Every XCom value and approval request in the metadata DB, dumped to files the scan reads."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    dumps = []
    try:
        with engine.connect() as db:
            for name, query in (("xcom", "SELECT dag_id, run_id, task_id, map_index, key, value::text FROM xcom"),
                                ("hitl", "SELECT subject, body, params::text, chosen_options::text FROM hitl_detail")):
                rows = db.execute(sqlalchemy.text(query)).fetchall()
                path = out_dir / f"{name}.txt"
                path.write_text("\n".join(" | ".join(str(v) for v in row) for row in rows), encoding="utf-8")
                dumps.append(path)
                print(f"{name}: {len(rows)} rows", file=sys.stderr)
    finally:
        engine.dispose()
    return dumps


def test_no_secret_of_the_stack_is_in_any_log_xcom_or_mail(kit, stack, system_log_offsets, tmp_path):
    _provoke(kit)
    secrets = stack_secrets(stack.layout)
    assert len(secrets) > 128  # 64 points × (stream key + upload token), plus the stack's own
    logs = [p for p in stack.layout.log.rglob("*") if p.is_file()]
    logs += [p for p in (stack.layout.var / "nginx").rglob("*.log") if p.is_file()]
    mails = list((stack.layout.sandboxes / "smtp").rglob("*.eml"))
    stored = _xcom_and_approvals(stack, tmp_path)
    assert mails and logs
    found = scan(logs + mails + stored, secrets) + scan(list(system_log_offsets), secrets, system_log_offsets)
    summary = (f"secrets found in logs, XCom or mail: {len(found)} ({len(secrets)} secrets, {len(logs)} logs, "
               f"{len(mails)} mails, XCom and approvals, {len(system_log_offsets)} system logs scanned)")
    print(f"\n{summary}", file=sys.stderr)
    artifacts = Path(__file__).resolve().parents[3] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "secret-scan.txt").write_text(summary + "\n" + "\n".join(found) + "\n", encoding="utf-8")
    assert found == [], "\n".join(found)
