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


def test_each_team_video_is_a_batch_of_its_own_ahead_of_the_recording_segments():
    batches = plan_batches([_event(1), _event(2, "recording"), _event(3), _event(4, "video")])
    assert [[i["kind"] for i in b] for b in batches] == [["photo", "photo"], ["video"], ["recording"]]


def test_the_segments_every_point_closes_together_are_a_few_batches_in_arrival_order():
    """64 points' segments close at the same moment: a handful of tasks, not 64 task start-ups in a row."""
    segments = [_event(n, "recording", point=f"p{n:02d}") for n in range(64)]
    batches = plan_batches(segments[:40] + [_event(99, "video")] + segments[40:])
    assert [len(b) for b in batches] == [1, 16, 16, 16, 16]
    assert batches[0][0]["kind"] == "video"
    assert [i["sha256"] for b in batches[1:] for i in b] == [s["sha256"] for s in segments]


def test_a_batch_processes_recording_segments_in_the_background_and_team_videos_and_photos_not(monkeypatch):
    """The archive remux of the segments yields the CPU to the wrap-up, which runs beside it at the event's end."""
    from media.run import BACKGROUND_NICENESS, background_niceness

    seen = {}

    def process_one(item, work, storage, manifests, policy):
        seen[item["kind"]] = background_niceness()
        return {"key": item["key"], "status": "processed"}

    monkeypatch.setattr(processing, "_process_one", process_one)
    batch = [_event(1, "recording"), _event(2, "video"), _event(3, "photo")]
    assert [r["status"] for r in processing.process_batch(batch, storage=None, policy=None, workers=1)] == \
        ["processed"] * 3
    assert seen == {"recording": BACKGROUND_NICENESS, "video": 0, "photo": 0}


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


DAGS = Path(__file__).resolve().parents[2] / "dags"


def _ingest_dags():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS / "bridgecast_ingest.py")).dags


def _uris(condition) -> set[str]:
    """The asset URIs a schedule waits on: an Asset, any-of (nested) conditions, or none (a time schedule)."""
    if hasattr(condition, "uri"):
        return {condition.uri}
    return set().union(*map(_uris, getattr(condition, "objects", ())))


def test_each_lane_is_scheduled_only_on_its_own_raw_assets_one_run_at_a_time():
    """Photos have a lane of their own: a team video or recording segment in work never holds them."""
    from bridgecast.ingest.assets import INGEST_LANES, PROCESSED_PHOTOS_URI, RAW_KINDS, raw_asset_uri

    dags = _ingest_dags()
    assert INGEST_LANES == {"bridgecast_ingest": ("photo",), "bridgecast_ingest_video": ("video", "recording")}
    assert sorted(k for kinds in INGEST_LANES.values() for k in kinds) == sorted(RAW_KINDS)
    for dag_id, kinds in INGEST_LANES.items():
        dag, own = dags[dag_id], {raw_asset_uri(k) for k in kinds}
        assert _uris(dag.timetable.asset_condition) == own, dag_id
        assert dag.max_active_runs == 1
        # the late events (collect_batches) and the lingering task's feed (process_batch) read only the lane's own
        assert {a.uri for a in dag.get_task("collect_batches").inlets} == own, dag_id
        process = dag.get_task("process_batch")
        assert {a.uri for a in process.inlets} == own, dag_id
        # A storage outage of a few minutes is outlived by the retries (backoff), not turned into stuck photos.
        assert process.retries >= 5 and process.retry_delay <= timedelta(seconds=30)
        assert process.retry_exponential_backoff and process.max_retry_delay >= timedelta(minutes=1)
        waits = sum(min(process.retry_delay.total_seconds() * 2 ** n, process.max_retry_delay.total_seconds())
                    for n in range(process.retries))
        assert waits >= 5 * 60
    photos, videos = (dags[d].get_task("process_batch") for d in ("bridgecast_ingest", "bridgecast_ingest_video"))
    assert [a.uri for a in photos.outlets] == [PROCESSED_PHOTOS_URI] and videos.outlets == []  # the staff form's list
    assert videos.max_active_tis_per_dag == 1 and photos.max_active_tis_per_dag is None  # a media slot for photos


def test_every_raw_kind_schedules_exactly_one_dag_so_the_sweeps_re_offer_reaches_its_lane():
    from airflow.dag_processing.dagbag import DagBag

    from bridgecast.ingest.assets import RAW_KINDS, ingest_dag_of, raw_asset_uri

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    for kind in RAW_KINDS:
        scheduled = [dag_id for dag_id, dag in bag.dags.items()
                     if raw_asset_uri(kind) in _uris(getattr(dag.timetable, "asset_condition", None))]
        assert scheduled == [ingest_dag_of(kind)], kind


