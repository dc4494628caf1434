"""What the channels themselves hold for a post — the check behind "published once": the ledger says what we did,
this says what the audience (or Facebook's schedule) has. Used by the tests and handy from a shell::

    from bridgecast.posts.audit import on_channels
    on_channels(event, "ĐANG TRỰC TIẾP: Lễ ra quân…")
"""
from __future__ import annotations

import html
import unicodedata
from datetime import datetime, timezone


def _norm(text: str) -> str:
    return unicodedata.normalize("NFC", html.unescape(text or "")).strip()


def on_channels(event, title: str, channels: dict | None = None) -> dict:
    """{"fanpage": [{id, message, scheduled_publish_time?, state}], "portal": [{id, status, title, content,
    date_gmt}]} for every item whose text starts with `title` (a fanpage message starts with the title)."""
    from bridgecast.channels.factory import channels_for

    channels = channels or channels_for(event)
    fanpage, portal = channels["fanpage"], channels["portal"]
    wanted = _norm(title)
    found: dict[str, list[dict]] = {"fanpage": [], "portal": []}
    for item in fanpage.client.get_all(f"{fanpage.page_id}/scheduled_posts",
                                       {"fields": "id,message,scheduled_publish_time"}):
        if _norm(item.get("message")).startswith(wanted):
            when = item.get("scheduled_publish_time")
            found["fanpage"].append({"id": item["id"], "message": item.get("message"), "state": "scheduled",
                                     "scheduled_publish_time": datetime.fromtimestamp(int(when), timezone.utc)
                                     if when else None})
    for item in fanpage.client.get_all(f"{fanpage.page_id}/feed", {"fields": "id,message,created_time"}):
        if _norm(item.get("message")).startswith(wanted):
            found["fanpage"].append({"id": item["id"], "message": item.get("message"), "state": "published"})
    for post in portal.client.list_posts(search=title[:60], status="publish,future,draft,pending,private"):
        raw = post["title"].get("raw") or post["title"].get("rendered")
        if _norm(raw) == wanted:
            found["portal"].append({"id": post["id"], "status": post.get("status"), "title": raw,
                                    "content": (post.get("content") or {}).get("raw") or "",
                                    "date_gmt": post.get("date_gmt")})
    return found
