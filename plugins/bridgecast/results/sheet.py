"""The social-insurance office's sign-up spreadsheet (XLSX or CSV) as checked figures, or every problem in it.

Expected layout, one row per district and day (title rows above the header and a «Tổng cộng» row are fine):

    | STT | Ngày       | Huyện      | Số người tham gia | Số tờ khai (optional) | Ghi chú |
    | 1   | 23/05/2020 | Vĩnh Yên   | 12                | 12                    |         |

Headers are matched without regard to case, diacritics or spacing («So nguoi tham gia» works). Every problem is
reported at once as `Trang tính «Sheet», dòng 7, cột D («Số người tham gia»): … — what to do` (Vietnamese),
so the office can fix the whole file in one go. Personal data is checked separately (`privacy`) before this.
"""
from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bridgecast.event import Event
from bridgecast.results.store import ReportInput, day_problem
from bridgecast.results.units import is_total_row, match_unit, signup_units, suggest_unit, unit_word
from bridgecast.text import fold_ascii, nfc

HEADER_SEARCH_ROWS = 10  # title lines above the header row
MAX_ROWS = 20_000
MAX_SHEETS = 30
MAX_PROBLEMS = 60

# Canonical column → accepted headers (compared on `header_key`: folded to ASCII, lower case, no punctuation).
COLUMNS = {
    "day": ("ngay", "ngay bao cao", "ngay tham gia", "ngay dang ky", "ngay thang", "ngay thang nam",
            "ngay/thang/nam"),
    "district": ("huyen", "don vi", "huyen thanh pho", "huyen thi xa thanh pho", "huyen thanh pho thi xa",
                 "dia ban", "quan huyen", "ten huyen", "ten don vi", "don vi hanh chinh", "tinh", "tinh thanh pho",
                 "ten tinh"),
    "count": ("so nguoi tham gia", "so nguoi tham gia moi", "so nguoi tham gia bhxh tu nguyen",
              "so nguoi tham gia bhxh tu nguyen moi", "so nguoi", "so luong", "so nguoi dang ky",
              "nguoi tham gia moi", "so nguoi moi", "so nguoi tham gia bhxhtn"),
    "forms": ("so to khai", "so phieu", "so ho so", "to khai", "so to khai thu duoc", "so phieu thu duoc",
              "so to khai da thu", "so ho so thu duoc"),
}
COLUMN_LABELS = {"day": "Ngày", "district": "Huyện", "count": "Số người tham gia", "forms": "Số tờ khai"}
REQUIRED = ("day", "district", "count")
HARMLESS = ("stt", "tt", "so thu tu", "ghi chu")  # read past without a note
_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d")


class SheetUnreadable(ValueError):
    """The file is not a spreadsheet we can read; the message says how to save it."""


def header_key(text) -> str:
    """`Số người tham gia (người)` → `so nguoi tham gia`; `Huyện/Thành phố` → `huyen thanh pho`."""
    folded = fold_ascii(nfc(str(text))).lower()
    folded = re.sub(r"\([^)]*\)", " ", folded)
    return " ".join(re.sub(r"[/,;:.*_\-–]+", " ", folded).split())


_ALIASES = {header_key(alias): column for column, aliases in COLUMNS.items() for alias in aliases}


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA (as Excel names columns)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass(frozen=True)
class Grid:
    """One worksheet's cell values; `rows[i][j]` is row i+1, column j (A=0)."""

    sheet: str
    rows: list[list[Any]]

    def cell(self, row: int, col: int):
        line = self.rows[row - 1] if 0 < row <= len(self.rows) else []
        return line[col] if col < len(line) else None

    def ref(self, row: int, col: int) -> str:
        return f"'{self.sheet}'!{column_letter(col)}{row}"


