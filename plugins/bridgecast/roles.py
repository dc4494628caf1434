"""Who may do what in Airflow under the production auth manager (FAB): the office's four roles, defined once.

    Biên tập viên (editor)  reads every DAG, run and log, the board and the calendar; triggers the staff DAGs
                            (bridgecast_schedule_post, bridgecast_publish). Approves nothing, clears nothing.
    Người duyệt (approver)  the editor's reads; answers the post approvals (Browse → Required Actions) and may mark
                            a staff post's run failed (how an approved post is called off).
    Điều hành (operator)    the editor's reads; triggers, clears, marks and pauses bridgecast_launch and the ingest
                            DAGs — the morning itself.
    Admin                   FAB's own Admin role: everything, users and roles included.

The data here is plain (no Airflow import); `apply_roles` writes it through FAB's security manager, so running it
again makes each role exactly what is declared (a grant removed here is taken away there). FAB checks a DAG's
sub-entities (runs, task instances, approvals) on global resources, and the DAG itself on `DAG:<dag_id>`; the
global grants below therefore reach only the DAGs a role may edit. Nobody but an admin gets "Task Instances"
edit on the staff DAGs: marking `approve_post` successful would publish a post nobody approved.

`python -m bridgecast.roles` (where Airflow's config is, with the FAB auth manager) applies the roles, and creates
or updates users given as JSON on stdin: `[{"username": …, "roles": ["editor"], "password": …}]`.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

READ, EDIT, CREATE, DELETE, MENU = "can_read", "can_edit", "can_create", "can_delete", "menu_access"

LAUNCH_DAG = "bridgecast_launch"
STAFF_DAGS = ("bridgecast_schedule_post", "bridgecast_publish")
APPROVAL_DAG = "bridgecast_schedule_post"  # every post approval is this DAG's approve_post
INGEST_DAGS = ("bridgecast_ingest", "bridgecast_ingest_video", "bridgecast_ingest_sweep")
HITL = "HITL Detail"  # FAB's resource for the approvals (Airflow's DagAccessEntity.HITL_DETAIL)

# What every role reads: the UI's pages (DAG list, runs, logs, Required Actions, the plugins' nav links — the board
# and the calendar need GET on bridgecast_launch's runs, see board/app.py) and the user's own profile.
READS = (
    *((READ, r) for r in ("DAGs", "DAG Dependencies", "DAG Code", "DAG Runs", "DAG Versions", "DAG Warnings",
                          "Assets", "Asset Aliases", "Backfills", "Cluster Activity", "ImportError", "Jobs", "Pools",
                          "Plugins", "Task Instances", "Task Logs", "XComs", HITL, "Website", "My Password",
                          "My Profile")),
    (EDIT, "My Password"), (EDIT, "My Profile"),
    *((MENU, r) for r in ("Browse", "DAGs", "DAG Dependencies", "DAG Runs", "Assets", "Cluster Activity", "Docs",
                          "Documentation", "Jobs", "Task Instances", HITL)),
)


def dag(dag_id: str) -> str:
    """FAB's per-DAG resource."""
    return f"DAG:{dag_id}"


@dataclass(frozen=True)
class Role:
    key: str            # what the workshop and the docs call it
    name: str           # the FAB role's name, as the UI shows it
    grants: tuple[tuple[str, str], ...] = ()
    builtin: bool = False  # FAB's own (Admin): FAB keeps it complete at every start, we never edit it

    @property
    def permissions(self) -> set[tuple[str, str]]:
        return set(self.grants)


EDITOR = Role("editor", "Biên tập viên", (
    *READS,
    (CREATE, "DAG Runs"),
    *((action, dag(d)) for d in STAFF_DAGS for action in (READ, EDIT)),  # trigger needs edit on the DAG itself
))
APPROVER = Role("approver", "Người duyệt", (
    *READS,
    (EDIT, HITL),
    (EDIT, "DAG Runs"),  # Mark run as → Failed: the staff guide's way to call off an approved post
    (READ, dag(APPROVAL_DAG)), (EDIT, dag(APPROVAL_DAG)),  # FAB answers an approval with edit on its DAG
))
OPERATOR = Role("operator", "Điều hành", (
    *READS,
    (CREATE, "DAG Runs"), (EDIT, "DAG Runs"), (EDIT, "Task Instances"),
    *((action, dag(d)) for d in (LAUNCH_DAG, *INGEST_DAGS) for action in (READ, EDIT)),
))
ADMIN = Role("admin", "Admin", builtin=True)
ROLES = (EDITOR, APPROVER, OPERATOR, ADMIN)
BY_KEY = {r.key: r for r in ROLES}


