"""The Celery mode of the embedded stack (`--executor celery`, or `BRIDGECAST_EXECUTOR=celery`): the distributed
deployment's executor, on one machine.

Debian's Redis is the broker, the stack's PostgreSQL (Airflow's own database) the result backend, and each Celery
worker is a process of its own with its own scratch directory (TMPDIR, BRIDGECAST_VAR and its working directory):
a task that hands a file to another task through local disk fails here as it would across machines. The only
directory the workers share is Airflow's task-log folder, which stands in for remote logging (the compose file
shares a log volume the same way). Same DAGs, same code: only settings differ (`celery_env`).

Queues: `default`; `media` for ffmpeg/Pillow work (ingest batches, highlights, recaps); `live` for the event-long
tasks (the fanpage relay, the points monitor), which would otherwise hold a processing slot for the whole morning.
"""
from __future__ import annotations

import os
import secrets as _secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from devstack.stack.env import without_connections
from devstack.stack.layout import Layout
from devstack.stack.process import PidFile, spawn, stop_group
from devstack.stack.services import Service, port_open

EXECUTORS = ("local", "celery")
AIRFLOW_EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
DEFAULT_QUEUE, MEDIA_QUEUE, LIVE_QUEUE = "default", "media", "live"
REDIS_PORT_OFFSET = 379  # base + 379, as Redis's usual 6379
# Slots the event-long tasks take on the worker that serves `live` (relay_program_feed, monitor_points): added
# on top of its processing slots, so they never take one. They idle most of the morning (a stream copy, polls).
LIVE_SLOTS = 2
MODE_FILE = "executor"  # in var/run/: the mode the running stack was started in


@dataclass(frozen=True)
class WorkerSpec:
    name: str  # also its Celery node name (<name>@<host>) and the host part of its task instances' hostname
    queues: tuple[str, ...]
    concurrency: int


# One worker for general work plus the live tasks, one for media: both 2-core friendly.
WORKERS = (
    WorkerSpec("worker-default", (DEFAULT_QUEUE, LIVE_QUEUE), 4 + LIVE_SLOTS),
    WorkerSpec("worker-media", (MEDIA_QUEUE,), 2),
)


def choose_executor(layout: Layout, asked: str | None = None) -> str:
    """What was asked (`--executor`), else BRIDGECAST_EXECUTOR, else what the running stack uses, else local."""
    executor = (asked or os.environ.get("BRIDGECAST_EXECUTOR") or running_executor(layout) or "local").lower()
    if executor not in EXECUTORS:
        raise SystemExit(f"BRIDGECAST_EXECUTOR / --executor: {executor!r} is not one of {', '.join(EXECUTORS)}")
    return executor


def running_executor(layout: Layout) -> str | None:
    """The executor this stack's running scheduler was started with (recorded by `claim_mode`), or None if the
    scheduler is not running. (Not read from /proc/<pid>/environ: Airflow's setproctitle overwrites it.)"""
    if PidFile(layout.run / "airflow-scheduler.pid").read() is None:
        return None
    try:
        return layout.run.joinpath(MODE_FILE).read_text().strip() or "local"
    except FileNotFoundError:
        return "local"  # started before the mode was recorded: LocalExecutor was the only one


def claim_mode(layout: Layout, executor: str) -> None:
    """Before `up` starts anything: refuse to mix modes (`up` leaves running services alone, so a LocalExecutor
    scheduler would never use the Celery workers), then record the mode for `running_executor`."""
    running = running_executor(layout)
    if running and running != executor:
        raise RuntimeError(f"the stack in {layout.var} runs with --executor {running}; stop it first "
                           f"(`./bridgecast down`), then `./bridgecast up --executor {executor}`")
    layout.run.mkdir(parents=True, exist_ok=True)
    layout.run.joinpath(MODE_FILE).write_text(executor + "\n")


# --- settings ------------------------------------------------------------------------------------------------------
def redis_port(layout: Layout) -> int:
    return layout.ports.base + REDIS_PORT_OFFSET


def redis_password(layout: Layout) -> str:
    """Generated once into var/secrets/redis.password (mode 600): anyone who can write to the broker can run code."""
    path = layout.secrets / "redis.password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def broker_url(layout: Layout) -> str:
    return f"redis://:{redis_password(layout)}@127.0.0.1:{redis_port(layout)}/0"


def celery_env(layout: Layout, secrets: dict, workers: tuple[WorkerSpec, ...] = WORKERS) -> dict[str, str]:
    """What Celery mode changes in every process's environment (Airflow marks both URLs sensitive)."""
    return {
        "BRIDGECAST_EXECUTOR": "celery",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(sum(w.concurrency for w in workers)),  # every worker slot usable
        "AIRFLOW__CELERY__BROKER_URL": broker_url(layout),
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow:{secrets['airflow_db_password']}"
                                          f"@127.0.0.1:{layout.ports.postgres}/airflow",
        # Sending a task to Redis on a busy 2-core box can take over the 1 s default.
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
        # Redis hands an unacknowledged task to another worker after this long: far beyond the longest task (the
        # relay lasts the event), or the relay would be started twice.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
    }