# --- reading ------------------------------------------------------------------------------------------------
def read_grids(data: bytes, file_name: str) -> list[Grid]:
    """Every worksheet of an XLSX (merged cells filled from their top-left cell), or the one table of a CSV."""
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(data, file_name)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise SheetUnreadable(f"«{file_name}» là tệp Excel 97-2003 (.xls) — mở bằng Excel, chọn Lưu thành "
                              "(Save As) dạng «Sổ làm việc Excel (.xlsx)» hoặc «CSV UTF-8», rồi nhập lại.")
    return [_read_csv(data, file_name)]


def _read_xlsx(data: bytes, file_name: str) -> list[Grid]:
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SheetUnreadable(f"«{file_name}» không đọc được như tệp Excel .xlsx ({type(exc).__name__}) — mở tệp "
                              "bằng Excel và lưu lại dạng .xlsx hoặc «CSV UTF-8».") from None
    if len(book.worksheets) > MAX_SHEETS:
        raise SheetUnreadable(f"«{file_name}» có {len(book.worksheets)} trang tính — tối đa {MAX_SHEETS}; chỉ để lại "
                              "các trang số liệu.")
    grids = []
    for ws in book.worksheets:
        if ws.max_row > MAX_ROWS:
            raise SheetUnreadable(f"Trang tính «{ws.title}» có {ws.max_row} dòng — tối đa {MAX_ROWS}.")
        rows = [list(r) for r in ws.iter_rows(min_row=1, min_col=1, values_only=True)]
        for merged in ws.merged_cells.ranges:  # a date written once for a block of districts applies to each row
            top = rows[merged.min_row - 1][merged.min_col - 1] if merged.min_row <= len(rows) else None
            for r in range(merged.min_row, min(merged.max_row, len(rows)) + 1):
                for c in range(merged.min_col, merged.max_col + 1):
                    while len(rows[r - 1]) < c:
                        rows[r - 1].append(None)
                    rows[r - 1][c - 1] = top
        grids.append(Grid(ws.title, rows))
    return grids


def _read_csv(data: bytes, file_name: str) -> Grid:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SheetUnreadable(f"«{file_name}» không phải tệp CSV mã UTF-8 (tiếng Việt sẽ bị lỗi) — trong Excel chọn "
                              "Lưu thành (Save As) «CSV UTF-8 (Comma delimited)», hoặc gửi tệp .xlsx.") from None
    if "\x00" in text:
        raise SheetUnreadable(f"«{file_name}» không phải bảng tính CSV hay .xlsx — gửi tệp .xlsx hoặc «CSV UTF-8».")
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [[cell if cell.strip() else None for cell in line] for line in csv.reader(io.StringIO(text), dialect)]
    if len(rows) > MAX_ROWS:
        raise SheetUnreadable(f"«{file_name}» có {len(rows)} dòng — tối đa {MAX_ROWS}.")
    return Grid(file_name, rows)


# --- finding the table --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    grid: Grid
    header_row: int
    columns: dict[str, int]  # canonical column → index
    headers: dict[int, str]  # index → header as written
    ignored: tuple[int, ...]  # columns we do not read


def recognised(value) -> str | None:
    return _ALIASES.get(header_key(value)) if isinstance(value, str) and value.strip() else None


def find_table(grid: Grid, problems: list[str]) -> Table | None:
    """The header row: the first of the first rows naming at least two of our columns."""
    for r in range(1, min(HEADER_SEARCH_ROWS, len(grid.rows)) + 1):
        line = grid.rows[r - 1]
        found = {i: recognised(v) for i, v in enumerate(line) if recognised(v)}
        if len(found) < 2:
            continue
        headers = {i: nfc(str(v)).strip() for i, v in enumerate(line) if isinstance(v, str) and v.strip()}
        columns: dict[str, int] = {}
        for i, column in found.items():
            if column in columns:
                problems.append(f"Trang tính «{grid.sheet}», dòng {r}: hai cột cùng là «{COLUMN_LABELS[column]}» "
                                f"(cột {column_letter(columns[column])} và cột {column_letter(i)}) — giữ lại một "
                                "cột.")
            else:
                columns[column] = i
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            problems.append(_missing_columns(grid, r, missing, headers, found))
            return None
        ignored = tuple(i for i in headers if i not in found)
        return Table(grid, r, columns, headers, ignored)
    return None


