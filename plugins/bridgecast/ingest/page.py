"""The field-team upload page (served by the gateway at /u/{token}) and the printable QR code of its link.

One self-contained HTML document: CSS and JS are inlined from ./static (no CDN, no extra route), every value
from config or from the team's files is escaped, and a per-response CSP nonce is the only way a script runs.
"""
from __future__ import annotations

import html
import io
import json
import secrets
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import qrcode
from qrcode.constants import ERROR_CORRECT_M

from bridgecast.event import Event, Point
from bridgecast.ingest.keys import PointIdentity

STATIC = Path(__file__).resolve().parent / "static"
_WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")


@lru_cache(maxsize=None)
def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _json_for_script(data: dict) -> str:
    """JSON that cannot close its <script> element nor open a comment, whatever a point or event name holds."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def team_label(point: Point | None, point_id: str) -> str:
    """How the people holding the phone call themselves: the district's mobile team, or a connection point."""
    if point is None:
        return point_id
    if point.kind == "district":
        return f"Đội tuyên truyền lưu động {point.name}"
    if point.kind == "province":
        return f"Điểm cầu {point.name}"
    return point.display_name


def place_line(point: Point | None, event: Event | None) -> str | None:
    """Where the team is, under its name (district · province), when that says more than the name; shared with
    the links sheet's cards so both read the same."""
    if point is None or event is None:
        return None
    if point.kind == "district" and point.parent:
        try:
            parent = event.point(point.parent)
        except KeyError:
            return point.full_name or point.name
        province = f"{'Thành phố' if parent.city else 'Tỉnh'} {parent.name}"
        return f"{point.full_name or point.name} · {province}"
    return point.full_name if point.full_name and point.full_name != team_label(point, point.id) else None


def when_line(event: Event) -> str:
    """The launch's start in the event's local time, in Vietnamese; the page's header and the links sheet's."""
    local = event.start_local
    return f"{local:%H:%M} {_WEEKDAYS_VI[local.weekday()]}, ngày {local:%d/%m/%Y}"


def _signup_form(point: Point | None, event: Event | None) -> tuple[str, dict | None]:
    """The short sign-up form (HTML, and its bounds for the script) — district teams only. The day defaults to
    today in the event's zone (Asia/Ho_Chi_Minh), whatever the phone's clock zone."""
    if point is None or event is None or point.kind != "district":
        return "", None
    today = datetime.now(event.tz).date()
    latest = min(today, event.campaign_last_day)
    bounds = {"min": event.campaign_start.isoformat(), "max": latest.isoformat(),
              "default": max(event.campaign_start, latest).isoformat()}
    html_text = f"""
  <section class="signups" aria-labelledby="signups-title">
    <h2 id="signups-title">Báo cáo số người tham gia BHXH tự nguyện</h2>
    <form id="signup-form" novalidate>
      <label for="su-day">Ngày</label>
      <input id="su-day" name="day" type="date" required value="{_e(bounds['default'])}" min="{_e(bounds['min'])}"
        max="{_e(bounds['max'])}">
      <label for="su-count">Số người tham gia mới</label>
      <input id="su-count" name="count" type="number" inputmode="numeric" min="0" step="1" required>
      <label for="su-forms">Số tờ khai <small>(không bắt buộc)</small></label>
      <input id="su-forms" name="forms" type="number" inputmode="numeric" min="0" step="1">
      <button id="su-send" class="btn go" type="submit">Gửi báo cáo</button>
    </form>
    <p id="su-result" class="signup-result" role="status" aria-live="polite" hidden></p>
    <p class="hint">Mỗi ngày gửi một lần; gửi lại số khác cho cùng ngày là sửa số đã báo.</p>
  </section>
"""
    return html_text, bounds


