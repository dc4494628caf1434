"""Task bodies of `bridgecast_import_signups` and `bridgecast_report`. They read the run's event
(`bridgecast.run_event`), talk to S3, the database, the channels and the Airflow API, and pass on small dicts;
the report's figures travel as `numbers.json` next to the day's report in S3."""
from __future__ import annotations

import base64
import binascii
import logging
import re
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path, PurePosixPath

from bridgecast.objects import (launch_key, report_key, report_latest_key, signups_file_key, signups_upload_prefix)

log = logging.getLogger(__name__)

STAFF_MAIL_KEY = "report/{day}/staff-mail"  # ledger key (channel press): one mail per report day
PASTED_CSV_NAME = "noi-dung-dan-vao.csv"
PASTED_XLSX_NAME = "noi-dung-dan-vao.xlsx"


def _fail(message: str):
    from airflow.sdk.exceptions import AirflowFailException

    log.error(message)
    raise AirflowFailException(message)


def _refs(conf: dict | None) -> dict:
    return {k: v for k, v in (conf or {}).items() if k in ("event_key", "event_file") and v}


def _event(conf: dict | None):
    from bridgecast.run_event import event_for_run

    return event_for_run(_refs(conf))[0]


# --- bridgecast_import_signups ----------------------------------------------------------------------------------------
def spreadsheet_bytes(event, values: dict, storage) -> tuple[bytes, str, str | None]:
    """(bytes, file name, upload key) from the form: a key under the uploads prefix, or pasted content (CSV text,
    or an XLSX as base64)."""
    key = (values.get("file_key") or "").strip()
    content = values.get("content") or ""
    if key and content:
        _fail("Chỉ điền một trong hai ô: «Khoá tệp trong kho» (file_key) hoặc «Nội dung bảng tính» (content).")
    if key:
        prefix = signups_upload_prefix(event.id)
        if "/" not in key:
            key = prefix + key  # the file name alone: the upload folder is implied
        if not key.startswith(prefix) or ".." in PurePosixPath(key).parts:
            _fail(f"«Khoá tệp trong kho» (file_key) {key!r} phải nằm trong thư mục tải lên {prefix} — tải bảng tính "
                  "lên thư mục đó rồi nhập lại.")
        if not storage.exists(key):
            _fail(f"Không thấy tệp {key} trong kho — kiểm tra tên tệp đã tải lên thư mục {prefix}.")
        return storage.get_bytes(key), values.get("file_name") or PurePosixPath(key).name, key
    if not content.strip():
        _fail("Chưa có bảng tính: điền «Khoá tệp trong kho» (file_key) của tệp đã tải lên, hoặc dán nội dung bảng "
              "tính (CSV) vào «Nội dung bảng tính» (content).")
    stripped = re.sub(r"\s+", "", content)
    if stripped.startswith("UEsDB"):  # base64 of a ZIP: an .xlsx sent through the API
        try:
            return base64.b64decode(stripped, validate=True), values.get("file_name") or PASTED_XLSX_NAME, None
        except (binascii.Error, ValueError):
            _fail("«Nội dung bảng tính» (content) trông như tệp .xlsx mã base64 nhưng không giải mã được.")
    return content.encode("utf-8"), values.get("file_name") or PASTED_CSV_NAME, None


def import_signups_task(params: dict, conf: dict | None) -> dict:
    """One spreadsheet (or one team report) into the sign-up store; a refusal fails the run with its message."""
    from bridgecast.results.importer import ImportRefused, import_signups
    from bridgecast.storage import Storage

    conf = conf or {}
    values = {**(params or {}), **conf}
    event = _event(conf)
    if values.get("team_report"):
        return team_report_task(event, values["team_report"])
    storage = Storage.from_connection()
    data, file_name, upload_key = spreadsheet_bytes(event, values, storage)

    def keep(sha256: str, body: bytes) -> str:
        ext = PurePosixPath(file_name).suffix.lstrip(".") or ("xlsx" if body[:2] == b"PK" else "csv")
        key = signups_file_key(event.id, sha256, ext)
        storage.put_bytes(key, body, content_type="application/octet-stream", if_absent=True)
        return key

    try:
        result = import_signups(event, data, file_name, keep=keep)
    except ImportRefused as exc:
        if exc.personal and upload_key:
            storage.delete(upload_key)  # personal data is not kept, not even the upload
            log.warning("the refused upload %s was deleted from storage", upload_key)
        _fail(str(exc))
    print(result.message())
    return result.to_json()


