"""Importing the office's sign-up spreadsheet: a good file, the same file again, a correction, broken files (each
refused with sheet, row and column), personal data (refused whole, never repeated), and the team page's report."""
from __future__ import annotations

import re
import unicodedata
from datetime import date

import pytest

from bridgecast.results.importer import ALREADY_IMPORTED, IMPORTED, ImportRefused, import_signups
from bridgecast.results.store import SPREADSHEET, TEAM_PAGE, SignupInputError, record_team_report
from signup_testkit import csv_bytes, figure, signup_rows, xlsx_bytes

DAYS = [date(2020, 5, 23), date(2020, 5, 24), date(2020, 5, 25)]
IDS = ("vinh-yen", "phuc-yen", "binh-xuyen", "lap-thach", "song-lo", "tam-duong", "tam-dao", "vinh-tuong", "yen-lac")


def refused(event, store, data, name="bao-cao.xlsx", today=None) -> ImportRefused:
    with pytest.raises(ImportRefused) as err:
        import_signups(event, data, name, store=store, today=today)
    assert store.history(event.id) == [] and store.imports(event.id) == []  # all or nothing
    return err.value


def test_good_xlsx_is_imported_with_every_district_and_day(event, store, today):
    rows = signup_rows(DAYS) + [("", "", "Tổng cộng", sum(r[3] for r in signup_rows(DAYS)), "", "")]
    kept = {}
    result = import_signups(event, xlsx_bytes({"Tháng 5": rows}), "bao-cao-thang-5.xlsx", store=store, today=today,
                            keep=lambda sha, data: kept.setdefault(sha, f"s3-key/{sha}.xlsx"))

    assert result.status == IMPORTED and result.rows == 27 and result.recorded == 27
    assert result.corrected == 0 and result.unchanged == 0
    assert result.file_key == kept[result.sha256]
    assert any("dòng tổng cộng" in n for n in result.notes)
    current = {(r.district_id, r.day): (r.count, r.forms) for r in store.current(event.id)}
    assert current == {(IDS[i], d): (figure(i, d), figure(i, d) + 1) for d in DAYS for i in range(9)}
    first = store.history(event.id)[0]
    assert (first.source, first.source_ref, first.sheet, first.row) == (SPREADSHEET, result.sha256, "Tháng 5", 4)
    assert first.file_name == "bao-cao-thang-5.xlsx" and first.revision == 1


def test_the_same_file_imported_again_changes_nothing(event, store, today):
    data = xlsx_bytes({"Tháng 5": signup_rows(DAYS)})
    first = import_signups(event, data, "bao-cao.xlsx", store=store, today=today)
    history = store.history(event.id)

    again = import_signups(event, data, "ten-khac.xlsx", store=store, today=today)

    assert again.status == ALREADY_IMPORTED and again.sha256 == first.sha256
    assert "nhập lại không thay đổi gì" in again.message()
    assert store.history(event.id) == history
    assert len(store.imports(event.id)) == 1


def test_a_later_figure_for_the_same_district_and_day_shows_as_a_correction(event, store, today):
    import_signups(event, xlsx_bytes({"Tháng 5": signup_rows(DAYS[:2])}), "ngay-23-24.xlsx", store=store, today=today)
    # The office sends its whole sheet again a day later: one more day, and Tam Đảo's 24/5 fixed from 7 to 11.
    rows = signup_rows(DAYS)
    fixed = next(i for i, r in enumerate(rows) if r[1] == DAYS[1] and r[2] == "Tam Đảo")
    before = rows[fixed][3]
    rows[fixed] = (*rows[fixed][:3], before + 4, rows[fixed][4], "đã đối chiếu lại")

    result = import_signups(event, xlsx_bytes({"Tháng 5": rows}), "ngay-23-25.xlsx", store=store, today=today)

    assert (result.recorded, result.corrected, result.unchanged) == (9, 1, 17)
    assert result.corrections == [{"district_id": "tam-dao", "district": "Tam Đảo", "day": "24/05/2020",
                                   "before": before, "after": before + 4, "forms_before": before + 1,
                                   "forms_after": before + 1,
                                   "where": f"bảng tính ngay-23-25.xlsx, trang «Tháng 5», dòng {fixed + 4}"}]
    assert f"Tam Đảo ngày 24/05/2020: {before} → {before + 4} người" in result.message()
    tam_dao = [r for r in store.history(event.id) if (r.district_id, r.day) == ("tam-dao", DAYS[1])]
    assert [(r.revision, r.count, r.is_correction) for r in tam_dao] == [(1, before, False), (2, before + 4, True)]
    current = next(r for r in store.current(event.id) if (r.district_id, r.day) == ("tam-dao", DAYS[1]))
    assert current.count == before + 4


