"""The report built from a realistic data set — six days of sign-ups (a spreadsheet, then a team's correction), the
launch summary as the launch writes it, photo manifests, ledger rows and reach — and checked the way a reader would:
the charts show the numbers given (read back from the drawn artists, in the PNG charts and in the PDF), the PDF's
text is Vietnamese, and its pages are rendered to images under test-artifacts/report/ to be looked at."""
from __future__ import annotations

import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridgecast.channels.base import RemoteRef
from bridgecast.ledger import Ledger
from bridgecast.results import charts
from bridgecast.results.importer import import_signups
from bridgecast.results.numbers import build_numbers, launch_facts
from bridgecast.results.render import render_html, render_pdf, summary_lines
from bridgecast.results.schedule import report_times
from bridgecast.results.store import record_team_report
from signup_testkit import DISTRICTS, figure, signup_rows, xlsx_bytes

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "report"
DAYS = [date(2020, 5, 23) + timedelta(days=i) for i in range(6)]
AS_OF = DAYS[-1]
IDS = ("vinh-yen", "phuc-yen", "binh-xuyen", "lap-thach", "song-lo", "tam-duong", "tam-dao", "vinh-tuong", "yen-lac")
LATE, NEVER, DROPPED = "tuyen-quang", "son-la", "thai-nguyen"
PHOTOS = {tid: i + 1 for i, tid in enumerate(IDS)}  # team i sent i+1 photos; every 4th one was refused
REACH = {"launch/live-video": {"views": 812, "viewers": 540, "watching_now": 0},
         "launch/fanpage-photos": {"views": 1630, "viewers": 1010, "clicks": 40, "reactions": 55},
         "launch/fanpage-recap-video": {"note": "Facebook chưa có số liệu cho mục này."}}


def launch_summary(event) -> dict:
    """The summary the launch writes (its own `summarize`), with one late point, one never live, one drop."""
    from bridgecast.launch.plan import LaunchPlan
    from bridgecast.launch.summary import point_rows, summarize

    plan = LaunchPlan.for_event(event, "bhxh-vinhphuc-2020/_launch/event.yaml")
    monitor = {p.id: {"live_detected_at": "2020-05-23T01:00:00.4+00:00", "live_detected_after_t0_s": 0.4,
                      "drops": 0} for p in event.connection_points}
    monitor[LATE].update(live_detected_after_t0_s=31.2, live_detected_at="2020-05-23T01:00:31+00:00")
    monitor[NEVER].update(live_detected_after_t0_s=None, live_detected_at=None)
    monitor[DROPPED]["drops"] = 2
    points = point_rows(plan, {}, monitor, {}, {NEVER})
    return summarize(plan, points=points, ledger_rows=[], preflight={"no_go": [NEVER]},
                     went_live={"delta_s": 0.0}, recap=None, galleries={})


def manifests() -> list[dict]:
    return [{"kind": "photo", "point_id": tid, "status": "quarantined" if j % 4 == 3 else "processed"}
            for tid, n in PHOTOS.items() for j in range(n)] + [{"kind": "recording", "point_id": "ha-noi",
                                                                  "status": "processed"}]


def ledger_rows(event, tmp_path) -> list:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    for channel, key, remote_id, extra in [
            ("fanpage", "launch/live-video", "9001", {"kind": "live"}),
            ("portal", "launch/portal-article", "41", {}),
            ("fanpage", "launch/fanpage-photos", "100_200", {"kind": "post"}),
            ("fanpage", "launch/fanpage-recap-video", "9002", {"kind": "video"}),
            ("press", "launch/press-kit", "<press.1@bhxh>", {"recipients": ["a@x.example", "b@x.example"]}),
            ("press", "report/2020-05-27/staff-mail", "<r@bhxh>", {})]:
        ledger.mark_pending(event.id, channel, key, "h")
        ledger.mark_published(event.id, channel, key, RemoteRef(channel, remote_id, url=f"https://kenh.example/{remote_id}",
                                                                extra=extra), "h")
    return ledger.rows(event.id)


