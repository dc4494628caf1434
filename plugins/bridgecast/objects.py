"""The object-key scheme: every key the product writes to or lists in S3 is spelled here, and only here.

Keys are content-addressed where the bytes come from a point (DESIGN.md):
`{event}/{point}/raw/{kind}/{yyyy-mm-ddTHHMMSS}_{sha256[:12]}.{ext}`, so a re-upload of the same bytes lands on
the same key and "never overwrite" is one conditional PUT. Per-run artefacts live under an underscore folder
(`_launch`, `_posts`, `_report`) that no point id can take (point ids are ASCII slugs without a leading `_`).
"""
from __future__ import annotations

from datetime import date, datetime, timezone


# --- what the points send ---------------------------------------------------------------------------------------
def raw_key(event_id: str, point_id: str, kind: str, received_at: datetime, sha256: str, ext: str) -> str:
    stamp = received_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H%M%S")
    return f"{event_id}/{point_id}/raw/{kind}/{stamp}_{sha256[:12]}.{ext.lstrip('.').lower()}"


def processed_prefix(event_id: str, point_id: str, rendition: str) -> str:
    return f"{event_id}/{point_id}/processed/{rendition}/"


def processed_key(event_id: str, point_id: str, rendition: str, name: str) -> str:
    return processed_prefix(event_id, point_id, rendition) + name


def manifest_prefix(event_id: str, point_id: str | None = None) -> str:
    """All manifests of a point, or (point None) a prefix under which every point's manifests are listed."""
    return f"{event_id}/{point_id}/manifests/" if point_id else f"{event_id}/"


def manifest_key(event_id: str, point_id: str, sha256: str) -> str:
    return f"{manifest_prefix(event_id, point_id)}{sha256}.json"


def is_manifest_key(key: str) -> bool:
    return "/manifests/" in key and key.endswith(".json")


def quarantine_key(event_id: str, point_id: str, sha256: str) -> str:
    return f"{event_id}/{point_id}/quarantine/{sha256}.json"


# --- what the pipelines make --------------------------------------------------------------------------------------
def launch_key(event_id: str, name: str) -> str:
    """An artefact of the launch run (the event copy, preflight table, highlights, recap, summary…)."""
    return f"{event_id}/_launch/{name}"


def alert_prefix(event_id: str) -> str:
    """The event's incidents (`bridgecast.alerts`): one JSON object each, created once (conditional PUT)."""
    return f"{event_id}/_alerts/"


def alert_key(event_id: str, name: str) -> str:
    return f"{alert_prefix(event_id)}{name}.json"


def steering_key(event_id: str) -> str:
    """What staff decided from the board for the launch (go live now, T0 moved, program point, end early); the
    launch's waits and go-live read it. Its audit trail sits beside it (`steering-log/<stamp>.json`)."""
    return launch_key(event_id, "steering.json")


def steering_log_key(event_id: str, stamp: str) -> str:
    return steering_log_prefix(event_id) + f"{stamp}.json"


def steering_log_prefix(event_id: str) -> str:
    return launch_key(event_id, "steering-log/")


def post_key(event_id: str, pub_key: str, name: str) -> str:
    """An artefact of one staff/calendar post (its frozen media list, previews, outcome)."""
    return f"{event_id}/_posts/{pub_key}/{name}"


def posts_run_key(event_id: str, run_slug: str, name: str) -> str:
    """What one `bridgecast_publish` run planned."""
    return f"{event_id}/_posts/_runs/{run_slug}/{name}"


def signups_upload_prefix(event_id: str) -> str:
    """Where staff put the social-insurance office's sign-up spreadsheets for `bridgecast_import_signups`."""
    return f"{event_id}/_signups/uploads/"


def signups_upload_key(event_id: str, filename: str) -> str:
    return signups_upload_prefix(event_id) + filename


def signups_file_key(event_id: str, sha256: str, ext: str) -> str:
    """An imported spreadsheet, kept by content (it passed the personal-data check): re-imports land here again."""
    return f"{event_id}/_signups/files/{sha256}.{ext.lstrip('.').lower()}"


def report_key(event_id: str, day: date, name: str) -> str:
    """An artefact of the results report of one local day (report.html, report.pdf, charts, numbers)."""
    return f"{event_id}/_report/{day:%Y-%m-%d}/{name}"


def report_latest_key(event_id: str) -> str:
    """Which day's report is the newest and where its files are (what the board shows)."""
    return f"{event_id}/_report/latest.json"


def board_key(name: str) -> str:
    """What the control room keeps for itself, across events: the latest picture of each stream on the ingest
    (`thumbnails/<stream>.jpg`, overwritten every few seconds) and the thumbnailer's lease."""
    return f"_board/{name}"


def health_key(stamp: str) -> str:
    return f"_health/{stamp}"


# --- what staff may open through the board (`staff_links.media_path`) ---------------------------------------------
STAFF_MEDIA_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".mp4", ".html", ".txt", ".md", ".pdf")
_LAUNCH_MEDIA = ("recap.mp4", "recap-9x16.mp4", "poster.jpg", "contact-sheet.jpg")


def is_staff_media_key(key: str) -> bool:
    """Processed renditions, post previews and the recap's files — what previews, approvals and staff mails show.
    Never raw uploads (their metadata is not stripped yet), manifests, keys, the ledger or another folder."""
    parts = key.split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") for p in parts) or not key.lower().endswith(STAFF_MEDIA_EXTENSIONS):
        return False
    if parts[1] == "_posts":
        return True
    if parts[1] == "_launch":
        return len(parts) == 3 and parts[2] in _LAUNCH_MEDIA
    return not parts[1].startswith("_") and len(parts) >= 5 and parts[2] == "processed"