def _missing_columns(grid: Grid, row: int, missing: list[str], headers: dict[int, str], found: dict) -> str:
    hints = []
    unknown = {i: h for i, h in headers.items() if i not in found and header_key(h) not in HARMLESS}
    for column in missing:
        aliases = [header_key(a) for a in COLUMNS[column]]
        for i, h in unknown.items():
            if difflib.get_close_matches(header_key(h), aliases, n=1, cutoff=0.75):
                hints.append(f"cột {column_letter(i)} «{h}» có phải là «{COLUMN_LABELS[column]}»?")
    names = ", ".join(f"«{COLUMN_LABELS[c]}»" for c in missing)
    have = ", ".join(f"{column_letter(i)} «{h}»" for i, h in headers.items())
    return (f"Trang tính «{grid.sheet}», dòng {row} (dòng tiêu đề): thiếu cột {names}"
            + (f" ({'; '.join(hints)})" if hints else "") + f". Dòng tiêu đề hiện có: {have}. — Đặt tên cột đúng "
            "như mẫu: «Ngày», «Huyện», «Số người tham gia» (và nếu có: «Số tờ khai»).")


# --- reading the rows ---------------------------------------------------------------------------------------
@dataclass
class Parsed:
    items: list[ReportInput] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was read past (sum rows, unused columns, empty sheets)


def parse_signups(event: Event, grids: list[Grid], *, today: date | None = None) -> Parsed:
    """The figures of every worksheet that holds the table; problems name sheet, row and column."""
    out = Parsed()
    tables = []
    for grid in grids:
        table = find_table(grid, out.problems)
        if table is not None:
            tables.append(table)
        elif any(v not in (None, "") for line in grid.rows for v in line):
            out.notes.append(f"Trang tính «{grid.sheet}»: không có bảng số liệu (không thấy dòng tiêu đề) — bỏ qua.")
    if not tables and not out.problems:
        out.problems.append("Không tìm thấy bảng số liệu: trong 10 dòng đầu của mỗi trang tính không có dòng tiêu "
                            "đề với các cột «Ngày», «Huyện», «Số người tham gia». — Dùng đúng mẫu (mỗi dòng: một "
                            "huyện, một ngày).")
    seen: dict[tuple[str, date], str] = {}
    for table in tables:
        for i in table.ignored:
            if header_key(table.headers[i]) not in HARMLESS:
                out.notes.append(f"Trang tính «{table.grid.sheet}»: cột {column_letter(i)} «{table.headers[i]}» không "
                                 "dùng đến — bỏ qua.")
        for r in range(table.header_row + 1, len(table.grid.rows) + 1):
            item = _row(event, table, r, out, today)
            if item is None:
                continue
            where = f"trang «{item.sheet}» dòng {item.row}"
            earlier = seen.get((item.district_id, item.day))
            if earlier:
                out.problems.append(_at(table, r, "district", f"cùng huyện và cùng ngày {item.day:%d/%m/%Y} với "
                                                              f"{earlier} — mỗi huyện mỗi ngày chỉ một dòng; gộp "
                                                              "hai dòng thành một."))
                continue
            seen[(item.district_id, item.day)] = where
            out.items.append(item)
    if tables and not out.items and not out.problems:
        out.problems.append("Bảng không có dòng số liệu nào (chỉ có tiêu đề) — điền mỗi dòng một huyện, một ngày.")
    return out


