"""The e-mail notifier: an Airflow notifier (`airflow.sdk.BaseNotifier`) that sends an incident through the SMTP
Connection (`bridgecast_smtp`) with the SMTP provider's `SmtpNotifier`. It is also a task callback
(`on_failure_callback=TaskFailedNotifier()`): a failing relay or go-live is then an incident like any other."""
from __future__ import annotations

import html

from airflow.sdk import BaseNotifier

from bridgecast.alerts.incidents import Incident, board_link, raise_incident
from bridgecast.staff_links import ui_url

SMTP_CONN_ID = "bridgecast_smtp"
LEVEL_WORDS = {"error": "CẢNH BÁO", "warning": "Chú ý", "info": "Thông báo"}


def subject_line(incident: Incident) -> str:
    return f"[Bridgecast · {LEVEL_WORDS[incident.level]}] {incident.subject}"


def html_body(incident: Incident) -> str:
    paras = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in incident.body.split("\n\n"))
    link = incident.link or board_link(incident.event_id)
    return (f"<html><body>{paras}<p>Xem chi tiết: <a href=\"{html.escape(link)}\">{html.escape(link)}</a></p>"
            f"<p style=\"color:#666\">Sự kiện {html.escape(incident.event_id)} · mã sự cố "
            f"{html.escape(incident.key)} · mỗi sự cố chỉ được báo một lần.</p></body></html>")


class IncidentMailNotifier(BaseNotifier):
    """One incident, to `to` (the event's staff), through `bridgecast_smtp`."""

    template_fields = ()  # the incident's text is final: nothing in it is a template

    def __init__(self, incident: Incident, to: list[str], smtp_conn_id: str = SMTP_CONN_ID):
        super().__init__()
        self.incident, self.to, self.smtp_conn_id = incident, list(to), smtp_conn_id

    def notify(self, context) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(to=self.to, from_email=None, subject=subject_line(self.incident),
                     html_content=html_body(self.incident), smtp_conn_id=self.smtp_conn_id,
                     mime_charset="utf-8").notify(context)


class TaskFailedNotifier(BaseNotifier):
    """`on_failure_callback` for the launch's live tasks: the task's failure as an incident (once per try
    number is not wanted: once per task of the run), to the run's event's staff, with a link to the task."""

    template_fields = ()

    def __init__(self, what: str):
        super().__init__()
        self.what = what  # Vietnamese: what failing means for the staff

    def notify(self, context) -> None:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids="plan_launch") or {}
        event_id = plan.get("event_id", "?")
        staff = []
        if plan.get("event_key"):
            from bridgecast.run_event import load_run_event

            staff = [m.email for m in load_run_event(plan["event_key"]).staff]
        link = ui_url(f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}")
        raise_incident(Incident(
            event_id=event_id, key=f"task-failed:{ti.run_id}:{ti.task_id}", level="error",
            subject=f"{self.what}: tác vụ {ti.task_id} lỗi",
            body=f"Tác vụ {ti.task_id} của lượt chạy {ti.run_id} đã lỗi: {self.what}.\n\n"
                 f"Lỗi: {str(context.get('exception') or 'không rõ')[:300]}\n\nXem nhật ký tác vụ và chạy lại "
                 "(Clear) nếu cần.", link=link), staff)
