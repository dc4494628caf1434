"""The summary of the morning: per point its preflight, when it was seen live, drops, segments and photos; the
go-live figure; every publication in the ledger, and the expected ones (from `publications`) that are missing.
`summarize` and `summary_markdown` are pure; `write_summary` gathers the inputs and stores the result in S3."""
from __future__ import annotations

from datetime import datetime

from bridgecast.launch import publications as defs
from bridgecast.launch.plan import LaunchPlan, save_artifact


def point_rows(plan: LaunchPlan, live: dict, monitor: dict, photo_counts: dict, no_go: set[str]) -> list[dict]:
    """One row per connection point, then per district team (teams have no preflight and no stream)."""
    rows = []
    for kind, p in [("point", p) for p in plan.points] + [("team", t) for t in plan.teams]:
        seen, mon, photos = live.get(p.id, {}), monitor.get(p.id, {}), photo_counts.get(p.id, {})
        rows.append({"id": p.id, "name": p.name, "kind": kind,
                     "preflight": ("no-go" if p.id in no_go else "go") if kind == "point" else "-",
                     "live_detected_at": mon.get("live_detected_at"),
                     "live_after_t0_s": mon.get("live_detected_after_t0_s"), "drops": mon.get("drops", 0),
                     "segments": len(seen.get("segments", [])),
                     "photos_received": photos.get("received", 0), "photos_processed": photos.get("processed", 0),
                     "photos_quarantined": photos.get("quarantined", 0)})
    return rows


def summarize(plan: LaunchPlan, *, points: list[dict], ledger_rows: list, preflight: dict, went_live: dict,
              recap: dict | None, galleries: dict, steered: list[dict] = ()) -> dict:
    """The summary; `ledger_rows` are this event's `LedgerRow`s, checked against what the launch should publish."""
    publications = [{"channel": r.channel, "key": r.pub_key, "status": r.status, "url": r.url,
                     "remote_id": r.remote_id, "attempts": r.attempts} for r in ledger_rows]
    made = {(r.channel, r.pub_key) for r in ledger_rows if r.status == "published"}
    expected = defs.expected(photos=bool(galleries.get("selection")))
    return {
        "event_id": plan.event_id, "title": plan.title, "t0": plan.t0.isoformat(), "end": plan.end_at.isoformat(),
        "program_point": plan.program_point,
        "steering": [{k: e[k] for k in ("at", "by", "action", "said")} for e in steered],  # `at` in UTC
        "go_live_delta_s": went_live.get("delta_s"),
        # measured at the fanpage: when its live had the program's frames on air, against T0 (None: never)
        "program_on_air_after_t0_s": went_live.get("on_air_after_t0_s"),
        "points_live": sum(1 for p in points if p["kind"] == "point" and p["live_detected_at"]),
        "points_total": len(plan.points),
        "teams_with_photos": sum(1 for p in points if p["kind"] == "team" and p["photos_processed"]),
        "teams_total": len(plan.teams),
        "photos_processed": sum(p["photos_processed"] for p in points),
        "preflight_no_go": sorted(preflight.get("no_go", [])),
        "publications_expected": len(expected),
        "publications_made": sum(1 for d in expected if (d.channel, d.key) in made),
        "publications_missing": [f"{d.channel}:{d.key}" for d in expected if (d.channel, d.key) not in made],
        "recap": recap, "points": points, "publications": publications,
    }


def summary_markdown(s: dict) -> str:
    lines = [f"# Tổng kết — {s['title']}", "", f"- T0: {s['t0']}",
             f"- Lệnh phát trực tiếp so với T0: {s['go_live_delta_s']} s",
             f"- Fanpage phát hình chương trình sau T0: "
             f"{s['program_on_air_after_t0_s'] if s.get('program_on_air_after_t0_s') is not None else 'không'} s",
             f"- Điểm cầu lên sóng: {s['points_live']}/{s['points_total']}",
             f"- Đội lưu động gửi ảnh: {s.get('teams_with_photos', 0)}/{s.get('teams_total', 0)} "
             f"({s.get('photos_processed', 0)} ảnh)",
             f"- Không đạt kiểm tra trước giờ G: {', '.join(s['preflight_no_go']) or 'không có'}",
             f"- Bài đăng: {s['publications_made']}/{s['publications_expected']}"
             + (f" (thiếu: {', '.join(s['publications_missing'])})" if s["publications_missing"] else ""), "",
             "| Điểm cầu | Kiểm tra | Lên sóng sau T0 (s) | Rớt | Đoạn ghi | Ảnh nhận/xử lý/cách ly |",
             "|---|---|---|---|---|---|"]
    for p in s["points"]:
        after = p["live_after_t0_s"] if p["live_after_t0_s"] is not None else "-"
        lines.append(f"| {p['name']} | {p['preflight']} | {after} | {p['drops']} | {p['segments']} | "
                     f"{p['photos_received']}/{p['photos_processed']}/{p['photos_quarantined']} |")
    if s.get("steering"):
        lines += ["", "Điều khiển từ bảng theo dõi:"]
        lines += [f"- {e.get('at_local', e['at'])} · {e['by']}: {e['said']}" for e in s["steering"]]
    lines += ["", "| Kênh | Khoá | Trạng thái | Địa chỉ |", "|---|---|---|---|"]
    for pub in s["publications"]:
        lines.append(f"| {pub['channel']} | {pub['key']} | {pub['status']} | {pub['url'] or '-'} |")
    return "\n".join(lines)


def write_summary(plan_xcom: dict, preflight: dict | None, went_live: dict | None, monitor: dict | None,
                  recap: dict | None, galleries: dict | None) -> dict:
    """The `write_summary` task: printed, stored as summary.md and summary.json; the XCom leaves out the points."""
    from bridgecast.launch.observe import IngestObserver
    from bridgecast.ledger import Ledger

    from bridgecast import steering
    from bridgecast.storage import Storage

    plan = LaunchPlan.from_xcom(plan_xcom).in_force()  # the T0 and end that were, if steered from the board
    galleries, preflight = galleries or {}, preflight or {}
    points = point_rows(plan, IngestObserver.from_connection().live(plan.event_id), monitor or {},
                        galleries.get("points", {}), set(preflight.get("no_go", [])))
    summary = summarize(plan, points=points, ledger_rows=Ledger().rows(plan.event_id), preflight=preflight,
                        went_live=went_live or {}, recap=recap, galleries=galleries,
                        steered=steering.audit_log(Storage.from_connection(), plan.event_id))
    tz = plan.load_event().tz
    for entry in summary["steering"]:
        entry["at_local"] = steering.local_time(datetime.fromisoformat(entry["at"]), tz)
    text = summary_markdown(summary)
    print(text)
    summary["markdown_key"] = save_artifact(plan, "summary.md", text)
    summary["json_key"] = save_artifact(plan, "summary.json", summary)
    return {k: v for k, v in summary.items() if k != "points"}