def render_upload_page(who: PointIdentity, event: Event | None, token: str) -> str:
    point = None
    if event is not None:
        try:
            point = event.point(who.point_id)
        except KeyError:
            point = None
    team = team_label(point, who.point_id)
    place = place_line(point, event)
    nonce = secrets.token_urlsafe(18)
    # Only our own nonce'd script and style run, and the page talks to its own origin only: an injected
    # element (were escaping ever missed) could neither execute nor send the token anywhere.
    csp = "; ".join([
        "default-src 'none'", f"script-src 'nonce-{nonce}'", f"style-src 'nonce-{nonce}'", "img-src 'self'",
        "connect-src 'self'", "base-uri 'none'", "form-action 'none'"])
    max_mb = event.media.max_upload_mb if event is not None else None
    signup_html, signup_bounds = _signup_form(point, event)
    config = {
        "token": token,
        "eventId": who.event_id,
        "pointId": who.point_id,
        "team": team,
        "maxUploadMb": max_mb,
        "signups": signup_bounds,
    }
    # Relative to /u/{token}: works unchanged behind a reverse proxy that mounts the gateway under a prefix.
    qr_src = f"{quote(token, safe='')}/qr.png"
    limit_text = f"Mỗi tệp tối đa {max_mb:,} MB. ".replace(",", ".") if max_mb else ""

    header = ""
    if event is not None:
        header = (f'<header class="event"><p class="event-title">{_e(event.short_title)}</p>'
                  f'<p class="event-theme">“{_e(event.theme)}”</p>'
                  f'<p class="event-when">{_e(when_line(event))}</p></header>')

    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="theme-color" content="#0b5394">
<title>Gửi ảnh, video · {_e(team)}</title>
<style nonce="{nonce}">{_static("upload.css")}</style>
</head>
<body>
{header}
<main>
  <section class="team">
    <h1>{_e(team)}</h1>
    {f'<p class="place">{_e(place)}</p>' if place else ''}
  </section>

  <div id="banner" class="banner" role="alert" hidden></div>

  <section class="pick" aria-labelledby="pick-title">
    <h2 id="pick-title">Gửi ảnh và video cho ban tổ chức</h2>
    <div class="pick-buttons">
      <label class="btn primary" for="files">Chọn ảnh, video</label>
      <input id="files" class="visually-hidden" type="file" multiple accept="image/*,video/*">
      <label class="btn" for="camera">Chụp / quay ngay</label>
      <input id="camera" class="visually-hidden" type="file" accept="image/*,video/*" capture="environment">
    </div>
    <p class="hint">{_e(limit_text)}Video lớn được gửi từng phần: mất sóng thì trang tự gửi tiếp; nếu tải lại trang,
      chọn lại đúng tệp đó để gửi tiếp từ chỗ đã dừng.</p>
    <button id="start" class="btn go" type="button" disabled>Gửi</button>
    <p id="summary" class="summary" aria-live="polite"></p>
  </section>

{signup_html}
  <section class="files" aria-labelledby="files-title">
    <h2 id="files-title">Tệp của đội</h2>
    <ul id="list" class="file-list"></ul>
    <p id="empty" class="hint">Chưa có tệp nào.</p>
  </section>

  <section class="qr" aria-labelledby="qr-title">
    <h2 id="qr-title">Mã QR của trang này</h2>
    <p class="print-only qr-team">{_e(team)}</p>
    <p class="print-only qr-event">{_e(event.short_title) if event is not None else ''}</p>
    <img src="{_e(qr_src)}" width="240" height="240" alt="Mã QR mở trang gửi ảnh của {_e(team)}">
    <p class="hint screen-only">In mã này và phát cho các thành viên của đội: quét bằng camera điện thoại là mở được
      trang gửi ảnh, không cần đăng nhập. Chỉ đưa cho người trong đội — ai có mã đều gửi được tệp.</p>
    <p class="print-only qr-scan">Quét mã bằng camera điện thoại để gửi ảnh, video của đội cho ban tổ chức.
      Chỉ dành cho thành viên của đội — không đăng lên mạng xã hội.</p>
    <button id="print" class="btn" type="button">In mã QR</button>
  </section>
</main>
<script type="application/json" id="bc-config">{_json_for_script(config)}</script>
<script nonce="{nonce}">{_static("upload.js")}</script>
</body>
</html>
"""


def qr_png(url: str) -> bytes:
    """A QR code of `url` as PNG, sized to print sharply on A4/A5 (about 10 px per module, quiet zone kept)."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(url)
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
