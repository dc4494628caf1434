"""Danh sách ảnh cho biểu mẫu / the staff form's photo list, kept fresh.

  refresh_photo_picker  «Làm mới danh sách ảnh» — lists the processed photos of the event's points, labels them by
                        point and local time («Vĩnh Tường — 08:12 23/05»), stores them in the Variable
                        `bridgecast_photo_picker` and, when they changed, has bridgecast_schedule_post
                        re-parsed until its «Ảnh» field offers them (seconds, ≤ ~35 s)

Runs whenever an ingest batch ends (the processed-photos asset), every 30 minutes as a safety net (photos removed
by hand, a missed event), and once as soon as the DAG first appears — it is active from creation, so a fresh
stack fills the list without anyone unpausing it.

A Variable because the dag-processor reads Variables through Airflow on whatever machine it runs, where a file
written by a worker would not be there.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from bridgecast.ingest.assets import PROCESSED_PHOTOS_NAME, PROCESSED_PHOTOS_URI

PROCESSED_PHOTOS = Asset(uri=PROCESSED_PHOTOS_URI, name=PROCESSED_PHOTOS_NAME)


@dag(
    dag_id="bridgecast_photo_picker",
    dag_display_name="Danh sách ảnh cho biểu mẫu (photo picker)",
    # No start_date: run_immediately then makes the first run as soon as the DAG is known (CronTriggerTimetable).
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/30 * * * *", timezone="Asia/Ho_Chi_Minh", run_immediately=True),
        assets=PROCESSED_PHOTOS),
    catchup=False,
    is_paused_upon_creation=False,  # the form needs it from the first start; nothing here posts anything
    max_active_runs=1,  # a burst of batches queues one refresh, which sees everything processed so far
    dagrun_timeout=timedelta(minutes=10),
    tags=["bridgecast", "posts"],
    doc_md=__doc__,
)
def bridgecast_photo_picker():
    @task(task_display_name="Làm mới danh sách ảnh", retries=2, retry_delay=timedelta(seconds=20))
    def refresh_photo_picker() -> dict:
        from bridgecast.posts.tasks import refresh_photo_picker

        return refresh_photo_picker()

    refresh_photo_picker()


bridgecast_photo_picker()