def team_report_task(event, report: dict) -> dict:
    from bridgecast.results.store import SignupInputError, record_team_report

    try:
        day = parse_day(report.get("day"))
        outcome = record_team_report(event.id, str(report.get("district_id") or ""), day, report.get("count"),
                                     report.get("forms"), str(report.get("source") or "team_page"), event=event)
    except (SignupInputError, ValueError) as exc:
        _fail(f"Báo cáo của đội không ghi được: {exc}")
    r = outcome.report
    text = {"recorded": "đã ghi", "corrected": "đã sửa", "unchanged": "không đổi (đã có số này)"}[outcome.action]
    print(f"{event.point(r.district_id).name} ngày {r.day:%d/%m/%Y}: {r.count} người — {text}")
    return {"action": outcome.action, "district_id": r.district_id, "day": r.day.isoformat(), "count": r.count,
            "forms": r.forms, "revision": r.revision,
            "previous": outcome.previous.count if outcome.previous else None}


def parse_day(value) -> date:
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"«Ngày (day)»: {text!r} không phải ngày — dạng 2020-05-23 hoặc 23/05/2020.")


# --- bridgecast_report -------------------------------------------------------------------------------------------------
def report_day(event, conf: dict | None, logical_date: datetime | None) -> date:
    """The day the figures run to: conf `as_of`, else the run's local date, never past the month of action."""
    if (conf or {}).get("as_of"):
        return parse_day(conf["as_of"])
    moment = logical_date or datetime.now(timezone.utc)
    return min(moment.astimezone(event.tz).date(), event.campaign_last_day)


def gather_numbers(conf: dict | None, logical_date: datetime | None) -> dict:
    """Every figure of the report, kept as numbers.json; the XCom says where."""
    from bridgecast.channels.insights import graph_for, reach_of
    from bridgecast.ledger import PUBLISHED, Ledger
    from bridgecast.manifest import ManifestStore
    from bridgecast.results.numbers import build_numbers, fanpage_kind
    from bridgecast.results.store import SignupStore
    from bridgecast.storage import Storage

    event = _event(conf)
    day = report_day(event, conf, logical_date)
    storage = Storage.from_connection()
    signups = SignupStore()
    rows = Ledger().rows(event.id)
    summary_key = launch_key(event.id, "summary.json")
    summary = storage.get_json(summary_key) if storage.exists(summary_key) else None
    if summary is None:
        log.warning("no launch summary at %s: the report says so", summary_key)
    reach = {}
    fanpage_rows = [r for r in rows if r.channel == "fanpage" and r.status == PUBLISHED and r.remote_id]
    if fanpage_rows:
        try:
            graph, _page = graph_for(event)
        except Exception as exc:  # a report is still worth sending without reach
            log.warning("fanpage insights unavailable (%s): %s", type(exc).__name__, exc)
            graph = None
        for r in fanpage_rows:
            if graph is None:
                reach[r.pub_key] = {"note": "Không kết nối được Fanpage để đọc số liệu (xem Connection của fanpage)."}
            else:
                reach[r.pub_key] = reach_of(graph, fanpage_kind(r), r.remote_id).to_json()
    numbers = build_numbers(event, day, current=signups.current(event.id), history=signups.history(event.id),
                            launch_summary=summary, manifests=ManifestStore(storage).iter_manifests(event.id,
                                                                                                   kind="photo"),
                            ledger_rows=rows, reach=reach, results_post=_results_post_state(storage, event, day))
    key = report_key(event.id, day, "numbers.json")
    storage.put_json(key, numbers)
    s = numbers["signups"]
    log.info("report %s %s: %d sign-ups (%s/%s units at target), %d publications", event.id, day, s["total"],
             s["units_reached"], s["units_total"], numbers["published_count"])
    return {"event_id": event.id, "day": day.isoformat(), "numbers_key": key, **_refs(conf)}


def _results_post_state(storage, event, day: date) -> dict | None:
    """The day's results post (drafted by an earlier run of this report), with the state of its approval run."""
    from bridgecast.results.post import SCHEDULE_POST_DAG, marker_key

    key = marker_key(event.id, day)
    if not storage.exists(key):
        return None
    marker = storage.get_json(key)
    state = "đã gửi duyệt"
    try:
        from bridgecast.airflow_api import AirflowAPI

        run = AirflowAPI.from_connection().run(SCHEDULE_POST_DAG, marker["run_id"])
        state = {"success": "xong", "failed": "không đăng (từ chối, hết hạn hoặc lỗi)"}.get(run["state"],
                                                                                           "đang chờ duyệt/đăng")
    except Exception as exc:
        log.info("state of the results post run unknown: %s", exc)
    return {"title": marker["title"], "run_id": marker["run_id"], "state": state}


