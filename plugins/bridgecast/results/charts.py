"""The report's charts (matplotlib, Agg, DejaVu Sans for Vietnamese), drawn from the numbers dict only.

Each `draw_*` draws into an Axes; `series_of(ax)` reads back what was drawn — bar heights with their axis labels,
line points, target lines — from the artists themselves, so what a chart shows can be checked against the data
(the report keeps these series as charts.json, the tests compare them with the data set).
"""
from __future__ import annotations

import io
from datetime import date

import matplotlib

matplotlib.use("Agg")  # no display on a worker; set before anything draws
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

RC = {"font.family": "DejaVu Sans", "pdf.fonttype": 42, "ps.fonttype": 42, "axes.unicode_minus": False,
      "axes.spines.top": False, "axes.spines.right": False, "axes.titleweight": "bold", "axes.titlesize": 12}
matplotlib.rcParams.update(RC)

GREEN, ORANGE, BLUE, GREY, RED = "#2e7d32", "#ef6c00", "#1565c0", "#9e9e9e", "#c62828"


def vn_number(value, digits: int = 0) -> str:
    """Vietnamese style: 2.000 and 12,5."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def _day(iso: str) -> str:
    return f"{date.fromisoformat(iso):%d/%m}"


# --- the charts ----------------------------------------------------------------------------------------------------
def draw_districts(ax, numbers: dict) -> None:
    """Sign-ups per district against the target per district."""
    s = numbers["signups"]
    names = [u["name"] for u in s["units"]]
    totals = [u["total"] for u in s["units"]]
    colours = [GREEN if u["reached"] else ORANGE for u in s["units"]]
    bars = ax.bar(names, totals, color=colours, label="Người tham gia mới")
    ax.bar_label(bars, labels=[vn_number(t) for t in totals], padding=2, fontsize=9)
    if s["target_per_unit"]:
        ax.axhline(s["target_per_unit"], color=RED, linestyle="--", linewidth=1.5,
                   label=f"Chỉ tiêu: {vn_number(s['target_per_unit'])} người/{s['unit_word']}")
    ax.set_title(f"Người tham gia BHXH tự nguyện mới theo {s['unit_word']} (đến {_day(numbers['as_of'])})")
    ax.set_ylabel("Số người")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # people and photos come whole
    ax.set_ylim(0, max([*totals, s["target_per_unit"] or 0, 1]) * 1.2)
    ax.tick_params(axis="x", labelrotation=30, labelsize=9)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(loc="upper left", fontsize=9, frameon=False)


def draw_cumulative(ax, numbers: dict) -> None:
    """New sign-ups per day (bars) and cumulated (line) against the target and the 6-month plan."""
    s = numbers["signups"]
    days = [date.fromisoformat(d) for d in s["days"]]
    ax.bar(days, s["daily"], color=GREY, alpha=0.6, width=0.8, label="Trong ngày")
    ax.plot(days, s["cumulative"], color=BLUE, marker="o", linewidth=2, label="Cộng dồn")
    if s["target_total"]:
        ax.axhline(s["target_total"], color=RED, linestyle="--", linewidth=1.5,
                   label=f"Chỉ tiêu Tháng vận động: {vn_number(s['target_total'])} "
                         f"({vn_number(s['target_per_unit'])} × {s['units_total']} {s['unit_word']})")
    if s["plan_6m"]:
        ax.axhline(s["plan_6m"], color=ORANGE, linestyle=":", linewidth=2,
                   label=f"Kế hoạch 6 tháng: {vn_number(s['plan_6m'])} ({vn_number(100 * s['plan_share'])} % kế "
                         "hoạch năm)" + (" — SỐ TẠM" if s["plan_placeholder"] else ""))
    ax.set_title(f"Cộng dồn người tham gia mới so với chỉ tiêu và kế hoạch (đến {_day(numbers['as_of'])})")
    ax.set_ylabel("Số người")
    top = max([*s["cumulative"], s["target_total"] or 0, s["plan_6m"] or 0, 1])
    ax.set_ylim(0, top * 1.5)  # room above the lines for the legend
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%d/%m"))
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def draw_points(ax, numbers: dict) -> None:
    """Connection points of the launch: live on time, late, never live."""
    launch = numbers["launch"]
    labels = ["Đúng giờ", "Muộn", "Không lên sóng"]
    values = [launch["on_time"], len(launch["late"]), len(launch["not_live"])] if launch else [0, 0, 0]
    bars = ax.bar(labels, values, color=[GREEN, ORANGE, RED], label="Điểm cầu")
    ax.bar_label(bars, labels=[vn_number(v) for v in values], padding=2)
    total = launch["points_total"] if launch else 0
    ax.set_title(f"Điểm cầu lên sóng lúc khai mạc (tổng {total}; đúng giờ = ≤ "
                 f"{launch['on_time_limit_s'] if launch else 10} giây)")
    ax.set_ylim(0, max([*values, 1]) * 1.2)
    ax.set_ylabel("Số điểm cầu")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def draw_photos(ax, numbers: dict) -> None:
    """Photos per district team (and any point that sent some): processed and refused."""
    rows = [r for r in numbers["photos"] if r["received"] or r["kind"] == "team"][:20]
    names = [r["name"] for r in rows]
    ax.bar(names, [r["processed"] for r in rows], color=BLUE, label="Đã xử lý")
    ax.bar(names, [r["quarantined"] for r in rows], bottom=[r["processed"] for r in rows], color=RED,
           label="Bị loại (cách ly)")
    ax.set_title("Ảnh gửi về theo đội / điểm cầu")
    ax.set_ylabel("Số ảnh")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max([r["received"] for r in rows] + [1]) * 1.25)
    ax.tick_params(axis="x", labelrotation=30, labelsize=9)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(loc="upper right", fontsize=9, frameon=False)


def draw_reach(ax, numbers: dict) -> None:
    """Views on the fanpage per published item (Graph API insights)."""
    items = [p for p in numbers["publications"] if p["channel"] == "fanpage" and p["status"] == "published"
             and isinstance((p.get("reach") or {}).get("views"), int)]
    names = [_short(p["label"]) for p in items]
    bars = ax.bar(names, [p["reach"]["views"] for p in items], color=BLUE, label="Lượt xem")
    ax.bar_label(bars, labels=[vn_number(p["reach"]["views"]) for p in items], padding=2, fontsize=9)
    ax.bar(names, [p["reach"].get("viewers") or 0 for p in items], color=GREEN, width=0.4, label="Người xem")
    ax.set_title("Fanpage: lượt xem và người xem theo bài (Facebook Insights)")
    ax.set_ylabel("Lượt")
    ax.set_ylim(0, max([p["reach"]["views"] for p in items] + [1]) * 1.2)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(loc="upper right", fontsize=9, frameon=False)


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


CHARTS = {"districts": draw_districts, "cumulative": draw_cumulative, "points": draw_points, "photos": draw_photos,
          "reach": draw_reach}


def available(numbers: dict) -> list[str]:
    """The charts this report has data for."""
    names = ["districts", "cumulative"]
    if numbers.get("launch"):
        names.append("points")
    if any(r["received"] for r in numbers["photos"]):
        names.append("photos")
    if any(isinstance((p.get("reach") or {}).get("views"), int) for p in numbers["publications"]):
        names.append("reach")
    return names


# --- figures and what they show ------------------------------------------------------------------------------------
def standalone(name: str, numbers: dict, size=(10, 5.2)) -> Figure:
    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    CHARTS[name](fig.add_subplot(), numbers)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _x_label(ax, x: float, labels: dict[float, str]) -> str:
    return labels.get(round(x, 6), f"{x:g}")


def _value(v):
    if isinstance(v, (date,)):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def series_of(ax) -> dict:
    """What an Axes shows, read back from its artists: bars (label → [(x label, height)]), lines and target lines."""
    ax.figure.canvas.draw()  # tick labels exist once drawn
    ticks = {round(float(t), 6): label.get_text() for t, label in zip(ax.get_xticks(), ax.get_xticklabels())}
    dates = type(ax.xaxis.get_converter()).__module__ == "matplotlib.dates"
    out = {"title": ax.get_title(), "bars": {}, "lines": {}, "targets": {}}
    for container in ax.containers:
        bars = []
        for patch in container.patches:
            x = patch.get_x() + patch.get_width() / 2
            # a date axis: the bar's day (as the line points give it); else the category under the bar
            label = matplotlib.dates.num2date(x).date().isoformat() if dates else ticks.get(round(x, 6), f"{x:g}")
            bars.append([label, _value(patch.get_height())])
        out["bars"][container.get_label()] = bars
    for line in ax.get_lines():
        xs, ys = list(line.get_xdata()), list(line.get_ydata())
        if len(set(map(str, ys))) == 1 and list(map(float, xs)) == [0.0, 1.0] and line.get_transform() != ax.transData:
            out["targets"][line.get_label()] = _value(ys[0])  # axhline: a target level across the chart
        else:
            out["lines"][line.get_label()] = [[_value(x), _value(y)] for x, y in zip(xs, ys)]
    return out


def figure_series(fig: Figure) -> list[dict]:
    return [series_of(ax) for ax in fig.axes if ax.get_title()]
