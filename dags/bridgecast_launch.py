"""The launch morning, from config/event.yaml: preflight → live setup → go-live at T0 → monitor → wrap-up.

T-60  preflight: every point's test stream, channels, storage, disks → go/no-go table (no-go points alerted)
T-30  live setup: the fanpage live video is created, the program feed is relayed to it (preview)
T0    go live, exactly: the go-live call's time is recorded; points are marked live as they are seen
T+end end the live; per point a highlight (a task per batch of points); the recap; galleries; portal article,
      fanpage post and press kit, each published exactly once through the ledger; a summary of the morning.

Staff steer the morning from the board (go live now, postpone T0, switch the program point, end early:
`bridgecast.steering`): the stage waits and the event-long tasks read what is in force; the plan is never rewritten.

A rehearsal runs this DAG on its own event (`conf.event_key`: an event YAML in S3; `conf.event_file`: a path). One
point failing never fails the others; any task can be cleared and rerun from the UI. Each task's code is the
function of the same name in `bridgecast.launch.<stage>`.
"""
from __future__ import annotations

import importlib

import pendulum
from airflow.sdk import dag, task
# Not airflow.sdk's EventsTimetable: in Airflow 3.3.2 its encoder leaves out `_summary`, which the scheduler's
# decoder requires, so the dag-processor fails with "Failed to serialize DAG" (tests/dags checks the round trip).
from airflow.timetables.events import EventsTimetable

from bridgecast.alerts.mail import TaskFailedNotifier
from bridgecast.event import default_event_path, load_event
from bridgecast.stage_waits import StageWait

EVENT = load_event(default_event_path())
PREFLIGHT_AT = pendulum.instance(EVENT.start).subtract(minutes=EVENT.stages.preflight_before_min)


def launch(stage: str):
    """`bridgecast.launch.<stage>`, imported when a task runs: task code stays out of DAG parsing."""
    return importlib.import_module(f"bridgecast.launch.{stage}")


def wait_until(task_id: str, **options) -> StageWait:
    """A deferred wait for a stage time of the run's plan as staff have steered it (after plan_launch, whose XCom
    it reads); the board's go-live-now and end-early clear these waits by their ids."""
    return StageWait(task_id=task_id, **options)


