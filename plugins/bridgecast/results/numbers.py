"""The report's figures, from what the project knows: sign-ups (store), the launch summary (S3, written by the launch
DAG), photo manifests, the publication ledger and the channels' reach. Pure: inputs in, one JSON-able dict out —
the charts, the HTML, the PDF, the mail and the results post are all made from this dict and nothing else.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone

from bridgecast.event import Event
from bridgecast.results.units import signup_units, target_per_unit, unit_word

ON_TIME_S = 10  # live within 10 s of T0 counts as on time (the figure the rehearsal checks too)
PLAN_KEY = "annual_plan_new_voluntary_participants"
PLAN_SHARE_KEY = "annual_plan_share_first_six_months"
CHANNEL_LABELS = {"portal": "Cổng thông tin điện tử", "fanpage": "Fanpage Facebook", "press": "Báo chí (thư điện tử)"}
INTERNAL_PREFIX = "report/"  # the report's own staff mails: not publications to count


# --- sign-ups -------------------------------------------------------------------------------------------------
def campaign_days(event: Event, as_of: date) -> list[date]:
    """The days of the month of action up to `as_of` (inclusive)."""
    last = min(as_of, event.campaign_last_day)
    days, day = [], event.campaign_start
    while day <= last:
        days.append(day)
        day += timedelta(days=1)
    return days


def signups_section(event: Event, as_of: date, current: list, history: list) -> dict:
    units = signup_units(event)
    target = target_per_unit(event)
    days = campaign_days(event, as_of)
    in_range = [r for r in current if r.day <= as_of and r.district_id in {u.id for u in units}]
    by_unit: dict[str, dict[date, object]] = defaultdict(dict)
    for r in in_range:
        by_unit[r.district_id][r.day] = r
    rows = []
    for u in units:
        reports = by_unit.get(u.id, {})
        total = sum(r.count for r in reports.values())
        forms = [r.forms for r in reports.values() if r.forms is not None]
        last = max(reports) if reports else None
        rows.append({"id": u.id, "name": u.name, "total": total, "forms": sum(forms) if forms else None,
                     "target": target, "reached": bool(target) and total >= target,
                     "missing": max(0, round(target - total)) if target else None,
                     "share": round(100 * total / target, 1) if target else None,
                     "last_reported": last.isoformat() if last else None,
                     "reported_today": as_of in reports,
                     "by_day": {d.isoformat(): reports[d].count for d in sorted(reports)}})
    daily = [sum(by_unit.get(u.id, {}).get(d).count for u in units if d in by_unit.get(u.id, {})) for d in days]
    cumulative, running = [], 0
    for value in daily:
        running += value
        cumulative.append(running)
    total = sum(r["total"] for r in rows)
    target_total = target * len(units) if target else None
    plan_annual = event.targets.get(PLAN_KEY)
    plan_share = event.targets.get(PLAN_SHARE_KEY, 0.5)
    plan_6m = round(plan_annual * plan_share) if plan_annual else None
    return {
        "unit_word": unit_word(event), "units": rows, "days": [d.isoformat() for d in days], "daily": daily,
        "cumulative": cumulative, "total": total, "target_per_unit": target, "target_total": target_total,
        "target_share": round(100 * total / target_total, 1) if target_total else None,
        "units_reached": sum(1 for r in rows if r["reached"]), "units_total": len(rows),
        "plan_annual": plan_annual, "plan_share": plan_share, "plan_6m": plan_6m,
        "plan_placeholder": PLAN_KEY in event.placeholder_targets,
        "plan_progress": round(100 * total / plan_6m, 1) if plan_6m else None,
        "plan_missing": max(0, plan_6m - total) if plan_6m else None,
        "not_reported_today": [r["name"] for r in rows if not r["reported_today"]],
        "corrections": corrections(event, history, as_of),
    }


def corrections(event: Event, history: list, as_of: date) -> list[dict]:
    """Every report that replaced an earlier one for the same district and day, with what it replaced."""
    before: dict[tuple[str, date], object] = {}
    out = []
    names = {p.id: p.name for p in event.points}
    for r in sorted(history, key=lambda r: (r.district_id, r.day, r.revision)):
        key = (r.district_id, r.day)
        previous = before.get(key)
        if previous is not None and r.day <= as_of:
            out.append({"district": names.get(r.district_id, r.district_id), "day": r.day.isoformat(),
                        "before": previous.count, "after": r.count, "forms_before": previous.forms,
                        "forms_after": r.forms, "revision": r.revision, "where": r.where,
                        "previous_where": previous.where, "at": r.reported_at.isoformat()})
        before[key] = r
    return sorted(out, key=lambda c: c["at"])


# --- the launch morning -------------------------------------------------------------------------------------------
def launch_facts(event: Event, summary: dict | None) -> dict | None:
    """What the report needs from the launch's summary.json — the ONE place that knows its shape, and tolerant of
    it changing: points as a list or a dict by id; `kind` point/team (or missing: teams are the event's district
    points); live delay as `live_after_t0_s` or `live_detected_after_t0_s`; drops as a number or a list."""
    if not isinstance(summary, dict):
        return None
    raw_points = summary.get("points") or []
    if isinstance(raw_points, dict):
        raw_points = [{"id": pid, **(p if isinstance(p, dict) else {})} for pid, p in raw_points.items()]
    team_ids = {t.id for t in event.teams}
    names = {p.id: p.name for p in event.points}
    points = []
    for p in raw_points:
        if not isinstance(p, dict) or not p.get("id"):
            continue
        kind = p.get("kind") or ("team" if p["id"] in team_ids else "point")
        if kind not in ("point", "connection", "central", "province"):
            continue
        delay = p.get("live_after_t0_s", p.get("live_detected_after_t0_s"))
        drops = p.get("drops") or 0
        drops = len(drops) if isinstance(drops, list) else int(drops)
        live = delay is not None or bool(p.get("live_detected_at"))
        points.append({"id": p["id"], "name": p.get("name") or names.get(p["id"], p["id"]),
                       "live_after_t0_s": delay, "live": live, "drops": drops,
                       "on_time": live and delay is not None and delay <= ON_TIME_S,
                       "preflight": p.get("preflight")})
    total = summary.get("points_total") or len(points) or len(event.connection_points)
    late = [p for p in points if p["live"] and not p["on_time"]]
    never = [p for p in points if not p["live"]]
    return {"t0": summary.get("t0"), "go_live_delta_s": summary.get("go_live_delta_s"), "points_total": total,
            "on_time": sum(1 for p in points if p["on_time"]), "late": late, "not_live": never,
            "dropped": [p for p in points if p["drops"]], "drops_total": sum(p["drops"] for p in points),
            "preflight_no_go": list(summary.get("preflight_no_go") or []), "on_time_limit_s": ON_TIME_S}


# --- photos -------------------------------------------------------------------------------------------------------
def photos_section(event: Event, manifests) -> list[dict]:
    """Photos received / processed / quarantined per point and team (every team listed, with 0 if none)."""
    counts: dict[str, dict] = {}
    for m in manifests:
        if m.get("kind") != "photo":
            continue
        entry = counts.setdefault(m.get("point_id"), {"received": 0, "processed": 0, "quarantined": 0})
        entry["received"] += 1
        if m.get("status") in ("processed", "quarantined"):
            entry[m["status"]] += 1
    rows = []
    for p in event.points:
        if p.id in counts or p.kind == "district":
            c = counts.get(p.id, {"received": 0, "processed": 0, "quarantined": 0})
            rows.append({"id": p.id, "name": p.name, "kind": "team" if p.kind == "district" else "point", **c})
    return sorted(rows, key=lambda r: (r["kind"] != "team", -r["processed"], r["name"]))


# --- publications and reach ------------------------------------------------------------------------------------------
def publication_label(key: str) -> str:
    """What a ledger key is, for people."""
    labels = {"launch/live-video": "Video trực tiếp lễ ra quân", "launch/portal-article": "Bài viết lễ ra quân",
              "launch/fanpage-photos": "Bài ảnh lễ ra quân", "launch/fanpage-recap-video": "Video tổng hợp",
              "launch/press-kit": "Thông cáo báo chí"}
    if key in labels:
        return labels[key]
    if key.startswith("form/"):
        return "Bài đăng của cán bộ: " + key.split("/", 1)[1].rsplit("-", 2)[0].replace("-", " ")
    if key.startswith("calendar/"):
        return "Lịch đăng: " + key.split("/", 1)[1].split("/")[0]
    return key


def fanpage_kind(row) -> str:
    kind = (row.extra or {}).get("kind")
    if kind in ("post", "video", "live"):
        return kind
    return "post" if "_" in (row.remote_id or "") else "video"


def publications_section(event: Event, ledger_rows) -> list[dict]:
    out = []
    for r in ledger_rows:
        if r.event_id != event.id or r.pub_key.startswith(INTERNAL_PREFIX):
            continue
        out.append({"channel": r.channel, "channel_label": CHANNEL_LABELS.get(r.channel, r.channel),
                    "key": r.pub_key, "label": publication_label(r.pub_key), "status": r.status, "url": r.url,
                    "remote_id": r.remote_id, "kind": fanpage_kind(r) if r.channel == "fanpage" else r.channel,
                    "recipients": len((r.extra or {}).get("recipients") or []) if r.channel == "press" else None,
                    "published_at": r.published_at.isoformat() if r.published_at else None})
    return out


def with_reach(publications: list[dict], reach: dict[str, dict]) -> list[dict]:
    """Each publication with what its channel tells about who saw it (`reach` by ledger key, fanpage only)."""
    out = []
    for p in publications:
        item = dict(p)
        if p["channel"] == "fanpage":
            item["reach"] = reach.get(p["key"]) or {"note": "Chưa đọc số liệu từ Facebook."}
        elif p["channel"] == "portal":
            item["reach"] = {"note": "Cổng thông tin (WordPress REST API) không cung cấp số lượt xem."}
        else:
            item["reach"] = {"note": f"Đã gửi tới {p['recipients'] or 0} địa chỉ; thư không cho biết ai đã đọc."}
        out.append(item)
    return out


# --- all of it ------------------------------------------------------------------------------------------------------
def build_numbers(event: Event, as_of: date, *, current: list, history: list, launch_summary: dict | None,
                  manifests, ledger_rows, reach: dict[str, dict], results_post: dict | None = None,
                  generated_at: datetime | None = None) -> dict:
    publications = with_reach(publications_section(event, ledger_rows), reach)
    published = [p for p in publications if p["status"] == "published"]
    views = [p["reach"].get("views") for p in published if p["channel"] == "fanpage"]
    generated_at = generated_at or datetime.now(timezone.utc)
    day_number = (min(as_of, event.campaign_last_day) - event.campaign_start).days + 1
    return {
        "schema": 1, "event_id": event.id, "title": event.title, "short_title": event.short_title,
        "theme": event.theme, "timezone": event.timezone, "as_of": as_of.isoformat(),
        "generated_at": generated_at.isoformat(), "campaign_start": event.campaign_start.isoformat(),
        "campaign_end": event.campaign_last_day.isoformat(), "day_number": max(0, day_number),
        "campaign_length": (event.campaign_last_day - event.campaign_start).days + 1,
        "signups": signups_section(event, as_of, current, history),
        "launch": launch_facts(event, launch_summary),
        "photos": photos_section(event, manifests),
        "publications": publications,
        "published_count": len(published),
        "channels_used": sorted({p["channel"] for p in published}),
        "fanpage_views": sum(v for v in views if isinstance(v, int)) if any(isinstance(v, int) for v in views)
        else None,
        "results_post": results_post,
    }
