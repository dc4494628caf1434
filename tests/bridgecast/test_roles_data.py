"""The office's roles as data (bridgecast.roles): they name DAGs that exist, each grants what its people need and
nothing that lets an editor approve, and `apply_roles` makes a FAB role exactly its grants, however it was before."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridgecast import roles
from bridgecast.ingest.assets import INGEST_LANES
from bridgecast.roles import (APPROVER, CREATE, EDIT, EDITOR, HITL, OPERATOR, READ, RolesError, apply_roles, dag,
                              ensure_user)

REPO = Path(__file__).resolve().parents[2]


def dag_ids_in_files() -> set[str]:
    return {m for p in (REPO / "dags").glob("*.py") for m in re.findall(r'dag_id="([a-z_]+)"', p.read_text())}


def test_the_roles_name_dags_that_exist():
    named = {roles.LAUNCH_DAG, roles.APPROVAL_DAG, *roles.STAFF_DAGS, *roles.INGEST_DAGS}
    assert named <= dag_ids_in_files() | set(INGEST_LANES)
    assert set(INGEST_LANES) <= set(roles.INGEST_DAGS)


def test_the_hitl_resource_is_the_one_fab_checks():
    from airflow.providers.fab.www.security.permissions import RESOURCE_HITL_DETAIL

    assert HITL == RESOURCE_HITL_DETAIL


def test_what_each_role_may_edit():
    def edited(role):
        return {r.removeprefix("DAG:") for a, r in role.permissions if a == EDIT and r.startswith("DAG:")}

    assert edited(EDITOR) == set(roles.STAFF_DAGS)
    assert edited(APPROVER) == {roles.APPROVAL_DAG}
    assert edited(OPERATOR) == {roles.LAUNCH_DAG, *roles.INGEST_DAGS}
    # answering approvals is the approver's alone; marking a staff DAG's task (approve_post!) nobody's but admins'
    assert (EDIT, HITL) in APPROVER.permissions and (EDIT, HITL) not in EDITOR.permissions | OPERATOR.permissions
    assert (EDIT, "Task Instances") not in EDITOR.permissions | APPROVER.permissions
    assert (CREATE, "DAG Runs") in EDITOR.permissions and (CREATE, "DAG Runs") not in APPROVER.permissions
    for role in (EDITOR, APPROVER, OPERATOR):  # everyone reads the board: GET on the launch's runs
        assert {(READ, "DAGs"), (READ, "DAG Runs"), (READ, "Plugins")} <= role.permissions
        assert not any(a == "can_delete" for a, _ in role.permissions)


# --- apply_roles against a stand-in of FAB's security manager ------------------------------------------------------
@dataclass(frozen=True)
class Named:
    name: str


@dataclass(frozen=True)
class Perm:
    action: Named
    resource: Named


@dataclass
class FakeRole:
    name: str
    permissions: list = field(default_factory=list)


@dataclass
class FakeUser:
    id: int
    username: str
    roles: list
    password: str


class FakeSecurityManager:
    def __init__(self):
        self.roles: dict[str, FakeRole] = {}
        self.users: dict[str, FakeUser] = {}

    def add_role(self, name):
        return self.roles.setdefault(name, FakeRole(name))

    def find_role(self, name):
        return self.roles.get(name)

    def create_permission(self, action, resource):
        return Perm(Named(action), Named(resource))

    def add_permission_to_role(self, role, perm):
        if perm not in role.permissions:
            role.permissions.append(perm)

    def remove_permission_from_role(self, role, perm):
        role.permissions.remove(perm)

    def find_user(self, username):
        return self.users.get(username)

    def add_user(self, *, username, role, password, **_):
        self.users[username] = FakeUser(len(self.users) + 1, username, role, password)

    def update_user(self, user):
        return True

    def check_password(self, username, password):
        return self.users[username].password == password

    def reset_password(self, user_id, password):
        next(u for u in self.users.values() if u.id == user_id).password = password


def test_applying_makes_each_role_exactly_its_grants_and_again_changes_nothing():
    sm = FakeSecurityManager()
    stale = sm.add_role(EDITOR.name)
    stale.permissions.append(Perm(Named(EDIT), Named(HITL)))  # given by hand in the UI: taken away
    first = apply_roles(sm)
    assert first[EDITOR.name] == {"added": len(EDITOR.permissions), "removed": 1}
    assert "Admin" not in first  # FAB's own
    for role in (EDITOR, APPROVER, OPERATOR):
        assert {(p.action.name, p.resource.name) for p in sm.roles[role.name].permissions} == role.permissions
    assert all(counts == {"added": 0, "removed": 0} for counts in apply_roles(sm).values())


def test_a_write_fab_swallowed_is_reported():
    sm = FakeSecurityManager()
    sm.add_permission_to_role = lambda role, perm: None  # FAB logs a failed commit and goes on
    with pytest.raises(RolesError, match="Biên tập viên: missing"):
        apply_roles(sm)


def test_users_get_exactly_their_roles_and_a_new_password_when_given():
    sm = FakeSecurityManager()
    apply_roles(sm)
    sm.add_role("Admin")
    assert ensure_user(sm, username="lan", roles=["editor", "approver"], password="a") == "created"
    assert {r.name for r in sm.users["lan"].roles} == {EDITOR.name, APPROVER.name}
    assert ensure_user(sm, username="lan", roles=["editor", "approver"], password="a") == "kept"
    assert ensure_user(sm, username="lan", roles=["Người duyệt"], password="b") == "updated"
    assert [r.name for r in sm.users["lan"].roles] == [APPROVER.name] and sm.users["lan"].password == "b"
    with pytest.raises(RolesError, match="unknown role 'viewer'"):
        ensure_user(sm, username="lan", roles=["viewer"])
    with pytest.raises(RolesError, match="give a password"):
        ensure_user(sm, username="minh", roles=["editor"])
    assert dag("x") == "DAG:x"
