"""Every planned post as the staff's calendar shows it: the calendar files' posts and the staff form's runs, each
with, per channel, where it stands — scheduled, waiting for approval (and by whom), published (its link), failed
(why), expired, withdrawn.

The board's calendar page gets `read_agenda` from the plugin (features never import each other). `agenda` is pure:
posts, runs and ledger rows in, one JSON-ready entry per post out; `read_agenda` does the reading — the calendar
files as `bridgecast_publish` finds them, the form's runs in Airflow's metadata DB (their checked post, preview,
approval request and decision), the ledger, and from S3 only what a published post froze.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from bridgecast.ledger import CANCELLED, CLAIMED, FAILED, PENDING, PUBLISHED, UNKNOWN
from bridgecast.posts.content import (CHANNEL_LABELS, WEEKDAYS_VI, PostContent, from_planned, local_text,
                                      time_in_words)
from bridgecast.posts.planner import APPROVAL_LEAD, CALENDAR_PREFIX, EXPIRED
from bridgecast.posts.tasks import ACTION_VI, DECISION_VI, FORM_DAG_ID, REPO, STATUS_VI

# The two states a post has before the ledger knows it; every other state is the ledger's own status.
SCHEDULED, AWAITING_APPROVAL, REJECTED = "scheduled", "awaiting_approval", "rejected"
STATE_LABELS = {SCHEDULED: "đã lên lịch", AWAITING_APPROVAL: ACTION_VI["approval"], REJECTED: DECISION_VI["rejected"],
                **STATUS_VI}
# A post on several channels shows the state that most needs someone's attention.
ATTENTION = (FAILED, UNKNOWN, AWAITING_APPROVAL, PENDING, SCHEDULED, EXPIRED, REJECTED, CANCELLED, PUBLISHED)
RUN_LOOKBACK = timedelta(days=61)
SNAPSHOT_TTL_S = 300.0
FROZEN_TTL_S = 3600.0  # a form post is submitted at most 60 days ahead (form.MAX_LEAD)
ACTIVE_RUN_STATES = ("queued", "running")
# The UI pages staff are sent to, relative to the Airflow UI's base URL (like form.REQUIRED_ACTIONS_PATH).
FORM_PATH = f"dags/{FORM_DAG_ID}"


@dataclass(frozen=True)
class FormRun:
    """One run of bridgecast_schedule_post, as read from Airflow's metadata DB."""

    run_id: str
    state: str
    created_at: datetime
    ended_at: datetime | None = None
    post: dict | None = None  # validate_form's checked post; None when the form was not valid (or not checked yet)
    preview: dict | None = None  # render_preview's result: the saved previews and the photos they show
    decision: dict | None = None  # approve_post's decision: approved | rejected | expired, and by whom
    approval_task: str | None = None  # approve_post's task state (awaiting_input while the request is open)
    assignees: tuple[str, ...] = ()  # whom the open request names

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    @property
    def decided(self) -> str | None:
        return (self.decision or {}).get("decision")


def run_path(run_id: str) -> str:
    return f"{FORM_PATH}/runs/{quote(run_id, safe='')}"


def approval_path(run_id: str) -> str:
    return f"{run_path(run_id)}/tasks/approve_post/required_actions"