def worker_hostname() -> str:
    """`[core] hostname_callable` of the stack's workers: `<worker>.<machine>`, so a task instance shows which of
    the workers on this one machine ran it (on separate machines the plain host name already does)."""
    host = socket.getfqdn()
    name = os.environ.get("BRIDGECAST_WORKER_NAME")
    return f"{name}.{host}" if name else host


# --- services ------------------------------------------------------------------------------------------------------
class Redis(Service):
    """Debian's redis-server on loopback, password from a config file (never argv), appending to var/redis."""

    name = "redis"

    @property
    def conf_path(self) -> Path:
        return self.layout.var / "redis" / "redis.conf"

    def prepare(self) -> None:
        data = self.layout.var / "redis"
        data.mkdir(parents=True, exist_ok=True)
        settings = {
            "bind": "127.0.0.1", "port": redis_port(self.layout), "protected-mode": "yes", "daemonize": "no",
            "dir": data, "logfile": '""', "save": '""',
            # Queued task messages survive a Redis restart (the scheduler would re-queue them after 10 min anyway).
            "appendonly": "yes", "appendfsync": "everysec",
            "requirepass": redis_password(self.layout),
        }
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{key} {value}\n" for key, value in settings.items()))

    def launch(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server not found: run ./bridgecast setup (Debian package redis-server)")
        spawn([binary, str(self.conf_path)], pidfile=self.pidfile, log_path=self.log_path, env=self.full_env(),
              cwd=self.layout.var / "redis")

    def ready(self) -> bool:
        import redis

        if not port_open(redis_port(self.layout)):
            return False
        client = redis.Redis(host="127.0.0.1", port=redis_port(self.layout), password=redis_password(self.layout),
                             socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def url(self) -> str:
        return f"redis://127.0.0.1:{redis_port(self.layout)}/0 (Celery broker)"


class CeleryWorker(Service):
    """`airflow celery worker` for some queues, in var/workers/<name>/ (its scratch: TMPDIR, BRIDGECAST_VAR, cwd).
    Ready = it answers a Celery ping through the broker."""

    start_timeout_s = 240.0  # Airflow's imports in every pool process, on a loaded 2-core box

    def __init__(self, layout, env, secrets, spec: WorkerSpec):
        self.spec = spec
        self.name = f"celery-{spec.name}"
        super().__init__(layout, env, secrets)
        self.node = f"{spec.name}@{socket.gethostname()}"

    @property
    def scratch(self) -> Path:
        return self.layout.var / "workers" / self.spec.name

    def full_env(self) -> dict[str, str]:
        # Like every Airflow process: Connections from the metadata DB only (see env.py).
        return without_connections({
            **super().full_env(),
            "TMPDIR": str(self.scratch / "tmp"),
            "BRIDGECAST_VAR": str(self.scratch),
            "BRIDGECAST_WORKER_NAME": self.spec.name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.stack.celery.worker_hostname",
        })

    def prepare(self) -> None:
        (self.scratch / "tmp").mkdir(parents=True, exist_ok=True)

    def launch(self) -> None:
        # --skip-serve-logs: a log server per worker would need a port each; the api-server reads the shared log
        # folder directly, as it does for the LocalExecutor.
        spawn(["airflow", "celery", "worker", "--queues", ",".join(self.spec.queues),
               "--concurrency", str(self.spec.concurrency), "--celery-hostname", self.node, "--skip-serve-logs"],
              pidfile=self.pidfile, log_path=self.log_path, env=self.full_env(), cwd=self.scratch,
              redact_env=super().full_env())

    def ready(self) -> bool:
        from celery import Celery

        app = Celery(broker=self.env.get("AIRFLOW__CELERY__BROKER_URL") or broker_url(self.layout))
        try:
            return any(self.node in reply for reply in app.control.ping(destination=[self.node], timeout=2.0))
        finally:
            app.close()

    def stop(self) -> bool:
        # SIGTERM is Celery's warm shutdown: it waits for running tasks — a relay runs until the event's end, so
        # after the grace the group is killed (the scheduler then sees those tasks fail, as on a lost machine).
        return stop_group(self.pidfile, grace_s=30)

    def url(self) -> str:
        return (f"queues {','.join(self.spec.queues)} × {self.spec.concurrency} · scratch {self.scratch} "
                f"· node {self.node}")


def celery_services(layout, env, secrets, workers: tuple[WorkerSpec, ...] = WORKERS) -> tuple[list[Service],
                                                                                              list[Service]]:
    """(the broker, started before Airflow's scheduler; the workers, started after the api-server and the
    Connections, since tasks need both)."""
    return [Redis(layout, env, secrets)], [CeleryWorker(layout, env, secrets, spec) for spec in workers]