def _at(table: Table, row: int, column: str, problem: str) -> str:
    col = table.columns[column]
    header = table.headers.get(col, COLUMN_LABELS[column])
    return f"Trang tính «{table.grid.sheet}», dòng {row}, cột {column_letter(col)} («{header}»): {problem}"


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _row(event: Event, table: Table, r: int, out: Parsed, today: date | None) -> ReportInput | None:
    grid, cols = table.grid, table.columns
    day_v, district_v, count_v = (grid.cell(r, cols[c]) for c in REQUIRED)
    forms_v = grid.cell(r, cols["forms"]) if "forms" in cols else None
    if not _blank(district_v) and is_total_row(str(district_v)):
        out.notes.append(f"Trang tính «{grid.sheet}», dòng {r}: dòng tổng cộng — bỏ qua (hệ thống tự cộng).")
        return None
    if _blank(day_v) and _blank(count_v) and _blank(forms_v):
        return None  # not a data row: blank, a note, a signature block
    problems_before = len(out.problems)
    day = _day(event, table, r, day_v, out, today)
    unit = None
    if _blank(district_v):
        out.problems.append(_at(table, r, "district", f"ô trống — ghi tên {unit_word(event)}."))
    else:
        unit = match_unit(event, district_v)
        if unit is None:
            hint = suggest_unit(event, district_v)
            names = ", ".join(u.name for u in signup_units(event))
            out.problems.append(_at(table, r, "district", f"không có {unit_word(event)} «{nfc(str(district_v)).strip()}» "
                                                          "trong sự kiện" + (f" — có phải «{hint}»?" if hint else "")
                                    + f" Ghi đúng tên một trong: {names}."))
    count = _number(table, r, "count", count_v, out, required=True)
    forms = _number(table, r, "forms", forms_v, out, required=False) if "forms" in cols else None
    if len(out.problems) > problems_before or unit is None or day is None or count is None:
        return None
    return ReportInput(unit.id, day, count, forms, sheet=grid.sheet, row=r)


def _day(event: Event, table: Table, r: int, value, out: Parsed, today: date | None) -> date | None:
    if _blank(value):
        out.problems.append(_at(table, r, "day", "ô trống — ghi ngày dạng dd/mm/yyyy, ví dụ 23/05/2020."))
        return None
    day = None
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str):
        text = value.strip()
        for fmt in _DATE_FORMATS:
            try:
                day = datetime.strptime(text, fmt).date()
                break
            except ValueError:
                continue
        if day is None:
            out.problems.append(_at(table, r, "day", f"«{text}» không phải ngày — ghi dạng dd/mm/yyyy, ví dụ "
                                                     "23/05/2020 (có cả năm)."))
            return None
    else:
        out.problems.append(_at(table, r, "day", f"ô chứa số {value!r}, không phải ngày — định dạng ô là Ngày "
                                                 "(Date) hoặc ghi dạng dd/mm/yyyy."))
        return None
    problem = day_problem(event, day, today=today)
    if problem:
        out.problems.append(_at(table, r, "day", problem + "."))
        return None
    return day


def _number(table: Table, r: int, column: str, value, out: Parsed, *, required: bool) -> int | None:
    label = COLUMN_LABELS[column].lower()
    if _blank(value):
        if required:
            out.problems.append(_at(table, r, column, f"ô trống — ghi {label} (số 0 nếu trong ngày không có ai)."))
        return None
    number = None
    if isinstance(value, bool) or isinstance(value, (datetime, date)):
        out.problems.append(_at(table, r, column, f"ô chứa {value!r}, không phải số — ghi {label} bằng chữ số."))
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            out.problems.append(_at(table, r, column, f"{value:g} không phải số nguyên — {label} là số người/số tờ, "
                                                      "ghi số nguyên."))
            return None
        number = int(value)
    else:
        text = nfc(str(value)).replace("\u00a0", " ").strip()
        if re.fullmatch(r"[+-]?\d+", text):
            number = int(text)
        else:
            # The text itself is not repeated: in a file with its columns mixed up it could be a person's name.
            out.problems.append(_at(table, r, column, "ô có chữ, không phải số — chỉ ghi chữ số (ví dụ 12), không "
                                                      "kèm chữ hay đơn vị."))
            return None
    if number < 0:
        out.problems.append(_at(table, r, column, f"số âm ({number}) — {label} phải ≥ 0; muốn sửa số đã báo thì "
                                                  "ghi số đúng của ngày đó."))
        return None
    return number
