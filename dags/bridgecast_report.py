"""Báo cáo kết quả / the results report: after the launch, then every evening of the month of action.

  gather_numbers      sign-ups per district and day against the target (≥ 50 per district) and the 6-month plan;
                      the launch's points live on time and drops (its summary.json); photos per point and team
                      (manifests); publications per channel with links (ledger) and their reach (Graph insights)
                      → `{event}/_report/<day>/numbers.json`
  render_report       charts, the Vietnamese HTML report and the PDF for leadership → `{event}/_report/<day>/`;
                      `{event}/_report/latest.json` points at the newest (what the board shows)
  mail_staff          the report's summary and links to the event's staff list, once per day
  draft_results_post  on the launch day, weekly and on the last day: a results post for the portal and the fanpage,
                      sent to bridgecast_schedule_post for approval — once per day, however often this reruns

Times are the event's (Asia/Ho_Chi_Minh): the end of the launch + 45 min, then 17:30 each day to `campaign_end`
(config/event.yaml). conf: `event_key`/`event_file` (another event), `as_of` (YYYY-MM-DD: the day the figures run
to), `draft_post` (true/false: force or skip the results post), `post_publish_at` (ISO time of the post).
Every task can be cleared and rerun: files are overwritten with the newest figures, the mail and the post are not
sent twice.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.events import EventsTimetable

from bridgecast.event import default_event_path, load_event
from bridgecast.results.schedule import report_times

EVENT = load_event(default_event_path())
TIMES = [pendulum.instance(t) for t in report_times(EVENT)]


@dag(
    dag_id="bridgecast_report",
    dag_display_name="Báo cáo kết quả (results report)",
    schedule=EventsTimetable(event_dates=TIMES, restrict_to_events=True, description="after the launch, then daily"),
    start_date=TIMES[0].subtract(days=1),
    catchup=False,  # a month of action long past does not replay 31 reports
    max_active_runs=1,
    tags=["bridgecast", "results"],
    doc_md=__doc__,
)
def bridgecast_report():
    @task(task_display_name="Tổng hợp số liệu")
    def gather_numbers(dag_run=None, logical_date=None) -> dict:
        from bridgecast.results.tasks import gather_numbers

        return gather_numbers(dag_run.conf, logical_date or dag_run.run_after)

    @task(task_display_name="Lập báo cáo (HTML, PDF)")
    def render_report(info: dict) -> dict:
        from bridgecast.results.tasks import render_report

        return render_report(info)

    @task(task_display_name="Gửi thư cho cán bộ", retries=2)
    def mail_staff(info: dict, rendered: dict) -> dict:
        from bridgecast.results.tasks import mail_staff

        return mail_staff(info, rendered)

    @task(task_display_name="Soạn bài kết quả (gửi duyệt)", retries=1)
    def draft_results_post(info: dict, rendered: dict, dag_run=None) -> dict:
        from bridgecast.results.tasks import draft_results_post

        return draft_results_post(info, rendered, dag_run.conf)

    info = gather_numbers()
    rendered = render_report(info)
    mail_staff(info, rendered)
    draft_results_post(info, rendered)


bridgecast_report()
