"""The launch morning, from config/event.yaml: preflight → live setup → go-live at T0 → monitor → wrap-up.

T-60  preflight: every point's test stream, channels, storage, disks → go/no-go table (no-go points alerted)
T-30  live setup: the fanpage live video is created, the program feed is relayed to it (preview)
T0    go live, exactly: the go-live call's time is recorded; points are marked live as they are seen
T+end end the live; per point a highlight from its recording; the recap; galleries; portal article, fanpage
      post and press kit — each published exactly once through the ledger; a summary of the morning.

A rehearsal is the same DAG on a rehearsal event (`conf.event_key`: the event YAML that `./bridgecast rehearsal`
puts in S3; `conf.event_file` takes a path instead).
One point failing never fails the others; any task can be cleared and rerun from the UI (the ledger makes
publishing idempotent).
"""
from __future__ import annotations

import pendulum
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import dag, task
from airflow.timetables.events import EventsTimetable

from bridgecast.event import default_event_path, load_event

EVENT = load_event(default_event_path())
PREFLIGHT_AT = pendulum.instance(EVENT.start).subtract(minutes=EVENT.stages.preflight_before_min)


def _plan_field(name: str) -> str:
    return "{{ ti.xcom_pull(task_ids='plan_launch')['" + name + "'] }}"


