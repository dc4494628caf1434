"""The report in Vietnamese: a self-contained HTML page (charts inlined) for staff and a PDF for leadership.

Both are made from the numbers dict only (`bridgecast.results.numbers`). The PDF is drawn by matplotlib (PdfPages,
TrueType DejaVu Sans embedded, so Vietnamese diacritics survive any viewer): A4 pages laid out top to bottom by a
small cursor (`PdfDocument`), tables drawn cell by cell and continued on the next page when long.
"""
from __future__ import annotations

import base64
import html
import textwrap
from datetime import date, datetime
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bridgecast.results import charts
from bridgecast.results.charts import vn_number

STATUS_VI = {"published": "đã đăng", "pending": "đang đăng", "failed": "lỗi", "unknown": "chưa rõ",
             "cancelled": "đã rút"}


def _d(iso: str | None) -> str:
    return f"{date.fromisoformat(iso[:10]):%d/%m/%Y}" if iso else "–"


def _local(iso: str, tz: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)):%H:%M %d/%m/%Y}"


# --- the words (shared by HTML and PDF) ---------------------------------------------------------------------------
def headline(n: dict) -> tuple[str, str]:
    return ("Báo cáo kết quả Tháng vận động BHXH toàn dân",
            f"{n['short_title']} — số liệu đến hết ngày {_d(n['as_of'])} (ngày {n['day_number']}/"
            f"{n['campaign_length']} của Tháng vận động {_d(n['campaign_start'])} – {_d(n['campaign_end'])})")


def summary_lines(n: dict) -> list[str]:
    """The answers leadership asks for, one line each."""
    s = n["signups"]
    word = s["unit_word"]
    lines = []
    if s["target_total"]:
        lines.append(f"Người tham gia BHXH tự nguyện mới: {vn_number(s['total'])} người — chỉ tiêu "
                     f"{vn_number(s['target_total'])} ({vn_number(s['target_per_unit'])} người × {s['units_total']} "
                     f"{word}), đạt {vn_number(s['target_share'], 1)} %.")
    else:
        lines.append(f"Người tham gia BHXH tự nguyện mới: {vn_number(s['total'])} người.")
    reached = [u for u in s["units"] if u["reached"]]
    behind = [u for u in s["units"] if not u["reached"]]
    if s["target_per_unit"]:
        lines.append(f"{word.capitalize()} đạt chỉ tiêu {vn_number(s['target_per_unit'])} người: {len(reached)}/"
                     f"{s['units_total']}" + (f" ({', '.join(u['name'] for u in reached)})" if reached else "") + ".")
        if behind:
            lines.append("Chưa đạt: " + ", ".join(f"{u['name']} (còn thiếu {vn_number(u['missing'])})"
                                                  for u in sorted(behind, key=lambda u: -u["missing"])) + ".")
    if s["plan_6m"]:
        lines.append(f"So với kế hoạch 6 tháng ({vn_number(100 * s['plan_share'])} % kế hoạch năm = "
                     f"{vn_number(s['plan_6m'])} người): đạt {vn_number(s['plan_progress'], 1)} %, còn thiếu "
                     f"{vn_number(s['plan_missing'])} người."
                     + (" LƯU Ý: số kế hoạch năm là SỐ TẠM (chưa có số chính thức) — cập nhật "
                        "targets.annual_plan_new_voluntary_participants trong tệp sự kiện." if s["plan_placeholder"]
                        else ""))
    if s["not_reported_today"] and s["days"]:
        lines.append(f"Chưa báo cáo số ngày {_d(n['as_of'])}: {', '.join(s['not_reported_today'])}.")
    if s["corrections"]:
        lines.append(f"Số liệu đã được sửa {len(s['corrections'])} lần (xem mục «Lịch sử sửa số liệu»).")
    launch = n["launch"]
    if launch:
        lines.append(f"Lễ ra quân: {launch['on_time']}/{launch['points_total']} điểm cầu lên sóng đúng giờ (≤ "
                     f"{launch['on_time_limit_s']} giây sau giờ khai mạc), {len(launch['late'])} muộn, "
                     f"{len(launch['not_live'])} không lên sóng; {launch['drops_total']} lần rớt tín hiệu.")
    else:
        lines.append("Lễ ra quân: chưa có bản tổng kết của buổi lễ (summary.json).")
    received = sum(r["received"] for r in n["photos"])
    if received:
        senders = sum(1 for r in n["photos"] if r["received"])
        lines.append(f"Ảnh: {vn_number(received)} ảnh từ {senders} đội/điểm cầu, "
                     f"{vn_number(sum(r['processed'] for r in n['photos']))} đã xử lý, "
                     f"{vn_number(sum(r['quarantined'] for r in n['photos']))} bị loại.")
    lines.append(f"Đã đăng: {n['published_count']} bài trên {len(n['channels_used'])} kênh"
                 + (f"; trên Fanpage {vn_number(n['fanpage_views'])} lượt xem (Facebook Insights)."
                    if n["fanpage_views"] is not None else "."))
    post = n.get("results_post")
    if post:
        lines.append(f"Bài kết quả gửi duyệt: «{post['title']}» ({post['state']}).")
    return lines


