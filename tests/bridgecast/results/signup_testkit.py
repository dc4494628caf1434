"""Helpers of the results tests: the data set's figures and spreadsheets written at test time with openpyxl and csv
(never committed binaries)."""
from __future__ import annotations

import csv
import io
from datetime import date

DISTRICTS = ("Vĩnh Yên", "Phúc Yên", "Bình Xuyên", "Lập Thạch", "Sông Lô", "Tam Dương", "Tam Đảo", "Vĩnh Tường",
             "Yên Lạc")
HEADER = ("STT", "Ngày", "Huyện", "Số người tham gia", "Số tờ khai", "Ghi chú")


def figure(district_index: int, day: date) -> int:
    """The test data set's sign-ups of a district on a day (deterministic, varied, some zero)."""
    return (district_index * 7 + day.day * 3) % 17


def signup_rows(days: list[date], districts=DISTRICTS) -> list[tuple]:
    rows = []
    for day in days:
        for i, name in enumerate(districts):
            rows.append((len(rows) + 1, day, name, figure(i, day), figure(i, day) + 1, ""))
    return rows


def xlsx_bytes(sheets: dict[str, list[tuple]], *, title: str | None = "BÁO CÁO KẾT QUẢ VẬN ĐỘNG THAM GIA BHXH TỰ "
               "NGUYỆN", header=HEADER, hidden: tuple[str, ...] = ()) -> bytes:
    """A workbook like the office's: a title row, a blank row, the header, the rows (dates as real dates)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        ws = book.create_sheet(name)
        if title:
            ws.append([title])
            ws.append([])
        ws.append(list(header))
        for row in rows:
            ws.append(list(row))
            if isinstance(row[1], date):
                ws.cell(ws.max_row, 2).number_format = "DD/MM/YYYY"
        if name in hidden:
            ws.sheet_state = "hidden"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def csv_bytes(rows: list[tuple], *, header=HEADER, delimiter=",") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter)
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:%d/%m/%Y}" if isinstance(v, date) else v for v in row])
    return buf.getvalue().encode("utf-8")
