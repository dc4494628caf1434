"""`bridgecast up | down | status`: the embedded stack as one unit.

`up` is idempotent (running services are left alone) and `down` stops exactly what `up` started, in reverse
order. State (buckets, recordings, databases, sandboxes) lives under var/ and survives a restart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from bridgecast.event import default_event_path, load_event
from devstack.stack.env import stack_env, write_env_file
from devstack.stack.layout import Layout
from bridgecast.ingest.keys import issue_point_keys
from devstack.stack.secrets import stack_secrets
from devstack.stack.services import Nginx, Postgres, PythonServer, SeaweedFS, Service, airflow_components


@dataclass
class Stack:
    layout: Layout

    @classmethod
    def from_env(cls, **kw) -> "Stack":
        return cls(Layout.from_env(**kw))

    def __post_init__(self):
        self.layout.ensure()
        self.secrets = stack_secrets(self.layout.secrets)
        self.env = stack_env(self.layout, self.secrets)

    def services(self) -> list[Service]:
        args = (self.layout, self.env, self.secrets)
        ports = self.layout.ports
        gateway = PythonServer(*args, name="ingest-gateway", module="bridgecast.ingest.gateway",
                               args=["--port", str(ports.gateway)], port=ports.gateway, health_path="/healthz")
        return [Postgres(*args), SeaweedFS(*args), gateway, Nginx(*args), *self.sandboxes(),
                *airflow_components(*args)]

    def sandboxes(self) -> list[Service]:
        """Stand-ins for the fanpage (Graph API contract), the portal (WordPress REST) and the press mailbox.
        Credentials reach them from var/secrets or the Connections in the env, never argv."""
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
            PythonServer(*args, name="portal-sandbox", module="devstack.sandboxes.portal", port=ports.portal,
                         health_path="/wp-json/",
                         args=[*host, "--port", str(ports.portal), "--data", str(box / "portal")]),
            PythonServer(*args, name="press-mailbox", module="devstack.sandboxes.smtp", port=ports.smtp,
                         health_path=None, args=[*host, "--port", str(ports.smtp), "--data", str(box / "smtp")]),
        ]

    def up(self, echo=print) -> dict[str, float]:
        """Start what is not running; returns seconds spent per service started."""
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
        return timings

    def down(self, echo=print) -> list[str]:
        stopped = []
        for service in reversed(self.services()):
            if service.stop():
                stopped.append(service.name)
                echo(f"  {service.name:<22} stopped")
        return stopped

    def status(self) -> dict[str, bool]:
        return {s.name: s.running() for s in self.services()}
