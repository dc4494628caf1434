"""The results post: drafted from the report's numbers for the portal and the fanpage, and handed to the staff form
DAG `bridgecast_schedule_post` through the Airflow REST API — so it goes through the same approval and the same
exactly-once publishing ledger as any staff post.

Once per report day: the triggered run's id is deterministic (`results__<event>__<yyyymmdd>`, a second trigger is
refused by Airflow with 409) and a marker next to the day's report records it, so rerunning the report never drafts
a second post for that day. The public text never quotes a placeholder plan figure.
"""
from __future__ import annotations

import logging
import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from bridgecast.objects import report_key
from bridgecast.results.charts import vn_number

log = logging.getLogger(__name__)

SCHEDULE_POST_DAG = "bridgecast_schedule_post"
PUBLISH_HOUR = 8  # results go out the next morning, after the approver has seen them
MIN_LEAD = timedelta(hours=1)
POST_EVERY_DAYS = 7


def results_post_due(event, day: date) -> bool:
    """Drafted after the launch, every week of the month of action, and on its last day — not every day."""
    if day < event.campaign_start or day > event.campaign_last_day:
        return False
    return day == event.campaign_last_day or (day - event.campaign_start).days % POST_EVERY_DAYS == 0


def run_id_for(event_id: str, day: date) -> str:
    return f"results__{event_id}__{day:%Y%m%d}"


def marker_key(event_id: str, day: date) -> str:
    return report_key(event_id, day, "results-post.json")


def default_publish_at(now: datetime, tz: str) -> datetime:
    """The next 08:00 in the event's zone at least an hour away (the approval deadline is the publish time)."""
    local = (now + MIN_LEAD).astimezone(ZoneInfo(tz))
    candidate = datetime.combine(local.date(), time(PUBLISH_HOUR), tzinfo=ZoneInfo(tz))
    if candidate < local:
        candidate += timedelta(days=1)
    return candidate.astimezone(timezone.utc)


def next_minute(moment: datetime) -> datetime:
    """The form takes HH:MM: round up to the whole minute so the time is never earlier than asked."""
    seconds = math.ceil(moment.timestamp() / 60) * 60
    return datetime.fromtimestamp(seconds, timezone.utc)


def draft(numbers: dict) -> tuple[str, str]:
    """(title, body) in Vietnamese, from the numbers only."""
    s = numbers["signups"]
    day = date.fromisoformat(numbers["as_of"])
    word = s["unit_word"]
    title = (f"Tháng vận động BHXH toàn dân: {vn_number(s['total'])} người tham gia BHXH tự nguyện mới "
             f"(đến {day:%d/%m/%Y})")
    paragraphs = [
        f"Tính đến hết ngày {day:%d/%m/%Y}, sau {numbers['day_number']} ngày triển khai Tháng vận động, các đội "
        f"tuyên truyền lưu động tại {s['units_total']} {word} đã vận động được {vn_number(s['total'])} người tham "
        "gia BHXH tự nguyện mới"
        + (f", đạt {vn_number(s['target_share'], 1)} % chỉ tiêu của Tháng vận động ({vn_number(s['target_per_unit'])} "
           f"người mỗi {word})." if s["target_total"] else "."),
    ]
    reached = sorted((u for u in s["units"] if u["reached"]), key=lambda u: -u["total"])
    if s["target_per_unit"]:
        if reached:
            paragraphs.append(f"{len(reached)}/{s['units_total']} {word} đã đạt và vượt chỉ tiêu: "
                              + ", ".join(f"{u['name']} ({vn_number(u['total'])} người)" for u in reached) + ".")
        else:
            paragraphs.append(f"Chưa {word} nào đạt chỉ tiêu {vn_number(s['target_per_unit'])} người; các đội tiếp "
                              "tục vận động trong những ngày tới.")
    leaders = sorted(s["units"], key=lambda u: -u["total"])[:3]
    if leaders and leaders[0]["total"]:
        paragraphs.append("Dẫn đầu: " + ", ".join(f"{u['name']} ({vn_number(u['total'])} người)" for u in leaders)
                          + ".")
    if s["plan_6m"] and not s["plan_placeholder"]:
        paragraphs.append(f"Kết quả này bằng {vn_number(s['plan_progress'], 1)} % kế hoạch 6 tháng của tỉnh "
                          f"({vn_number(s['plan_6m'])} người).")
    paragraphs.append(f"Chủ đề: «{numbers['theme']}». Hãy tham gia BHXH vì sự ổn định cuộc sống của bản thân và gia "
                      "đình!")
    return title, "\n\n".join(paragraphs)


def schedule_post_conf(title: str, body: str, publish_at: datetime, tz: str, *, photos: list[str],
                       refs: dict) -> dict:
    """THE wiring to `bridgecast_schedule_post`'s form (plugins/bridgecast/posts/form.py, read 2026-12): its fields
    `publish_date` (dd/mm/yyyy) and `publish_time` (HH:MM, 24 h), both in the event's zone, plus `channels`, `title`,
    `body`, `photos` (keys in storage), `link`, `repost`; the event refs (`event_key`/`event_file`) travel along so
    the staff DAG works on the same event. If the form's fields change, this is the one function to change."""
    local = publish_at.astimezone(ZoneInfo(tz))
    return {"publish_date": f"{local:%d/%m/%Y}", "publish_time": f"{local:%H:%M}", "channels": ["portal", "fanpage"],
            "title": title, "body": body, "photos": list(photos), "link": None, "repost": False, **refs}


def request_results_post(api, storage, event, day: date, numbers: dict, *, photos: list[str], refs: dict,
                         publish_at: datetime | None = None, now: datetime | None = None) -> dict:
    """Draft the day's results post and ask for its approval, once. Returns what happened (and the run id)."""
    from bridgecast.airflow_api import AirflowAPIError

    marker = marker_key(event.id, day)
    if storage.exists(marker):
        earlier = storage.get_json(marker)
        log.info("the results post of %s was drafted before (run %s): not again", day, earlier.get("run_id"))
        return {**earlier, "action": "already-drafted"}
    now = now or datetime.now(timezone.utc)
    publish_at = next_minute(publish_at or default_publish_at(now, event.timezone))
    title, body = draft(numbers)
    run_id = run_id_for(event.id, day)
    conf = schedule_post_conf(title, body, publish_at, event.timezone, photos=photos, refs=refs)
    try:
        api.trigger(SCHEDULE_POST_DAG, conf, run_id=run_id)
        action = "requested"
    except AirflowAPIError as exc:
        if exc.status != 409:
            raise
        action = "already-requested"  # a crash after the trigger and before the marker: the run is there
    info = {"run_id": run_id, "dag_id": SCHEDULE_POST_DAG, "title": title, "publish_at": publish_at.isoformat(),
            "day": day.isoformat(), "requested_at": now.isoformat(), "photos": list(photos)}
    storage.put_json(marker, info, if_absent=True)
    log.info("results post of %s %s for approval in %s run %s (publish %s)", day, action, SCHEDULE_POST_DAG, run_id,
             publish_at.isoformat())
    return {**info, "action": action}
