"""An insider with one point's stream key cannot publish as another point — the central program feed included —
and cannot smuggle nginx's own callback fields (name, app, call, path, addr, tcurl, clientid…) in a publish URL.

Real ffmpeg publishers through the real nginx-rtmp and gateway. nginx appends the publisher's query string after its
own fields in every callback; the gateway must read nginx's (first) values only and refuse repeated ones."""
from __future__ import annotations

import hashlib
import sys

import pytest
from hardening_kit import EVENT_ID, publish, start_publisher, stop, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

CENTRAL, FOREIGN = "trung-uong", "ha-noi"


def _forged_queries(kit, decoy: str) -> dict[str, str]:
    foreign, own = kit.keys(FOREIGN)["stream_key"], kit.keys(CENTRAL)["stream_key"]
    return {
        "foreign key": f"key={foreign}",
        "foreign key + name of its point": f"key={foreign}&name={FOREIGN}",
        "name of its point before the foreign key": f"name={FOREIGN}&key={foreign}",
        "foreign key + app, call and type": f"key={foreign}&name={FOREIGN}&app=live&call=publish&type=live",
        "own key + a second name": f"key={own}&name={CENTRAL}",
        "own key + app": f"key={own}&app=live",
        "own key + call": f"key={own}&call=publish",
        "own key + addr": f"key={own}&addr=10.0.0.1",
        "own key + tcurl": f"key={own}&tcurl=rtmp://10.0.0.1/live",
        "own key + clientid": f"key={own}&clientid=1",
        "own key + path (record_done's field)": f"key={own}&path={decoy}",
        "own key + recorder": f"key={own}&recorder=x",
        "own key twice": f"key={own}&key={foreign}",
        "url-encoded field name": f"key={own}&n%61me={FOREIGN}",
        "bare field without value": f"key={own}&name",
    }


def test_forged_and_foreign_key_publishes_are_refused_and_nothing_is_recorded(kit, stack, tmp_path):
    decoy = stack.layout.var / "hardening-decoys" / f"{FOREIGN}-1700000000-20231114T221320.flv"
    decoy.parent.mkdir(exist_ok=True)
    decoy.write_bytes(b"FLV\x01" + hashlib.sha256(str(tmp_path).encode()).digest() * 64)
    decoy_bytes = decoy.read_bytes()
    before = kit.live_points()
    recordings_before = kit.recordings(CENTRAL)

    accepted = []
    for case, query in _forged_queries(kit, str(decoy)).items():
        result = publish(kit.rtmp_url(CENTRAL, query), seconds=1.5)
        if result.returncode == 0:
            accepted.append(case)
        else:
            assert "Input/output error" in result.stderr, (case, result.stderr)  # nginx dropped it: refused
    print(f"\npublishes accepted with a forged or foreign key: {len(accepted)} of "
          f"{len(_forged_queries(kit, str(decoy)))}", file=sys.stderr)
    assert accepted == []

    after = kit.live_points()
    for point in (CENTRAL, FOREIGN):
        assert after.get(point, {}).get("sessions") == before.get(point, {}).get("sessions"), point
    assert kit.recordings(CENTRAL) == recordings_before
    assert decoy.read_bytes() == decoy_bytes  # the smuggled `path` was never acted on


def test_the_central_feed_keeps_streaming_while_forged_publishes_to_its_name_are_refused(kit):
    own = kit.keys(CENTRAL)["stream_key"]
    before = kit.live_point(CENTRAL) or {"sessions": 0, "segments": []}
    central = start_publisher(kit.rtmp_url(CENTRAL, f"key={own}"), seconds=14)
    try:
        wait_for(lambda: (kit.live_point(CENTRAL) or {}).get("publishing"), timeout_s=20,
                 what="the central feed to be live")
        foreign = kit.keys(FOREIGN)["stream_key"]
        for query in (f"key={foreign}&name={FOREIGN}", f"key={own}&name={FOREIGN}", f"key={foreign}"):
            assert publish(kit.rtmp_url(CENTRAL, query), seconds=1).returncode != 0
            # A refused publisher's publish_done must not end the real one's session.
            assert kit.live_point(CENTRAL)["publishing"], query
        assert central.wait(timeout=60) == 0, central.stderr.read()
    finally:
        stop(central)

    def finished():
        point = kit.live_point(CENTRAL)
        return point if point["finished"] and len(point["segments"]) > len(before["segments"]) else None

    point = wait_for(finished, timeout_s=60, what="the central recording to be stored")
    assert point["sessions"] == before["sessions"] + 1  # exactly the one real publisher
    assert point["segments"][-1]["key"].startswith(f"{EVENT_ID}/{CENTRAL}/raw/recording/")