def district_rows(n: dict) -> list[list[str]]:
    s = n["signups"]
    return [[u["name"], vn_number(u["total"]), vn_number(u["forms"]) if u["forms"] is not None else "–",
             vn_number(u["target"]) if u["target"] else "–",
             ("ĐẠT" if u["reached"] else f"thiếu {vn_number(u['missing'])}") if u["target"] else "–",
             _d(u["last_reported"])] for u in s["units"]] + [
        ["Tổng cộng", vn_number(s["total"]),
         vn_number(sum(u["forms"] or 0 for u in s["units"])) if any(u["forms"] for u in s["units"]) else "–",
         vn_number(s["target_total"]) if s["target_total"] else "–",
         f"{s['units_reached']}/{s['units_total']} đạt", ""]]


DISTRICT_HEADER = ["Đơn vị", "Người tham gia mới", "Tờ khai", "Chỉ tiêu", "Kết quả", "Báo cáo gần nhất"]


def launch_rows(n: dict) -> list[list[str]]:
    launch = n["launch"] or {}
    rows = [[p["name"], "muộn", f"{vn_number(p['live_after_t0_s'], 1)} giây sau giờ khai mạc", str(p["drops"])]
            for p in launch.get("late", [])]
    rows += [[p["name"], "không lên sóng", "không thấy tín hiệu", str(p["drops"])] for p in launch.get("not_live", [])]
    late_or_never = {p["id"] for p in launch.get("late", []) + launch.get("not_live", [])}
    rows += [[p["name"], "đúng giờ", "có rớt tín hiệu", str(p["drops"])] for p in launch.get("dropped", [])
             if p["id"] not in late_or_never]
    return rows


def photo_rows(n: dict) -> list[list[str]]:
    return [[r["name"], "đội" if r["kind"] == "team" else "điểm cầu", str(r["received"]), str(r["processed"]),
             str(r["quarantined"])] for r in n["photos"]]


def reach_text(reach: dict) -> str:
    if reach.get("views") is not None:
        parts = [f"{vn_number(reach['views'])} lượt xem"]
        if reach.get("viewers") is not None:
            parts.append(f"{vn_number(reach['viewers'])} người xem")
        if reach.get("reactions") is not None:
            parts.append(f"{vn_number(reach['reactions'])} cảm xúc")
        if reach.get("clicks") is not None:
            parts.append(f"{vn_number(reach['clicks'])} lượt bấm")
        if reach.get("avg_watch_s") is not None:
            parts.append(f"xem trung bình {vn_number(reach['avg_watch_s'], 1)} giây")
        return ", ".join(parts)
    return reach.get("note") or "–"


