"""docker-compose.yml: valid, and carrying what the DAGs need (no engine here; `config` validates only)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _compose() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed: run ./bridgecast setup")


def _config(tmp_path) -> dict:
    env_file = tmp_path / ".env"
    env_file.write_text((REPO / ".env.example").read_text())
    cmd = [*_compose(), "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yml")]
    quiet = subprocess.run([*cmd, "config", "-q"], capture_output=True, text=True, cwd=REPO)
    assert quiet.returncode == 0, quiet.stderr
    full = subprocess.run([*cmd, "config"], capture_output=True, text=True, cwd=REPO, check=True)
    return yaml.safe_load(full.stdout)


def test_compose_config_is_valid_and_has_the_distributed_shape(tmp_path):
    services = _config(tmp_path)["services"]
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer", "airflow-worker", "airflow-worker-media", "airflow-init", "minio",
                 "nginx-rtmp", "ingest-gateway"):
        assert name in services, name
    assert "--queues media" in " ".join(services["airflow-worker-media"]["command"]) \
        if isinstance(services["airflow-worker-media"]["command"], list) \
        else "--queues media" in services["airflow-worker-media"]["command"]


def test_workers_get_every_connection_and_setting_the_code_reads(tmp_path):
    services = _config(tmp_path)["services"]
    code = "\n".join(p.read_text() for p in [*REPO.glob("plugins/bridgecast/**/*.py"), *REPO.glob("dags/*.py")])
    conn_ids = set(re.findall(r'from_connection\(\s*"([a-z0-9_]+)"', code)) | set(
        re.findall(r'conn_id: str = "([a-z0-9_]+)"', code))
    assert {"bridgecast_s3", "bridgecast_airflow"} <= conn_ids
    for worker in ("airflow-worker", "airflow-worker-media", "ingest-gateway"):
        env = services[worker]["environment"]
        for conn_id in conn_ids:
            value = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
            assert value, f"{worker} lacks AIRFLOW_CONN_{conn_id.upper()}"
            json.loads(value)
        assert "/opt/bridgecast/plugins" in env["PYTHONPATH"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["BRIDGECAST_LEDGER_URL"].startswith("postgresql")
    mounts = " ".join(str(v) for v in services["airflow-worker"]["volumes"])
    assert "/opt/bridgecast" in mounts
