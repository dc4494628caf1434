"""The fanpage live: created at live setup (through the ledger, like every publication), fed with the program
point's stream until the end, put on air exactly at T0, ended after the event."""
from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta, timezone

from bridgecast.channels.base import Channel, HealthReport, Publication, RejectedInput, RemoteRef
from bridgecast.launch import publications as defs
from bridgecast.launch.observe import IngestObserver, StreamStat
from bridgecast.launch.plan import LaunchPlan, save_artifact
from bridgecast.launch.publishing import channel, publish
from bridgecast.timing import sleep_until

log = logging.getLogger(__name__)

PROGRAM_FEED_WAIT = timedelta(minutes=5)  # after T0, the relay stops waiting for a program feed that never came


class LiveVideoChannel(Channel):
    """The Page's live videos as a ledger channel, so `publish_once` creates the live video once and, after an
    unrecorded attempt, finds it again (an open live video with the same title). Its rows sit with the Page's."""

    supports_update = False  # a rerun with a changed title keeps the live video the points are already fed to

    def __init__(self, fanpage):
        self.fanpage = fanpage
        self.name = fanpage.name

    def publish(self, pub: Publication) -> RemoteRef:
        return self.fanpage.create_live_video(pub.title, pub.body, start_at=pub.publish_at)

    def find(self, pub: Publication) -> RemoteRef | None:
        return self.fanpage.find_live_video(pub.title)

    def update(self, ref: RemoteRef, pub: Publication) -> RemoteRef:
        raise RejectedInput(self.name, f"{pub.key}: a live video is not updated; end it and create a new one",
                            param="title")

    def delete(self, ref: RemoteRef) -> None:
        self.fanpage.delete(ref)

    def check(self) -> HealthReport:
        return self.fanpage.check()


def create_live_video(plan_xcom: dict) -> dict:
    """The fanpage live video, created once — a rerun returns the same live video."""
    event = LaunchPlan.from_xcom(plan_xcom).load_event()
    made = publish(LiveVideoChannel(channel(event, defs.LIVE_VIDEO.channel)), defs.live_video(event))
    if not made["remote_id"]:
        raise RuntimeError(f"the live video {defs.LIVE_VIDEO.key} is cancelled in the ledger: nothing to go live "
                           "with (publish it under a new key to have one)")
    return {"live_video_id": made["remote_id"], "action": made["action"]}


def needs_transcode(stat: StreamStat | None) -> bool:
    """Copy the program feed only when it is known to conform; an unknown feed is transcoded to be safe."""
    from bridgecast.launch.preflight import stream_deviations

    return bool(stat is None or stream_deviations(stat))


def relay_program_feed(plan_xcom: dict, live: dict) -> dict:
    """Relay the program point's stream to the live video until the end; restarts with back-off on failure."""
    from media import RelaySupervisor

    from bridgecast.connections import get_connection

    plan = LaunchPlan.from_xcom(plan_xcom)
    observer = IngestObserver.from_connection()
    source = f"{get_connection('bridgecast_ingest').extra['rtmp_url']}/{plan.program_point}"
    while plan.program_point not in observer.streams() and _now() < plan.t0 + PROGRAM_FEED_WAIT:
        time.sleep(1)  # the program feed may start after live setup
    transcode = needs_transcode(observer.streams().get(plan.program_point))
    fanpage = channel(plan.load_event(), defs.LIVE_VIDEO.channel)
    target = fanpage.live_stream_url(live["live_video_id"])  # a secret (it carries the stream key): never logged
    relay = RelaySupervisor(source, target, transcode=transcode)
    relay.start()
    log.info("relaying %s to the fanpage live video (%s)", plan.program_point, "transcode" if transcode else "copy")
    try:
        while _now() < plan.end_at:
            time.sleep(10)
            log.info("relay health: %s", relay.health())
    finally:
        relay.stop()
    health = dataclasses.asdict(relay.health())
    return {"transcode": transcode, "health": {k: str(v) if k == "state" else v for k, v in health.items()}}


def go_live(plan_xcom: dict, live: dict) -> dict:
    """Sleep precisely to T0, then go live; the call's actual time is the figure the rehearsal reports."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    fanpage = channel(plan.load_event(), defs.LIVE_VIDEO.channel)
    woke_late = sleep_until(plan.t0)
    called_at = _now()
    status = fanpage.go_live(live["live_video_id"])
    result = go_live_record(plan.t0, called_at, woke_late, status)
    save_artifact(plan, "go-live.json", result)
    log.info("GO LIVE called at %s (T0 %+.3fs): %s", called_at.isoformat(), result["delta_s"], status)
    return result


def go_live_record(t0: datetime, called_at: datetime, woke_late_s: float, status: str) -> dict:
    return {"t0": t0.isoformat(), "called_at": called_at.isoformat(),
            "delta_s": round((called_at - t0).total_seconds(), 3), "woke_late_s": round(woke_late_s, 3),
            "status": status}


def end_live_video(plan_xcom: dict, live: dict | None) -> dict:
    if not live:
        return {"ended": False, "reason": "no live video was created"}
    event = LaunchPlan.from_xcom(plan_xcom).load_event()
    return {"ended": True, "status": channel(event, defs.LIVE_VIDEO.channel).end_live_video(live["live_video_id"])}


def _now() -> datetime:
    return datetime.now(timezone.utc)