@pytest.fixture
def numbers(event, store, tmp_path):
    import_signups(event, xlsx_bytes({"Tháng 5": signup_rows(DAYS)}), "bao-cao-thang-5.xlsx", store=store,
                   today=date(2020, 6, 1))
    record_team_report(event.id, "tam-dao", DAYS[2], figure(6, DAYS[2]) + 9, None, "team_page:tam-dao",
                       event=event, store=store, today=date(2020, 6, 1))
    return build_numbers(event, AS_OF, current=store.current(event.id), history=store.history(event.id),
                         launch_summary=launch_summary(event), manifests=manifests(),
                         ledger_rows=ledger_rows(event, tmp_path), reach=REACH,
                         generated_at=datetime(2020, 5, 28, 10, 30, tzinfo=timezone.utc))


def expected_totals() -> dict[str, int]:
    totals = {name: sum(figure(i, d) for d in DAYS) for i, name in enumerate(DISTRICTS)}
    totals["Tam Đảo"] += 9  # the team's correction of 25/05
    return totals


def chart(name: str, numbers: dict) -> dict:
    return charts.figure_series(charts.standalone(name, numbers))[0]


def test_district_chart_shows_each_districts_total_and_the_target(event, numbers):
    shown = chart("districts", numbers)
    assert dict(shown["bars"]["Người tham gia mới"]) == expected_totals()
    assert [name for name, _ in shown["bars"]["Người tham gia mới"]] == [t.name for t in event.teams]
    assert shown["targets"] == {"Chỉ tiêu: 50 người/huyện": 50}


def test_cumulative_chart_shows_the_daily_sums_the_running_total_the_target_and_the_plan(numbers):
    shown = chart("cumulative", numbers)
    daily = [sum(figure(i, d) for i in range(9)) + (9 if d == DAYS[2] else 0) for d in DAYS]
    running = [sum(daily[:k + 1]) for k in range(len(daily))]
    assert shown["bars"]["Trong ngày"] == [[d.isoformat(), v] for d, v in zip(DAYS, daily)]
    assert shown["lines"]["Cộng dồn"] == [[d.isoformat(), v] for d, v in zip(DAYS, running)]
    assert running[-1] == sum(expected_totals().values()) == numbers["signups"]["total"]
    assert shown["targets"] == {"Chỉ tiêu Tháng vận động: 450 (50 × 9 huyện)": 450,
                                "Kế hoạch 6 tháng: 2.000 (50 % kế hoạch năm) — SỐ TẠM": 2000}


