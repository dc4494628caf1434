"""Alerts: what staff are told, once per incident — shared by every feature (it imports only the core).

`incidents` names an incident (a stable key per thing that went wrong), claims it in S3 with a conditional PUT
so a rerun, a retry or the next poll never tells it twice, and hands it to `mail`, an Airflow notifier
(`BaseNotifier`) that sends it through the stack's SMTP Connection to the event's staff list. The board reads the
same records (`objects.alert_prefix`), so its alert feed and the inbox show the same incidents.
"""