@dag(
    dag_id="bridgecast_launch",
    # A one-off morning: the run starts at the preflight stage; catch-up off so a past event never replays.
    schedule=EventsTimetable(event_dates=[PREFLIGHT_AT], restrict_to_events=True, description="launch preflight"),
    start_date=PREFLIGHT_AT.subtract(days=1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=64,
    tags=["bridgecast", "launch"],
    doc_md=__doc__,
)
def bridgecast_launch():
    @task
    def plan_launch(dag_run=None) -> dict:
        from bridgecast.launch.plan import make_plan
        from bridgecast.run_event import event_for_run

        return make_plan(*event_for_run(dag_run.conf))

    plan = plan_launch()

    # --- T-60: preflight ---------------------------------------------------------------------------------
    wait_preflight = DateTimeSensorAsync(task_id="wait_for_preflight", target_time=_plan_field("preflight_at"))

    @task
    def point_list(plan: dict) -> list[dict]:
        return [{**p, "event_id": plan["event_id"], "event_key": plan["event_key"]} for p in plan["points"]]

    @task(map_index_template="{{ task.op_kwargs['point']['name'] }}")
    def check_stream(point: dict) -> dict:
        from bridgecast.launch.observe import IngestObserver
        from bridgecast.launch.preflight import check_point

        return check_point(IngestObserver.from_connection(), point["event_id"], point)

    @task
    def check_channels(plan: dict) -> dict:
        from bridgecast.launch.tasks import check_channels

        return check_channels(plan)

    @task(trigger_rule="all_done")
    def report_preflight(plan: dict, points: list[dict], channels: dict) -> dict:
        from bridgecast.launch.tasks import report_preflight

        return report_preflight(plan, points, channels)

    points = point_list(plan)
    stream_checks = check_stream.expand(point=points)
    channel_checks = check_channels(plan)
    wait_preflight >> [points, channel_checks]
    preflight = report_preflight(plan, stream_checks, channel_checks)
    # The stage sensors read their target time from the plan's XCom: they must wait for it.
    plan >> wait_preflight

    # --- T-30: live setup ----------------------------------------------------------------------------------
    wait_setup = DateTimeSensorAsync(task_id="wait_for_live_setup", target_time=_plan_field("live_setup_at"),
                                     trigger_rule="all_done")

    @task
    def create_live_video(plan: dict) -> dict:
        from bridgecast.launch.tasks import create_live_video

        return create_live_video(plan)

    @task(queue="media")
    def relay_program_feed(plan: dict, live: dict) -> dict:
        from bridgecast.launch.tasks import relay_program_feed

        return relay_program_feed(plan, live)

    [plan, preflight] >> wait_setup
    live = create_live_video(plan)
    wait_setup >> live
    relay = relay_program_feed(plan, live)

    # --- T0: go live -----------------------------------------------------------------------------------------
    # all_done: the points go live at T0 even if the fanpage live could not be set up.
    wait_t0 = DateTimeSensorAsync(task_id="wait_for_t0", target_time=_plan_field("golive_wake_at"),
                                  trigger_rule="all_done")

    @task
    def go_live(plan: dict, live: dict) -> dict:
        from bridgecast.launch.tasks import go_live

        return go_live(plan, live)

    @task
    def monitor_points(plan: dict) -> dict:
        from bridgecast.launch.tasks import monitor_points

        return monitor_points(plan)

    [plan, live] >> wait_t0
    went_live = go_live(plan, live)
    monitoring = monitor_points(plan)
    wait_t0 >> [went_live, monitoring]

    # --- T+end: wrap-up, which starts at the end whatever happened before ---------------------------------------
    wait_end = DateTimeSensorAsync(task_id="wait_for_end", target_time=_plan_field("end_at"),
                                   trigger_rule="all_done")
    [plan, wait_t0] >> wait_end

    @task(trigger_rule="all_done")
    def end_live_video(plan: dict, live: dict) -> dict:
        from bridgecast.launch.tasks import end_live_video

        return end_live_video(plan, live)

    @task(queue="media", map_index_template="{{ task.op_kwargs['point']['name'] }}", trigger_rule="all_done")
    def build_highlight(point: dict, monitor: dict) -> dict | None:
        from bridgecast.launch.tasks import build_highlight

        return build_highlight(point, monitor)

    @task(queue="media", trigger_rule="all_done")
    def build_recap(plan: dict, highlights: list[dict | None]) -> dict:
        from bridgecast.launch.tasks import build_recap

        return build_recap(plan, highlights)

    @task(trigger_rule="all_done")
    def build_galleries(plan: dict) -> dict:
        from bridgecast.launch.tasks import build_galleries

        return build_galleries(plan)

    @task(queue="media", trigger_rule="all_done")
    def build_vertical_recap(plan: dict, recap: dict) -> dict:
        from bridgecast.launch.tasks import build_vertical_recap

        return build_vertical_recap(plan, recap)

    # Publishing tasks run even when something upstream failed (a recap without two points is still news) and
    # are safe to clear and rerun: the ledger returns what was already published.
    @task(trigger_rule="all_done", retries=2)
    def publish_portal_article(plan: dict, recap: dict, galleries: dict) -> dict:
        from bridgecast.launch.tasks import publish_portal_article

        return publish_portal_article(plan, recap, galleries)

    @task(trigger_rule="all_done", retries=2)
    def publish_fanpage_post(plan: dict, recap: dict, galleries: dict) -> list[dict]:
        from bridgecast.launch.tasks import publish_fanpage_post

        return publish_fanpage_post(plan, recap, galleries)

    @task(trigger_rule="all_done", retries=2)
    def send_press_kit(plan: dict, recap: dict, galleries: dict, article: dict) -> dict:
        from bridgecast.launch.tasks import send_press_kit

        return send_press_kit(plan, recap, galleries, article)

    @task(trigger_rule="all_done")
    def write_summary(plan: dict, preflight: dict, went_live: dict, monitor: dict, recap: dict,
                      galleries: dict) -> dict:
        from bridgecast.launch.tasks import write_summary

        return write_summary(plan, preflight, went_live, monitor, recap, galleries)

    ended = end_live_video(plan, live)
    [wait_end, monitoring, relay, went_live] >> ended  # never end a live that go-live has not finished with
    highlights = build_highlight.partial(monitor=monitoring).expand(point=points)
    wait_end >> highlights
    recap = build_recap(plan, highlights)
    build_vertical_recap(plan, recap)
    galleries = build_galleries(plan)
    wait_end >> galleries
    article = publish_portal_article(plan, recap, galleries)
    published = [article, publish_fanpage_post(plan, recap, galleries),
                 send_press_kit(plan, recap, galleries, article)]
    summary = write_summary(plan, preflight, went_live, monitoring, recap, galleries)
    published >> summary


bridgecast_launch()
