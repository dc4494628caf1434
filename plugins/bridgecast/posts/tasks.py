"""Task bodies of `bridgecast_publish` (the calendar) and `bridgecast_schedule_post` (the staff form).

Everything a task passes on is a small JSON "item": one post on one channel (`source` calendar|form, `key`,
`channel`, `publish_at` UTC, a `label` for the UI, and where the event and calendar files are). A calendar item is
re-read from the calendar when it runs, so an edit made while it waited is what goes out, a removal withdraws it
and a time moved later leaves it to a later run.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridgecast.objects import posts_run_key
from bridgecast.posts.content import LOCAL_TZ, PostContent, from_planned, local_text, parse_utc

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
CADENCE = timedelta(minutes=5)  # bridgecast_publish's schedule; see the DAG file for why
WINDOW = CADENCE + timedelta(minutes=2)  # a run waits for posts due before now + WINDOW
RESCHEDULE_SLACK = timedelta(seconds=90)  # a post whose time moved later than this is left to a later run


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- where things are ----------------------------------------------------------------------------------------------
def event_refs(conf: dict | None) -> dict:
    conf = conf or {}
    return {k: conf[k] for k in ("event_file", "event_key", "calendar_dir") if conf.get(k)}


def load_event_for(refs: dict):
    from bridgecast.run_event import event_for_run

    return event_for_run(refs)[0]


def calendar_dir(refs: dict) -> Path:
    return Path(refs.get("calendar_dir") or os.environ.get("BRIDGECAST_CALENDAR_DIR") or REPO / "config" / "posts")


def load_posts(event, refs: dict):
    from bridgecast.posts.calendar import load_calendar

    folder = calendar_dir(refs)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no calendar files (*.yaml) in {folder}: set conf.calendar_dir or "
                                "BRIDGECAST_CALENDAR_DIR")
    return load_calendar(files, event.id, {p.id for p in event.points}).posts


def calendar_content(event, refs: dict, post_id: str) -> PostContent | None:
    post = next((p for p in load_posts(event, refs) if p.id == post_id), None)
    return from_planned(post) if post else None


def _services(event):
    from bridgecast.channels.factory import channels_for
    from bridgecast.ledger import Ledger
    from bridgecast.storage import Storage

    return Ledger(), channels_for(event), Storage.from_connection()


def _fail(message: str):
    from airflow.sdk.exceptions import AirflowFailException

    log.error(message)
    raise AirflowFailException(message)


# --- bridgecast_publish: plan -----------------------------------------------------------------------------------------
def plan_calendar(conf: dict | None, run_id: str) -> list[dict]:
    """The plan of this run (kept as an artefact) and its items, one per post × channel that needs something."""
    from bridgecast.ledger import PUBLISHED, Ledger
    from bridgecast.posts.media import frozen_media
    from bridgecast.posts.planner import CALENDAR_PREFIX
    from bridgecast.posts.planner import plan_calendar as make_plan
    from bridgecast.storage import Storage

    refs = event_refs(conf)
    event = load_event_for(refs)
    posts = load_posts(event, refs)
    storage = Storage.from_connection()
    rows = [r for r in Ledger().rows(event.id) if r.pub_key.startswith(CALENDAR_PREFIX)]
    published = {r.pub_key for r in rows if r.status == PUBLISHED}
    frozen = {p.publication_key: frozen_media(storage, event.id, p.publication_key)
              for p in posts if p.publication_key in published and (p.media_keys or p.media_selector)}
    now = _now()
    plan = make_plan(event, posts, rows, frozen, now, WINDOW)
    if not posts and plan.withdraw:
        _fail(f"The calendar of {event.id} in {calendar_dir(refs)} has no posts, but the ledger holds "
              f"{len(plan.withdraw)} calendar publications: refusing to withdraw them all. Check the calendar folder.")
    summary = plan.to_json()
    summary.update({"event_id": event.id, "planned_at": now.isoformat(), "window_end": (now + WINDOW).isoformat(),
                    "calendar_dir": str(calendar_dir(refs))})
    text = plan_markdown(summary, event.timezone)
    print(text)
    run_slug = _safe(run_id)
    storage.put_bytes(posts_run_key(event.id, run_slug, "plan.md"), text.encode(),
                      content_type="text/markdown; charset=utf-8")
    storage.put_json(posts_run_key(event.id, run_slug, "plan.json"), summary)
    return [{**entry, **refs} for entry in plan.items()]


def carry_out(item: dict) -> dict:
    """One planned action (see bridgecast.posts.planner) on one post and channel."""
    action = item.get("action", "publish")
    if action == "withdraw":
        return withdraw_item(item)
    if action == "approval":
        return request_approval(item)
    return publish_item(item, mode={"publish": "at_time", "update": "update", "schedule": "schedule"}[action])


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


ACTION_VI = {"publish": "đăng đúng giờ", "schedule": "hẹn giờ trên fanpage", "update": "cập nhật",
             "withdraw": "rút bài", "approval": "chờ duyệt", "missed": "QUÁ HẠN, không đăng", "done": "xong",
             "later": "để lần sau"}


def plan_markdown(plan: dict, tz: str = LOCAL_TZ) -> str:
    lines = [f"# Lịch đăng bài — {plan['event_id']}",
             f"Lập lúc {local_text(parse_utc(plan['planned_at']), tz)}; chờ các bài đến hạn trước "
             f"{local_text(parse_utc(plan['window_end']), tz)}.", "",
             "| Bài | Kênh | Giờ đăng | Việc | Lý do |", "|---|---|---|---|---|"]
    for r in plan["report"]:
        when = local_text(parse_utc(r["publish_at"]), tz, zone=False) if r["publish_at"] else "-"
        lines.append(f"| {r['post']} | {r['channel']} | {when} | {ACTION_VI.get(r['action'], r['action'])} | "
                     f"{r['why']} |")
    planned_at = parse_utc(plan["planned_at"])
    for r in plan["report"]:
        if r["action"] == "missed":
            # Said loudly for a day, then only in the table (an old event's calendar stays in config/posts).
            recent = planned_at - parse_utc(r["publish_at"]) < timedelta(days=1)
            (log.error if recent else log.info)("MISSED: calendar post %s on %s: %s", r["post"], r["channel"],
                                                r["why"])
    return "\n".join(lines)


def refresh_photo_picker(conf: dict | None = None) -> dict:
    """The form's photo list (processed photos by point and time) stored as the Variable the form's DAG file reads;
    when it changed, the form is brought up to date at once (see `show_in_form`), not at the next parse round."""
    from bridgecast.posts.media import PICKER_VARIABLE, build_picker, list_photos, save_picker
    from bridgecast.storage import Storage

    refs = event_refs(conf)
    event = load_event_for(refs)
    photos = list_photos(Storage.from_connection(), event.id, [p.id for p in event.points])
    picker = build_picker(event, photos)
    changed = save_picker(picker)
    log.info("photo picker: %d photos from %d points (%s) → Variable %s", len(picker["keys"]),
             len(picker["points"]), "changed" if changed else "unchanged", PICKER_VARIABLE)
    shown_after = show_in_form(picker["keys"]) if changed else None
    return {"photos": len(picker["keys"]), "points": picker["points"], "changed": changed,
            "in_form_after_s": shown_after}


FORM_DAG_ID = "bridgecast_schedule_post"
REPARSE_EVERY_S = 10.0
SHOW_TIMEOUT_S = 90.0


def show_in_form(keys: list[str], timeout_s: float = SHOW_TIMEOUT_S) -> float | None:
    """Have the dag-processor re-parse the form's DAG file now (REST: PUT /parseDagFile) until the form offers
    `keys`; seconds it took, or None (logged) when Airflow cannot be asked — the next parse round does it then.

    Asked again every REPARSE_EVERY_S: Airflow stores a re-parsed DAG only if its last write is older than
    [core] min_serialized_dag_update_interval (30 s), so a second batch of photos right after a first one would
    otherwise wait for the next round (min_file_process_interval, 2 min on the embedded stack)."""
    from bridgecast.airflow_api import AirflowAPI, AirflowAPIError

    started = time.monotonic()
    asked_at = None
    try:
        api = AirflowAPI.from_connection()
        token = api.dag(FORM_DAG_ID)["file_token"]
        while time.monotonic() - started < timeout_s:
            if asked_at is None or time.monotonic() - asked_at >= REPARSE_EVERY_S:
                api.request("PUT", f"/api/v2/parseDagFile/{token}")
                asked_at = time.monotonic()
            time.sleep(1.0)
            offered = api.request("GET", f"/api/v2/dags/{FORM_DAG_ID}/details")["params"]["photos"]["schema"]
            if (offered.get("examples") or []) == keys:
                return round(time.monotonic() - started, 1)
    except (AirflowAPIError, OSError, KeyError) as exc:
        log.warning("could not have %s re-parsed (%s): the form offers the new photos after its next parse",
                    FORM_DAG_ID, exc)
        return None
    log.warning("the form did not show the new photo list within %.0f s; it will after its next parse", timeout_s)
    return None


# --- one item -----------------------------------------------------------------------------------------------------
def _sleep_until(moment: datetime) -> None:
    while (left := (moment - _now()).total_seconds()) > 0:
        time.sleep(left - 0.002 if left > 0.01 else 0.0005)


def publish_item(item: dict, *, mode: str = "at_time") -> dict:
    """Publish (or update, or schedule on the fanpage) one post on one channel through the ledger.

    mode `at_time`: sleep to the exact publish time first; media missing → MediaNotReady until the post's limit,
    then a failure saying what is missing. `schedule`: now, as a fanpage scheduled post, only if the media are
    already there. `update`: now (the post is published and its calendar entry changed)."""
    from bridgecast.ledger import PENDING, UNKNOWN
    from bridgecast.posts.media import MediaNotReady, resolve_media
    from bridgecast.posts.planner import FANPAGE_MIN_LEAD
    from bridgecast.posts.publishing import publish_content, withdraw

    event = load_event_for(item)
    ledger, channels, storage = _services(event)
    channel_name = item["channel"]
    base = {"key": item["key"], "label": item["label"], "channel": channel_name}
    if item["source"] == "calendar":
        content = calendar_content(event, item, item["post_id"])
        if content is None or channel_name not in content.channels:
            log.info("%s is no longer in the calendar (for %s): withdrawing it", item["post_id"], channel_name)
            return {**withdraw(event, item["key"], channel_name, ledger=ledger, channel=channels[channel_name],
                               storage=storage), "label": item["label"]}
        row = ledger.get(event.id, channel_name, content.key)
        attempted = row is not None and row.status in (PENDING, UNKNOWN)
        if content.approval_required and not item.get("approved") and not attempted and mode != "update":
            log.info("%s needs approval: it is published by its bridgecast_schedule_post run", content.label)
            return {**base, "action": "needs-approval"}
    else:
        content = PostContent.from_json(item["post"])
    now = _now()
    if mode == "at_time" and content.publish_at > now + RESCHEDULE_SLACK and item["source"] == "calendar":
        log.info("%s moved to %s: a later run publishes it", content.label, content.publish_at_text)
        return {**base, "action": "rescheduled", "publish_at": content.publish_at.isoformat()}
    if mode == "schedule" and content.publish_at - now < FANPAGE_MIN_LEAD - timedelta(minutes=4):
        return {**base, "action": "too-close", "detail": "published at its time instead"}
    with tempfile.TemporaryDirectory(prefix="bridgecast-post-") as tmp:
        try:
            try:
                # Fetched in the seconds before the minute, so the minute itself is spent only on the channel call.
                media, paths = resolve_media(storage, event, content, Path(tmp))
            except MediaNotReady:
                if mode != "at_time" or _now() >= content.publish_at:
                    raise
                _sleep_until(content.publish_at)  # one more look at the minute itself before waiting longer
                media, paths = resolve_media(storage, event, content, Path(tmp))
        except MediaNotReady as exc:
            if mode == "schedule":
                log.info("%s — the post is published at its time instead of scheduled now", exc)
                return {**base, "action": "media-not-ready"}
            deadline = content.publish_at + content.media_wait
            if _now() < deadline:
                exc.deadline = deadline
                raise
            _fail(f"Ảnh/tệp của bài «{content.label}» ({channel_name}) vẫn chưa có trong kho sau "
                  f"{content.media_wait.total_seconds() / 60:.0f} phút chờ (hạn {local_text(deadline)}): "
                  f"{', '.join(exc.missing)}. Gửi ảnh lên rồi Clear tác vụ này, hoặc sửa mục media của bài. / "
                  f"Media of '{content.label}' still missing after waiting until {deadline.isoformat()}: "
                  f"{', '.join(exc.missing)}. Upload them and clear this task, or change the post's media.")
        if mode == "at_time":
            _sleep_until(content.publish_at)
        return publish_content(event, content, channel_name, media, paths, ledger=ledger,
                               channel=channels[channel_name], storage=storage,
                               run_id=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"))


def withdraw_item(item: dict) -> dict:
    from bridgecast.posts.publishing import withdraw

    event = load_event_for(item)
    ledger, channels, storage = _services(event)
    return {**withdraw(event, item["key"], item["channel"], ledger=ledger, channel=channels[item["channel"]],
                       storage=storage), "label": item["label"]}


def request_approval(item: dict) -> dict:
    """Hand a calendar post that needs approval to bridgecast_schedule_post (one run per post and time)."""
    from bridgecast.airflow_api import AirflowAPI, AirflowAPIError
    from bridgecast.posts.form import publish_fields

    event = load_event_for(item)
    content = calendar_content(event, item, item["post_id"])
    if content is None:
        return {"post": item["post_id"], "action": "gone"}
    local = content.publish_at.astimezone(event.tz)
    run_id = f"calendar__{item['post_id']}__{local:%Y%m%dT%H%M}"
    conf = {"channels": list(content.channels), "title": content.title, "body": content.body,
            **publish_fields(content.publish_at, event.timezone), "photos": list(content.media.keys),
            "link": content.link, "repost": False, "calendar_post": {"post_id": item["post_id"], **event_refs(item)}}
    try:
        AirflowAPI.from_connection().trigger("bridgecast_schedule_post", conf, run_id=run_id)
    except AirflowAPIError as exc:
        if exc.status != 409:
            raise
        return {"post": item["post_id"], "run_id": run_id, "action": "already-requested"}
    log.info("approval of %s requested in bridgecast_schedule_post run %s", item["post_id"], run_id)
    return {"post": item["post_id"], "run_id": run_id, "action": "requested"}


# --- bridgecast_schedule_post -----------------------------------------------------------------------------------------
def validate_form(params: dict, conf: dict | None, run_id: str) -> tuple[dict, list[dict]]:
    """(post, items): the checked post and one publish item per channel."""
    from bridgecast.posts.form import PUBLISH_FIELDS, FormError, field_problem, validate_post
    from bridgecast.storage import Storage

    conf = conf or {}
    calendar_post = conf.get("calendar_post")
    refs = event_refs(calendar_post or conf)
    event = load_event_for(refs)
    storage = Storage.from_connection()
    now = _now()
    try:
        if calendar_post:
            content = calendar_content(event, refs, calendar_post["post_id"])
            if content is None:
                raise FormError([field_problem("calendar_post", f"bài «{calendar_post['post_id']}» không còn trong "
                                                                "lịch đăng.")])
            if content.publish_at <= now:
                raise FormError([field_problem(PUBLISH_FIELDS, f"{content.publish_at_words} đã qua.")])
        else:
            content = validate_post(params, now=now, photo_exists=storage.exists, run_id=run_id, tz=event.timezone)
    except FormError as exc:
        _fail(str(exc))
    source = "calendar" if calendar_post else "form"
    items = [{"source": source, "key": content.key, "channel": ch, "publish_at": content.publish_at.isoformat(),
              "label": f"{content.label[:40]} · {ch}", **refs,
              **({"post_id": calendar_post["post_id"], "approved": True} if calendar_post else
                 {"post": content.to_json()})}
             for ch in content.channels]
    post = {**content.to_json(), "source": source, "run_id": run_id, "refs": refs,
            "publish_at_local": content.publish_at_words, "repost": bool(params.get("repost"))}
    log.info("form OK: '%s' on %s at %s = %s (key %s)", content.title, ", ".join(content.channels),
             content.publish_at_words, content.publish_at.isoformat(), content.key)
    return post, items


def render_preview(post: dict) -> dict:
    from bridgecast.posts.media import artefact_key, list_photos
    from bridgecast.posts.preview import approval_markdown, approval_subject, fanpage_text, portal_html
    from bridgecast.staff_links import media_url
    from bridgecast.storage import Storage

    event = load_event_for(post["refs"])
    content = PostContent.from_json(post)
    storage = Storage.from_connection()
    if content.media.keys:
        keys = list(content.media.keys)
    elif content.media.is_selector:  # what the selector would pick now; it picks again when the post goes out
        points = content.media.points or tuple(p.id for p in event.points)
        newest = list_photos(storage, event.id, points, content.media.rendition)[:content.media.newest]
        keys = [p["key"] for p in reversed(newest)]
    else:
        keys = []
    photos = [_preview_photo(storage, event, key) for key in keys]
    folder = f"preview/{_safe(post['run_id'])}"
    saved = {}
    if "portal" in content.channels:
        key = artefact_key(event.id, content.key, f"{folder}/portal.html")
        storage.put_bytes(key, portal_html(event, content, photos).encode(), content_type="text/html; charset=utf-8")
        saved["portal"] = key
    if "fanpage" in content.channels:
        text = fanpage_text(event, content)
        key = artefact_key(event.id, content.key, f"{folder}/fanpage.txt")
        storage.put_bytes(key, text.encode(), content_type="text/plain; charset=utf-8")
        saved["fanpage"] = key
    links = {ch: media_url(k) for ch, k in saved.items()}  # behind the UI's login, never presigned
    markdown = approval_markdown(event, content, photos, links)
    key = artefact_key(event.id, content.key, f"{folder}/preview.md")
    storage.put_bytes(key, markdown.encode(), content_type="text/markdown; charset=utf-8")
    saved["markdown"] = key
    print(markdown)
    return {"subject": approval_subject(content), "markdown": markdown, "artefacts": saved, "links": links,
            "photos": keys}


def _preview_photo(storage, event, key: str) -> dict:
    """A photo as the previews show it: the full rendition for the portal preview, its `thumb` rendition (when
    the ingest made one) for the approval request, and the point's name as caption."""
    from bridgecast.posts.media import point_names, thumbnail_key
    from bridgecast.staff_links import media_path

    parts = key.split("/")
    thumb = thumbnail_key(key)
    shown = thumb if thumb and storage.exists(thumb) else key
    return {"key": key, "url": media_path(key), "thumb_url": media_path(shown),
            "caption": point_names(event).get(parts[1], "") if len(parts) > 2 else ""}


