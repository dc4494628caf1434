"""Lên lịch một bài đăng / schedule one post: the staff form, an approval, then the post at its minute, once.

  validate_form   «Kiểm tra biểu mẫu» — any problem stops here with a Vietnamese message naming the field
  render_preview  «Xem trước bài» — each channel's version (artefacts next to the post), with photo thumbnails
  approve_post    «Chờ duyệt» — the approvers (Variable `bridgecast_approvers`, default user `approver`) approve
                  or reject in Browse → Required Actions; no answer by the publish time → expired, nothing posted
  publish_post    «Đăng bài» — per channel: a deferred wait until the publish time, then the post via the ledger
  notify_staff    «Báo kết quả» — the outcome in the log and as an artefact; expired or failed → a red run

The publish time is «Ngày đăng» dd/mm/yyyy + «Giờ đăng» HH:MM, read as Vietnam time on the server whatever the
browser's zone; Airflow's «Logical Date» box above the form is not the publish time (leave it). The photo list
comes from the Variable `bridgecast_photo_picker` (kept by the bridgecast_photo_picker DAG).

The same title at the same time is the same post: submitting it again updates it. Clearing any task never posts
twice; a deliberate second post needs the form's «Đăng lại» (repost) switch.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from bridgecast.posts.form import form_params
from bridgecast.posts.media import read_picker
from bridgecast.posts.operators import PostApprovalOperator, PublishPostOperator, approver_names


@dag(
    dag_id="bridgecast_schedule_post",
    dag_display_name="Lên lịch bài đăng (schedule a post)",
    schedule=None,
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=32,  # each post is a run; most of its life is a deferred wait or a pending approval
    params=form_params(read_picker(), approver_names()),  # both read from Airflow Variables at parse time
    tags=["bridgecast", "posts"],
    doc_md=__doc__,
)
def bridgecast_schedule_post():
    @task(task_display_name="Kiểm tra biểu mẫu")
    def validate_form(params=None, dag_run=None, run_id=None, ti=None) -> list[dict]:
        from bridgecast.posts.tasks import validate_form

        post, items = validate_form(dict(params), dag_run.conf, run_id)
        ti.xcom_push(key="post", value=post)
        return items  # one per channel: publish_post's instances

    @task(task_display_name="Xem trước bài")
    def render_preview(ti=None) -> dict:
        from bridgecast.posts.tasks import render_preview

        return render_preview(ti.xcom_pull(task_ids="validate_form", key="post"))

    approve_post = PostApprovalOperator(
        task_id="approve_post",
        task_display_name="Chờ duyệt",
        # Airflow 3.3 can lose an answer given within a second of the request opening (the executor's report of
        # the parked worker arrives after the resume and fails the task): the retry asks again, before the same
        # deadline. Publishing without an approval cannot happen either way.
        retries=1,
        retry_delay=timedelta(seconds=5),
        subject="{{ ti.xcom_pull(task_ids='render_preview')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='render_preview')['markdown'] }}",
    )

    @task(trigger_rule="all_done", task_display_name="Báo kết quả")
    def notify_staff(ti=None, run_id=None) -> dict:
        from bridgecast.posts.tasks import notify_staff

        results = ti.xcom_pull(task_ids="publish_post", default=None)  # one channel: a dict, several: a list
        return notify_staff(ti.xcom_pull(task_ids="validate_form", key="post"),
                            ti.xcom_pull(task_ids="approve_post", key="decision"),
                            [results] if isinstance(results, dict) else list(results or []), run_id)

    items = validate_form()
    publish = PublishPostOperator.partial(task_id="publish_post", task_display_name="Đăng bài",
                                          map_index_template="{{ task.item['label'] }}", retries=2,
                                          retry_delay=timedelta(seconds=30)).expand(item=items)
    items >> render_preview() >> approve_post >> publish >> notify_staff()


bridgecast_schedule_post()