def publication_rows(n: dict) -> list[list[str]]:
    return [[p["channel_label"], p["label"], STATUS_VI.get(p["status"], p["status"]), reach_text(p["reach"]),
             p["url"] or "–"] for p in n["publications"]]


def _figure_text(count, forms, other_forms) -> str:
    text = vn_number(count)
    return text + (f" ({vn_number(forms)} tờ khai)" if forms is not None and forms != other_forms else "")


def correction_rows(n: dict) -> list[list[str]]:
    return [[c["district"], _d(c["day"]), _figure_text(c["before"], c.get("forms_before"), c.get("forms_after")),
             _figure_text(c["after"], c.get("forms_after"), c.get("forms_before")), c["where"],
             _local(c["at"], n["timezone"])] for c in n["signups"]["corrections"]]


SOURCES = ("Nguồn số liệu: số người tham gia do các đội báo cáo (trang tải lên) và bảng tính của BHXH tỉnh; mỗi huyện "
           "mỗi ngày lấy số báo cáo sau cùng, các lần sửa được giữ trong lịch sử. Điểm cầu và ảnh: bản tổng kết "
           "buổi lễ và kho ảnh. Bài đăng: sổ đăng bài (ledger). Lượt xem: Facebook Graph API Insights; Cổng thông "
           "tin không cung cấp lượt xem.")