OUTCOME_VI = {"published": "ĐÃ ĐĂNG", "rejected": "BỊ TỪ CHỐI — không đăng", "expired": "HẾT HẠN DUYỆT — không đăng",
              "failed": "LỖI — chưa đăng đủ kênh", "invalid": "BIỂU MẪU KHÔNG HỢP LỆ — không đăng",
              "withdrawn": "ĐÃ RÚT khỏi lịch — không đăng", "late": "QUÁ GIỜ — không đăng"}
DECISION_VI = {"approved": "đã duyệt", "rejected": "bị từ chối", "expired": "hết hạn, chưa ai duyệt"}
STATUS_VI = {"published": "đã đăng", "pending": "đang đăng", "unknown": "chưa rõ (đang đối chiếu)",
             "failed": "lỗi", "cancelled": "đã rút", "expired": "quá giờ, không đăng"}


def notify_staff(post: dict | None, decision: dict | None, results, run_id: str) -> dict:
    """The outcome, for the staff who asked: in the log, as an artefact next to the post, and as the run's state —
    an expired or failed post fails this task (a red run in the UI), a rejected one does not."""
    import json

    from bridgecast.ledger import PUBLISHED, Ledger
    from bridgecast.posts.content import CHANNEL_LABELS
    from bridgecast.posts.media import artefact_key
    from bridgecast.posts.notices import outcome_reported
    from bridgecast.storage import Storage

    if not post:
        _fail("Biểu mẫu không hợp lệ nên bài không được đăng: xem lỗi ở tác vụ validate_form, sửa rồi gửi lại biểu "
              "mẫu. / The form was not valid (see validate_form): nothing is posted.")
    event = load_event_for(post["refs"])
    content = PostContent.from_json(post)
    ledger = Ledger()
    channels = {}
    for ch in content.channels:
        row = ledger.get(event.id, ch, content.key)
        channels[ch] = {"status": row.status if row else None, "url": row.url if row else None,
                        "remote_id": row.remote_id if row else None,
                        "published_at": row.published_at.isoformat() if row and row.published_at else None}
    results = [r for r in (results or []) if r]
    decided = (decision or {}).get("decision")
    if decided in ("rejected", "expired"):
        outcome = decided
    elif any(r.get("action") == "cancelled" for r in results):
        outcome = "withdrawn"
    elif any(r.get("action") == "expired" for r in results):
        outcome = "late"  # past its late_limit (posts.publishing.expire): nothing more will go out
    elif decided == "approved" and all(c["status"] == PUBLISHED for c in channels.values()):
        outcome = "published"
    else:
        outcome = "failed"
    report = {"outcome": outcome, "title": content.title, "key": content.key, "run_id": run_id,
              "publish_at": content.publish_at.isoformat(), "publish_at_local": content.publish_at_words,
              "decision": decision, "channels": channels, "results": results}
    lines = [f"Bài «{content.title}» — {OUTCOME_VI[outcome]}", f"Giờ đăng: {content.publish_at_words}",
             f"Duyệt: {DECISION_VI.get(decided, 'chưa có')}" + (f" (tài khoản {decision['by']})"
                                                                if (decision or {}).get("by") else "")]
    lines += [f"- {CHANNEL_LABELS.get(ch, ch)}: {STATUS_VI.get(c['status'], c['status'] or 'chưa đăng')} "
              f"{c['url'] or ''}".rstrip() for ch, c in channels.items()]
    text = "\n".join(lines)
    outcome_reported(content, outcome=outcome, outcome_text=OUTCOME_VI[outcome], lines=lines, run_id=run_id,
                     link=next((c["url"] for c in channels.values() if c["url"]), None))
    storage = Storage.from_connection()
    folder = f"outcome/{_safe(run_id)}"
    storage.put_json(artefact_key(event.id, content.key, f"{folder}/outcome.json"), report)
    storage.put_bytes(artefact_key(event.id, content.key, f"{folder}/outcome.md"), text.encode(),
                      content_type="text/markdown; charset=utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=1))
    print(text)  # last: the UI opens a log at its end, so staff read this first
    if outcome in ("expired", "failed", "late"):
        _fail(f"{text}\n(Thông báo cho người gửi bài / staff notice: {outcome})")
    return report
