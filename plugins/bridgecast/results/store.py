"""The sign-up reports: how many people each district signed up for voluntary social insurance on each day
(and, optionally, how many forms were collected). Counts only — never a name, an ID number or a phone number.

Tables live in the ledger's database (`bridgecast.ledger.default_url()`: SQLite by default, PostgreSQL in the
distributed deployment):
  bridgecast_signup_imports   one row per imported spreadsheet (event, sha256): the same file again changes nothing
  bridgecast_signup_reports   one row per report of a district and day; `revision` counts the reports of that
                              district and day, so revision 2+ is a correction of the one before, and the history
                              stays. The current figure is the highest revision.
A report equal to the current figure (the office re-sends its whole sheet with one more day) adds nothing.
Concurrent writers are safe: (event, district, day, revision) is unique, and a writer that loses the race retries.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import (Column, Date, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint, select)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

log = logging.getLogger(__name__)

TEAM_PAGE, SPREADSHEET = "team_page", "spreadsheet"
SOURCE_LABELS = {TEAM_PAGE: "trang tải lên của đội", SPREADSHEET: "bảng tính"}
RECORDED, CORRECTED, UNCHANGED = "recorded", "corrected", "unchanged"
WRITE_ATTEMPTS = 5

metadata = MetaData()
imports = Table(
    "bridgecast_signup_imports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(120), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_name", Text),
    Column("file_key", Text),  # the accepted file's copy in S3
    Column("rows", Integer, nullable=False),
    Column("recorded", Integer, nullable=False),
    Column("corrected", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("event_id", "sha256", name="uq_signup_import"),
)
reports = Table(
    "bridgecast_signup_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(120), nullable=False),
    Column("district_id", String(120), nullable=False),
    Column("day", Date, nullable=False),  # local day (the event's zone)
    Column("revision", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("forms", Integer),
    Column("source", String(20), nullable=False),  # team_page | spreadsheet
    Column("source_ref", Text),  # spreadsheet: the file's sha256; team page: who sent it
    Column("file_name", Text),
    Column("sheet", String(200)),
    Column("row", Integer),
    Column("import_id", Integer),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("event_id", "district_id", "day", "revision", name="uq_signup_revision"),
)


class SignupInputError(ValueError):
    """A report that cannot be stored; the message (Vietnamese) names the field and what to do."""


@dataclass(frozen=True)
class ReportInput:
    """One figure to record: a district, a day, a count (and forms), and where in a spreadsheet it came from."""

    district_id: str
    day: date
    count: int
    forms: int | None = None
    sheet: str | None = None
    row: int | None = None


@dataclass(frozen=True)
class SignupReport:
    id: int
    event_id: str
    district_id: str
    day: date
    revision: int
    count: int
    forms: int | None
    source: str
    source_ref: str | None
    file_name: str | None
    sheet: str | None
    row: int | None
    reported_at: datetime

    @property
    def is_correction(self) -> bool:
        return self.revision > 1

    @property
    def where(self) -> str:
        """Where the figure came from, for people: «bảng tính ket-qua.xlsx, trang Tháng 5, dòng 7»."""
        if self.source == SPREADSHEET:
            parts = [f"bảng tính {self.file_name or (self.source_ref or '')[:12]}"]
            if self.sheet:
                parts.append(f"trang «{self.sheet}»")
            if self.row:
                parts.append(f"dòng {self.row}")
            return ", ".join(parts)
        return SOURCE_LABELS.get(self.source, self.source) + (f" ({self.source_ref})" if self.source_ref and
                                                              self.source_ref != self.source else "")


@dataclass(frozen=True)
class RecordOutcome:
    action: str  # recorded | corrected | unchanged
    report: SignupReport  # the current report of that district and day
    previous: SignupReport | None = None  # what a correction replaced


@dataclass(frozen=True)
class ImportRecord:
    id: int
    event_id: str
    sha256: str
    file_name: str | None
    file_key: str | None
    rows: int
    recorded: int
    corrected: int
    unchanged: int
    imported_at: datetime


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _report(m) -> SignupReport:
    return SignupReport(id=m["id"], event_id=m["event_id"], district_id=m["district_id"], day=m["day"],
                        revision=m["revision"], count=m["count"], forms=m["forms"], source=m["source"],
                        source_ref=m["source_ref"], file_name=m["file_name"], sheet=m["sheet"], row=m["row"],
                        reported_at=_aware(m["reported_at"]))


def _import(m) -> ImportRecord:
    return ImportRecord(id=m["id"], event_id=m["event_id"], sha256=m["sha256"], file_name=m["file_name"],
                        file_key=m["file_key"], rows=m["rows"], recorded=m["recorded"], corrected=m["corrected"],
                        unchanged=m["unchanged"], imported_at=_aware(m["imported_at"]))


class SignupStore:
    """`SignupStore()` uses the ledger's database; `SignupStore("sqlite:///x.sqlite")` another one."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        if engine is None:
            from bridgecast.ledger import Ledger

            engine = Ledger(url).engine  # the same engine set-up (SQLite WAL, PostgreSQL pre-ping) as the ledger
        self.engine = engine
        metadata.create_all(self.engine)

    # --- reads -------------------------------------------------------------------------------------------------
    def history(self, event_id: str) -> list[SignupReport]:
        """Every report of the event, oldest first (a correction after the report it corrects)."""
        query = select(reports).where(reports.c.event_id == event_id).order_by(reports.c.id)
        with self.engine.connect() as conn:
            return [_report(m) for m in conn.execute(query).mappings()]

    def current(self, event_id: str) -> list[SignupReport]:
        """The figure in force for each district and day: its latest revision."""
        latest: dict[tuple[str, date], SignupReport] = {}
        for r in self.history(event_id):
            key = (r.district_id, r.day)
            if key not in latest or r.revision > latest[key].revision:
                latest[key] = r
        return sorted(latest.values(), key=lambda r: (r.day, r.district_id))

    def imports(self, event_id: str) -> list[ImportRecord]:
        query = select(imports).where(imports.c.event_id == event_id).order_by(imports.c.id)
        with self.engine.connect() as conn:
            return [_import(m) for m in conn.execute(query).mappings()]

    def find_import(self, event_id: str, sha256: str) -> ImportRecord | None:
        query = select(imports).where(imports.c.event_id == event_id, imports.c.sha256 == sha256)
        with self.engine.connect() as conn:
            m = conn.execute(query).mappings().first()
        return _import(m) if m else None

    # --- writes ------------------------------------------------------------------------------------------------
    def record(self, event_id: str, items: list[ReportInput], *, source: str, source_ref: str | None = None,
               file_name: str | None = None) -> list[RecordOutcome]:
        """Record reports (one transaction): each one new, a correction, or equal to what is there (nothing)."""
        def write(conn: Connection) -> list[RecordOutcome]:
            return [self._apply(conn, event_id, item, source, source_ref, file_name, None) for item in items]
        return self._retrying(write)

    def record_import(self, event_id: str, sha256: str, items: list[ReportInput], *, file_name: str | None,
                      file_key: str | None) -> tuple[ImportRecord, list[RecordOutcome] | None]:
        """An accepted spreadsheet: (its import record, the outcomes) — or (the earlier import, None) when this
        exact file was imported before, in which case nothing is written."""
        def write(conn: Connection):
            now = _now()
            import_id = conn.execute(imports.insert().values(
                event_id=event_id, sha256=sha256, file_name=file_name, file_key=file_key, rows=len(items),
                recorded=0, corrected=0, unchanged=0, imported_at=now)).inserted_primary_key[0]
            outcomes = [self._apply(conn, event_id, item, SPREADSHEET, sha256, file_name, import_id) for item in items]
            counts = {a: sum(1 for o in outcomes if o.action == a) for a in (RECORDED, CORRECTED, UNCHANGED)}
            conn.execute(imports.update().where(imports.c.id == import_id).values(**counts))
            return outcomes

        for attempt in range(WRITE_ATTEMPTS):
            earlier = self.find_import(event_id, sha256)
            if earlier is not None:
                return earlier, None
            try:
                with self.engine.begin() as conn:
                    outcomes = write(conn)
                return self.find_import(event_id, sha256), outcomes
            except IntegrityError:
                log.info("concurrent sign-up write for %s; retrying (%d)", event_id, attempt + 1)
        raise RuntimeError(f"could not record the import of {sha256[:12]} after {WRITE_ATTEMPTS} attempts")

    def _retrying(self, write):
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return write(conn)
            except IntegrityError:  # another writer took the same revision first: read again and re-apply
                log.info("concurrent sign-up write; retrying (%d)", attempt + 1)
        raise RuntimeError(f"could not record the sign-up reports after {WRITE_ATTEMPTS} attempts")

    @staticmethod
    def _apply(conn: Connection, event_id: str, item: ReportInput, source: str, source_ref: str | None,
               file_name: str | None, import_id: int | None) -> RecordOutcome:
        c = reports.c
        previous = conn.execute(select(reports).where(
            c.event_id == event_id, c.district_id == item.district_id, c.day == item.day
        ).order_by(c.revision.desc()).limit(1)).mappings().first()
        previous = _report(previous) if previous else None
        if previous and previous.count == item.count and (item.forms is None or item.forms == previous.forms):
            return RecordOutcome(UNCHANGED, previous)
        # A report without forms keeps the forms already reported for that day ("not given" is not "none").
        forms = item.forms if item.forms is not None or previous is None else previous.forms
        values = dict(event_id=event_id, district_id=item.district_id, day=item.day,
                      revision=previous.revision + 1 if previous else 1, count=item.count, forms=forms,
                      source=source, source_ref=source_ref, file_name=file_name, sheet=item.sheet, row=item.row,
                      import_id=import_id, reported_at=_now())
        new_id = conn.execute(reports.insert().values(**values)).inserted_primary_key[0]
        report = SignupReport(id=new_id, **{k: v for k, v in values.items() if k != "import_id"})
        return RecordOutcome(CORRECTED if previous else RECORDED, report, previous)


