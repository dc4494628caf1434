"""The gateway's outbox: assets queued together go to Airflow as one asset event, in order, none lost while Airflow
is down. (The e2e ingest tests take the same events through the real api-server and the DAG.)"""
from __future__ import annotations

import time

import pytest

from bridgecast.ingest import notify
from bridgecast.ingest.assets import assets_in, raw_asset_uri
from bridgecast.ingest.notify import AssetNotifier
from bridgecast.ingest.processing import announced


class RecordingAirflow:
    """The two calls the notifier makes of bridgecast.airflow_api.AirflowAPI; `down` refuses them as an
    api-server that is restarting would."""

    def __init__(self):
        self.events: list[tuple[int, dict]] = []
        self.down = False

    def asset_id(self, uri: str) -> int:
        if self.down:
            raise ConnectionError("api-server restarting")
        return {raw_asset_uri(k): n for n, k in enumerate(("photo", "video", "recording"))}[uri]

    def request(self, method: str, path: str, json: dict) -> dict:
        if self.down:
            raise ConnectionError("api-server restarting")
        assert (method, path) == ("POST", "/api/v2/assets/events")
        self.events.append((json["asset_id"], json["extra"]))
        return {}


def _asset(n: int, kind: str = "photo") -> dict:
    sha256 = f"{n:064x}"
    return {"event": "bhxh-vinhphuc-2020", "point": "tam-dao", "kind": kind, "sha256": sha256,
            "key": f"bhxh-vinhphuc-2020/tam-dao/raw/{kind}/2020-06-15T080000_{sha256[:12]}.jpg"}


@pytest.fixture
def airflow():
    return RecordingAirflow()


@pytest.fixture
def notifier(tmp_path, airflow):
    return AssetNotifier(tmp_path / "outbox", lambda: airflow)


def test_a_lone_asset_is_an_event_of_its_own_fields(notifier, airflow):
    notifier.notify("photo", _asset(1))
    assert notifier.flush() == 0
    assert airflow.events == [(0, _asset(1))]
    assert assets_in(airflow.events[0][1]) == [_asset(1)]


def test_what_was_queued_together_is_one_event_per_kind_in_order(notifier, airflow, monkeypatch):
    monkeypatch.setattr(notify, "MAX_ASSETS_PER_EVENT", 4)
    photos = [_asset(n) for n in range(6)]
    for photo in photos[:3]:
        notifier.notify("photo", photo)
    notifier.notify("video", _asset(100, "video"))
    for photo in photos[3:]:
        notifier.notify("photo", photo)
    assert notifier.flush() == 0 and notifier.pending() == 0
    # the video cuts the photos' run: arrival order is kept across kinds; a run is cut at the maximum too
    assert [(asset_id, [a["sha256"][-2:] for a in assets_in(extra)]) for asset_id, extra in airflow.events] == [
        (0, ["00", "01", "02"]), (1, ["64"]), (0, ["03", "04", "05"])]
    assert announced([extra for asset_id, extra in airflow.events if asset_id == 0]) == photos


def test_nothing_is_lost_while_airflow_is_down_and_a_cut_run_stays_whole(notifier, airflow, monkeypatch):
    monkeypatch.setattr(notify, "MAX_ASSETS_PER_EVENT", 2)
    airflow.down = True
    for n in range(5):
        notifier.notify("photo", _asset(n))
    assert notifier.flush() == 5 and airflow.events == []
    airflow.down = False
    assert notifier.flush() == 0
    assert [len(assets_in(extra)) for _, extra in airflow.events] == [2, 2, 1]
    assert announced([extra for _, extra in airflow.events]) == [_asset(n) for n in range(5)]


def test_a_run_reads_batched_single_and_reoffered_events_alike():
    batch = {"assets": [_asset(1), _asset(2)]}
    reoffer = {**_asset(3), "reoffered": True}
    assert announced([batch, _asset(2), reoffer, {"assets": ["not an asset"]}]) == [_asset(1), _asset(2), _asset(3)]


def test_the_first_upload_goes_at_once_and_a_burst_after_it_in_few_events(notifier, airflow, monkeypatch):
    monkeypatch.setattr(notify, "GATHER_S", 2.0)  # long enough that this test's uploads all land inside it
    notifier.start()
    try:
        started = time.monotonic()
        notifier.notify("photo", _asset(0))
        _wait(lambda: len(airflow.events) == 1, 1.0, "the first photo's event")
        assert time.monotonic() - started < 1.0 and airflow.events[0][1] == _asset(0)
        for n in range(1, 11):
            notifier.notify("photo", _asset(n))
        _wait(lambda: notifier.pending() == 0, 5.0, "the burst's events")
    finally:
        notifier.stop()
    assert [len(assets_in(extra)) for _, extra in airflow.events] == [1, 10]


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