# --- pure: posts, runs and rows → entries ---------------------------------------------------------------------------
def agenda(event, *, posts, runs: list[FormRun], rows, now: datetime, start: date, end: date,
           approvers=(), frozen=None, snapshots: dict[str, dict] | None = None) -> list[dict]:
    """One entry per post whose local publish day is in [start, end], sorted by time. `posts`: the calendar's
    PlannedPosts; `runs`: the form's runs (of this event); `rows`: the event's ledger rows; `frozen(key)`: the media
    a published post froze (asked only for published posts in the range); `snapshots`: the content.json of calendar
    publications whose post has left the calendar (their text and time are known only from there)."""
    frozen, snapshots = frozen or (lambda key: None), snapshots or {}
    rows_by_key: dict[str, dict[str, object]] = {}
    for row in rows:
        rows_by_key.setdefault(row.pub_key, {})[row.channel] = row
    runs_by_key: dict[str, list[FormRun]] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        if run.post:
            runs_by_key.setdefault(run.post["key"], []).append(run)

    def wanted(content: PostContent) -> bool:
        return start <= content.publish_at.astimezone(event.tz).date() <= end

    entries = []
    for post in posts:
        content = from_planned(post)
        if wanted(content):
            entries.append(_entry(event, content, "calendar", rows_by_key.get(content.key, {}),
                                  runs_by_key.get(content.key, []), now, approvers, frozen,
                                  edit={"kind": "file", "path": shown_path(post.source), "post_id": post.id}))
    planned = {from_planned(p).key for p in posts}
    for key, snapshot in snapshots.items():
        content = PostContent.from_json(snapshot["content"])
        if key not in planned and wanted(content):
            entries.append(_entry(event, content, "calendar", rows_by_key.get(key, {}), runs_by_key.get(key, []), now,
                                  approvers, frozen, edit={"kind": "removed", "post_id": content.label}))
    for key, key_runs in runs_by_key.items():
        latest = key_runs[-1]
        if latest.post.get("source") == "calendar":
            continue  # a calendar post's approval: shown on the calendar post
        content = PostContent.from_json(latest.post)
        if wanted(content):
            edit = {"kind": "form", "run_id": latest.run_id, "path": run_path(latest.run_id),
                    "repost": bool(latest.post.get("repost"))}
            entries.append(_entry(event, content, "form", rows_by_key.get(key, {}), key_runs, now, approvers,
                                  frozen, edit=edit))
    entries.sort(key=lambda e: (e["publish_at"], e["title"]))
    return entries


def _entry(event, content: PostContent, source: str, rows: dict, runs: list[FormRun], now: datetime,
           approvers, frozen, *, edit: dict) -> dict:
    tz = event.timezone
    local = content.publish_at.astimezone(event.tz)
    approval = _approval(content, runs, now, approvers, tz)
    channels = []
    for channel in content.channels:
        state = _channel_state(rows.get(channel), content, approval, runs, now)
        channels.append({"channel": channel, "name": CHANNEL_LABELS.get(channel, channel), **state,
                         "state_label": STATE_LABELS[state["state"]]})
    overall = min((c["state"] for c in channels), key=ATTENTION.index, default=SCHEDULED)
    preview = next((r.preview for r in reversed(runs) if r.preview), None) or {}
    return {
        "key": content.key, "source": source, "label": content.label, "title": content.title, "body": content.body,
        "excerpt": content.excerpt, "link": content.link, "publish_at": content.publish_at.isoformat(),
        "date": local.date().isoformat(), "time": f"{local:%H:%M}", "time_words": time_in_words(content.publish_at, tz),
        "state": overall, "state_label": STATE_LABELS[overall], "channels": channels, "approval": approval,
        "media": _media(event, content, frozen(content.key) if any(r.status == PUBLISHED for r in rows.values())
                        else None, preview),
        "previews": [{"channel": ch, "name": PREVIEW_NAMES.get(ch, ch), "url": _media_path(key)}
                     for ch, key in (preview.get("artefacts") or {}).items()],
        "runs": [{"run_id": r.run_id, "state": r.state, "path": run_path(r.run_id)} for r in runs],
        "edit": edit,
    }


PREVIEW_NAMES = {"portal": "Bản xem trước trên Cổng thông tin điện tử", "fanpage": "Bản xem trước trên Fanpage",
                 "markdown": "Yêu cầu duyệt gửi người duyệt"}