def check_figure(value, field: str, *, required: bool) -> int | None:
    """A count of people or forms: a whole number ≥ 0 (None allowed when not required)."""
    label = {"count": "Số người tham gia (count)", "forms": "Số tờ khai (forms)"}.get(field, field)
    if value is None:
        if required:
            raise SignupInputError(f"«{label}»: chưa có — nhập số người tham gia mới trong ngày (0 nếu không có).")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignupInputError(f"«{label}»: {value!r} không phải số nguyên — nhập một số nguyên ≥ 0.")
    if value < 0:
        noun = "số người" if field == "count" else "số tờ khai"
        raise SignupInputError(f"«{label}»: {value} là số âm — nhập {noun} ≥ 0 (sửa số đã báo bằng cách báo lại "
                               "số đúng).")
    return value


def record_team_report(event_id: str, district_id: str, day: date, count: int, forms: int | None = None,
                       source: str = TEAM_PAGE, *, event=None, store: SignupStore | None = None,
                       today: date | None = None) -> RecordOutcome:
    """A team's figure of one day, from its upload page. Sending it again is harmless; a different figure for the
    same day is a correction (the earlier one stays in the history). `source` says who sent it (e.g.
    "team_page:vinh-yen"). With `event`, the district must be one of its units and the day inside the month of
    action and not in the future. Raises SignupInputError (Vietnamese, naming the field)."""
    count = check_figure(count, "count", required=True)
    forms = check_figure(forms, "forms", required=False)
    if not isinstance(day, date) or isinstance(day, datetime):
        raise SignupInputError(f"«Ngày (day)»: {day!r} không phải một ngày — chọn ngày báo cáo.")
    if forms is not None and forms < count:
        log.info("team report %s/%s: fewer forms (%s) than people (%s)", district_id, day, forms, count)
    if event is not None:
        check_unit_and_day(event, district_id, day, today=today)
    outcome = (store or SignupStore()).record(event_id, [ReportInput(district_id, day, count, forms)],
                                              source=TEAM_PAGE, source_ref=source)[0]
    log.info("sign-ups %s %s %s: %s (%s)", event_id, district_id, day.isoformat(), count, outcome.action)
    return outcome


def check_unit_and_day(event, district_id: str, day: date, *, today: date | None = None) -> None:
    from bridgecast.results.units import signup_units, unit_word

    if district_id not in {u.id for u in signup_units(event)}:
        raise SignupInputError(f"«{unit_word(event).capitalize()} (district_id)»: {district_id!r} không phải đơn vị "
                               f"báo cáo của sự kiện {event.id}.")
    problem = day_problem(event, day, today=today)
    if problem:
        raise SignupInputError(f"«Ngày (day)»: {problem}")


def day_problem(event, day: date, *, today: date | None = None) -> str | None:
    """Why a day cannot carry sign-ups of this event (outside the month of action, or still to come), or None."""
    first, last = event.campaign_start, event.campaign_last_day
    if day < first or day > last:
        return (f"ngày {day:%d/%m/%Y} nằm ngoài Tháng vận động ({first:%d/%m/%Y} – {last:%d/%m/%Y}) — kiểm tra lại "
                "ngày (đúng năm, đúng tháng)")
    today = today or datetime.now(event.tz).date()
    if day > today:
        return f"ngày {day:%d/%m/%Y} chưa đến (hôm nay {today:%d/%m/%Y}) — chỉ báo cáo số của những ngày đã qua"
    return None
