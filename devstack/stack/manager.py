"""`bridgecast up | down | status`: the embedded stack as one unit.

`up` is idempotent (running services are left alone) and `down` stops exactly what `up` started, in reverse
order. State (buckets, recordings, databases, sandboxes) lives under var/ and survives a restart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from bridgecast.event import default_event_path, load_event
from devstack.stack.celery import celery_env, celery_services, choose_executor, claim_mode
from devstack.stack.env import connections, stack_env, sync_connections, write_env_file
from devstack.stack.layout import Layout
from bridgecast.ingest.keys import issue_point_keys
from devstack.stack.secrets import stack_secrets
from devstack.stack.services import (IngestGateway, Nginx, PortalWordPress, Postgres, PythonServer, SeaweedFS, Service,
                                     Supervisor, airflow_components)
from devstack.stack.wordpress import WordPress


@dataclass
class Stack:
    layout: Layout
    executor: str | None = None  # "local" | "celery" (devstack/stack/celery.py); None: `choose_executor`

    @classmethod
    def from_env(cls, executor: str | None = None, **kw) -> "Stack":
        return cls(Layout.from_env(**kw), executor)

    def __post_init__(self):
        self.layout.ensure()
        self.executor = choose_executor(self.layout, self.executor)
        self.secrets = stack_secrets(self.layout.secrets)
        self.env = stack_env(self.layout, self.secrets)
        if self.executor == "celery":
            self.env.update(celery_env(self.layout, self.secrets))

    def services(self, every_mode: bool = False) -> list[Service]:
        """This mode's services in start order; `every_mode` adds the other mode's (what `down` may find running)."""
        args = (self.layout, self.env, self.secrets)
        broker, workers = celery_services(*args) if every_mode or self.executor == "celery" else ([], [])
        # The supervisor comes last: started once everything it watches is up, stopped first by `down`.
        return [Postgres(*args), *broker, SeaweedFS(*args), IngestGateway(*args), Nginx(*args),
                PortalWordPress(*args), *self.sandboxes(), *airflow_components(*args), *workers, Supervisor(*args)]

    def supervised(self) -> list[Service]:
        """What must come back by itself within seconds: nginx refuses every publisher while either is down."""
        return [s for s in self.services() if s.name in SUPERVISED]

    def sandboxes(self) -> list[Service]:
        """Stand-ins for the fanpage (Graph API contract) and the press mailbox, and the portal sandbox (WordPress's
        REST contract with fault knobs, for the faults the real WordPress cannot be made to produce). Credentials
        reach them from var/secrets or the Connections in the env, never argv."""
        args = (self.layout, self.env, self.secrets)
        ports, box = self.layout.ports, self.layout.sandboxes
        host = ["--host", "127.0.0.1"]
        return [
            PythonServer(*args, name="fanpage-sandbox", module="devstack.sandboxes.fanpage", port=ports.fanpage,
                         health_path="/healthz",
                         args=[*host, "--port", str(ports.fanpage), "--data", str(box / "fanpage"),
                               "--rtmp-base", f"rtmps://127.0.0.1:{ports.rtmps}/fblive",
                               "--secrets-file", str(self.layout.secrets / "stack.json"),
                               "--record-dir", str(self.layout.recordings / "fblive")]),
            # Its own login (the portal Connection is the stack's WordPress): for the contract and fault tests
            PythonServer(*args, name="portal-sandbox", module="devstack.sandboxes.portal", port=ports.portal,
                         health_path="/wp-json/",
                         args=[*host, "--port", str(ports.portal), "--data", str(box / "portal"),
                               "--user", "bridgecast"],
                         extra_env={"BRIDGECAST_PORTAL_APP_PASSWORD": self.secrets["portal_app_password"]}),
            PythonServer(*args, name="press-mailbox", module="devstack.sandboxes.smtp", port=ports.smtp,
                         health_path=None, args=[*host, "--port", str(ports.smtp), "--data", str(box / "smtp")]),
        ]

    def wordpress(self) -> WordPress:
        """The stack's real WordPress 6 (Debian's packages; state in var/wordpress), started by `up`: the portal
        Connection points at it (`devstack.stack.env.portal_connection_fields`)."""
        return WordPress(self.layout.wordpress, self.layout.ports.wordpress)

    def up(self, echo=print) -> dict[str, float]:
        """Start what is not running; returns seconds spent per service started."""
        claim_mode(self.layout, self.executor)
        write_env_file(self.layout, self.env)
        event_path = default_event_path()
        event = load_event(event_path)
        issue_point_keys(self.layout.secrets, event.id, [p.id for p in event.points], event_file=str(event_path))
        timings = {}
        for service in self.services():
            t0 = time.monotonic()
            started = service.start()
            if started:
                timings[service.name] = time.monotonic() - t0
            echo(f"  {service.name:<22} {'started' if started else 'running'}  {service.url()}"
                 + (f"  ({timings[service.name]:.1f}s)" if started else ""))
            if service.name == "wordpress":
                # Installed now if it was not: the portal Connection gets the Application Password WordPress made
                self.env.update(connections(self.layout, self.secrets))
                write_env_file(self.layout, self.env)
            if service.name == "airflow-api-server":
                # Tasks read the Connections from Airflow's DB: written before the scheduler can run one
                sync_connections(self.layout, self.secrets, echo)
        return timings

    def down(self, echo=print) -> list[str]:
        stopped = []
        for service in reversed(self.services(every_mode=True)):
            if service.stop():
                stopped.append(service.name)
                echo(f"  {service.name:<22} stopped")
        return stopped

    def status(self) -> dict[str, bool]:
        return {s.name: s.running() for s in self.services()}


SUPERVISED = ("ingest-gateway", "nginx")


def supervise() -> None:
    """The supervisor process (`python -m devstack.stack.manager supervise`, started by `up`)."""
    import signal

    from devstack.stack.process import Watchdog, print_alert

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    stack = Stack.from_env()
    Watchdog(stack.supervised(), print_alert).run(should_stop=lambda: bool(stopping))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["supervise"]:
        sys.exit("usage: python -m devstack.stack.manager supervise")
    supervise()