def _approval(content: PostContent, runs: list[FormRun], now: datetime, approvers, tz: str) -> dict | None:
    """Where the post's approval stands. A run still under way counts before a finished one: the same post
    submitted again while an earlier submission waits is still one post, and the live submission decides."""
    if not content.approval_required and not runs:
        return None
    live = [r for r in runs if r.active]
    for run in reversed(live):
        if run.decided == "approved":
            return _decided(run, "approved")
    for run in reversed(live):
        if not run.decided:
            names = list(run.assignees) or list(approvers)
            opened = run.approval_task == "awaiting_input"
            return {"state": "waiting", "approvers": names, "run_id": run.run_id, "open": opened,
                    "path": approval_path(run.run_id) if opened else run_path(run.run_id),
                    "note": ("đang chờ trong Required Actions" if opened else "yêu cầu duyệt sắp mở")}
    if runs:
        last = runs[-1]
        return _decided(last, last.decided) if last.decided else {"state": "none", "run_id": last.run_id,
                                                                  "approvers": list(approvers)}
    # a calendar post: its approval is requested by bridgecast_publish, APPROVAL_LEAD before its time
    asked_from = content.publish_at - APPROVAL_LEAD
    return {"state": "not_asked", "approvers": list(approvers),
            "note": f"yêu cầu duyệt được gửi từ {local_text(max(asked_from, now), tz)}"
            if content.publish_at > now else "đã quá giờ đăng mà chưa có yêu cầu duyệt"}


def _decided(run: FormRun, decision: str) -> dict:
    by = (run.decision or {}).get("by")
    return {"state": decision, "by": by, "run_id": run.run_id, "path": run_path(run.run_id),
            "note": DECISION_VI.get(decision, decision) + (f" (tài khoản {by})" if by else "")}


def _state(state: str, *, url: str | None = None, reason: str | None = None, at: datetime | None = None,
           approvers: list[str] | None = None) -> dict:
    return {"state": state, "url": url, "reason": reason, "at": at.isoformat() if at else None,
            "approvers": approvers or []}


def _channel_state(row, content: PostContent, approval: dict | None, runs: list[FormRun], now: datetime) -> dict:
    """The ledger first (it says what happened on the channel); before it knows the post, the approval and the time."""
    from bridgecast.posts.publishing import is_out

    if row is not None:
        if row.status == PUBLISHED and not is_out(row, now):
            return _state(SCHEDULED, url=row.url, reason="đã hẹn giờ trên kênh: kênh tự đăng đúng giờ")
        if row.status == PUBLISHED:
            return _state(PUBLISHED, url=row.url, at=row.published_at)
        if row.status == CLAIMED:
            return _state(SCHEDULED)
        if row.status in (FAILED, EXPIRED, UNKNOWN):
            return _state(row.status, reason=row.last_error, at=row.updated_at)
        if row.status == CANCELLED:
            return _state(CANCELLED, reason="đã rút khỏi lịch trước khi lên kênh", at=row.updated_at)
        return _state(row.status, at=row.updated_at)
    decided = (approval or {}).get("state")
    if decided == "rejected":
        return _state(REJECTED, reason=approval["note"])
    if decided == "expired":
        return _state(EXPIRED, reason="hết hạn duyệt: chưa ai duyệt trước giờ đăng — bài không được đăng")
    if decided in ("waiting", "not_asked"):
        if content.publish_at > now:
            return _state(AWAITING_APPROVAL, approvers=approval["approvers"], reason=approval.get("note"))
        return _state(EXPIRED, reason="cần duyệt nhưng đã quá giờ đăng mà chưa được duyệt — bài không được đăng")
    run = next((r for r in reversed(runs) if r.run_id == (approval or {}).get("run_id")), None)
    if run is not None and not run.active:  # its run ended and nothing reached the ledger
        if run.ended_at is not None and run.ended_at < content.publish_at:  # staff: Mark run as → Failed
            return _state(CANCELLED, reason=f"lượt chạy {run.run_id} đã được dừng trước giờ đăng", at=run.ended_at)
        return _state(FAILED, reason=f"chưa lên kênh — xem nhật ký các tác vụ của lượt chạy {run.run_id}",
                      at=run.ended_at)
    late = content.late_limit
    if late is not None and now - content.publish_at > late:
        minutes = late.total_seconds() / 60
        return _state(EXPIRED, reason=f"không đăng: đã quá giờ đăng hơn {minutes:.0f} phút (late_limit_minutes) "
                                      "mà bài chưa lên kênh")
    return _state(SCHEDULED)


