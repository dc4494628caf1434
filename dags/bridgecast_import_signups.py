"""Nhập số người tham gia / import sign-ups: the social-insurance office's spreadsheet (XLSX or CSV), from the UI.

  import_signups  the file — a key under `{event}/_signups/uploads/` in S3 (staff upload it there first), or its
                  content pasted into the form (CSV text; an .xlsx as base64 through the API) — is checked and its
                  counts per district and day recorded; any problem fails the run with a Vietnamese list naming
                  sheet, row and column. The same file again changes nothing; a changed figure is a correction
                  (the earlier one stays in the history). A file carrying personal data (names, ID or phone
                  numbers…) is refused whole and its upload deleted.

The team upload page sends a team's daily figure here too: conf `team_report` = {district_id, day, count, forms,
source}. conf `event_key` / `event_file` choose another event (a rehearsal's).
"""
from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="bridgecast_import_signups",
    dag_display_name="Nhập số người tham gia (import sign-ups)",
    schedule=None,
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=4,
    params={
        "file_key": Param(None, type=["null", "string"], title="Khoá tệp trong kho (file_key)",
                          description="Tên tệp đã tải lên thư mục <sự kiện>/_signups/uploads/ trong kho S3, ví dụ "
                                      "bao-cao-23-05.xlsx. Để trống nếu dán nội dung bên dưới."),
        "content": Param(None, type=["null", "string"], format="multiline", title="Nội dung bảng tính (content)",
                         description="Hoặc dán bảng tính dạng CSV: dòng đầu là tiêu đề «Ngày, Huyện, Số người tham "
                                     "gia, Số tờ khai», mỗi dòng sau một huyện một ngày."),
        "file_name": Param(None, type=["null", "string"], title="Tên tệp (không bắt buộc)",
                           description="Tên hiện trong thông báo và lịch sử sửa số liệu."),
        "team_report": Param(None, type=["null", "object"], title="Báo cáo của đội (dùng cho trang tải lên)",
                             section="Nâng cao (không bắt buộc)",
                             description='{"district_id": "vinh-yen", "day": "2020-05-23", "count": 12, "forms": 12, '
                                         '"source": "team_page:vinh-yen"}'),
    },
    tags=["bridgecast", "results"],
    doc_md=__doc__,
)
def bridgecast_import_signups():
    @task(task_display_name="Nhập số liệu")
    def import_signups(params=None, dag_run=None) -> dict:
        from bridgecast.results.tasks import import_signups_task

        return import_signups_task(dict(params or {}), dag_run.conf)

    import_signups()


bridgecast_import_signups()
