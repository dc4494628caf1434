"""How the ingest DAG cuts asset events into work: batches, the late-arrival feed, and a task staying on for new
uploads. No stack needed: these are the decisions that keep per-task overhead from multiplying with photos."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridgecast.ingest import processing
from bridgecast.ingest.processing import EventFeed, announced, photo_chunk, plan_batches

T0 = datetime(2020, 6, 15, 1, 0, tzinfo=timezone.utc)


def _event(n: int, kind: str = "photo", point: str = "tam-dao") -> dict:
    sha256 = f"{n:064x}"
    return {"event": "bhxh-vinhphuc-2020", "point": point, "kind": kind, "sha256": sha256,
            "key": f"bhxh-vinhphuc-2020/{point}/raw/{kind}/2020-06-15T080000_{sha256[:12]}.jpg"}


def test_a_redelivered_or_foreign_event_is_taken_once_or_not_at_all():
    first, second = _event(1), _event(2)
    events = [first, {**first, "from_rest_api": True}, second, {"note": "posted by hand in the UI"}]
    assert announced(events) == [first, second]  # extra fields dropped: XComs stay small


def test_a_quiet_moment_is_one_batch_and_a_burst_a_few_growing_ones():
    assert [len(b) for b in plan_batches([_event(n) for n in range(10)])] == [10]
    assert photo_chunk(16) == 16 and photo_chunk(100) == 25 and photo_chunk(640) == 64
    burst = plan_batches([_event(n) for n in range(640)])
    assert len(burst) == 10 and {len(b) for b in burst} == {64}


def test_photos_are_dealt_out_so_every_batch_starts_with_the_oldest():
    batches = plan_batches([_event(n) for n in range(40)])
    assert [len(b) for b in batches] == [14, 13, 13]
    assert [b[0]["sha256"] for b in batches] == [_event(n)["sha256"] for n in (0, 1, 2)]
    assert sorted(i["sha256"] for b in batches for i in b) == sorted(_event(n)["sha256"] for n in range(40))


def test_each_video_or_recording_is_a_batch_of_its_own():
    batches = plan_batches([_event(1), _event(2, "recording"), _event(3), _event(4, "video")])
    assert [[i["kind"] for i in b] for b in batches] == [["photo", "photo"], ["recording"], ["video"]]


def test_the_feed_hands_out_each_new_asset_once_and_asks_only_from_the_newest_seen():
    arrived = [(T0 + timedelta(seconds=n), _event(n)) for n in range(3)]
    asked = []

    def fetch(since: str):
        asked.append(since)
        return [(ts, extra) for ts, extra in arrived if ts >= datetime.fromisoformat(since)]

    feed = EventFeed(fetch, T0, skip={_event(0)["sha256"]})  # asset 0 is in another batch of the run
    assert [i["sha256"] for i in feed()] == [_event(1)["sha256"], _event(2)["sha256"]]
    assert feed() == []
    arrived.append((T0 + timedelta(seconds=30), _event(3)))
    assert [i["sha256"] for i in feed()] == [_event(3)["sha256"]]
    assert feed() == []
    # It asks from the newest event seen minus a margin (events commit slightly out of timestamp order),
    # never from before where it started.
    assert [datetime.fromisoformat(s) for s in asked] == [T0, T0, T0, T0 + timedelta(seconds=30) - EventFeed.MARGIN]


@pytest.fixture
def quick_linger(monkeypatch):
    monkeypatch.setattr(processing, "LINGER_POLL_S", 0.01)
    monkeypatch.setattr(processing, "LINGER_IDLE_S", 0.2)
    monkeypatch.setattr(processing, "LINGER_BACKLOG", 3)


def test_the_lingering_task_takes_arrivals_until_none_came_for_a_while(quick_linger):
    arrivals = [[_event(1)], [], [_event(2), _event(3)]]
    done = []

    def feed():
        return arrivals.pop(0) if arrivals else []

    with ThreadPoolExecutor(2) as pool:
        taken = [pool.submit(done.append, _event(0)["sha256"])]
        started = time.monotonic()
        processing._linger(pool, lambda item: done.append(item["sha256"]), taken, feed)
        lingered = time.monotonic() - started
    assert sorted(done) == sorted(_event(n)["sha256"] for n in range(4))
    assert 0.2 <= lingered < 2


def test_the_lingering_task_takes_no_more_while_its_backlog_is_full(quick_linger):
    release, polls = threading.Event(), []

    def slow(item):
        release.wait(5)

    def feed():
        polls.append(time.monotonic())
        return [_event(len(polls) + 10)] if len(polls) == 1 else []

    with ThreadPoolExecutor(1) as pool:
        taken = [pool.submit(slow, _event(n)) for n in range(4)]  # 4 waiting > LINGER_BACKLOG of 3
        runner = threading.Thread(target=processing._linger, args=(pool, slow, taken, feed))
        runner.start()
        time.sleep(0.3)
        assert polls == []  # full: arrivals stay queued in Airflow, in order, for now
        release.set()
        runner.join(5)
    assert not runner.is_alive() and len(polls) >= 1 and len(taken) == 5


def test_an_airflow_api_outage_ends_lingering_without_failing_the_task(quick_linger):
    def feed():
        raise ConnectionError("api-server restarting")

    with ThreadPoolExecutor(1) as pool:
        taken = [pool.submit(lambda: "done")]
        processing._linger(pool, None, taken, feed)  # returns; the next run takes what arrives meanwhile
    assert [f.result() for f in taken] == ["done"]


def test_the_dag_is_scheduled_on_the_raw_assets_one_run_at_a_time():
    from airflow.dag_processing.dagbag import DagBag

    from bridgecast.ingest.assets import RAW_KINDS, raw_asset_uri

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "bridgecast_ingest.py"))
    dag = bag.dags["bridgecast_ingest"]

    def uris(condition) -> set[str]:  # Asset, or any-of (nested) conditions
        return {condition.uri} if hasattr(condition, "uri") else set().union(*map(uris, condition.objects))

    assert uris(dag.timetable.asset_condition) == {raw_asset_uri(k) for k in RAW_KINDS}
    assert dag.max_active_runs == 1
    process = dag.get_task("process_batch")
    assert {a.uri for a in process.inlets} == {raw_asset_uri(k) for k in RAW_KINDS}  # the late-arrival feed
    assert process.retries == 2 and process.retry_delay <= timedelta(seconds=30)