def _media(event, content: PostContent, frozen: list[dict] | None, preview: dict) -> dict:
    """The photos to show: what went out (frozen), else what the preview showed, else the post's own keys."""
    from bridgecast.posts.media import point_names, thumbnail_key

    keys = [m["key"] for m in frozen or [] if m.get("key")] or list(preview.get("photos") or ()) or \
        list(content.media.keys)
    names = point_names(event)
    photos = []
    for key in keys:
        parts = key.split("/")
        photos.append({"key": key, "url": _media_path(key), "thumb_url": _media_path(thumbnail_key(key) or key),
                       "caption": names.get(parts[1], "") if len(parts) > 2 else ""})
    return {"text": "đã đăng kèm ảnh" if frozen else content.media.describe(), "photos": photos}


def _media_path(key: str) -> str:
    from bridgecast.staff_links import media_path

    return media_path(key)


def shown_path(source: str) -> str:
    """A calendar file as staff find it: relative to the repository when it is in it."""
    path = Path(source)
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --- reading --------------------------------------------------------------------------------------------------------
def read_agenda(session, event, *, storage, ledger, start: date, end: date, now: datetime | None = None,
                cache=None, calendar_dir: str | None = None) -> dict:
    """The entries of [start, end] and what kept any source from being read (`problems`). `session`: a session on
    Airflow's metadata DB; `cache`: a `board.sources.TTLCache`-like `get(key, ttl, load)` for what S3 holds."""
    from bridgecast.posts.calendar import CalendarError
    from bridgecast.posts.media import frozen_media
    from bridgecast.posts.operators import approver_names
    from bridgecast.posts.publishing import snapshot_key
    from bridgecast.posts.tasks import calendar_dir as folder_of, load_posts

    now = now or datetime.now(timezone.utc)
    cache = cache or _NoCache()
    refs = {"calendar_dir": calendar_dir} if calendar_dir else {}
    problems: list[str] = []
    try:
        posts = list(load_posts(event, refs))
    except CalendarError as exc:
        posts = []
        problems += [f"Tệp lịch đăng bài có lỗi, nên chưa hiện bài nào của tệp: {p}" for p in exc.problems]
    except FileNotFoundError as exc:
        posts = []
        problems.append(str(exc))
    first = datetime.combine(start, datetime.min.time(), tzinfo=event.tz).astimezone(timezone.utc)
    last = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=event.tz).astimezone(timezone.utc)
    runs = [r for r in form_runs(session, since=first - RUN_LOOKBACK, until=last)
            if r.post and _event_id(r.post.get("refs") or {}, cache) == event.id]
    rows = ledger.rows(event.id)
    planned = {p.publication_key for p in posts}

    def stored(what: str, load):
        """S3 only adds detail (photos, a removed post's text): when it cannot be read the page still shows."""
        try:
            return load()
        except Exception as exc:  # noqa: BLE001 - boto3/botocore raise many types; all mean "not readable now"
            problem = f"Không đọc được {what} từ kho lưu trữ ({type(exc).__name__}); thử lại sau."
            if problem not in problems:
                problems.append(problem)
            return None

    snapshots = {}
    for key in sorted({r.pub_key for r in rows if r.pub_key.startswith(CALENDAR_PREFIX)} - planned):
        snapshot = stored("nội dung bài đã bỏ khỏi lịch", lambda k=key: cache.get(
            ("snapshot", event.id, k), SNAPSHOT_TTL_S, lambda: _json_or_none(storage, snapshot_key(event.id, k))))
        if snapshot and snapshot.get("content"):
            snapshots[key] = snapshot

    def frozen(key: str) -> list[dict] | None:  # what a published post froze never changes: kept for long
        return stored("ảnh của bài đã đăng", lambda: cache.get(("frozen", event.id, key), FROZEN_TTL_S,
                                                              lambda: frozen_media(storage, event.id, key)))

    entries = agenda(event, posts=posts, runs=runs, rows=rows, now=now, start=start, end=end,
                     approvers=approver_names(), frozen=frozen, snapshots=snapshots)
    return {"posts": entries, "problems": problems, "states": STATE_LABELS, "weekdays": list(WEEKDAYS_VI),
            "calendar_dir": shown_path(str(folder_of(refs))), "form_path": FORM_PATH}


