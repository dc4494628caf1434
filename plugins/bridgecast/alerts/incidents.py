"""Incidents: one record per thing that went wrong (or waits for someone), claimed once in S3, then mailed.

The claim is a conditional PUT of `{event}/_alerts/<incident>.json` (If-None-Match): of any number of tasks,
retries, reruns or polls that see the same incident, exactly one creates the record, and only that one sends the
mail. A mail that fails is recorded on the incident (the board still shows it) and not retried by the next poll:
a broken mail server must not turn into one message per poll when it comes back.
"""
from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from bridgecast.objects import alert_key, alert_prefix

log = logging.getLogger(__name__)

LEVELS = ("error", "warning", "info")


@dataclass(frozen=True)
class Incident:
    event_id: str
    key: str  # stable per incident: "preflight-no-go:ha-giang", "drop:ha-noi:1", "relay-down", …
    level: str  # error | warning | info
    subject: str  # Vietnamese, one line
    body: str  # Vietnamese; never a secret
    link: str | None = None  # the board, the task or the approval page
    point: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"incident level {self.level!r}: one of {', '.join(LEVELS)}")
        object.__setattr__(self, "subject", unicodedata.normalize("NFC", self.subject))
        object.__setattr__(self, "body", unicodedata.normalize("NFC", self.body))

    def record(self) -> dict:
        return {**asdict(self), "at": self.at.astimezone(timezone.utc).isoformat()}


def object_name(incident_key: str) -> str:
    """A readable, S3-safe name that stays unique (a short hash of the exact key)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", incident_key.lower()).strip("-")[:80]
    return f"{slug}-{hashlib.sha256(incident_key.encode()).hexdigest()[:10]}"


def raise_incident(incident: Incident, recipients: list[str] | tuple[str, ...], *, storage=None,
                   send=None) -> bool:
    """Claim `incident`; if this call is the first to see it, mail it to `recipients`. True when it was new.
    `send(incident, recipients)` defaults to the SMTP notifier; `storage` to the S3 Connection."""
    from bridgecast.storage import Storage

    storage = storage or Storage.from_connection()
    key = alert_key(incident.event_id, object_name(incident.key))
    record = incident.record()
    if not storage.put_json(key, {**record, "mail": "pending"}, if_absent=True).created:
        return False
    log.warning("ALERT %s [%s] %s", incident.key, incident.level, incident.subject)
    if not recipients:
        record["mail"] = "no staff e-mail in the event config (staff:)"
    else:
        try:
            (send or _send_mail)(incident, list(recipients))
            record.update(mail="sent", mailed_to=len(recipients),
                          mailed_at=datetime.now(timezone.utc).isoformat())
        except Exception as exc:  # an alert that cannot be mailed is still an alert on the board
            log.exception("could not mail the alert %s", incident.key)
            record["mail"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    storage.put_json(key, record)
    return True


def _send_mail(incident: Incident, recipients: list[str]) -> None:
    from bridgecast.alerts.mail import IncidentMailNotifier

    IncidentMailNotifier(incident, recipients).notify({})


def incidents(storage, event_id: str) -> list[dict]:
    """Every incident record of the event (what the board shows), oldest first."""
    keys = [o["Key"] for o in storage.list_keys(alert_prefix(event_id)) if o["Key"].endswith(".json")]
    return sorted((storage.get_json(k) for k in keys), key=lambda r: r.get("at") or "")


def board_link(event_id: str | None = None) -> str:
    """The board's address for a mail (`staff_links.board_url`)."""
    from bridgecast.staff_links import board_url

    return board_url(event_id)


def staff_emails(event) -> list[str]:
    return [m.email for m in getattr(event, "staff", ())]
