"""How a post will look on each channel, before anyone approves it: the portal article as HTML (the portal
channel's own renderer, photos from storage), the fanpage post as the exact message text, and a Markdown summary
that becomes the body of the approval request in the Airflow UI.

Airflow 3.3's approval page renders that Markdown with images (react-markdown, HTML skipped, at most 300 px
wide), so the photos show there as thumbnails served by the board behind the UI's own login
(`staff_links.media_path`, same origin) — never presigned S3 links, which would carry the storage's key id and
address into the request, the mails and the task log, and open for anyone holding them."""
from __future__ import annotations

import html

from bridgecast.posts.content import CHANNEL_LABELS, PostContent, publication
from bridgecast.posts.form import channel_names


def portal_html(event, content: PostContent, photos: list[dict]) -> str:
    """`photos`: [{key, url, caption}] — the article body exactly as the portal channel renders it."""
    from bridgecast.channels.portal import UploadedMedia, render_content

    pub = publication(event, content, "portal", [])
    images = [UploadedMedia(id=i + 1, source_url=p["url"], mime_type="image/jpeg", caption=p.get("caption", ""),
                            alt_text=p.get("caption", "")) for i, p in enumerate(photos)]
    body = render_content(pub, images, None)
    return ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">"
            f"<title>Xem trước — {html.escape(content.title)}</title>"
            "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto;line-height:1.5}"
            "figure{display:inline-block;margin:4px}img{max-width:220px}</style></head><body>"
            f"<p><small>Xem trước bài trên {html.escape(event.channels.portal.name)} · đăng lúc "
            f"{html.escape(content.publish_at_words)}</small></p><h1>{html.escape(content.title)}</h1>"
            f"{body}</body></html>")


def fanpage_text(event, content: PostContent) -> str:
    from bridgecast.channels.fanpage import post_message

    return post_message(publication(event, content, "fanpage", []))


def approval_subject(content: PostContent) -> str:
    return f"Duyệt bài «{content.title[:80]}» — đăng {content.publish_at_words}"


def _alt(text: str) -> str:
    return "".join(c for c in text if c not in "[]()\n") or "ảnh"


def approval_markdown(event, content: PostContent, photos: list[dict], links: dict[str, str]) -> str:
    """The approver's view: when (in words), where, the deadline, the photos as thumbnails, and each channel's
    version of the post. `photos`: [{key, caption, thumb_url}]."""
    lines = [f"- **Giờ đăng:** {content.publish_at_words} ({content.publish_at:%H:%M %d/%m/%Y} UTC)",
             f"- **Kênh:** {channel_names(content.channels)}",
             f"- **Hạn duyệt:** trước {content.publish_at_words} — quá hạn chưa duyệt thì bài **không được đăng**.",
             f"- **Ảnh:** {content.media.describe() if not photos else f'{len(photos)} ảnh'}"]
    if photos:
        lines += ["", " ".join(f"![{_alt(p.get('caption') or '')}]({p['thumb_url']})" for p in photos), "",
                  "; ".join(f"{p.get('caption') or ''} `{p['key'].rsplit('/', 1)[-1]}`" for p in photos)]
    if "fanpage" in content.channels:
        quoted = "\n".join(f"> {line}" if line else ">" for line in fanpage_text(event, content).split("\n"))
        lines += ["", f"#### {CHANNEL_LABELS['fanpage']} — {event.channels.fanpage.name}", quoted]
        if links.get("fanpage"):
            lines += ["", f"[Nội dung bài trên Fanpage (tệp văn bản)]({links['fanpage']})"]
    if "portal" in content.channels:
        lines += ["", f"#### {CHANNEL_LABELS['portal']} — {event.channels.portal.name}", f"**{content.title}**", "",
                  content.body]
        if links.get("portal"):
            lines += ["", f"[Xem trước bài trên cổng thông tin, có ảnh (HTML)]({links['portal']})"]
    return "\n".join(lines)