@dag(
    dag_id="bridgecast_launch",
    # A one-off morning: the run starts at the preflight stage; catch-up off so a past event never replays.
    schedule=EventsTimetable(event_dates=[PREFLIGHT_AT], restrict_to_events=True, description="launch preflight"),
    start_date=PREFLIGHT_AT.subtract(days=1), catchup=False, max_active_runs=1, max_active_tasks=64,
    tags=["bridgecast", "launch"], doc_md=__doc__,
)
def bridgecast_launch():
    @task
    def plan_launch(dag_run=None) -> dict:
        return launch("plan").plan_launch(dag_run.conf)
    plan = plan_launch()

    # --- T-60: preflight ------------------------------------------------------------------------------------------
    @task
    def point_list(plan: dict) -> list[dict]:
        return plan["points"]
    @task(map_index_template="{{ task.op_kwargs['point']['name'] }}")
    def check_stream(plan: dict, point: dict) -> dict:
        return launch("preflight").check_stream(plan, point)
    @task
    def check_channels(plan: dict) -> dict:
        return launch("preflight").check_channels(plan)
    @task(trigger_rule="all_done")
    def report_preflight(plan: dict, points: list[dict], channels: dict) -> dict:
        return launch("preflight").report_preflight(plan, points, channels)

    points, channels = point_list(plan), check_channels(plan)
    plan >> wait_until("wait_for_preflight") >> [points, channels]
    preflight = report_preflight(plan, check_stream.partial(plan=plan).expand(point=points), channels)

    # --- T-30: live setup (all_done from here on: each stage starts at its time whatever failed before) -----------
    @task(on_failure_callback=TaskFailedNotifier("không tạo được video trực tiếp trên fanpage"))
    def create_live_video(plan: dict) -> dict:
        return launch("live").create_live_video(plan)
    # event-long: on the live queue (a Celery slot of its own), never a media slot; a failure is mailed once
    @task(queue="live", on_failure_callback=TaskFailedNotifier("fanpage không nhận được tín hiệu chương trình"))
    def relay_program_feed(plan: dict, live: dict) -> dict:
        return launch("live").relay_program_feed(plan, live)

    live = create_live_video(plan)
    [plan, preflight] >> wait_until("wait_for_live_setup", trigger_rule="all_done") >> live
    relay = relay_program_feed(plan, live)

    # --- T-5: the second go/no-go (each point as the ingest sees it now; the launch DAG armed) ------------------
    @task(trigger_rule="all_done")
    def final_check(plan: dict) -> dict:
        return launch("preflight").final_check(plan)
    [plan, live] >> wait_until("wait_for_final_check", trigger_rule="all_done") >> \
        final_check(plan)

    # --- T0: the wait wakes 20 s early, go_live sleeps the rest precisely; the points go live even without a live
    @task(on_failure_callback=TaskFailedNotifier("fanpage không lên sóng đúng giờ G"))
    def go_live(plan: dict, live: dict) -> dict:
        return launch("live").go_live(plan, live)
    @task(queue="live")  # event-long, like the relay
    def monitor_points(plan: dict) -> dict:
        return launch("monitor").monitor_points(plan)

    wait_t0 = wait_until("wait_for_t0", trigger_rule="all_done")
    went_live, monitoring = go_live(plan, live), monitor_points(plan)
    [plan, live] >> wait_t0 >> [went_live, monitoring]

    # --- T+end: wrap-up. Publishing is safe to clear and rerun: the ledger returns what was already published ------
    @task(trigger_rule="all_done")
    def end_live_video(plan: dict, live: dict) -> dict:
        return launch("live").end_live_video(plan, live)
    @task(trigger_rule="all_done")
    def highlight_batches(points: list[dict]) -> list[list[dict]]:
        return launch("wrapup").highlight_batches(points)
    @task(queue="media", map_index_template="{{ task.op_kwargs['points'] | map(attribute='name') | join(', ') }}",
          trigger_rule="all_done")
    def build_highlights(plan: dict, points: list[dict]) -> list[dict | None]:
        return launch("wrapup").build_highlights(plan, points)
    @task(queue="media", trigger_rule="all_done")
    def build_recap(plan: dict, highlights: list[list[dict | None]]) -> dict:
        return launch("wrapup").build_recap(plan, highlights)
    @task(queue="media", trigger_rule="all_done")
    def build_vertical_recap(plan: dict, recap: dict) -> dict:  # a full re-encode: beside the publishing
        return launch("wrapup").build_vertical_recap(plan, recap)
    @task(trigger_rule="all_done")
    def build_galleries(plan: dict) -> dict:
        return launch("wrapup").build_galleries(plan)
    @task(trigger_rule="all_done", retries=2)
    def publish_portal_article(plan: dict, recap: dict, galleries: dict) -> dict:
        return launch("publishing").publish_portal_article(plan, recap, galleries)
    @task(trigger_rule="all_done", retries=2)
    def publish_fanpage_post(plan: dict, recap: dict, galleries: dict) -> list[dict]:
        return launch("publishing").publish_fanpage_post(plan, recap, galleries)
    @task(trigger_rule="all_done", retries=2)
    def send_press_kit(plan: dict, recap: dict, galleries: dict, article: dict) -> dict:
        return launch("publishing").send_press_kit(plan, recap, galleries, article)
    @task(trigger_rule="all_done")
    def write_summary(plan: dict, preflight: dict, went_live: dict, monitor: dict, recap: dict, galleries: dict):
        return launch("summary").write_summary(plan, preflight, went_live, monitor, recap, galleries)

    wait_end = wait_until("wait_for_end", trigger_rule="all_done")
    [plan, wait_t0] >> wait_end
    [wait_end, monitoring, relay, went_live] >> end_live_video(plan, live)  # never end a live go-live still uses
    batches = highlight_batches(points)
    highlights = build_highlights.partial(plan=plan).expand(points=batches)
    [wait_end, monitoring] >> batches
    recap, galleries = build_recap(plan, highlights), build_galleries(plan)
    wait_end >> galleries
    build_vertical_recap(plan, recap)
    article = publish_portal_article(plan, recap, galleries)
    published = [article, publish_fanpage_post(plan, recap, galleries), send_press_kit(plan, recap, galleries, article)]
    published >> write_summary(plan, preflight, went_live, monitoring, recap, galleries)


bridgecast_launch()