def test_csv_with_semicolons_nfd_names_prefixes_codes_and_no_diacritics_in_headers(event, store, today):
    names = [unicodedata.normalize("NFD", "Vĩnh Yên"), "TP. Phúc Yên", "huyện bình xuyên", "Lập Thạch", "253",
             "Tam Dương", "Tam Đảo", "Huyện Vĩnh Tường", "yen-lac"]
    rows = [(i + 1, DAYS[0], name, i, "", "") for i, name in enumerate(names)]
    header = ("STT", "Ngay", "Huyen/Thanh pho", "So nguoi tham gia", "So to khai", "Ghi chu")
    result = import_signups(event, csv_bytes(rows, header=header, delimiter=";"), "bao-cao.csv", store=store,
                            today=today)
    assert result.status == IMPORTED and result.recorded == 9
    assert {r.district_id: r.count for r in store.current(event.id)} == dict(zip(IDS, range(9)))
    assert all(r.forms is None for r in store.current(event.id))  # an empty forms cell is "not given"


def test_wrong_columns_are_refused_naming_the_header_row_and_the_missing_columns(event, store, today):
    header = ("STT", "Ngày", "Đơn vị", "Số lượt tham gia", "Ghi chú")
    rows = [(1, DAYS[0], "Vĩnh Yên", 3, "")]
    err = refused(event, store, xlsx_bytes({"Tháng 5": rows}, header=header), today=today)
    assert len(err.problems) == 1
    problem = err.problems[0]
    assert problem.startswith("Trang tính «Tháng 5», dòng 3 (dòng tiêu đề): thiếu cột «Số người tham gia»")
    assert "cột D «Số lượt tham gia» có phải là «Số người tham gia»?" in problem
    assert "Đặt tên cột đúng như mẫu" in problem


def test_a_negative_number_is_refused_with_sheet_row_and_column(event, store, today):
    rows = signup_rows(DAYS[:1])
    rows[4] = (*rows[4][:3], -3, *rows[4][4:])
    err = refused(event, store, xlsx_bytes({"Tháng 5": rows}), today=today)
    assert err.problems == ["Trang tính «Tháng 5», dòng 8, cột D («Số người tham gia»): số âm (-3) — số người tham gia "
                            "phải ≥ 0; muốn sửa số đã báo thì ghi số đúng của ngày đó."]


def test_a_district_that_does_not_exist_is_refused_with_the_valid_names(event, store, today):
    rows = signup_rows(DAYS[:1])
    rows[2] = (rows[2][0], rows[2][1], "Mê Linh", *rows[2][3:])  # Vĩnh Phúc's until 2008, now Hà Nội's
    rows[3] = (rows[3][0], rows[3][1], "Lập Thạc", *rows[3][3:])
    err = refused(event, store, xlsx_bytes({"Tháng 5": rows}), today=today)
    assert err.problems[0].startswith("Trang tính «Tháng 5», dòng 6, cột C («Huyện»): không có huyện «Mê Linh» trong "
                                      "sự kiện")
    assert "Ghi đúng tên một trong: Vĩnh Yên, Phúc Yên, Lập Thạch" in err.problems[0]
    assert err.problems[1].startswith("Trang tính «Tháng 5», dòng 7, cột C («Huyện»): không có huyện «Lập Thạc»")
    assert "có phải «Lập Thạch»?" in err.problems[1]


