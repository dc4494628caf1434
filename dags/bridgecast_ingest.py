"""Ingest: every raw photo, video and recording segment announced by the gateway is validated, cleaned and derived.

Two lanes, each a DAG scheduled on its own raw assets (no polling) and running one run at a time:
`bridgecast_ingest` takes photos (seconds each, what staff wait for on the form) and `bridgecast_ingest_video`
team videos and recording segments (minutes each) — so a long video in work never holds the photos sent meanwhile.
One run takes every event of its lane queued since the previous run and cuts it into a few task-sized batches
(`collect_batches`); the batches are processed side by side (`process_batch`), and the first one's task stays on for
uploads that arrive meanwhile — a burst of photos becomes a stream through a few tasks instead of one run or task
per photo. Reruns are no-ops for what is already processed or quarantined.

A batch hit by storage being down fails and is retried with backoff; `bridgecast_ingest_sweep` (below) re-offers,
every few minutes, whatever is still waiting after that — so an outage delays photos, never strands them.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetAny, Param, dag, task

from bridgecast.ingest.assets import (INGEST_LANES, PROCESSED_PHOTOS_NAME, PROCESSED_PHOTOS_URI, raw_asset_name,
                                      raw_asset_uri)

PROCESSED_PHOTOS = Asset(uri=PROCESSED_PHOTOS_URI, name=PROCESSED_PHOTOS_NAME)  # the staff form's photo list
# The sweep: every few minutes, assets still `received` after STUCK_AFTER_MIN (a photo takes seconds, a long
# video minutes — re-offering one still in work only costs a skipped duplicate) are announced again.
SWEEP_EVERY_MIN, STUCK_AFTER_MIN = 5, 15


def ingest_lane(dag_id: str, kinds: tuple[str, ...], outlets: list[Asset], media_tasks: int | None = None):
    """One lane: a DAG scheduled on the raw assets of `kinds` that takes only their events. `media_tasks` caps its
    process_batch tasks in work at once (None: no cap of its own)."""
    raw_assets = [Asset(uri=raw_asset_uri(kind), name=raw_asset_name(kind)) for kind in kinds]

    @dag(
        dag_id=dag_id,
        schedule=AssetAny(*raw_assets),
        start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
        catchup=False,
        max_active_runs=1,  # uploads arriving while a run works are taken by it, or batched into the lane's next run
        max_active_tasks=16,
        tags=["bridgecast"],
        doc_md=__doc__,
    )
    def lane():
        @task(inlets=raw_assets)
        def collect_batches(triggering_asset_events=None, inlet_events=None, dag_run=None) -> list[list[dict]]:
            from bridgecast.ingest.processing import announced, plan_batches, still_to_do
            from bridgecast.storage import Storage

            items = [dict(e.extra) for events in (triggering_asset_events or {}).values() for e in events]
            # Airflow 3.3 ends a run's event window at the *first* event queued for it; events that arrive after
            # that one belong to no run until some later upload comes (apache/airflow#56050). So also take every
            # event of this lane announced since this run was triggered: nothing waits, and the next run skips
            # what is done.
            since = dag_run.run_after.isoformat()
            late = [dict(e.extra) for asset in raw_assets for e in inlet_events[asset].after(since)]
            batches = plan_batches(still_to_do(announced(items + late), Storage.from_connection()))
            print(f"{len(items)} triggering + {len(late)} later asset events → {sum(map(len, batches))} to do "
                  f"in {len(batches)} batches")
            return batches

        # A batch fails only on what is not its files' fault (storage down, this machine): retried with backoff —
        # 10, 20, 40, 80, 120, 120 s, so a storage outage of several minutes costs waiting, not photos. While a task
        # waits to retry, the lane's next run waits too (max_active_runs=1); what outlives the retries, the sweep
        # re-offers.
        @task(inlets=raw_assets, outlets=outlets, queue="media", retries=6, max_active_tis_per_dag=media_tasks,
              retry_delay=pendulum.duration(seconds=10), retry_exponential_backoff=2.0,
              max_retry_delay=pendulum.duration(minutes=2), map_index_template="{{ batch_label }}")
        def process_batch(batch: list[dict], ti=None, dag_run=None, inlet_events=None) -> list[dict]:
            from airflow.sdk import get_current_context

            from bridgecast.event import default_event_path, load_event
            from bridgecast.ingest.processing import batch_label, linger_feed, process_batch
            from bridgecast.storage import Storage

            get_current_context()["batch_label"] = batch_label(batch)  # "16 photo · 5 points" in the grid
            # The first batch's task stays on for uploads of this lane that arrive meanwhile: a burst becomes a
            # stream.
            return process_batch(batch, Storage.from_connection(), load_event(default_event_path()).media,
                                 feed=linger_feed(ti, dag_run, inlet_events, raw_assets))

        @task
        def summarize(results: list[list[dict]]) -> dict:
            counts: dict[str, int] = {}
            for batch in results:
                for item in batch:
                    counts[item["status"]] = counts.get(item["status"], 0) + 1
            print(counts)
            if counts.get("error"):
                raise RuntimeError(f"{counts['error']} assets failed to process (see process_batch logs); rerun is "
                                   "safe")
            return counts

        summarize(process_batch.expand(batch=collect_batches()))

    return lane()


# Photos: what a photo batch ends may be new on the staff form's photo list.
ingest_lane("bridgecast_ingest", INGEST_LANES["bridgecast_ingest"], outlets=[PROCESSED_PHOTOS])
# Videos and recording segments: one task in work at a time (a lingering one still takes new arrivals in its
# threads), so a media slot always stays free for photos — the Celery media worker has two.
ingest_lane("bridgecast_ingest_video", INGEST_LANES["bridgecast_ingest_video"], outlets=[], media_tasks=1)


@dag(
    dag_id="bridgecast_ingest_sweep",
    schedule=pendulum.duration(minutes=SWEEP_EVERY_MIN),
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=1,
    params={"older_than_minutes": Param(STUCK_AFTER_MIN, type="number", minimum=0,
                                        description="re-offer assets still 'received' after this many minutes")},
    tags=["bridgecast"],
    doc_md="""Re-offer what ingest left behind: every asset of the event whose manifest is still `received` and
untouched for `older_than_minutes` (an outage that outlived the retries, an asset event no run took) is announced
again on its raw asset, so its lane processes it (`bridgecast_ingest` for photos, `bridgecast_ingest_video` for
videos and recordings). Safe to run any time: processed keys are content-addressed and a manifest reaches its final
state once.""",
)
def bridgecast_ingest_sweep():
    @task(retries=2, retry_delay=pendulum.duration(seconds=30))
    def reoffer_stuck(params=None) -> int:
        from datetime import timedelta

        from bridgecast.airflow_api import AirflowAPI
        from bridgecast.event import default_event_path, load_event
        from bridgecast.ingest.processing import stuck_manifests
        from bridgecast.storage import Storage

        event = load_event(default_event_path())
        stuck = stuck_manifests(Storage.from_connection(), event.id,
                                timedelta(minutes=float(params["older_than_minutes"])))
        api = AirflowAPI.from_connection()
        for item in stuck:
            print(f"re-offering {item['key']} (still received)")
            api.create_asset_event(raw_asset_uri(item["kind"]), {**item, "reoffered": True})
        print(f"{len(stuck)} assets re-offered")
        return len(stuck)

    reoffer_stuck()


bridgecast_ingest_sweep()