# --- HTML ---------------------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], link_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if i == link_col and cell.startswith("http"):
                cells.append(f'<td><a href="{html.escape(cell, quote=True)}">{html.escape(cell)}</a></td>')
            else:
                cells.append(f"<td>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(n: dict, pngs: dict[str, bytes]) -> str:
    title, subtitle = headline(n)

    def chart(name: str) -> str:
        if name not in pngs:
            return ""
        data = base64.b64encode(pngs[name]).decode()
        return f'<figure><img alt="Biểu đồ {name}" src="data:image/png;base64,{data}"></figure>'

    sections = [
        f"<h1>{html.escape(title)}</h1><p class=sub>{html.escape(subtitle)}</p>",
        f"<p class=sub>Lập lúc {_local(n['generated_at'], n['timezone'])} (giờ Việt Nam)</p>",
        "<h2>Tóm tắt</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(n)) + "</ul>",
        f"<h2>Người tham gia mới theo {html.escape(n['signups']['unit_word'])}</h2>", chart("districts"),
        _table(DISTRICT_HEADER, district_rows(n)),
        "<h2>Cộng dồn so với chỉ tiêu và kế hoạch</h2>", chart("cumulative"),
        "<h2>Lễ ra quân: điểm cầu</h2>", chart("points"),
        _table(["Điểm cầu", "Tình trạng", "Chi tiết", "Số lần rớt"], launch_rows(n)) if launch_rows(n) else
        "<p>Mọi điểm cầu lên sóng đúng giờ, không rớt tín hiệu.</p>" if n["launch"] else
        "<p>Chưa có bản tổng kết buổi lễ.</p>",
        "<h2>Ảnh theo đội và điểm cầu</h2>", chart("photos"),
        _table(["Đơn vị", "Loại", "Nhận", "Đã xử lý", "Bị loại"], photo_rows(n)),
        "<h2>Bài đã đăng và người xem</h2>", chart("reach"),
        _table(["Kênh", "Bài", "Trạng thái", "Người xem (theo kênh)", "Liên kết"], publication_rows(n), link_col=4),
    ]
    if n["signups"]["corrections"]:
        sections += ["<h2>Lịch sử sửa số liệu</h2>",
                     _table(["Đơn vị", "Ngày", "Số cũ", "Số mới", "Nguồn số mới", "Lúc sửa"], correction_rows(n))]
    sections.append(f"<p class=note>{html.escape(SOURCES)}</p>")
    style = ("body{font-family:'DejaVu Sans',Arial,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}"
             ".sub{color:#555;margin:.2em 0}table{border-collapse:collapse;width:100%;font-size:.9em}"
             "th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f2f2f2}"
             "img{max-width:100%}.note{color:#666;font-size:.85em;margin-top:2em}li{margin:.3em 0}")
    return (f'<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>{html.escape(title)} — '
            f"{_d(n['as_of'])}</title><style>{style}</style></head><body>{''.join(sections)}</body></html>")


# --- PDF ----------------------------------------------------------------------------------------------------------
class PdfDocument:
    """A4 portrait pages filled top to bottom; every chart drawn is remembered with its series."""

    W, H, M = 8.27, 11.69, 0.6  # inches

    def __init__(self, pdf: PdfPages, footer: str):
        self.pdf, self.footer = pdf, footer
        self.fig: Figure | None = None
        self.y = 0.0
        self.pages = 0
        self.series: dict[str, dict] = {}

    def _new_page(self) -> None:
        self._flush()
        self.fig = Figure(figsize=(self.W, self.H))
        FigureCanvasAgg(self.fig)
        self.pages += 1
        self.fig.text(self.M / self.W, 0.35 / self.H, self.footer, fontsize=7, color="#777")
        self.fig.text(1 - self.M / self.W, 0.35 / self.H, f"Trang {self.pages}", fontsize=7, color="#777", ha="right")
        self.y = self.H - self.M

    def _flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def room(self, height: float) -> None:
        if self.fig is None or self.y - height < self.M + 0.3:
            self._new_page()

    def _text(self, x_in: float, text: str, size: float, **kw) -> None:
        self.fig.text(x_in / self.W, self.y / self.H, text, fontsize=size, va="top", **kw)

    def heading(self, text: str, size: float = 13, keep_with: float = 1.0) -> None:
        """`keep_with`: inches of what follows that must fit under it (never a heading alone at a page's foot)."""
        self.room(size / 72 * 2.6 + keep_with)
        self.y -= size / 72 * 0.6
        self._text(self.M, text, size, weight="bold")
        self.y -= size / 72 * 1.8

    def paragraph(self, text: str, size: float = 9.5, bullet: bool = False) -> None:
        width = int((self.W - 2 * self.M - (0.2 if bullet else 0)) * 72 / (size * 0.56))
        for i, line in enumerate(textwrap.wrap(text, width) or [""]):
            self.room(size / 72 * 1.5)
            self._text(self.M + (0.2 if bullet else 0), line, size)
            if bullet and i == 0:
                self._text(self.M, "•", size)
            self.y -= size / 72 * 1.45
        self.y -= size / 72 * 0.4

    def chart(self, name: str, numbers: dict, height: float = 4.0) -> None:
        self.room(height + 0.1)
        ax = self.fig.add_axes(((self.M + 0.55) / self.W, (self.y - height + 0.75) / self.H,
                                (self.W - 2 * self.M - 0.7) / self.W, (height - 1.0) / self.H))
        charts.CHARTS[name](ax, numbers)
        self.series[name] = charts.series_of(ax)
        self.y -= height + 0.1

    def table(self, header: list[str], rows: list[list[str]], widths: list[float], size: float = 7.5) -> None:
        """Columns as fractions of the text width; cells cut to fit; the header repeated on every page."""
        row_h = size / 72 * 2.0
        total_w = self.W - 2 * self.M

        def line(cells: list[str], bold: bool) -> None:
            self.room(row_h)
            x = self.M
            if bold:
                self.fig.patches.append(Rectangle((self.M / self.W, (self.y - row_h) / self.H), total_w / self.W,
                                                  row_h / self.H, transform=self.fig.transFigure,
                                                  facecolor="#eeeeee", edgecolor="none"))
            for cell, w in zip(cells, widths):
                limit = max(4, int(w * total_w * 72 / (size * (0.64 if bold else 0.56))))
                text = cell if len(cell) <= limit else cell[:limit - 1] + "…"
                self.fig.text((x + 0.04) / self.W, (self.y - row_h * 0.22) / self.H, text, fontsize=size, va="top",
                              weight="bold" if bold else "normal")
                x += w * total_w
            self.fig.lines.append(_hline(self, self.y - row_h))
            self.y -= row_h

        line(header, True)
        for row in rows:
            if self.y - row_h < self.M + 0.3:
                self._new_page()
                line(header, True)
            line(row, False)
        self.y -= 0.15

    def close(self) -> None:
        self._flush()


def _hline(doc: PdfDocument, y_in: float):
    from matplotlib.lines import Line2D

    return Line2D([doc.M / doc.W, 1 - doc.M / doc.W], [y_in / doc.H] * 2, transform=doc.fig.transFigure,
                  color="#cccccc", linewidth=0.5)


def render_pdf(n: dict, path) -> dict[str, dict]:
    """Write the PDF; returns the series of every chart as drawn in it (what leadership sees)."""
    title, subtitle = headline(n)
    available = charts.available(n)
    with PdfPages(path, metadata={"Title": f"{title} — {_d(n['as_of'])}", "Author": "Bridgecast",
                                  "Subject": n["short_title"]}) as pdf:
        doc = PdfDocument(pdf, f"{n['short_title']} · số liệu đến {_d(n['as_of'])} · lập lúc "
                               f"{_local(n['generated_at'], n['timezone'])}")
        doc.room(1)
        doc.heading(title, 16)
        doc.paragraph(subtitle, 10)
        doc.heading("Tóm tắt", 12)
        for line in summary_lines(n):
            doc.paragraph(line, 9.5, bullet=True)
        doc.chart("districts", n, 4.2)
        doc.heading(f"Người tham gia mới theo {n['signups']['unit_word']}", 12)
        doc.table(DISTRICT_HEADER, district_rows(n), [0.19, 0.21, 0.12, 0.12, 0.16, 0.20], size=8.5)
        doc.chart("cumulative", n, 4.4)
        doc.heading("Lễ ra quân: điểm cầu", 12, keep_with=3.2 if "points" in available else 1.0)
        if "points" in available:
            doc.chart("points", n, 3.2)
        rows = launch_rows(n)
        if rows:
            doc.table(["Điểm cầu", "Tình trạng", "Chi tiết", "Số lần rớt"], rows, [0.28, 0.2, 0.38, 0.14])
        else:
            doc.paragraph("Mọi điểm cầu lên sóng đúng giờ, không rớt tín hiệu." if n["launch"] else
                          "Chưa có bản tổng kết buổi lễ.")
        doc.heading("Ảnh theo đội và điểm cầu", 12, keep_with=3.6 if "photos" in available else 1.0)
        if "photos" in available:
            doc.chart("photos", n, 3.6)
        doc.table(["Đơn vị", "Loại", "Nhận", "Đã xử lý", "Bị loại"], photo_rows(n), [0.36, 0.16, 0.16, 0.16, 0.16])
        doc.heading("Bài đã đăng và người xem", 12, keep_with=3.8 if "reach" in available else 1.0)
        if "reach" in available:
            doc.chart("reach", n, 3.8)
        doc.table(["Kênh", "Bài", "Trạng thái", "Người xem (theo kênh)", "Liên kết"], publication_rows(n),
                  [0.19, 0.22, 0.1, 0.27, 0.22], size=7)
        if n["signups"]["corrections"]:
            doc.heading("Lịch sử sửa số liệu", 12)
            doc.table(["Đơn vị", "Ngày", "Số cũ", "Số mới", "Nguồn số mới", "Lúc sửa"], correction_rows(n),
                      [0.12, 0.1, 0.15, 0.15, 0.32, 0.16], size=7)
        doc.paragraph(SOURCES, 7.5)
        doc.close()
    return doc.series
