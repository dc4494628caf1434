"""The board's content from the facts the sources read: one row per point, the counters, the alert feed.

Pure (no I/O): `assemble(Facts) -> dict`, the JSON the page renders. Every text a person reads is Vietnamese; times
are shown in the event's zone and also given as ISO UTC. A fact whose source could not be read is `None` and shown
as unknown — never as "nothing happened".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bridgecast.event import Event, Point

# A feed that stops this close to the end (or after it) has ended with the event; it is not a drop.
END_GRACE = timedelta(seconds=15)
MAX_MISSING_NAMED = 8
BITRATE_WARMUP = timedelta(seconds=20)  # nginx's first bandwidth figure for a new publisher

KIND_LABELS = {"central": "Trung ương", "province": "Tỉnh, thành phố", "district": "Đội lưu động"}
LIVE_LABELS = {
    "live": "Đang phát", "back": "Đã vào lại", "dropped": "Mất tín hiệu", "ended": "Đã kết thúc",
    "waiting": "Chưa phát", "missing": "Chưa lên sóng", "unknown": "Không rõ", "none": "Không phát trực tiếp",
}
PREFLIGHT_LABELS = {"go": "Đạt", "no-go": "Không đạt", "pending": "Chưa kiểm tra", "none": "—"}
CHANNEL_LABELS = {"portal": "Cổng thông tin", "fanpage": "Fanpage", "press": "Báo chí"}
STATUS_LABELS = {"published": "Đã đăng", "pending": "Đang đăng", "failed": "Lỗi", "unknown": "Không rõ kết quả",
                 "cancelled": "Đã huỷ"}
PUBLICATION_LABELS = {  # the launch's ledger keys (bridgecast.launch.publications); staff posts show their key
    "launch/live-video": "Video trực tiếp", "launch/portal-article": "Bài viết tổng hợp",
    "launch/fanpage-photos": "Bài ảnh", "launch/fanpage-recap-video": "Video tổng hợp",
    "launch/press-kit": "Thông cáo báo chí",
}
PREFLIGHT_PROBLEMS = {  # the launch's preflight speaks English in its logs; staff read Vietnamese here
    "no test stream received by the ingest": "không nhận được tín hiệu thử",
    "stream received but nothing recorded yet": "có tín hiệu nhưng chưa ghi hình được",
}


@dataclass
class Facts:
    event: Event
    now: datetime
    run: dict | None = None  # {dag_id, run_id, state} of the launch run shown
    dag_paused: bool | None = None
    preflight: dict | None = None  # preflight.json; None = not run yet
    live: dict[str, dict] | None = None  # gateway journal by point; None = gateway unreadable
    streams: dict | None = None  # nginx /stat by stream name (sources.Stream); None = unreadable
    thumbnails: dict[str, datetime] = field(default_factory=dict)
    manifests: list[dict] | None = None
    publications: list[dict] | None = None
    incidents: list[dict] | None = None  # bridgecast.alerts records: what staff were mailed
    relay: dict | None = None  # the fanpage relay's health (relay.json)
    steering: object | None = None  # bridgecast.steering.Steering: what staff decided (None: nothing, or unread)
    report: dict | None = None  # {"latest", "numbers"} of the results report (both None: none yet); None = unread
    errors: dict[str, str] = field(default_factory=dict)  # source → what went wrong

    @property
    def t0(self) -> datetime:  # as in force (steered from the board)
        return _in_force(self)[0]

    @property
    def end(self) -> datetime:
        return _in_force(self)[1]


def assemble(facts: Facts, thumbnail_url=lambda stream, at: f"thumbnails/{stream}.jpg?v={at:%Y%m%dT%H%M%S}") -> dict:
    event, now = facts.event, facts.now
    clock = _Clock(event)
    preflight = _preflight_by_point(facts.preflight)
    photos = _photos_by_point(facts.manifests)
    rows = [_row(p, facts, clock, preflight, photos, thumbnail_url) for p in _ordered(event)]
    t0, end, program = _in_force(facts)
    return {
        "event": {"id": event.id, "title": event.title, "short_title": event.short_title,
                  "t0": t0.isoformat(), "t0_local": clock.full(t0), "end": end.isoformat(),
                  "end_local": clock.full(end), "timezone": event.timezone,
                  "planned_t0_local": clock.full(event.start), "steered": bool(facts.steering and
                                                                               facts.steering.revision),
                  "program_point": program, "rehearsal": event.id.startswith("rehearsal-")},
        "run": facts.run,
        "now": now.isoformat(),
        "phase": "before" if now < t0 else ("live" if now < end else "ended"),
        "counters": _counters(event, rows, facts),
        "alerts": _alerts(facts, rows, clock),
        "points": rows,
        "publications": [_publication(p) for p in facts.publications or []],
        "relay": {k: (facts.relay or {}).get(k) for k in ("showing", "state", "restarts", "bitrate_kbps", "speed",
                                                           "switches", "updated_at")} if facts.relay else None,
        "results": results_panel(facts.report, event),
        "sources": {name: "ok" if name not in facts.errors else facts.errors[name]
                    for name in ("gateway", "stat", "storage", "ledger", "airflow")},
    }


def _in_force(facts: Facts) -> tuple[datetime, datetime, str]:
    """T0, the end and the program point as staff have steered them (the event's own without a decision)."""
    from bridgecast.steering import Steering, Times, in_force

    event = facts.event
    now = in_force(Times(event.start, event.end, event.program_point), facts.steering or Steering())
    return now.t0, now.end_at, now.program_point


class _Clock:
    def __init__(self, event: Event):
        self.tz = event.tz

    def time(self, moment: datetime | None) -> str | None:
        return moment.astimezone(self.tz).strftime("%H:%M:%S") if moment else None

    def full(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%H:%M ngày %d/%m/%Y")


def _ordered(event: Event) -> list[Point]:
    """Central first, provinces in the event's order, then the district teams."""
    rank = {"central": 0, "province": 1, "district": 2}
    return sorted(event.points, key=lambda p: rank.get(p.kind, 3))


def _at(value) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --- one row ----------------------------------------------------------------------------------------------------------
def _row(point: Point, facts: Facts, clock: _Clock, preflight: tuple, photos: dict, thumbnail_url) -> dict:
    live = _live(point, facts, clock)
    stream = (facts.streams or {}).get(point.id) if point.streams else None
    shot = facts.thumbnails.get(point.id) if point.streams else None
    thumbnail = None
    if shot and live["state"] in ("live", "back", "dropped", "ended"):
        thumbnail = {"url": thumbnail_url(point.id, shot), "at": shot.isoformat(), "at_local": clock.time(shot),
                     "stale": live["state"] not in ("live", "back")}
    seen = (facts.live or {}).get(point.id, {})
    return {
        "id": point.id, "name": point.name, "display_name": point.display_name, "kind": point.kind,
        "kind_label": KIND_LABELS.get(point.kind, point.kind), "parent": point.parent, "streams": point.streams,
        "preflight": preflight[0].get(point.id, preflight[1]) if point.streams else _verdict("none"),
        "live": live,
        "stream": _stream(stream, live, facts.now) if stream and stream.publishing else None,
        "thumbnail": thumbnail,
        "segments": {"stored": len(seen.get("segments") or []), "pending": seen.get("segments_pending", 0)}
        if point.streams and facts.live is not None else None,
        "photos": photos.get(point.id, _no_photos()) if facts.manifests is not None else None,
        "publications": [_publication(p) for p in facts.publications or [] if point.id in p.get("media_points", [])],
    }


def _stream(stream, live: dict, now: datetime) -> dict:
    """Bitrate and declared fps. nginx measures bitrate over ~10 s windows, so a publisher that has just connected
    reads 0: that is "not measured yet" (None), not "no data"."""
    since = _at(live.get("since"))
    measuring = stream.bitrate_kbps == 0 and (since is None or now - since < BITRATE_WARMUP)
    return {"bitrate_kbps": None if measuring else round(stream.bitrate_kbps), "fps": stream.fps,
            "size": f"{stream.width}×{stream.height}" if stream.width else None}


def _live(point: Point, facts: Facts, clock: _Clock) -> dict:
    """live | back (reconnected) | dropped | ended (stopped with the event) | waiting (before T0) | missing (never
    came after T0) | unknown (gateway unreadable) | none (a team: it sends uploads, not a stream)."""
    if not point.streams:
        return _state("none")
    if facts.live is None:
        return _state("unknown")
    seen = facts.live.get(point.id) or {}
    first, since, done = _at(seen.get("first_live_at")), _at(seen.get("live_since")), _at(seen.get("last_done_at"))
    sessions = seen.get("sessions", 0)
    times = {"first_live_at": first, "since": since, "last_done_at": done}
    if seen.get("publishing"):
        if sessions > 1 and done:
            return _state("back", clock, detail=f"vào lại lúc {clock.time(since)} (mất lúc {clock.time(done)}, "
                                                f"{sessions - 1} lần)", sessions=sessions, **times)
        return _state("live", clock, detail=f"từ {clock.time(since)}", sessions=sessions, **times)
    if first is None:
        return _state("waiting" if facts.now < facts.t0 else "missing")
    if done and done >= facts.end - END_GRACE:
        return _state("ended", clock, detail=f"dừng lúc {clock.time(done)}", sessions=sessions, **times)
    return _state("dropped", clock, detail=f"từ {clock.time(done)}" if done else "", sessions=sessions, **times)


def _state(state: str, clock: _Clock | None = None, *, detail: str = "", sessions: int = 0,
           **times: datetime | None) -> dict:
    out = {"state": state, "label": LIVE_LABELS[state], "detail": detail, "sessions": sessions}
    for name, moment in times.items():
        out[name] = moment.isoformat() if moment else None
    return out


def _verdict(verdict: str, detail: str = "") -> dict:
    return {"verdict": verdict, "label": PREFLIGHT_LABELS[verdict], "detail": detail}


def _preflight_by_point(summary: dict | None) -> tuple[dict[str, dict], dict]:
    """Verdicts by point, and the verdict of a point the table does not list (pending before the preflight ran)."""
    if not summary:
        return {}, _verdict("pending")
    out = {}
    for r in summary.get("points", []):
        problems = [PREFLIGHT_PROBLEMS.get(p, p) for p in r.get("problems", [])]
        notes = ["sẽ chuyển mã khi phát" if n.startswith("will be transcoded") else n for n in r.get("notes", [])]
        out[r["point"]] = _verdict("go" if r.get("go") else "no-go", "; ".join(problems + notes))
    return out, _verdict("pending")  # a point added after the preflight ran


def _no_photos() -> dict:
    return {"received": 0, "processed": 0, "quarantined": 0, "videos": 0}


def _photos_by_point(manifests: list[dict] | None) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for m in manifests or []:
        entry = out.setdefault(m.get("point_id"), _no_photos())
        if m.get("kind") == "photo":
            entry["received"] += 1
            if m.get("status") in ("processed", "quarantined"):
                entry[m["status"]] += 1
        elif m.get("kind") == "video":
            entry["videos"] += 1
    return out


def _publication(p: dict) -> dict:
    return {"channel": p["channel"], "channel_label": CHANNEL_LABELS.get(p["channel"], p["channel"]),
            "key": p["key"], "label": PUBLICATION_LABELS.get(p["key"], p["key"]), "status": p["status"],
            "status_label": STATUS_LABELS.get(p["status"], p["status"]), "url": p.get("url"), "at": p.get("at"),
            "error": p.get("error")}


# --- the results («Kết quả vận động») -----------------------------------------------------------------------------
def results_panel(report: dict | None, event: Event) -> dict:
    """Sign-ups per district against the target and the province against the plan, from the newest report's
    numbers.json (`bridgecast.results.numbers`: its `signups` section), with links to the HTML and PDF."""
    if report is None:
        return {"state": "unknown", "text": "Không đọc được báo cáo kết quả (kho lưu trữ S3)."}
    latest, numbers = report.get("latest"), report.get("numbers")
    if not latest:
        return {"state": "none", "text": "Chưa có báo cáo."}
    day = latest.get("day")
    links = {kind: f"../api/report/{kind}?event={event.id}" for kind in ("html", "pdf") if latest.get(f"{kind}_key")}
    signups = (numbers or {}).get("signups")
    if not signups:
        return {"state": "incomplete", "day": day, "day_local": _day_local(day), "links": links,
                "text": "Báo cáo có nhưng không đọc được số liệu (numbers.json)."}
    districts = [{"id": u["id"], "name": u["name"], "total": u["total"], "target": u.get("target"),
                  "reached": bool(u.get("reached")), "missing": u.get("missing"),
                  "last_reported": u.get("last_reported")} for u in signups.get("units", [])]
    return {
        "state": "ready", "day": day, "day_local": _day_local(day), "links": links,
        "generated_at": latest.get("generated_at") or numbers.get("generated_at"),
        "day_number": numbers.get("day_number"), "campaign_length": numbers.get("campaign_length"),
        "target_per_unit": signups.get("target_per_unit"), "districts": districts,
        "units_reached": signups.get("units_reached"), "units_total": signups.get("units_total"),
        "total": signups.get("total"), "plan_6m": signups.get("plan_6m"),
        "plan_progress": signups.get("plan_progress"), "plan_missing": signups.get("plan_missing"),
        "plan_placeholder": bool(signups.get("plan_placeholder")),
    }


def _day_local(day: str | None) -> str | None:
    try:
        return datetime.strptime(day, "%Y-%m-%d").strftime("%d/%m/%Y") if day else None
    except ValueError:
        return day


# --- above the rows -----------------------------------------------------------------------------------------------------
def _counters(event: Event, rows: list[dict], facts: Facts) -> dict:
    streaming = [r for r in rows if r["streams"]]
    teams = [r for r in rows if r["kind"] == "district"]
    photo_rows = [r["photos"] for r in rows if r["photos"]]
    pubs = facts.publications or []
    return {
        "points_planned": len(streaming),
        "points_live": sum(r["live"]["state"] in ("live", "back") for r in streaming) if facts.live is not None
        else None,
        "points_went_live": sum(bool(r["live"].get("first_live_at")) for r in streaming),
        "points_no_go": sum(r["preflight"]["verdict"] == "no-go" for r in streaming),
        "teams": len(teams),
        "teams_with_photos": sum(bool(r["photos"] and r["photos"]["received"]) for r in teams),
        "photos": {k: sum(p[k] for p in photo_rows) for k in ("received", "processed", "quarantined")}
        if facts.manifests is not None else None,
        "publications": {"total": len(pubs), **{s: sum(p["status"] == s for p in pubs)
                                               for s in ("published", "pending", "failed", "unknown")}}
        if facts.publications is not None else None,
    }


SOURCE_LABELS = {"gateway": "cổng tiếp nhận (ingest)", "stat": "thống kê luồng của nginx", "storage": "kho lưu trữ S3",
                 "ledger": "sổ bài đăng", "airflow": "Airflow"}


def _alerts(facts: Facts, rows: list[dict], clock: _Clock) -> list[dict]:
    """For now: sources that cannot be read, a paused launch DAG, no-go at preflight, drops and returns, points
    still missing after T0, failed or unknown publications. Newest first; undated ones (standing) on top."""
    alerts: list[dict] = []

    def add(level: str, text: str, at: datetime | None = None, point: str | None = None):
        alerts.append({"level": level, "text": text, "point": point, "at": at.isoformat() if at else None,
                       "at_local": clock.time(at)})

    for name, problem in facts.errors.items():
        add("error", f"Không đọc được {SOURCE_LABELS.get(name, name)}: {problem}")
    if facts.dag_paused and facts.now < facts.end:
        add("error", "DAG bridgecast_launch đang TẠM DỪNG: đến giờ sẽ không có gì chạy. Bật DAG (unpause) trong "
                     "Airflow trước giờ G.")
    for name, check in ((facts.preflight or {}).get("channels") or {}).items():
        if not check.get("ok"):
            add("error", f"Kiểm tra trước giờ G — {CHANNEL_LABELS.get(name, name)} không đạt: {check.get('detail')}")
    missing = []
    for r in rows:
        live, name = r["live"], r["name"]
        if r["preflight"]["verdict"] == "no-go":
            add("error", f"{name}: không đạt kiểm tra trước giờ G ({r['preflight']['detail']})", point=r["id"])
        if live["state"] == "dropped":
            add("error" if facts.now >= facts.t0 else "warning",
                f"{name} mất tín hiệu lúc {clock.time(_at(live['last_done_at']))}", _at(live["last_done_at"]), r["id"])
        elif live["state"] == "back":
            add("info", f"{name} đã vào lại lúc {clock.time(_at(live['since']))}", _at(live["since"]), r["id"])
        elif live["state"] == "missing":
            missing.append(name)
        if r["stream"] is not None and r["stream"]["bitrate_kbps"] == 0:
            add("warning", f"{name}: đang kết nối nhưng không có dữ liệu (0 kb/s)", point=r["id"])
    if missing:
        shown = ", ".join(missing[:MAX_MISSING_NAMED]) + (f" và {len(missing) - MAX_MISSING_NAMED} điểm khác"
                                                            if len(missing) > MAX_MISSING_NAMED else "")
        add("warning", f"{len(missing)} điểm cầu chưa lên sóng sau giờ G: {shown}")
    for p in facts.publications or []:
        label = f"{CHANNEL_LABELS.get(p['channel'], p['channel'])} — {PUBLICATION_LABELS.get(p['key'], p['key'])}"
        if p["status"] == "failed":
            add("error", f"Đăng bài lỗi: {label}" + (f" ({p['error']})" if p.get("error") else ""), _at(p.get("at")))
        elif p["status"] == "unknown":
            add("error", f"Không rõ đã đăng hay chưa: {label} — cần đối soát trên kênh trước khi chạy lại",
                _at(p.get("at")))
    for incident in facts.incidents or []:  # the same incidents the staff were mailed (once each)
        add(incident.get("level", "error"), f"✉ {incident.get('subject')}", _at(incident.get("at")),
            incident.get("point"))
    relay = facts.relay or {}
    if relay.get("showing") == "slate" and facts.now < facts.end:
        add("error", "Fanpage đang phát MÀN HÌNH CHỜ: mất tín hiệu chương trình", _at(relay.get("updated_at")))
    undated = [a for a in alerts if not a["at"]]
    dated = sorted((a for a in alerts if a["at"]), key=lambda a: a["at"], reverse=True)
    return undated + dated