def test_text_in_a_number_cell_is_refused_with_sheet_row_and_column(event, store, today):
    rows = signup_rows(DAYS[:1])
    rows[0] = (*rows[0][:3], "mười hai", *rows[0][4:])
    rows[1] = (*rows[1][:4], "5 tờ", rows[1][5])
    err = refused(event, store, xlsx_bytes({"Tháng 5": rows}), today=today)
    assert err.problems[0].startswith("Trang tính «Tháng 5», dòng 4, cột D («Số người tham gia»): ô có chữ, không "
                                      "phải số")
    assert err.problems[1].startswith("Trang tính «Tháng 5», dòng 5, cột E («Số tờ khai»): ô có chữ")


def test_a_date_outside_the_month_of_action_and_a_future_day_are_refused(event, store):
    rows = [(1, date(2020, 4, 30), "Vĩnh Yên", 2, 2, ""), (2, date(2020, 7, 1), "Phúc Yên", 1, 1, ""),
            (3, date(2020, 5, 30), "Sông Lô", 1, 1, ""), (4, "23/5", "Tam Đảo", 1, 1, "")]
    err = refused(event, store, xlsx_bytes({"Tháng 5": rows}), today=date(2020, 5, 28))
    assert err.problems[0] == ("Trang tính «Tháng 5», dòng 4, cột B («Ngày»): ngày 30/04/2020 nằm ngoài Tháng vận "
                               "động (23/05/2020 – 22/06/2020) — kiểm tra lại ngày (đúng năm, đúng tháng).")
    assert err.problems[1].startswith("Trang tính «Tháng 5», dòng 5, cột B («Ngày»): ngày 01/07/2020 nằm ngoài")
    assert err.problems[2].startswith("Trang tính «Tháng 5», dòng 6, cột B («Ngày»): ngày 30/05/2020 chưa đến")
    assert err.problems[3].startswith("Trang tính «Tháng 5», dòng 7, cột B («Ngày»)")
    assert "«23/5» không phải ngày" in err.problems[3]


def test_every_problem_of_a_file_is_listed_at_once_and_two_rows_for_one_day_are_refused(event, store, today):
    rows = signup_rows(DAYS[:1]) + [(10, DAYS[0], "Vĩnh Yên", 4, 4, "")]
    rows[1] = (*rows[1][:3], None, *rows[1][4:])
    rows[2] = (rows[2][0], None, *rows[2][2:])
    err = refused(event, store, csv_bytes(rows), name="bao-cao.csv", today=today)
    assert [p.split(":")[0] for p in err.problems] == [
        "Trang tính «bao-cao.csv», dòng 3, cột D («Số người tham gia»)",
        "Trang tính «bao-cao.csv», dòng 4, cột B («Ngày»)",
        "Trang tính «bao-cao.csv», dòng 11, cột C («Huyện»)"]
    assert "cùng huyện và cùng ngày 23/05/2020 với trang «bao-cao.csv» dòng 2" in err.problems[2]
    assert "3 lỗi, không số liệu nào được nhập" in str(err)


def test_personal_data_columns_refuse_the_whole_file_and_are_named(event, store, today):
    header = ("STT", "Ngày", "Huyện", "Họ và tên", "Số CCCD", "Số người tham gia", "Ngày sinh")
    rows = [(1, DAYS[0], "Vĩnh Yên", "Nguyễn Văn An", "026090001234", 1, date(1975, 3, 2))]
    err = refused(event, store, xlsx_bytes({"Danh sách": rows}, header=header), today=today)
    assert err.personal
    text = str(err)
    assert "bị TỪ CHỐI vì có dữ liệu cá nhân" in text and "không giữ lại tệp" in text
    assert "trang «Danh sách», cột D «Họ và tên» (họ tên)" in text
    assert "trang «Danh sách», cột E «Số CCCD» (số CCCD/CMND/định danh)" in text
    assert "trang «Danh sách», cột G «Ngày sinh» (ngày sinh)" in text
    assert "Nguyễn Văn An" not in text and "026090001234" not in text


