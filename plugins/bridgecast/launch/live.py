"""The fanpage live: created at live setup (through the ledger, like every publication), fed with the program
point's stream until the end, put on air exactly at T0, ended after the event."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from bridgecast.channels.base import Channel, HealthReport, Publication, RejectedInput, RemoteRef
from bridgecast.launch import publications as defs
from bridgecast.launch.observe import IngestObserver, StreamStat
from bridgecast.launch.plan import LaunchPlan, save_artifact, sleep_until_t0
from bridgecast.launch.publishing import channel, publish

log = logging.getLogger(__name__)



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
    """Feed the live video until the end: the program point's stream, or the fallback slate while it is missing
    (`program.ProgramSwitch`), with an alert at each switch; the relay's health goes to S3 for the board."""
    import tempfile
    from pathlib import Path

    from bridgecast.connections import get_connection
    from bridgecast.launch.program import ProgramSwitch, render_slate

    plan = LaunchPlan.from_xcom(plan_xcom).in_force()
    event = plan.load_event()
    observer = IngestObserver.from_connection()
    rtmp_base = get_connection('bridgecast_ingest').extra['rtmp_url']
    source = f"{rtmp_base}/{plan.program_point}"
    transcode = needs_transcode(observer.streams().get(plan.program_point))
    fanpage = channel(event, defs.LIVE_VIDEO.channel)
    target = fanpage.live_stream_url(live["live_video_id"])  # a secret (it carries the stream key): never logged
    with tempfile.TemporaryDirectory(prefix="bridgecast-slate-") as tmp:
        slate = render_slate(Path(tmp) / "slate.mp4", event.short_title)
        switch = ProgramSwitch(source, target, slate, transcode=transcode, point=plan.program_point,
                               on_switch=lambda what, at: _tell_switch(plan, what, at, switch))
        last_save = last_steer = 0.0
        try:
            while _now() < plan.end_at:
                if time.monotonic() - last_steer >= STEER_EVERY_S:  # the end and the program point, as in force
                    last_steer, program_was = time.monotonic(), plan.program_point
                    plan = plan.refreshed()
                    if plan.program_point != program_was:
                        log.warning("program point switched from the board: %s → %s", program_was,
                                    plan.program_point)
                        switch.set_source(f"{rtmp_base}/{plan.program_point}",
                                          transcode=needs_transcode(observer.streams().get(plan.program_point)),
                                          point=plan.program_point)
                switch.poll(_program_publishing(observer, plan))
                if time.monotonic() - last_save >= 5:
                    last_save = time.monotonic()
                    _save_relay_health(plan, switch)
                time.sleep(1)
        finally:
            health = switch.stop()
            _save_relay_health(plan, switch)
    return {"transcode": transcode, "health": health, "switches": switch.switches}


STEER_EVERY_S = 2.0


def _program_publishing(observer: IngestObserver, plan: LaunchPlan) -> bool:
    try:
        return bool(observer.live(plan.event_id).get(plan.program_point, {}).get("publishing"))
    except Exception as exc:  # the gateway busy for a second: keep what the live carries
        log.warning("gateway not answering (%s)", exc)
        return True


def _save_relay_health(plan: LaunchPlan, switch) -> None:
    try:
        save_artifact(plan, "relay.json", {"updated_at": _now().isoformat(), "program_point": plan.program_point,
                                           **switch.health(),
                                           "switch_log": switch.switches})
    except Exception:
        log.exception("could not store the relay's health")


def _tell_switch(plan: LaunchPlan, what: str, at: datetime, switch) -> None:
    from bridgecast.launch import incidents

    n = sum(1 for s in switch.switches if s["to"] == what) - (what == "program")  # the first program is no return
    if what == "slate":
        incidents.live_problem(plan, f"slate-on:{n}", "Mất tín hiệu chương trình: fanpage đang phát màn hình chờ",
                               f"Tín hiệu chương trình ({plan.program_point}) không đến lúc "
                               f"{incidents.local(plan, at)}: buổi phát trực tiếp trên fanpage đã tự chuyển sang màn "
                               "hình chờ và sẽ tự quay lại khi tín hiệu trở lại.")
    else:
        incidents.tell(plan, f"program-back:{n}", "info", "Tín hiệu chương trình đã trở lại trên fanpage",
                       f"Từ {incidents.local(plan, at)} fanpage phát lại tín hiệu chương trình ({plan.program_point}).")


def go_live(plan_xcom: dict, live: dict) -> dict:
    """Sleep precisely to T0, then go live; then check, on the fanpage itself, that the live is on air with the
    program's frames arriving (`on_air_after_t0_s`, the figure the rehearsal reports); alert if it is not."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    fanpage = channel(plan.load_event(), defs.LIVE_VIDEO.channel)
    plan, woke_late = sleep_until_t0(plan)  # T0 as in force: postponed or brought forward from the board
    called_at = _now()
    status = fanpage.go_live(live["live_video_id"])
    result = go_live_record(plan.t0, called_at, woke_late, status)
    result.update(on_air(fanpage, live["live_video_id"], plan.t0))
    save_artifact(plan, "go-live.json", result)
    log.info("GO LIVE called at %s (T0 %+.3fs): %s; on air with frames %s s after T0", called_at.isoformat(),
             result["delta_s"], status, result["on_air_after_t0_s"])
    if result["on_air_after_t0_s"] is None:
        from bridgecast.launch import incidents

        incidents.live_problem(plan, "live-no-frames", "Fanpage CHƯA phát: không nhận được hình chương trình",
                               f"Đã ra lệnh phát trực tiếp lúc {incidents.local(plan, called_at)} nhưng sau "
                               f"{ON_AIR_WAIT_S:.0f} giây fanpage vẫn không nhận được hình (trạng thái "
                               f"{result['status']}). Kiểm tra tác vụ relay_program_feed và tín hiệu chương trình.")
    return result


ON_AIR_WAIT_S = 15.0


def on_air(fanpage, live_id: str, t0: datetime, wait_s: float = ON_AIR_WAIT_S) -> dict:
    """Poll the live's status and ingest health until it is LIVE with video data arriving (Graph API
    `ingest_streams{stream_health}`, graph §L: master stream `video_bitrate > 0`)."""
    deadline = time.monotonic() + wait_s
    while True:
        item = fanpage.client.get(live_id, {"fields": "status,ingest_streams{stream_id,is_master,stream_health}"})
        streams = item.get("ingest_streams") or []
        streams = streams.get("data", []) if isinstance(streams, dict) else streams
        master = next((s for s in streams if s.get("is_master")), streams[0] if streams else {})
        bitrate = ((master or {}).get("stream_health") or {}).get("video_bitrate") or 0
        if item.get("status") == "LIVE" and bitrate > 0:
            return {"on_air_after_t0_s": round((_now() - t0).total_seconds(), 3), "status": "LIVE",
                    "video_bitrate_kbps": round(bitrate / 1000)}
        if time.monotonic() > deadline:
            return {"on_air_after_t0_s": None, "status": item.get("status"), "video_bitrate_kbps": 0}
        time.sleep(0.25)


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
