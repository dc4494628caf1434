"""Two operators the post DAGs need and Airflow does not have as such.

`PublishPostOperator` — one post on one channel at its minute: deferred (no worker slot) until WAKE_EARLY_S before
the time, because a deferred task comes back only after the triggerer and the scheduler have each done a round
(≈1 s idle, several seconds on a busy 2-core machine — measured, see docs/staff-guide.md); the last seconds are
slept in the task, so the call leaves at the second. Media not in storage yet: it defers again every
MEDIA_POLL_S until the post's limit, then fails saying what is missing.

`PostApprovalOperator` — Airflow's ApprovalOperator whose deadline is the post's publish time (computed when the
request opens) and whose respondents are the approvers (Variable `bridgecast_approvers`, default `approver`) less
the post's author.
No answer by the deadline → the request expires: recorded as `expired`, the publishing is skipped. When the
request opens it calls `bridgecast.posts.notices.approval_requested` (the hook the notifiers wire to) with the
link to the request in the UI.

Imports stay light: the DAG files import this module at parse time; task code is imported inside the methods.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator

WAKE_EARLY_S = 20.0
MEDIA_POLL_S = 30.0
APPROVERS_VARIABLE = "bridgecast_approvers"
DEFAULT_APPROVERS = ("approver",)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class PublishPostOperator(BaseOperator):
    """Carry out `item` (see bridgecast.posts.tasks.carry_out): `publish` waits for its `publish_at`; the calendar's
    other actions (update, schedule on the fanpage, withdraw, ask for approval) run at once."""

    template_fields = ()  # `item` holds staff-written text: "{{" in a post must never be rendered by Jinja
    ui_color = "#d8efe0"

    def __init__(self, *, item, wake_early_s: float = WAKE_EARLY_S, media_poll_s: float = MEDIA_POLL_S, **kwargs):
        super().__init__(**kwargs)
        self.item = item
        self.wake_early_s = wake_early_s
        self.media_poll_s = media_poll_s

    def execute(self, context):
        if self.item.get("action", "publish") == "publish":
            wake = datetime.fromisoformat(self.item["publish_at"]) - timedelta(seconds=self.wake_early_s)
            if _now() < wake:
                self._sleep_until(wake)
        return self.resume(context)

    def resume(self, context, event=None):
        from bridgecast.posts.media import MediaNotReady
        from bridgecast.posts.tasks import carry_out

        try:
            return carry_out(self.item)
        except MediaNotReady as exc:
            # Poll, but look one last time exactly at the deadline: a photo that arrives in time is used.
            again = min(_now() + timedelta(seconds=self.media_poll_s), exc.deadline)
            self.log.warning("%s — looking again at %s (waiting at most until %s)", exc, again.isoformat(),
                             exc.deadline.isoformat())
            self._sleep_until(again)

    def _sleep_until(self, moment: datetime):
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        self.log.info("waiting (deferred) until %s", moment.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="resume")


def approvers() -> list[dict]:
    """The users allowed to approve (HITL respondents): Variable `bridgecast_approvers`, a JSON list of user names
    (or one name), else the environment's BRIDGECAST_APPROVERS, else `approver`."""
    from airflow.sdk import Variable

    raw = Variable.get(APPROVERS_VARIABLE, default=None) or os.environ.get("BRIDGECAST_APPROVERS")
    names: list[str] = list(DEFAULT_APPROVERS)
    if raw:
        try:
            value = json.loads(raw)
        except ValueError:
            value = [part.strip() for part in raw.split(",")]
        names = [value] if isinstance(value, str) else [str(v) for v in value if str(v).strip()]
    return [{"id": name, "name": name} for name in names]


def respondents(approvers: list[dict], author: str | None) -> list[dict]:
    """The approvers less the post's author (the user who triggered its run): nobody approves their own post. The
    role already keeps an editor from answering; this keeps an approver who writes a post from approving it."""
    return [u for u in approvers if not author or author not in (u["id"], u.get("name"))]


