"""A sign-up spreadsheet into the store: once per file, all or nothing.

Order: the file's sha256 (imported before → nothing changes, say when) → personal data (refused whole) → the table
(every problem listed) → the accepted file kept in S3 by content → its figures recorded in one transaction, each
new, a correction of the figure before it, or unchanged.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Callable

from bridgecast.event import Event
from bridgecast.results.privacy import find_personal_data
from bridgecast.results.sheet import MAX_PROBLEMS, SheetUnreadable, parse_signups, read_grids
from bridgecast.results.store import CORRECTED, RECORDED, UNCHANGED, RecordOutcome, SignupStore

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 20 * 1024 * 1024
IMPORTED, ALREADY_IMPORTED = "imported", "already-imported"


class ImportRefused(ValueError):
    """Nothing was imported. `problems` are Vietnamese lines naming sheet, row and column and what to do;
    `personal` says the file was refused for personal data (the caller deletes any copy of it)."""

    def __init__(self, file_name: str, problems: list[str], *, personal: bool = False):
        self.file_name, self.problems, self.personal = file_name, problems, personal
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        head = (f"Không nhập tệp «{file_name}»: " + ("có dữ liệu cá nhân." if personal else
                                                    f"{len(problems)} lỗi, không số liệu nào được nhập. Sửa hết các "
                                                    "lỗi dưới đây rồi nhập lại cả tệp."))
        super().__init__("\n".join([head, *(f"- {p}" for p in shown)] + ([f"- … và {more} lỗi khác"] if more else [])))


@dataclass
class ImportResult:
    status: str  # imported | already-imported
    file_name: str
    sha256: str
    rows: int = 0
    recorded: int = 0
    corrected: int = 0
    unchanged: int = 0
    imported_at: str | None = None
    file_key: str | None = None
    corrections: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def message(self) -> str:
        """What staff read (Vietnamese)."""
        if self.status == ALREADY_IMPORTED:
            return (f"Tệp «{self.file_name}» đã được nhập lúc {self.imported_at} — nhập lại không thay đổi gì "
                    f"(mã tệp {self.sha256[:12]}).")
        lines = [f"Đã nhập tệp «{self.file_name}»: {self.rows} dòng số liệu — {self.recorded} mới, "
                 f"{self.corrected} sửa số đã báo, {self.unchanged} không đổi."]
        lines += [f"- Sửa: {c['district']} ngày {c['day']}: {c['before']} → {c['after']} người ({c['where']})"
                  for c in self.corrections]
        lines += [f"- Ghi chú: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("status", "file_name", "sha256", "rows", "recorded", "corrected",
                                              "unchanged", "imported_at", "file_key", "corrections", "notes")}


def check_file(data: bytes, file_name: str) -> None:
    if not data:
        raise ImportRefused(file_name, ["Tệp rỗng — chọn đúng tệp bảng tính."])
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(file_name, [f"Tệp {len(data) / 1e6:.1f} MB — tối đa {MAX_FILE_BYTES // 1024 // 1024} MB; "
                                        "chỉ để lại bảng số liệu."])


def import_signups(event: Event, data: bytes, file_name: str, *, store: SignupStore | None = None,
                   keep: Callable[[str, bytes], str | None] | None = None, today: date | None = None) -> ImportResult:
    """Import one spreadsheet for `event`. `keep(sha256, data)` stores the accepted file (S3) and returns its key.
    Raises ImportRefused (nothing written) for a broken file or one carrying personal data."""
    store = store or SignupStore()
    check_file(data, file_name)
    sha256 = hashlib.sha256(data).hexdigest()
    earlier = store.find_import(event.id, sha256)
    if earlier is not None:
        return ImportResult(ALREADY_IMPORTED, file_name, sha256, rows=earlier.rows, imported_at=_local(event,
                            earlier.imported_at), file_key=earlier.file_key)
    try:
        grids = read_grids(data, file_name)
    except SheetUnreadable as exc:
        raise ImportRefused(file_name, [str(exc)]) from None
    personal = find_personal_data(grids)
    if personal:
        log.warning("sign-up file %s refused: personal data in %d column(s), %d cell(s)", sha256[:12],
                    len(personal.columns), len(personal.cells))
        raise ImportRefused(file_name, personal.message(file_name), personal=True)
    parsed = parse_signups(event, grids, today=today)
    if parsed.problems:
        raise ImportRefused(file_name, parsed.problems)
    file_key = keep(sha256, data) if keep else None
    record, outcomes = store.record_import(event.id, sha256, parsed.items, file_name=file_name, file_key=file_key)
    if outcomes is None:  # a concurrent import of the same file won
        return ImportResult(ALREADY_IMPORTED, file_name, sha256, rows=record.rows,
                            imported_at=_local(event, record.imported_at), file_key=record.file_key)
    result = ImportResult(IMPORTED, file_name, sha256, rows=len(outcomes), imported_at=_local(event, record.imported_at),
                          file_key=file_key, notes=parsed.notes,
                          corrections=[correction(event, o) for o in outcomes if o.action == CORRECTED])
    result.recorded = sum(1 for o in outcomes if o.action == RECORDED)
    result.corrected = len(result.corrections)
    result.unchanged = sum(1 for o in outcomes if o.action == UNCHANGED)
    log.info("sign-up file %s (%s) imported: %d rows, %d new, %d corrected, %d unchanged", file_name, sha256[:12],
             result.rows, result.recorded, result.corrected, result.unchanged)
    return result


def correction(event: Event, outcome: RecordOutcome) -> dict:
    new, old = outcome.report, outcome.previous
    return {"district_id": new.district_id, "district": event.point(new.district_id).name,
            "day": f"{new.day:%d/%m/%Y}", "before": old.count if old else None, "after": new.count,
            "forms_before": old.forms if old else None, "forms_after": new.forms, "where": new.where}


def _local(event: Event, moment) -> str:
    return f"{moment.astimezone(event.tz):%H:%M %d/%m/%Y}"
