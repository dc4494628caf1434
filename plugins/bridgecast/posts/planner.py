"""The calendar against the ledger: what `bridgecast_publish` does in this run. Pure — no I/O, so every rule is
unit-tested without a channel.

Per post and channel, exactly one of:
  publish    due before the end of this run's window → a deferrable wait, then published at its minute
  schedule   a fanpage post with fixed media 15 min–29 days ahead → created now as a Facebook scheduled post
             (Facebook publishes it to the minute; removing it from the calendar deletes the scheduled post)
  update     published, but the text (or time, link…) in the calendar changed → an update, never a second post
  approval   `approval_required`: handed to bridgecast_schedule_post's approval step (3 days ahead at most)
  missed     never went out and is later than its `late_limit_minutes`: reported, not posted. An attempt in
             doubt (pending, unknown, claimed) past the limit is still handed to `publish`, only to reconcile: it
             may have gone out; if it has not, publishing marks it `expired` and tells staff — never creates it late
  done/later nothing to do now
and for ledger rows whose post (or channel) left the calendar: `withdraw` when it has not gone out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridgecast.ledger import CANCELLED, FAILED, PUBLISHED
from bridgecast.posts.content import LIVE_LINK, PostContent, from_planned, live_video_url, publication

CALENDAR_PREFIX = "calendar/"
FANPAGE_MIN_LEAD = timedelta(minutes=15)  # Facebook's 10-minute minimum plus room for this run to get there
FANPAGE_MAX_LEAD = timedelta(days=29)  # Facebook's 30 days, minus a day of margin
APPROVAL_LEAD = timedelta(days=3)  # how early an approval is asked for a calendar post that needs one
EXPIRED = "expired"  # ledger status: not published because its late_limit had passed (posts.publishing)


ACTION_LABELS = {"publish": "đăng", "schedule": "hẹn giờ fanpage", "update": "cập nhật", "withdraw": "rút bài",
                 "approval": "xin duyệt"}


@dataclass
class Plan:
    publish: list[dict] = field(default_factory=list)
    schedule: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    withdraw: list[dict] = field(default_factory=list)
    approval: list[dict] = field(default_factory=list)
    report: list[dict] = field(default_factory=list)  # one line per post × channel, for the run's artefact

    ACTIONS = ("withdraw", "update", "schedule", "approval", "publish")

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in (*self.ACTIONS, "report")}

    def items(self) -> list[dict]:
        """Everything to do, one item per post × channel, each tagged with its `action` (the mapped task's input)."""
        return [{**entry, "action": action, "label": f"{entry['label']} · {ACTION_LABELS[action]}"}
                for action in self.ACTIONS for entry in getattr(self, action)]


def item(content: PostContent, channel: str, **extra) -> dict:
    return {"source": "calendar", "key": content.key, "post_id": content.label, "channel": channel,
            "publish_at": content.publish_at.isoformat(), "label": f"{content.label} · {channel}", **extra}


def can_schedule_on_fanpage(content: PostContent, now: datetime) -> bool:
    """Only posts whose media and link are fixed now: a selector, or the live video's link, is resolved when the
    post goes out."""
    lead = content.publish_at - now
    return (not content.media.is_selector and content.link != LIVE_LINK
            and FANPAGE_MIN_LEAD <= lead <= FANPAGE_MAX_LEAD)


def plan_calendar(event, posts, rows, frozen: dict[str, list[dict] | None], now: datetime,
                  window: timedelta) -> Plan:
    """`posts`: the calendar's PlannedPosts; `rows`: the event's ledger rows; `frozen`: media records of published
    posts by key (None when unknown); `window`: how far ahead this run waits for due posts."""
    plan = Plan()
    live_url = live_video_url(rows)
    by_key = {(r.channel, r.pub_key): r for r in rows}
    wanted: set[tuple[str, str]] = set()
    for post in posts:
        content = from_planned(post)
        for channel in content.channels:
            wanted.add((channel, content.key))
            row = by_key.get((channel, content.key))
            action, why = _decide(event, content, channel, row, frozen.get(content.key), now, window, live_url)
            if action in ("publish", "schedule", "update", "approval"):
                getattr(plan, action).append(item(content, channel))
            plan.report.append({"post": content.label, "channel": channel, "publish_at": content.publish_at.isoformat(),
                                "action": action, "why": why, "status": row.status if row else None})
    for row in rows:
        if not row.pub_key.startswith(CALENDAR_PREFIX) or (row.channel, row.pub_key) in wanted:
            continue
        if row.status == CANCELLED:
            continue
        plan.withdraw.append({"source": "calendar", "key": row.pub_key, "post_id": row.pub_key[len(CALENDAR_PREFIX):],
                              "channel": row.channel, "label": f"{row.pub_key[len(CALENDAR_PREFIX):]} · {row.channel}"})
        plan.report.append({"post": row.pub_key[len(CALENDAR_PREFIX):], "channel": row.channel, "publish_at": None,
                            "action": "withdraw", "why": "removed from the calendar", "status": row.status})
    return plan


def _decide(event, content: PostContent, channel: str, row, frozen, now: datetime,
            window: timedelta, live_url: str | None = None) -> tuple[str, str]:
    if row is not None and row.status == CANCELLED:
        return "done", "withdrawn earlier: a withdrawn id is never reused — give the post a new id"
    if row is not None and row.status == EXPIRED:
        return "missed", "expired: its late_limit had passed before it could go out — not posted"
    if row is not None and row.status == PUBLISHED:
        if not content.media.empty and frozen is None:
            return "done", "published; its media record is missing, so edits cannot be compared"
        payload = publication(event, content, channel, frozen or [], live_url=live_url).payload_hash()
        if payload == row.payload_hash:
            return "done", "published, unchanged"
        return "update", "published, changed in the calendar"
    attempted = row is not None and row.status not in (FAILED,)  # pending/unknown: reconcile whatever the time
    if content.approval_required and not attempted:
        if content.publish_at - now <= APPROVAL_LEAD and content.publish_at > now:
            return "approval", "needs approval before it goes out"
        if content.publish_at <= now:
            return "done", "needs approval and its time has passed without one"
        return "later", "needs approval; asked 3 days ahead"
    late_limit = content.late_limit
    if late_limit is not None and now - content.publish_at > late_limit:
        if attempted:  # an earlier attempt may have reached the channel: find out, never post it now
            return "publish", (f"past its late_limit ({late_limit.total_seconds() / 60:.0f} min) after an attempt in "
                               "doubt: checked on the channel, expired if it is not there")
        return "missed", (f"not published and more than {late_limit.total_seconds() / 60:.0f} min late "
                          "(late_limit_minutes): not posted any more")
    if channel == "fanpage" and not attempted and can_schedule_on_fanpage(content, now):
        return "schedule", "fanpage scheduled post (Facebook publishes it at the minute)"
    if content.publish_at < now + window:
        return "publish", "due in this run's window" if content.publish_at > now else "due now"
    return "later", "due after this run's window"