def test_id_and_phone_numbers_in_cells_refuse_the_file_by_cell_reference_only(event, store, today):
    rows = signup_rows(DAYS[:1])
    rows[0] = (*rows[0][:5], "Liên hệ anh Hùng 0912 345 678")
    rows[3] = (*rows[3][:5], 26090001234)  # an 11-digit CCCD that lost its leading 0 in a number cell
    rows[5] = (*rows[5][:5], "CMND 135792468")
    err = refused(event, store, csv_bytes(rows), name="bao-cao.csv", today=today)
    text = str(err)
    assert err.personal
    assert "'bao-cao.csv'!F2 (số điện thoại)" in text
    assert "'bao-cao.csv'!F5 (số CCCD/định danh (mất số 0 đầu))" in text
    assert "'bao-cao.csv'!F7 (số CMND" in text
    assert "0912 345 678" not in text and "135792468" not in text and "Hùng" not in text
    assert "26090001234" not in text


def test_personal_data_on_a_hidden_sheet_refuses_the_file(event, store, today):
    data = xlsx_bytes({"Tổng hợp": signup_rows(DAYS[:1]),
                       "DS người tham gia": [(1, DAYS[0], "Vĩnh Yên", "Trần Thị Bình", "", "")]},
                      header=("STT", "Ngày", "Huyện", "Họ tên", "Số điện thoại", "Ghi chú"), hidden=("DS người tham gia",))
    err = refused(event, store, data, today=today)
    assert err.personal
    assert "trang «DS người tham gia», cột D «Họ tên» (họ tên)" in str(err)


def test_an_old_xls_file_and_a_non_utf8_csv_are_refused_with_how_to_save_them(event, store):
    err = refused(event, store, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, name="bao-cao.xls")
    assert "Excel 97-2003 (.xls)" in err.problems[0] and ".xlsx" in err.problems[0]
    windows_csv = unicodedata.normalize("NFD", "Ngày,Huyện,Số người tham gia\n23/05/2020,Tam Đảo,3\n")
    err = refused(event, store, windows_csv.encode("cp1258", errors="replace"), name="bao-cao.csv")
    assert "CSV UTF-8" in err.problems[0]


def test_team_page_reports_record_once_and_correct_with_history(event, store, today):
    day = DAYS[1]
    first = record_team_report(event.id, "song-lo", day, 14, 15, "team_page:song-lo", event=event, store=store,
                               today=today)
    again = record_team_report(event.id, "song-lo", day, 14, None, "team_page:song-lo", event=event, store=store,
                               today=today)
    fixed = record_team_report(event.id, "song-lo", day, 16, 16, "team_page:song-lo", event=event, store=store,
                               today=today)

    assert (first.action, again.action, fixed.action) == ("recorded", "unchanged", "corrected")
    assert fixed.previous.count == 14 and fixed.report.revision == 2
    assert [(r.count, r.source, r.source_ref) for r in store.history(event.id)] == [
        (14, TEAM_PAGE, "team_page:song-lo"), (16, TEAM_PAGE, "team_page:song-lo")]
    assert store.current(event.id)[0].where == "trang tải lên của đội (team_page:song-lo)"


@pytest.mark.parametrize("kwargs,phrase", [
    ({"count": -1}, "«Số người tham gia (count)»: -1 là số âm"),
    ({"count": "12"}, "không phải số nguyên"),
    ({"forms": -2}, "«Số tờ khai (forms)»: -2 là số âm"),
    ({"district_id": "me-linh"}, "'me-linh' không phải đơn vị báo cáo"),
    ({"day": date(2020, 7, 2)}, "nằm ngoài Tháng vận động"),
])
def test_team_page_reports_with_bad_input_are_refused_naming_the_field(event, store, today, kwargs, phrase):
    args = {"district_id": "song-lo", "day": DAYS[0], "count": 3, "forms": None, **kwargs}
    with pytest.raises(SignupInputError, match=re.escape(phrase)):
        record_team_report(event.id, args["district_id"], args["day"], args["count"], args["forms"], event=event,
                           store=store, today=today)
    assert store.history(event.id) == []

