"""The production auth manager on the embedded stack: a second api-server, under FAB, beside the default one.

The embedded stack keeps the simple auth manager (its users in var/secrets, what the workshop and the tests log in
as). `./bridgecast roles` adds FAB's tables to the same metadata DB (`airflow fab-db migrate`), writes the office's
roles (`bridgecast.roles`) and one workshop user per role, then starts an api-server with the FAB auth manager on
port base+84: the same DAGs, runs, board and approvals, seen through the roles. `./bridgecast down` stops it.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import requests

from devstack.stack.env import without_connections
from devstack.stack.layout import Layout
from devstack.stack.process import spawn, stop_group
from devstack.stack.services import Service, port_open

FAB_AUTH_MANAGER = "bridgecast.fab_auth.FabAuthManager"
PORT_OFFSET = 84
USERS_FILE = "fab-users.json"
# One user per role; the approver keeps the name the approvals default to (Variable bridgecast_approvers).
WORKSHOP_USERS = {"bientap": ["editor"], "approver": ["approver"], "dieuhanh": ["operator"], "admin": ["admin"]}


def fab_port(layout: Layout) -> int:
    return layout.ports.base + PORT_OFFSET


def fab_env(layout: Layout, env: dict[str, str]) -> dict[str, str]:
    """`env` (an Airflow process's) for the FAB side: its auth manager, its port and URL, no second thumbnailer."""
    port = fab_port(layout)
    return {**without_connections(env), "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "BRIDGECAST_BOARD_THUMBNAILER": "off"}


def workshop_users(layout: Layout, extra: dict[str, list[str]] | None = None) -> list[dict]:
    """The workshop's FAB users with their passwords (generated once, var/secrets/fab-users.json, mode 600)."""
    path = layout.secrets / USERS_FILE
    passwords = json.loads(path.read_text()) if path.exists() else {}
    wanted = {**WORKSHOP_USERS, **(extra or {})}
    if set(wanted) - set(passwords):
        passwords.update({u: secrets.token_urlsafe(12) for u in wanted if u not in passwords})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(passwords, fh, indent=1, sort_keys=True)
    return [{"username": u, "roles": roles, "password": passwords[u]} for u, roles in wanted.items()]


def migrate(layout: Layout, env: dict[str, str], log_path) -> None:
    """FAB's tables in the metadata DB; idempotent (a no-op once they are there)."""
    with open(log_path, "ab") as log:
        subprocess.run(["airflow", "fab-db", "migrate"], env=env, cwd=layout.airflow_home, stdout=log,
                       stderr=subprocess.STDOUT, check=True)


def apply_roles(layout: Layout, env: dict[str, str], users: list[dict]) -> dict:
    """`python -m bridgecast.roles` with the users on stdin (never argv); returns its report."""
    done = subprocess.run([sys.executable, "-m", "bridgecast.roles", "--users-json", "-"], env=env,
                          cwd=layout.airflow_home, input=json.dumps(users), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"applying the roles failed:\n{(done.stderr or done.stdout)[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # Airflow may log above the report


class FabApiServer(Service):
    """The FAB api-server. Its start migrates FAB's tables and writes the roles and `users` first: roles must be in
    the DB before anyone logs in, and FAB's own role sync at start-up must not race our writes."""

    name = "airflow-api-server-fab"
    start_timeout_s = 180.0

    def __init__(self, layout, env, secrets_, users: list[dict] | None = None):
        super().__init__(layout, env, secrets_)
        self.users = workshop_users(layout) if users is None else users
        self.report: dict | None = None

    def full_env(self) -> dict[str, str]:
        return fab_env(self.layout, super().full_env())

    def prepare(self) -> None:
        self.apply()

    def apply(self) -> dict:
        """Migrate, then write the roles and users; also how a running server's roles are brought up to date (FAB
        reads a user's permissions again within its cache TTL, 30 s)."""
        migrate(self.layout, self.full_env(), self.log_path)
        self.report = apply_roles(self.layout, self.full_env(), self.users)
        return self.report

    def launch(self) -> None:
        port = fab_port(self.layout)
        spawn(["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)], pidfile=self.pidfile,
              log_path=self.log_path, env=self.full_env(), cwd=self.layout.airflow_home,
              redact_env=super().full_env())

    def ready(self) -> bool:
        port = fab_port(self.layout)
        return port_open(port) and requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health",
                                                timeout=5).status_code == 200

    def stop(self) -> bool:
        return stop_group(self.pidfile, grace_s=30)

    def url(self) -> str:
        return f"http://127.0.0.1:{fab_port(self.layout)}/"