def approver_names() -> list[str]:
    """The approvers' user names for the form's help, read when the DAG file is parsed; the defaults when Airflow
    cannot be asked (a parse with no Airflow behind it)."""
    try:
        return [u["id"] for u in approvers()]
    except Exception:
        return list(DEFAULT_APPROVERS)


class PostApprovalOperator(ApprovalOperator):
    """Approve or reject the post prepared by `post_task_id` (XCom key `post`), before its publish time."""

    def __init__(self, *, post_task_id: str = "validate_form", **kwargs):
        super().__init__(**kwargs)
        self.post_task_id = post_task_id

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        post = context["ti"].xcom_pull(task_ids=self.post_task_id, key="post")
        deadline = datetime.fromisoformat(post["publish_at"])
        left = deadline - _now()
        if left <= timedelta(0):
            self._record(context, "expired", f"the publish time {deadline.isoformat()} passed before the approval "
                                             "request could open")
            raise AirflowSkipException("Hết hạn duyệt: đã quá giờ đăng — bài không được đăng / approval expired")
        self.response_timeout = left
        author = getattr(context.get("dag_run"), "triggering_user_name", None)
        self.assigned_users = respondents(approvers(), author)
        if not self.assigned_users:  # an empty list would let anyone allowed to answer approvals answer this one
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"Không có ai duyệt được bài này: người duyệt duy nhất là người soạn bài ({author}), mà không ai "
                f"được duyệt bài của chính mình. Thêm người duyệt vào Variable {APPROVERS_VARIABLE} rồi Clear bước "
                f"này. / Nobody may approve this post: its only approver is its author ({author}).")
        self.log.info("approval requested from %s; deadline %s (in %.0f s)",
                      ", ".join(u["id"] for u in self.assigned_users), deadline.isoformat(), left.total_seconds())
        self._announce(context, post, deadline)
        return super().execute(context)  # writes the request, then parks the task until an answer or the deadline

    def _announce(self, context, post: dict, deadline: datetime) -> None:
        """Tell the approvers (the notifiers' hook). Called just before the request row is written: a mail cannot
        arrive before the request exists in the UI, and a failing notifier never blocks the approval."""
        from bridgecast.posts.content import PostContent
        from bridgecast.posts.notices import approval_requested

        try:
            link = self.generate_link_to_ui_from_context(context=context)
        except ValueError:  # no [api] base_url configured: the path, relative to the UI
            ti = context["ti"]
            link = f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}/required_actions"
        preview = context["ti"].xcom_pull(task_ids="render_preview") or {}
        try:
            approval_requested(PostContent.from_json(post), approvers=[u["id"] for u in self.assigned_users],
                               link=link, deadline=deadline, run_id=context["ti"].run_id,
                               preview_links=preview.get("links") or {})
        except Exception:
            self.log.exception("could not announce the approval request; the request itself is open")

    def execute_complete(self, context, event):
        from airflow.sdk.exceptions import AirflowSkipException

        if event.get("error_type") == "timeout":
            self._record(context, "expired", "nobody approved before the publish time")
            raise AirflowSkipException("Hết hạn duyệt: chưa ai duyệt trước giờ đăng — bài không được đăng / "
                                       "approval expired before the publish time: nothing is posted")
        # Recorded first: on "Reject" the parent skips the publishing by raising (Airflow 3's DownstreamTasksSkipped).
        chosen = event.get("chosen_options") or []
        who = (event.get("responded_by_user") or {}).get("name")
        self._record(context, "approved" if chosen == [self.APPROVE] else "rejected", f"by {who}", by=who)
        return super().execute_complete(context=context, event=event)

    def _record(self, context, decision: str, detail: str, by: str | None = None) -> None:
        self.log.info("decision: %s (%s)", decision, detail)
        context["ti"].xcom_push(key="decision", value={"decision": decision, "detail": detail, "by": by,
                                                       "at": _now().isoformat()})
