"""The launch's live video goes through the ledger like every publication: created once on the Page, a rerun
returns it, and a create whose answer was lost is found again instead of created twice (fanpage sandbox)."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridgecast.channels.base import ChannelError
from bridgecast.event import load_event
from bridgecast.launch import publications as defs
from bridgecast.launch.live import LiveVideoChannel
from bridgecast.ledger import PUBLISHED, UNKNOWN, Ledger, publish_once

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def event():
    """The 2020 event under a fresh id and title (the sandbox is shared by the session), T0 in two hours."""
    tag = uuid.uuid4().hex[:8]
    base = load_event(REPO / "config" / "event.yaml")
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    return dataclasses.replace(base, id=f"test-live-{tag}", short_title=f"Lễ ra quân {tag}", start=start)


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def test_live_video_is_created_once_and_reruns_return_it(fanpage_sandbox, event, ledger):
    channel = LiveVideoChannel(fanpage_sandbox.channel())
    actions = [publish_once(ledger, channel, defs.live_video(event)).action for _ in range(3)]

    assert actions == ["created", "existing", "existing"]
    [live] = fanpage_sandbox.live_videos(defs.live_video_title(event))
    assert live["status"] == "SCHEDULED_UNPUBLISHED"  # planned for T0, two hours ahead
    row = ledger.get(event.id, "fanpage", defs.LIVE_VIDEO.key)
    assert row.status == PUBLISHED and row.remote_id == live["id"] and row.attempts == 1
    assert "secure_stream_url" not in row.extra and "rtmp" not in str(row.extra)  # the stream key stays out


def test_a_create_whose_answer_was_lost_is_found_again_not_created_twice(fanpage_sandbox, event, ledger):
    channel = LiveVideoChannel(fanpage_sandbox.channel())
    fanpage_sandbox.fault(endpoint="live_videos", method="POST", code=2, mode="after")  # created, then an error
    with pytest.raises(ChannelError):
        publish_once(ledger, channel, defs.live_video(event))
    assert ledger.get(event.id, "fanpage", defs.LIVE_VIDEO.key).status == UNKNOWN
    [created] = fanpage_sandbox.live_videos(defs.live_video_title(event))

    outcome = publish_once(ledger, channel, defs.live_video(event))

    assert outcome.action == "reconciled" and outcome.ref.remote_id == created["id"]
    assert len(fanpage_sandbox.live_videos(defs.live_video_title(event))) == 1
    assert publish_once(ledger, channel, defs.live_video(event)).action == "existing"


def test_the_live_video_shares_the_pages_ledger_rows_and_checks_the_page(fanpage_sandbox):
    channel = LiveVideoChannel(fanpage_sandbox.channel())
    assert channel.name == "fanpage" == defs.LIVE_VIDEO.channel and not channel.supports_update
    assert channel.check().ok
