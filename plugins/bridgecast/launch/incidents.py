"""The launch's incidents, in the words staff read (Vietnamese), told once each through `bridgecast.alerts`.

Every function builds the incident for one kind of trouble and hands it over; a failure to tell is logged and never
fails the task that noticed the trouble (the morning goes on)."""
from __future__ import annotations

import logging

from bridgecast.alerts.incidents import Incident, board_link, raise_incident
from bridgecast.launch.plan import LaunchPlan

log = logging.getLogger(__name__)


def tell(plan: LaunchPlan, key: str, level: str, subject: str, body: str, *, point: str | None = None,
         link: str | None = None) -> bool:
    try:
        staff = [m.email for m in plan.load_event().staff]
        return raise_incident(Incident(event_id=plan.event_id, key=key, level=level, subject=subject, body=body,
                                       point=point, link=link or board_link(plan.event_id)), staff)
    except Exception:  # telling must never stop the launch
        log.exception("could not raise the incident %s", key)
        return False


def preflight_no_go(plan: LaunchPlan, stage: str, result: dict, problems_vi: str) -> bool:
    return tell(plan, f"{stage}-no-go:{result['point']}", "error",
                f"{result['name']}: KHÔNG ĐẠT kiểm tra trước giờ G ({stage_words(stage)})",
                f"Điểm cầu {result['name']} không đạt kiểm tra trước giờ G ({stage_words(stage)}): {problems_vi}.\n\n"
                f"Giờ G: {local(plan, plan.t0)}. Các điểm cầu khác vẫn phát bình thường; liên hệ kỹ thuật viên của "
                "điểm cầu để kiểm tra tín hiệu.", point=result["point"])


def preflight_check_failed(plan: LaunchPlan, stage: str, name: str, detail: str) -> bool:
    return tell(plan, f"{stage}-check:{name}", "error", f"Kiểm tra trước giờ G không đạt: {name}",
                f"Hạng mục «{name}» không đạt khi kiểm tra trước giờ G ({stage_words(stage)}):\n{detail}\n\n"
                f"Giờ G: {local(plan, plan.t0)}.")


def point_dropped(plan: LaunchPlan, point_id: str, name: str, nth: int, silent_s: float, since) -> bool:
    return tell(plan, f"drop:{point_id}:{nth}", "error", f"{name} mất tín hiệu {silent_s:.0f} giây",
                f"Điểm cầu {name} mất tín hiệu từ {local(plan, since)} và chưa vào lại sau {silent_s:.0f} giây "
                f"(lần mất tín hiệu thứ {nth}).", point=point_id)


def live_problem(plan: LaunchPlan, key: str, subject: str, body: str) -> bool:
    return tell(plan, key, "error", subject, body)


def publication_problem(plan_event_id: str, event, channel: str, pub_key: str, status: str, error: str) -> bool:
    from bridgecast.alerts.incidents import staff_emails

    words = "không rõ đã đăng hay chưa" if status == "unknown" else "đăng lỗi"
    try:
        return raise_incident(Incident(
            event_id=plan_event_id, key=f"publication:{channel}:{pub_key}:{status}", level="error",
            subject=f"Bài {pub_key} trên {channel}: {words}",
            body=f"Bài {pub_key} trên kênh {channel}: {words}.\n\nLỗi: {error[:300]}\n\n"
                 + ("Cần đối soát trên kênh trước khi chạy lại." if status == "unknown" else
                    "Tác vụ sẽ tự thử lại; nếu vẫn lỗi, xem nhật ký tác vụ."),
            link=board_link(plan_event_id)), staff_emails(event))
    except Exception:
        log.exception("could not raise the publication incident")
        return False


def stage_words(stage: str) -> str:
    return {"preflight": "kiểm tra lần 1", "final-check": "kiểm tra lần 2, trước giờ G 5 phút"}.get(stage, stage)


def local(plan: LaunchPlan, moment) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M:%S %d/%m/%Y")