def test_each_lanes_collect_takes_only_its_own_kinds_late_events(monkeypatch):
    """Events announced after a run was triggered are read from the lane's own assets only: a video announced
    while photos are collected stays for the video lane (and the other way round)."""
    from types import SimpleNamespace

    from bridgecast.ingest.assets import INGEST_LANES, RAW_KINDS, raw_asset_uri
    from bridgecast.storage import Storage

    monkeypatch.setattr(processing, "still_to_do", lambda items, storage: items)  # no storage here: nothing done
    monkeypatch.setattr(Storage, "from_connection", classmethod(lambda cls: None))
    late = {raw_asset_uri(kind): _event(n, kind) for n, kind in enumerate(RAW_KINDS)}

    class InletEvents:  # what Airflow hands a task: only its inlets' events can be read
        def __init__(self, inlets):
            self.inlets = {a.uri for a in inlets}

        def __getitem__(self, asset):
            assert asset.uri in self.inlets, f"{asset.uri} is not an inlet of the task"
            return SimpleNamespace(after=lambda since: [SimpleNamespace(extra=late[asset.uri])])

    dags = _ingest_dags()
    for dag_id, kinds in INGEST_LANES.items():
        collect = dags[dag_id].get_task("collect_batches")
        batches = collect.python_callable(triggering_asset_events={}, inlet_events=InletEvents(collect.inlets),
                                          dag_run=SimpleNamespace(run_after=T0))
        assert sorted(i["kind"] for b in batches for i in b) == sorted(kinds), dag_id


def test_preflight_is_a_no_go_while_either_lane_is_paused(monkeypatch):
    from bridgecast import airflow_api
    from bridgecast.ingest.assets import INGEST_LANES
    from bridgecast.launch import preflight

    assert list(preflight.INGEST_DAGS) == list(INGEST_LANES)  # the launch names the lanes without importing ingest
    paused = {"bridgecast_ingest": False, "bridgecast_ingest_video": True}

    class API:
        def dag(self, dag_id):
            return {"is_paused": paused[dag_id]}

    monkeypatch.setattr(airflow_api.AirflowAPI, "from_connection", classmethod(lambda cls: API()))
    check = preflight._ingest_dag_check()
    assert not check["ok"] and check["detail"].startswith("bridgecast_ingest_video is PAUSED")
    assert "bridgecast_ingest " not in check["detail"] and "videos and recordings are not processed" in check["detail"]
    paused["bridgecast_ingest_video"] = False
    assert preflight._ingest_dag_check() == {"ok": True, "detail": "bridgecast_ingest and bridgecast_ingest_video active"}


def test_a_sweep_re_offers_stuck_assets_every_few_minutes():
    sweep = _ingest_dags()["bridgecast_ingest_sweep"]
    assert sweep.timetable.delta <= timedelta(minutes=10) and sweep.max_active_runs == 1
    assert 0 < sweep.params["older_than_minutes"] <= 30
    assert [t.task_id for t in sweep.tasks] == ["reoffer_stuck"]


# --- what fails a batch (retried by Airflow) and what only quarantines one file -------------------------------------
def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


def test_storage_outages_throttling_and_resets_are_transient_and_missing_or_refused_objects_are_not():
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    from bridgecast.storage import is_transient

    transient = [EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                 ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
                 ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ConnectionResetError(104, "reset by peer"),
                 _client_error("SlowDown", 503), _client_error("InternalError", 500),
                 _client_error("ServiceUnavailable", 503), _client_error("Whatever", 502)]
    permanent = [_client_error("NoSuchKey", 404), _client_error("AccessDenied", 403),
                 _client_error("InvalidRequest", 400), ValueError("not storage")]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in permanent] == [False] * len(permanent)


def _unreachable_storage():
    """A real S3 client aimed at a port nothing listens on: what the ingest sees while SeaweedFS is down."""
    import socket

    import boto3
    from botocore.config import Config

    from bridgecast.storage import Storage

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the probe goes: connections are refused
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=1))
    return Storage(client, "bridgecast")


def test_a_storage_outage_fails_the_batch_for_a_retry_and_stops_taking_more_work():
    from bridgecast.event import load_event

    media = load_event(Path(__file__).resolve().parents[2] / "config" / "event.yaml").media
    storage = _unreachable_storage()
    started = time.monotonic()
    with pytest.raises(processing.IngestRetry) as failed:
        processing.process_batch([_event(n) for n in range(40)], storage, media, workers=2)
    single = time.monotonic()
    with pytest.raises(processing.IngestRetry):
        processing.process_batch([_event(0)], storage, media, workers=1)
    one_failure = time.monotonic() - single
    assert "40 of 40 assets not processed yet" in str(failed.value) and "EndpointConnectionError" in str(failed.value)
    # The first failures stop the batch: the other photos wait for the retry, not each for the same timeouts.
    assert single - started < 4 * one_failure + 1
