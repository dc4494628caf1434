"""Stream-key auth lives in the gateway: publishing works while Airflow's api-server is down, asset events wait in
the outbox and drain once it is back; a revoked key stops working at once and its replacement works."""
from __future__ import annotations

import sys
import time

import pytest
import requests
from ingest_testkit import EVENT_ID, publish_test_stream, wait_for

from bridgecast.ingest.assets import RAW_KINDS, assets_in, raw_asset_uri

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

DRAIN_WITHIN_S = 60


def _segments(gateway, point_id: str) -> list[dict]:
    point = gateway.live_point(point_id)
    return point["segments"] if point else []


def test_publish_is_accepted_and_recorded_while_airflow_is_down_and_the_outbox_drains_after(
        stack, gateway, storage, airflow_api):
    point = "vinh-phuc"
    api_server = next(s for s in stack.services() if s.name == "airflow-api-server")
    segments_before = len(_segments(gateway, point))

    assert api_server.stop()
    try:
        assert not api_server.running()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{stack.layout.ports.airflow}/api/v2/monitor/health", timeout=5)

        published = publish_test_stream(stack, point, gateway.keys(point)["stream_key"], seconds=4)
        assert published.returncode == 0, published.stderr

        def new_segment_stored():
            live = gateway.live_point(point)
            if live and live["finished"] and len(live["segments"]) > segments_before:
                return live["segments"][-1]
            return None

        segment = wait_for(new_segment_stored, timeout_s=60, what="the recording segment to reach S3")
        assert segment["file"].startswith(f"{point}-") and segment["key"].startswith(
            f"{EVENT_ID}/{point}/raw/recording/")
        assert storage.head(segment["key"])["ContentLength"] == segment["size"] > 10_000
        # Airflow is unreachable, so the recording's asset event must be waiting in the gateway's outbox.
        assert gateway.healthz()["asset_events_queued"] > 0
    finally:
        api_server.start()  # whatever happened above, leave the stack whole for the tests after this one
    back_at = time.monotonic()

    def drained():
        return gateway.healthz()["asset_events_queued"] == 0

    deadline_what = f"the gateway outbox to drain within {DRAIN_WITHIN_S}s of the api-server's return"
    try:
        wait_for(drained, timeout_s=DRAIN_WITHIN_S, interval_s=1, what=deadline_what)
    except pytest.fail.Exception:
        unknown = []
        for kind in RAW_KINDS:
            try:
                airflow_api.asset_id(raw_asset_uri(kind))
            except Exception:
                unknown.append(raw_asset_uri(kind))
        hint = f"; assets unknown to Airflow: {unknown} (is dags/bridgecast_ingest.py parsed?)" if unknown else ""
        pytest.fail(f"{deadline_what} — still {gateway.healthz()['asset_events_queued']} queued{hint}")
    print(f"\noutbox drained {time.monotonic() - back_at:.1f}s after the api-server was ready again", file=sys.stderr)

    recording_asset = airflow_api.asset_id(raw_asset_uri("recording"))
    events = airflow_api.request("GET", "/api/v2/assets/events", params={
        "asset_id": recording_asset, "order_by": "-timestamp", "limit": 100})["asset_events"]
    assert [item for e in events for item in assets_in(e.get("extra") or {}) if item.get("key") == segment["key"]]


@pytest.mark.parametrize("case", ["wrong key", "no key", "another point's key"])
def test_a_publish_without_the_points_own_key_is_refused_and_nothing_is_recorded(stack, gateway, case):
    point = "yen-lac"
    key = {"wrong key": "khong-phai-khoa-that-0123456789", "no key": None,
           "another point's key": gateway.keys("song-lo")["stream_key"]}[case]
    before = gateway.live_point(point)

    refused = publish_test_stream(stack, point, key, seconds=2)
    assert refused.returncode != 0, f"nginx let a publish with {case} through"
    assert "Input/output error" in refused.stderr  # dropped by nginx after on_publish said no (not unreachable)
    # nginx dropped the connection before any media: no live session, no recording segment for the point.
    assert gateway.live_point(point) == before
    assert not list((stack.layout.recordings / "live").glob(f"{point}-*.flv"))


def test_a_revoked_stream_key_is_refused_and_its_replacement_accepted(stack, gateway):
    from bridgecast.ingest.keys import revoke_point_keys

    point = "hai-phong"
    old = gateway.keys(point)
    new = revoke_point_keys(stack.layout.secrets, EVENT_ID, point)
    assert new["stream_key"] != old["stream_key"]

    refused = publish_test_stream(stack, point, old["stream_key"], seconds=2)
    assert refused.returncode != 0
    accepted = publish_test_stream(stack, point, new["stream_key"], seconds=2)
    assert accepted.returncode == 0, accepted.stderr

    # The point's upload link was revoked with it: the old page is gone, the new one works.
    assert requests.get(f"{gateway.url}/u/{old['upload_token']}", timeout=10).status_code == 403
    assert requests.get(f"{gateway.url}/u/{new['upload_token']}", timeout=10).status_code == 200