class _NoCache:
    def get(self, key, ttl, load):
        return load()


def _json_or_none(storage, key: str) -> dict | None:
    return storage.get_json(key) if storage.exists(key) else None


def _event_id(refs: dict, cache) -> str | None:
    """The event a form run posted for: the configured one unless its conf named another (a test, a rehearsal);
    None when that event cannot be read here (its run is then not this calendar's)."""
    from bridgecast.run_event import event_for_run

    try:
        return cache.get(("run-event", json.dumps(refs, sort_keys=True)), 300.0, lambda: event_for_run(refs)[0].id)
    except Exception:  # noqa: BLE001 - a file gone, an invalid event, or S3 not reachable from here
        return None


def form_runs(session, *, since: datetime, until: datetime) -> list[FormRun]:
    """The form's runs started in [since, until], with what their tasks handed on (XCom) and the approval request
    (its assignees). A few queries, whatever the number of runs."""
    from sqlalchemy import and_, or_, select

    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    found = session.execute(select(DagRun.run_id, DagRun.state, DagRun.run_after, DagRun.end_date).where(
        DagRun.dag_id == FORM_DAG_ID, DagRun.run_after >= since, DagRun.run_after <= until)).all()
    if not found:
        return []
    ids = [r.run_id for r in found]
    wanted = (("validate_form", "post"), ("render_preview", "return_value"), ("approve_post", "decision"))
    values: dict[tuple[str, str], object] = {}
    tasks: dict[str, tuple[str | None, object]] = {}
    assignees: dict[object, tuple[str, ...]] = {}
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        for xcom in session.execute(select(XComModel.run_id, XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == FORM_DAG_ID, XComModel.run_id.in_(chunk), XComModel.map_index == -1,
                or_(*(and_(XComModel.task_id == t, XComModel.key == k) for t, k in wanted)))):
            values[(xcom.run_id, xcom.task_id)] = XComModel.deserialize_value(xcom)
        for ti in session.execute(select(TaskInstance.run_id, TaskInstance.state, TaskInstance.id).where(
                TaskInstance.dag_id == FORM_DAG_ID, TaskInstance.run_id.in_(chunk),
                TaskInstance.task_id == "approve_post")):
            tasks[ti.run_id] = (str(ti.state) if ti.state else None, ti.id)
    opened = [ti_id for state, ti_id in tasks.values() if state == "awaiting_input"]
    if opened:
        for detail in session.execute(select(HITLDetail.ti_id, HITLDetail.assignees).where(
                HITLDetail.ti_id.in_(opened))):
            assignees[detail.ti_id] = tuple(u.get("name") or u.get("id") for u in detail.assignees or []
                                            if isinstance(u, dict))
    out = []
    for r in found:
        state, ti_id = tasks.get(r.run_id, (None, None))
        post = values.get((r.run_id, "validate_form"))
        out.append(FormRun(run_id=r.run_id, state=str(r.state), created_at=r.run_after, ended_at=r.end_date,
                           post=post if isinstance(post, dict) and post.get("key") else None,
                           preview=_dict(values.get((r.run_id, "render_preview"))),
                           decision=_dict(values.get((r.run_id, "approve_post"))), approval_task=state,
                           assignees=assignees.get(ti_id, ())))
    return out


def _dict(value) -> dict | None:
    return value if isinstance(value, dict) else None
