"""Ingest: every raw photo, video and recording segment announced by the gateway is validated, cleaned and derived.

Scheduled on the raw assets (no polling). One run takes every event queued since the previous run and cuts it into
a few task-sized batches (`collect_batches`); the batches are processed side by side (`process_batch`), and the
first one's task stays on for uploads that arrive meanwhile — a burst of photos becomes a stream through a few
tasks instead of one run or task per photo. Reruns are no-ops for what is already processed or quarantined.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from bridgecast.ingest.assets import (PROCESSED_PHOTOS_NAME, PROCESSED_PHOTOS_URI, RAW_KINDS, raw_asset_name,
                                      raw_asset_uri)

RAW_ASSETS = [Asset(uri=raw_asset_uri(kind), name=raw_asset_name(kind)) for kind in RAW_KINDS]
PROCESSED_PHOTOS = Asset(uri=PROCESSED_PHOTOS_URI, name=PROCESSED_PHOTOS_NAME)  # the staff form's photo list


@dag(
    dag_id="bridgecast_ingest",
    schedule=RAW_ASSETS[0] | RAW_ASSETS[1] | RAW_ASSETS[2],
    start_date=pendulum.datetime(2020, 5, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=1,  # uploads arriving while a run works are taken by it, or batched into the next run
    max_active_tasks=16,
    tags=["bridgecast"],
    doc_md=__doc__,
)
def bridgecast_ingest():
    @task(inlets=RAW_ASSETS)
    def collect_batches(triggering_asset_events=None, inlet_events=None, dag_run=None) -> list[list[dict]]:
        from bridgecast.ingest.processing import announced, plan_batches, still_to_do
        from bridgecast.storage import Storage

        items = [dict(e.extra) for events in (triggering_asset_events or {}).values() for e in events]
        # Airflow 3.3 ends a run's event window at the *first* event queued for it; events that arrive after
        # that one belong to no run until some later upload comes (apache/airflow#56050). So also take every
        # event announced since this run was triggered: nothing waits, and the next run skips what is done.
        since = dag_run.run_after.isoformat()
        late = [dict(e.extra) for asset in RAW_ASSETS for e in inlet_events[asset].after(since)]
        batches = plan_batches(still_to_do(announced(items + late), Storage.from_connection()))
        print(f"{len(items)} triggering + {len(late)} later asset events → {sum(map(len, batches))} to do "
              f"in {len(batches)} batches")
        return batches

    # Retried soon: while a task waits to retry, the next run waits too (max_active_runs=1).
    @task(inlets=RAW_ASSETS, outlets=[PROCESSED_PHOTOS], queue="media", retries=2,
          retry_delay=pendulum.duration(seconds=15), map_index_template="{{ batch_label }}")
    def process_batch(batch: list[dict], ti=None, dag_run=None, inlet_events=None) -> list[dict]:
        from airflow.sdk import get_current_context

        from bridgecast.event import default_event_path, load_event
        from bridgecast.ingest.processing import batch_label, linger_feed, process_batch
        from bridgecast.storage import Storage

        get_current_context()["batch_label"] = batch_label(batch)  # "16 photo · 5 points" in the grid
        # The first batch's task stays on for uploads that arrive meanwhile: a burst becomes a stream.
        return process_batch(batch, Storage.from_connection(), load_event(default_event_path()).media,
                             feed=linger_feed(ti, dag_run, inlet_events, RAW_ASSETS))

    @task
    def summarize(results: list[list[dict]]) -> dict:
        counts: dict[str, int] = {}
        for batch in results:
            for item in batch:
                counts[item["status"]] = counts.get(item["status"], 0) + 1
        print(counts)
        if counts.get("error"):
            raise RuntimeError(f"{counts['error']} assets failed to process (see process_batch logs); rerun is safe")
        return counts

    summarize(process_batch.expand(batch=collect_batches()))


bridgecast_ingest()
