"""What the staff path tells people, and the one place where it is told: the hooks a notifier wires to.

  approval_requested  called by the approval step the moment a post waits for an approver (again on a retry)
  outcome_reported    called by «Báo kết quả» (notify_staff) when a post is published, rejected, expired or failed

Each builds a `Notice` — recipients (Airflow user names), a Vietnamese subject and body that repeat the publish
time in words, and the link to open — and logs it. Delivery is not done here: the control-room notifiers (mail,
chat) are meant to subscribe with `subscribe(callback)` (or replace `deliver`), so the operators and tasks never
change when a channel of notification is added. A failing subscriber is logged and never fails the post.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

from bridgecast.posts.content import PostContent, time_in_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    kind: str  # "approval_requested" | "outcome"
    to: tuple[str, ...]  # Airflow user names (the approvers), empty = the staff who sent the post
    subject: str
    body: str
    link: str | None = None
    facts: dict = field(default_factory=dict)  # machine-readable: key, run_id, publish_at (UTC), outcome…

    def to_json(self) -> dict:
        return {**asdict(self), "to": list(self.to)}


_subscribers: list = []


def subscribe(callback) -> None:
    """`callback(notice: Notice)` is called for every notice, in the task that produced it."""
    _subscribers.append(callback)


def unsubscribe(callback) -> None:
    if callback in _subscribers:
        _subscribers.remove(callback)


def deliver(notice: Notice) -> Notice:
    log.info("NOTICE %s → %s: %s\n%s%s", notice.kind, ", ".join(notice.to) or "người gửi bài", notice.subject,
             notice.body, f"\n{notice.link}" if notice.link else "")
    for callback in list(_subscribers):
        try:
            callback(notice)
        except Exception:  # a notifier down must not stop an approval or a post
            log.exception("notifier %r failed for %s", callback, notice.kind)
    return notice


def approval_requested(content: PostContent, *, approvers: list[str], link: str, deadline: datetime,
                       run_id: str, preview_links: dict[str, str] | None = None) -> Notice:
    when = content.publish_at_words
    lines = [f"Bài «{content.title}» chờ anh/chị duyệt.", f"Giờ đăng: {when}.",
             f"Hạn duyệt: trước {time_in_words(deadline, content.timezone)} — quá hạn chưa duyệt thì bài không được "
             "đăng.", f"Duyệt hoặc từ chối tại: {link}"]
    lines += [f"Xem trước ({channel}): {url}" for channel, url in (preview_links or {}).items()]
    return deliver(Notice(kind="approval_requested", to=tuple(approvers), subject=f"Cần duyệt: {content.title[:80]} "
                          f"— đăng {when}", body="\n".join(lines), link=link,
                          facts={"key": content.key, "run_id": run_id, "publish_at": content.publish_at.isoformat(),
                                 "deadline": deadline.isoformat(), "channels": list(content.channels)}))


def outcome_reported(content: PostContent, *, outcome: str, outcome_text: str, lines: list[str], run_id: str,
                     link: str | None = None) -> Notice:
    return deliver(Notice(kind="outcome", to=(), subject=f"{outcome_text}: {content.title[:80]} "
                          f"({content.publish_at_words})", body="\n".join(lines), link=link,
                          facts={"key": content.key, "run_id": run_id, "outcome": outcome,
                                 "publish_at": content.publish_at.isoformat()}))


def mail_approval_requests(notice: Notice) -> None:
    """The HITL notice by e-mail: an approval waiting is an incident of the configured event (one mail per post and
    run, whatever the retries), to its staff list, with the approval page's link."""
    if notice.kind != "approval_requested":
        return
    from bridgecast.alerts.incidents import Incident, raise_incident
    from bridgecast.event import default_event_path, load_event
    from bridgecast.staff_links import ui_url

    event = load_event(default_event_path())
    link = notice.link or ""
    if link.startswith("/"):  # no [api] base_url: the path in the UI, made absolute on the board's host
        link = ui_url(link)
    raise_incident(Incident(event_id=event.id, key=f"approval:{notice.facts.get('run_id')}:{notice.facts.get('key')}",
                            level="warning", subject=notice.subject, body=notice.body, link=link or None),
                   [m.email for m in event.staff])


subscribe(mail_approval_requests)  # delivery through bridgecast.alerts (Airflow's SMTP notifier)