class RolesError(RuntimeError):
    """The roles or users could not be written as declared."""


def role_names(keys) -> list[str]:
    """FAB role names for role keys (`editor`…) or names; an unknown one says which exist."""
    by_name = {r.name: r for r in ROLES}
    out = []
    for key in keys:
        role = BY_KEY.get(key) or by_name.get(key)
        if role is None:
            raise RolesError(f"unknown role {key!r}: one of {', '.join(BY_KEY)}")
        out.append(role.name)
    return out


# --- writing them (FAB's security manager, duck-typed: this module imports no Airflow) ---------------------------
def apply_roles(sm, roles=ROLES) -> dict[str, dict[str, int]]:
    """Make each non-builtin role exactly its grants; returns {role name: {"added": n, "removed": n}}. FAB logs and
    swallows a failed write, so the result is read back and a role that still differs raises."""
    done = {}
    for role in roles:
        if role.builtin:
            continue
        fab_role = sm.add_role(role.name)  # the existing one if there
        have = {(p.action.name, p.resource.name): p for p in fab_role.permissions}
        wanted = role.permissions
        for action, resource in sorted(wanted - have.keys()):
            sm.add_permission_to_role(fab_role, sm.create_permission(action, resource))
        for key in sorted(have.keys() - wanted):
            sm.remove_permission_from_role(fab_role, have[key])
        now = {(p.action.name, p.resource.name) for p in sm.find_role(role.name).permissions}
        if now != wanted:
            raise RolesError(f"role {role.name}: missing {sorted(wanted - now)}, extra {sorted(now - wanted)}")
        done[role.name] = {"added": len(wanted - have.keys()), "removed": len(have.keys() - wanted)}
    return done


def ensure_user(sm, *, username: str, roles: list[str], password: str | None = None, email: str | None = None,
                first_name: str | None = None, last_name: str = "") -> str:
    """Create the user, or bring its roles (exactly these) and password (when given) up to date. Returns
    "created", "updated" or "kept"."""
    fab_roles = []
    for name in role_names(roles):
        found = sm.find_role(name)
        if found is None:
            raise RolesError(f"role {name} does not exist yet: apply the roles first")
        fab_roles.append(found)
    user = sm.find_user(username=username)
    if user is None:
        if not password:
            raise RolesError(f"user {username} does not exist: give a password to create it")
        sm.add_user(username=username, first_name=first_name or username, last_name=last_name,
                    email=email or f"{username}@bridgecast.invalid", role=fab_roles, password=password)
        return "created"
    changed = False
    if {r.name for r in user.roles} != {r.name for r in fab_roles}:
        user.roles = fab_roles
        if not sm.update_user(user):
            raise RolesError(f"user {username}: roles not updated (see the log)")
        changed = True
    if password and not sm.check_password(username, password):
        sm.reset_password(user.id, password)
        changed = True
    return "updated" if changed else "kept"


def apply_in_airflow(users: list[dict] = ()) -> dict:
    """Apply the roles and `users` in this process, through the metadata DB Airflow's config names (as FAB's own
    `airflow roles` / `airflow users` commands do)."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from airflow.utils.providers_configuration_loader import providers_configuration_loaded

    @providers_configuration_loaded
    def run() -> dict:
        with get_application_builder() as appbuilder:
            sm = appbuilder.sm
            report = {"roles": apply_roles(sm)}
            report["users"] = {u["username"]: ensure_user(sm, **u) for u in users}
        return report

    return run()


def main(argv: list[str] | None = None) -> int:
    """`python -m bridgecast.roles [--users-json -]`: prints what was done as JSON (never a password)."""
    argv = sys.argv[1:] if argv is None else argv
    users = json.load(sys.stdin) if argv[:2] == ["--users-json", "-"] else []
    try:
        report = apply_in_airflow(users)
    except RolesError as exc:
        print(f"roles: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