def render_report(info: dict) -> dict:
    """Charts (PNG + their series), the HTML and the PDF, into S3; latest.json points at the newest day."""
    from bridgecast.results import charts
    from bridgecast.results.render import render_html, render_pdf
    from bridgecast.storage import Storage

    storage = Storage.from_connection()
    numbers = storage.get_json(info["numbers_key"])
    event_id, day = info["event_id"], date.fromisoformat(info["day"])
    pngs, series = {}, {}
    for name in charts.available(numbers):
        fig = charts.standalone(name, numbers)
        pngs[name] = charts.png_bytes(fig)
        series[name] = charts.figure_series(fig)[0]
        storage.put_bytes(report_key(event_id, day, f"{name}.png"), pngs[name], content_type="image/png")
    html_key = report_key(event_id, day, "report.html")
    storage.put_bytes(html_key, render_html(numbers, pngs).encode(), content_type="text/html; charset=utf-8")
    with tempfile.TemporaryDirectory(prefix="bridgecast-report-") as tmp:
        pdf_path = Path(tmp) / "report.pdf"
        pdf_series = render_pdf(numbers, pdf_path)
        pdf_key = report_key(event_id, day, "report.pdf")
        storage.put_bytes(pdf_key, pdf_path.read_bytes(), content_type="application/pdf")
    charts_key = report_key(event_id, day, "charts.json")
    storage.put_json(charts_key, {"png": series, "pdf": pdf_series})
    out = {"html_key": html_key, "pdf_key": pdf_key, "charts_key": charts_key,
           "png_keys": {name: report_key(event_id, day, f"{name}.png") for name in pngs}}
    _update_latest(storage, event_id, day, {**out, "numbers_key": info["numbers_key"],
                                            "generated_at": numbers["generated_at"]})
    log.info("report %s %s: %s, %s", event_id, day, html_key, pdf_key)
    return out


def _update_latest(storage, event_id: str, day: date, entry: dict) -> None:
    key = report_latest_key(event_id)
    current = storage.get_json(key) if storage.exists(key) else None
    if current and current.get("day", "") > day.isoformat():
        return  # a rerun of an older day does not hide the newest report
    storage.put_json(key, {"day": day.isoformat(), **entry})


def mail_staff(info: dict, rendered: dict) -> dict:
    """The day's report to the event's staff list, once per day (ledger, channel press); never to the press."""
    from bridgecast.channels.base import Publication
    from bridgecast.channels.press import PressChannel
    from bridgecast.ledger import Ledger, publish_once
    from bridgecast.results.render import headline, summary_lines
    from bridgecast.staff_links import report_url
    from bridgecast.storage import Storage

    event = _event(info)
    day = date.fromisoformat(info["day"])
    if not event.staff:
        log.warning("event %s has no staff list: the report is not mailed (add `staff:` to the event file)", event.id)
        return {"action": "skipped", "reason": "no staff list"}
    storage = Storage.from_connection()
    numbers = storage.get_json(info["numbers_key"])
    cfg = event.channels.press
    # No default recipients: an internal report must never fall back to the press outlets of the connection.
    press = PressChannel.from_connection(cfg.connection_id, from_name=cfg.sender_name, default_recipients=())
    title, subtitle = headline(numbers)
    pub = Publication(event_id=event.id, key=STAFF_MAIL_KEY.format(day=day.isoformat()), kind="email",
                      title=f"[Báo cáo nội bộ] {title} — đến {day:%d/%m/%Y}",
                      body="\n\n".join([subtitle, *summary_lines(numbers)]),
                      # behind the UI's login (the board streams them), never presigned S3 links
                      links=(("Báo cáo đầy đủ (trang web, cần đăng nhập Airflow)", report_url(event.id, "html")),
                             ("Báo cáo cho lãnh đạo (PDF, cần đăng nhập Airflow)", report_url(event.id, "pdf"))),
                      recipients=tuple(m.email for m in event.staff))
    outcome = publish_once(Ledger(), press, pub)
    log.info("staff mail of %s: %s to %d address(es)", day, outcome.action, len(event.staff))
    return {"action": outcome.action, "key": pub.key, "recipients": len(event.staff)}


def draft_results_post(info: dict, rendered: dict, conf: dict | None) -> dict:
    """The results post for approval, on the days it is due (or when conf `draft_post` says so), once per day."""
    from bridgecast.airflow_api import AirflowAPI
    from bridgecast.results.post import request_results_post, results_post_due
    from bridgecast.storage import Storage

    conf = conf or {}
    event = _event(info)
    day = date.fromisoformat(info["day"])
    wanted = conf.get("draft_post")
    if wanted is False or (wanted is None and not results_post_due(event, day)):
        return {"action": "not-due", "day": day.isoformat()}
    storage = Storage.from_connection()
    numbers = storage.get_json(info["numbers_key"])
    publish_at = datetime.fromisoformat(conf["post_publish_at"]) if conf.get("post_publish_at") else None
    photos = [rendered["png_keys"]["districts"]] if "districts" in rendered.get("png_keys", {}) else []
    return request_results_post(AirflowAPI.from_connection(), storage, event, day, numbers, photos=photos,
                                refs=_refs(info), publish_at=publish_at)
