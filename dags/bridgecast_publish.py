"""The content calendar (config/posts/*.yaml): every post goes out at its minute, exactly once.

Every 5 minutes the calendar is read again and compared with the publication ledger:
  plan_calendar        «Lập kế hoạch đăng»: what to do now (kept as `{event}/_posts/_runs/<run>/plan.md`)
  publish_post         «Đăng bài»: one instance per post × channel that needs something, named
                       "<post> · <channel> · <action>":
      đăng             due before the next run: waits deferred (no worker slot) and goes out at its minute;
                       photos chosen by a selector are picked then and frozen
      hẹn giờ fanpage  a fanpage post with fixed photos 15 min–29 days ahead becomes a Facebook scheduled post
      cập nhật         a published post whose text changed in the calendar is updated, never posted again
      rút bài          removed from the calendar before it went out: cancelled (a fanpage scheduled post is
                       deleted); one already out is left alone and reported
      xin duyệt        `approval_required`: sent to bridgecast_schedule_post's approval step
(The staff form's photo list is kept by its own DAG, bridgecast_photo_picker.)

Why a 5-minute plan plus deferrable waits, not a 1-minute cadence (measured on this 2-core stack): a cron run's
first task starts 0.6–7 s after its minute and a second task another ~1 s later, so a per-minute run would be on
time only by starting 1 440 runs a day; a deferred task resumes ≈1 s after its trigger fires (more when busy),
so `publish_post` wakes 20 s early and sleeps the rest in the task — the call leaves within a second of the
minute while the machine runs one plan every 5 minutes. A post added less than 5 minutes before its time goes out
when the next plan runs (trigger the DAG after such an edit).

Any task can be cleared and rerun from the UI: the ledger (plus a per-publication lock) returns what exists.
conf (tests, rehearsals): `event_file` or `event_key`, `calendar_dir`.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from bridgecast.posts.operators import PublishPostOperator

@dag(
    dag_id="bridgecast_publish",
    dag_display_name="Lịch đăng bài (content calendar)",
    schedule=CronTriggerTimetable("*/5 * * * *", timezone="Asia/Ho_Chi_Minh"),
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,  # a plan for a past slot is no use: the next plan sees everything that is due
    max_active_runs=1,  # one plan at a time; a run lasts until the last post of its window is out
    tags=["bridgecast", "posts"],
    doc_md=__doc__,
)
def bridgecast_publish():
    @task(task_display_name="Lập kế hoạch đăng")
    def plan_calendar(dag_run=None, run_id=None) -> list[dict]:
        from bridgecast.posts.tasks import plan_calendar

        return plan_calendar(dag_run.conf, run_id)

    # One instance per post × channel, named "<post id> · <channel> · <action>"; nothing to do → no instance.
    PublishPostOperator.partial(task_id="publish_post", task_display_name="Đăng bài",
                                map_index_template="{{ task.item['label'] }}", retries=2,
                                retry_delay=timedelta(seconds=30)).expand(item=plan_calendar())


bridgecast_publish()