def test_points_photos_and_reach_charts_show_the_launch_the_manifests_and_the_insights(numbers):
    assert chart("points", numbers)["bars"]["Điểm cầu"] == [["Đúng giờ", 62], ["Muộn", 1], ["Không lên sóng", 1]]
    photos = chart("photos", numbers)["bars"]
    names = {tid: name for tid, name in zip(IDS, DISTRICTS)}
    assert dict(photos["Đã xử lý"]) == {names[t]: n - n // 4 for t, n in PHOTOS.items()}
    assert dict(photos["Bị loại (cách ly)"]) == {names[t]: n // 4 for t, n in PHOTOS.items()}
    reach = chart("reach", numbers)["bars"]
    assert reach["Lượt xem"] == [["Video trực tiếp lễ ra quân", 812], ["Bài ảnh lễ ra quân", 1630]]
    assert reach["Người xem"] == [["Video trực tiếp lễ ra quân", 540], ["Bài ảnh lễ ra quân", 1010]]


def test_numbers_answer_the_three_questions_and_keep_the_correction(event, numbers):
    s = numbers["signups"]
    totals = expected_totals()
    assert [u["name"] for u in s["units"] if u["reached"]] == [t.name for t in event.teams if totals[t.name] >= 50]
    assert s["plan_6m"] == 2000 and s["plan_placeholder"] and s["plan_missing"] == 2000 - s["total"]
    assert [(c["district"], c["day"], c["before"], c["after"]) for c in s["corrections"]] == [
        ("Tam Đảo", "2020-05-25", figure(6, DAYS[2]), figure(6, DAYS[2]) + 9)]
    launch = numbers["launch"]
    assert (launch["points_total"], launch["on_time"]) == (64, 62)
    assert [p["id"] for p in launch["late"]] == [LATE] and [p["id"] for p in launch["not_live"]] == [NEVER]
    assert [(p["id"], p["drops"]) for p in launch["dropped"]] == [(DROPPED, 2)]
    assert {p["key"] for p in numbers["publications"]} == set(REACH) | {"launch/portal-article", "launch/press-kit"}
    assert numbers["fanpage_views"] == 812 + 1630
    lines = summary_lines(numbers)
    assert lines[0] == (f"Người tham gia BHXH tự nguyện mới: {s['total']} người — chỉ tiêu 450 (50 người × 9 huyện), "
                        f"đạt {str(s['target_share']).replace('.', ',')} %.")
    assert any("SỐ TẠM" in line for line in lines)
    assert any(line.startswith("Lễ ra quân: 62/64 điểm cầu lên sóng đúng giờ") for line in lines)


def test_the_summary_reader_tolerates_another_shape_of_the_launch_summary(event):
    older = {"points": {"ha-noi": {"live_detected_after_t0_s": 2.0}, "son-la": {"drops": [{"at": "x"}]},
                        "vinh-yen": {"drops": 0}}}
    facts = launch_facts(event, older)
    assert facts["points_total"] == 2 and facts["on_time"] == 1  # vinh-yen is a district team, not a point
    assert [p["name"] for p in facts["not_live"]] == ["Sơn La"] and facts["drops_total"] == 1
    assert launch_facts(event, None) is None and launch_facts(event, ["not", "a", "dict"]) is None


def test_the_pdf_shows_the_same_numbers_in_vietnamese_and_is_rendered_to_pages(numbers, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = ARTIFACTS / "report.pdf"
    series = render_pdf(numbers, pdf)
    assert dict(series["districts"]["bars"]["Người tham gia mới"]) == expected_totals()
    assert series["cumulative"]["lines"]["Cộng dồn"][-1] == [AS_OF.isoformat(), numbers["signups"]["total"]]
    assert series["points"]["bars"]["Điểm cầu"][0] == ["Đúng giờ", 62]

    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for phrase in ("Báo cáo kết quả Tháng vận động BHXH toàn dân", "Người tham gia BHXH tự nguyện mới",
                   "Vĩnh Tường", "Tam Đảo", "Lịch sử sửa số liệu", "Cổng thông tin điện tử", "SỐ TẠM"):
        assert phrase in text, phrase
    for old in ARTIFACTS.glob("page-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "70", "-png", str(pdf), str(ARTIFACTS / "page")], check=True, timeout=120)
    pages = sorted(ARTIFACTS.glob("page-*.png"))
    assert 3 <= len(pages) <= 8, pages


def test_the_html_report_is_self_contained_and_links_every_publication(numbers):
    pngs = {name: charts.png_bytes(charts.standalone(name, numbers)) for name in charts.available(numbers)}
    page = render_html(numbers, pngs)
    assert page.startswith('<!DOCTYPE html><html lang="vi">') and page.count("data:image/png;base64,") == 5
    for remote_id in ("9001", "41", "100_200", "9002"):
        assert f'href="https://kenh.example/{remote_id}"' in page
    assert "staff-mail" not in page  # the report's own mails are not publications
    assert "Cổng thông tin (WordPress REST API) không cung cấp số lượt xem." in page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.html").write_text(page, encoding="utf-8")


def test_report_runs_after_the_launch_then_every_evening_of_the_month(event):
    times = [t.astimezone(event.tz) for t in report_times(event)]
    assert times[0].isoformat() == "2020-05-23T10:45:00+07:00"  # 08:00 + 120 min + 45 min wrap-up
    assert times[1].isoformat() == "2020-05-23T17:30:00+07:00"
    assert times[-1].isoformat() == "2020-06-22T17:30:00+07:00" and len(times) == 32

