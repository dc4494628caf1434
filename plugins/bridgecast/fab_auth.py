"""The production auth manager: Airflow's FAB auth manager, and approvals that name their approvers by user name.

    AIRFLOW__CORE__AUTH_MANAGER=bridgecast.fab_auth.FabAuthManager

A post's approval lists its respondents by user name (Variable `bridgecast_approvers`, default `approver`): that
is the id under the simple auth manager, but FAB's users have numeric ids, so FAB's own check would refuse every
approver. Here a respondent matches by id or by user name, which FAB keeps unique. Everything else — roles,
logins, tokens (`POST /auth/token`) — is FAB's; the roles themselves are `bridgecast.roles`.
"""
from __future__ import annotations

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager as _FabAuthManager


# The name stays FabAuthManager: Airflow tells FAB apart by that name in [core] auth_manager (the dag-processor's
# per-DAG permission sync, `airflow db clean`).
class FabAuthManager(_FabAuthManager):
    def is_authorized_hitl_task(self, *, assigned_users: set[str], user) -> bool:
        return str(user.get_id()) in assigned_users or user.get_name() in assigned_users
