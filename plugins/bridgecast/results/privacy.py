"""What in a sign-up spreadsheet is personal data: columns named like a person's details (Họ và tên, CCCD/CMND/Số
định danh, số điện thoại, ngày sinh, mã số BHXH, địa chỉ, email) and cells that look like an ID or phone number
(9 digits: CMND; 12: CCCD/số định danh; 10 not starting with 0: mã số BHXH; 0 + 9–10 digits or +84…: phone).

Policy (chosen for the office's files): such a file is **refused whole** — nothing is imported or kept, the
uploaded copy is deleted — and the message lists the columns and the cells (by reference only; a value that may
be personal is never repeated in a message or a log). Stripping instead would mean holding the file and judging
which of its parts are safe; a refusal makes the export that produced it get fixed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from bridgecast.results.sheet import HEADER_SEARCH_ROWS, Grid, column_letter, find_table, header_key, recognised

# Whole-header patterns on `header_key` (ASCII, lower case, no punctuation).
PERSONAL_HEADERS = (
    (r"(ho (va )?ten|ho ten dem|ten nguoi (tham gia|dong|dang ky)|ten|ho (va )?ten nguoi (tham gia|dong))",
     "họ tên"),
    (r".*\b(cccd|cmnd|cmt|can cuoc( cong dan)?|chung minh( nhan dan| thu)?|so dinh danh( ca nhan)?|dinh danh)\b.*",
     "số CCCD/CMND/định danh"),
    (r".*\b(so dien thoai|dien thoai|sdt|di dong|so di dong|phone|zalo)\b.*", "số điện thoại"),
    (r".*\b(ngay sinh|nam sinh|ngay thang nam sinh|sinh ngay)\b.*", "ngày sinh"),
    (r".*\b(ma so bhxh|ma bhxh|so so bhxh|ma so bao hiem xa hoi|so bhxh)\b.*", "mã số BHXH"),
    (r".*\b(dia chi|noi o|thuong tru|tam tru|cho o)\b.*", "địa chỉ"),
    (r".*\b(email|e mail|thu dien tu)\b.*", "email"),
)
_HEADER_RES = tuple((re.compile(rf"^(?:{p})$"), what) for p, what in PERSONAL_HEADERS)
_DIGIT_RUN = re.compile(r"\+?\d[\d .\-()]{7,20}\d")
MAX_CELLS_LISTED = 12


@dataclass(frozen=True)
class Finding:
    where: str  # «'Tháng 5'!D7» or «trang «Tháng 5», cột D»
    what: str  # «số điện thoại», «họ tên»…


@dataclass
class PersonalData:
    columns: list[Finding] = field(default_factory=list)
    cells: list[Finding] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.columns or self.cells)

    def message(self, file_name: str) -> list[str]:
        """The refusal, as lines: which columns, which cells (by reference), what to do."""
        lines = [f"Tệp «{file_name}» bị TỪ CHỐI vì có dữ liệu cá nhân; không số liệu nào được nhập và hệ thống không "
                 "giữ lại tệp. Hệ thống chỉ nhận số đếm (Ngày, Huyện, Số người tham gia, Số tờ khai)."]
        if self.columns:
            lines.append("Cột có dữ liệu cá nhân: " + "; ".join(f"{f.where} ({f.what})" for f in self.columns) + ".")
        if self.cells:
            shown = self.cells[:MAX_CELLS_LISTED]
            more = len(self.cells) - len(shown)
            lines.append("Ô giống số giấy tờ/điện thoại: " + "; ".join(f"{f.where} ({f.what})" for f in shown)
                         + (f"; và {more} ô khác" if more else "") + ".")
        lines.append("Cách sửa: xoá các cột và ô trên (hoặc chép riêng các cột Ngày, Huyện, Số người tham gia, Số tờ "
                     "khai sang một tệp mới) rồi nhập lại.")
        return lines


def personal_header(text) -> str | None:
    """What a header names when it names a person's details (None for our columns, other headers, and cells that
    are not header-like: long texts or texts with numbers in them are data, and data is never echoed)."""
    if not isinstance(text, str) or not text.strip() or recognised(text):
        return None
    if len(text) > 40 or re.search(r"\d{3}", text):
        return None
    key = header_key(text)
    for pattern, what in _HEADER_RES:
        if pattern.match(key):
            return what
    return None


def classify_digits(digits: str) -> str | None:
    """What a run of digits looks like (spaces, dots, dashes already removed; a leading + kept)."""
    plus = digits.startswith("+")
    digits = digits.lstrip("+")
    n = len(digits)
    if plus or (digits.startswith("84") and n in (11, 12)):
        return "số điện thoại" if digits.startswith("84") and n in (11, 12) else None
    if digits.startswith("0") and n == 12:
        return "số CCCD/định danh"
    if digits.startswith("0") and n in (10, 11):
        return "số điện thoại"
    if n == 9:
        return "số CMND (hoặc điện thoại mất số 0)"
    if n == 12:
        return "số CCCD/định danh"
    if n == 11:
        return "số CCCD/định danh (mất số 0 đầu)"
    if n == 10:
        return "mã số BHXH"
    return None


def cell_finding(value) -> str | None:
    if value is None or isinstance(value, (bool, datetime, date)):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int):
        return classify_digits(str(abs(value)))
    for run in _DIGIT_RUN.findall(str(value)):
        found = classify_digits(re.sub(r"[ .\-()]", "", run))
        if found:
            return found
    return None


def find_personal_data(grids: list[Grid]) -> PersonalData:
    """Columns whose header (in the first rows) names personal details, and every other cell that looks like an
    ID or phone number — across all worksheets, hidden ones included."""
    found = PersonalData()
    flagged: set[tuple[str, int]] = set()
    for grid in grids:
        table = find_table(grid, [])
        header_rows = [table.header_row] if table else range(1, min(HEADER_SEARCH_ROWS, len(grid.rows)) + 1)
        for r in header_rows:
            for c, value in enumerate(grid.rows[r - 1]):
                what = personal_header(value)
                if what and (grid.sheet, c) not in flagged:
                    flagged.add((grid.sheet, c))
                    found.columns.append(Finding(f"trang «{grid.sheet}», cột {column_letter(c)} "
                                                 f"«{str(value).strip()}»", what))
        for r, line in enumerate(grid.rows, 1):
            for c, value in enumerate(line):
                if (grid.sheet, c) in flagged:
                    continue  # the column is already named; its cells need not be listed one by one
                what = cell_finding(value)
                if what:
                    found.cells.append(Finding(grid.ref(r, c), what))
    return found
