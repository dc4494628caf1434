"""The teams' links sheet: one printable A4 card per point — its upload link and, for a connection point, where to
stream — with QR codes, on the addresses teams reach from outside (the ingest Connection's `public_url` and
`public_rtmp_url`), never on the stack's internal ones.

One self-contained HTML file (inline CSS and SVG, no script). It holds every point's credentials: it is written
owner-only, nothing here logs or prints a token or key, and a card's repr leaves them out.
"""
from __future__ import annotations

import html
import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.svg import SvgPathFillImage

from bridgecast.connections import ConnectionInfo
from bridgecast.event import Event, Point
from bridgecast.ingest.page import STATIC, place_line, team_label, when_line

INGEST_CONNECTION = "bridgecast_ingest"
# Names that only resolve inside a site or a compose network (a bare name such as `ingest-gateway` too).
_INTERNAL_SUFFIXES = (".local", ".localhost", ".localdomain", ".internal", ".lan", ".home.arpa", ".intranet")
_KIND_LABELS = {"central": "Điểm cầu trung tâm", "province": "Điểm cầu", "district": "Đội lưu động"}
_SVG_OPEN = re.compile(r'^<svg width="[^"]*" height="[^"]*"')


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# --- where teams reach us ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublicAddresses:
    """The upload site and the RTMP server as teams reach them, and why they may not (Vietnamese, for the banner)."""

    upload_url: str  # e.g. https://upload.bhxh-vinhphuc.example — the gateway's /u/<token> pages live under it
    rtmp_url: str  # e.g. rtmp://live.bhxh-vinhphuc.example/live — OBS's "Server"
    warnings: tuple[str, ...] = ()
    unreachable: bool = False  # some link on the sheet cannot be opened from outside the organisers' network

    @classmethod
    def from_connection(cls, conn: ConnectionInfo) -> "PublicAddresses":
        """From the ingest Connection's extra; without `public_url`/`public_rtmp_url` the internal `host` and
        `rtmp_url` stand in, and the sheet says so."""
        warnings: list[str] = []
        unreachable = False
        given_upload = str(conn.extra.get("public_url") or "").strip().rstrip("/")
        given_rtmp = str(conn.extra.get("public_rtmp_url") or "").strip().rstrip("/")
        upload = given_upload or (conn.base_url() if conn.host else "")
        rtmp = given_rtmp or str(conn.extra.get("rtmp_url") or "").strip().rstrip("/")
        for url, given, key, what, schemes in (
                (upload, given_upload, "public_url", "trang gửi ảnh", ("http", "https")),
                (rtmp, given_rtmp, "public_rtmp_url", "máy chủ phát (RTMP)", ("rtmp", "rtmps"))):
            if not given:  # the internal address stands in: reachable from outside only by chance
                warnings.append(f"Kết nối {INGEST_CONNECTION} chưa có {key}: {what} trên tờ này dùng địa chỉ "
                                f"nội bộ {url or '(trống)'}.")
                unreachable = True
            elif problem := _reach_problem(url, schemes):
                warnings.append(f"{what[0].upper()}{what[1:]} {url} {problem}.")
                unreachable = True
        if upload.startswith("http://") and not unreachable:
            warnings.append(f"Trang gửi ảnh {upload} dùng http, không mã hoá: liên kết của đội (có mã tải lên) đi "
                            "trên mạng không được bảo vệ — hãy dùng https.")
        return cls(upload, rtmp, tuple(warnings), unreachable)

    @property
    def headline(self) -> str | None:
        if self.unreachable:
            return "Các đội ở bên ngoài KHÔNG mở được các liên kết trên tờ này — chưa phát cho các đội."
        return "Cảnh báo về địa chỉ trên tờ này." if self.warnings else None


def _reach_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why a team outside could not reach `url`, or None when it looks public."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        return f"không phải địa chỉ {' hay '.join(s + '://' for s in schemes)}"
    try:
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:  # an unbalanced [ in the host
        host = ""
    if not host:
        return "không có tên máy chủ"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
            return "là tên máy nội bộ, chỉ dùng được trong mạng của ban tổ chức"
        if "." not in host:
            return "là tên máy nội bộ (không có tên miền), chỉ dùng được trong mạng của ban tổ chức"
        return None
    if ip.is_loopback:
        return "là địa chỉ loopback, chỉ dùng được trên chính máy chủ"
    if ip.is_unspecified or not ip.is_global:
        return "là địa chỉ mạng riêng, không mở được từ Internet"
    return None


# --- the cards --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    point: Point
    label: str  # how the team calls itself: «Điểm cầu Hà Nội», «Đội tuyên truyền lưu động Vĩnh Yên»
    upload_link: str = field(repr=False)
    stream_server: str | None = None  # OBS "Server"
    # OBS "Stream key": `<point id>?key=<key>` — nginx-rtmp's stream name, then the key the gateway checks
    stream_key: str | None = field(default=None, repr=False)

    @property
    def kind_label(self) -> str:
        return _KIND_LABELS.get(self.point.kind, self.point.kind)

    @property
    def publish_url(self) -> str | None:
        """Server and key in one URL, as phone streaming apps (Larix…) take it: what OBS itself connects to."""
        return f"{self.stream_server}/{self.stream_key}" if self.stream_key else None


@dataclass(frozen=True)
class Sheet:
    html: str = field(repr=False)
    cards: tuple[Card, ...]
    addresses: PublicAddresses

    @property
    def counts(self) -> dict[str, int]:
        streaming = sum(1 for c in self.cards if c.stream_key)
        return {"cards": len(self.cards), "streaming": streaming, "teams": len(self.cards) - streaming}


def links_sheet(event: Event, keys: dict[str, dict], addresses: PublicAddresses) -> Sheet:
    """The sheet for every point of `event`; `keys` is the `points` mapping of its key file (keys.issue_point_keys).

    A point without active keys is an error, not a missing card: a sheet that silently skips a team is worse."""
    missing = [p.id for p in event.points if not keys.get(p.id) or keys[p.id].get("revoked")]
    if missing:
        raise ValueError(f"no active keys for {len(missing)} point(s) of {event.id}: {', '.join(missing)} — issue "
                         "them first (`./bridgecast keys show`)")
    cards = []
    for point in event.points:
        entry = keys[point.id]
        link = f"{addresses.upload_url}/u/{quote(entry['upload_token'], safe='')}"
        if point.streams:
            cards.append(Card(point, team_label(point, point.id), link, addresses.rtmp_url,
                              f"{point.id}?key={quote(entry['stream_key'], safe='')}"))
        else:
            cards.append(Card(point, team_label(point, point.id), link))
    return Sheet(_render(event, cards, addresses), tuple(cards), addresses)


def write_sheet(sheet: Sheet, path: Path) -> Path:
    """Write the sheet owner-only (0600), atomically; the folder is created owner-only when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(sheet.html)
    os.replace(tmp, path)
    return path


def qr_svg(text: str, label: str) -> str:
    """`text` as an inline SVG QR code (ECC level M, 4-module quiet zone, white background), sized by CSS."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, image_factory=SvgPathFillImage)
    code.add_data(text)
    code.make(fit=True)
    svg, n = _SVG_OPEN.subn(f'<svg class="qr-code" role="img" aria-label="{_e(label)}"',
                            code.make_image().to_string(encoding="unicode"), count=1)
    if n != 1:
        raise RuntimeError("qrcode's SVG output changed shape: cannot size the QR code")
    return svg


# --- the HTML ---------------------------------------------------------------------------------------------------
def _render(event: Event, cards: list[Card], addresses: PublicAddresses) -> str:
    local = event.start_local
    check_at = local - timedelta(minutes=event.stages.preflight_before_min)
    end_at = event.end.astimezone(event.tz)
    counts = (f"{len(cards)} thẻ: {sum(1 for c in cards if c.stream_key)} điểm cầu, "
              f"{sum(1 for c in cards if not c.stream_key)} đội lưu động")
    banner = ""
    if addresses.headline:
        items = "".join(f"<li>{_e(w)}</li>" for w in addresses.warnings)
        fix = ("<p>Cách sửa: đặt <code>public_url</code> (trang gửi ảnh, ví dụ https://upload.bhxh-vinhphuc.example) "
               "và <code>public_rtmp_url</code> (máy chủ phát, ví dụ rtmp://live.bhxh-vinhphuc.example/live) trong "
               f"phần extra của Kết nối <code>{INGEST_CONNECTION}</code>, rồi tạo lại tờ này "
               "(<code>./bridgecast keys sheet</code>).</p>")
        banner = (f'<div class="warning" role="alert"><p class="warning-title">⚠ {_e(addresses.headline)}</p>'
                  f"<ul>{items}</ul>{fix}</div>")
    card_warning = (f'<p class="card-warning">⚠ {_e(addresses.headline)}</p>' if addresses.unreachable else "")
    body = "\n".join(_card(event, c, i, len(cards), card_warning, check_at, end_at) for i, c in enumerate(cards, 1))
    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>Liên kết cho các điểm cầu và đội · {_e(event.short_title)}</title>
<style>{(STATIC / "sheet.css").read_text(encoding="utf-8")}</style>
</head>
<body>
<header class="sheet-head screen-only">
  <h1>Liên kết gửi ảnh và phát trực tiếp cho các điểm cầu, các đội</h1>
  <p>{_e(event.short_title)} · {_e(when_line(event))}</p>
  <p>{_e(counts)}. In khổ A4, mỗi điểm một trang; trao mỗi trang cho đúng điểm cầu, đội đó.</p>
  <p class="addresses">Trang gửi ảnh: <code>{_e(addresses.upload_url)}</code> · Máy chủ phát:
    <code>{_e(addresses.rtmp_url)}</code></p>
</header>
{banner}
<main>
{body}
</main>
</body>
</html>
"""


def _card(event: Event, card: Card, index: int, total: int, warning: str, check_at, end_at) -> str:
    point = card.point
    place = place_line(point, event)
    upload_hint = ("Quét mã bằng camera điện thoại (hoặc gõ liên kết) → chọn ảnh, video → bấm «Gửi». Không cần đăng "
                   "nhập; mất sóng thì trang tự gửi tiếp.")
    if point.kind == "district":
        upload_hint += " Trên cùng trang: báo cáo số người tham gia BHXH tự nguyện mỗi ngày."
    holds, can = "liên kết này", "gửi được tệp"
    stream = ""
    if card.stream_key:
        holds, can = "liên kết, khóa này", "gửi được tệp và phát lên điểm cầu"
        stream = f"""
  <section class="block stream">
    <h3>Phát trực tiếp lên điểm cầu</h3>
    <div class="block-body">
      <div class="fields">
        <p class="field-name">Server <span>(Máy chủ)</span></p>
        <p class="value">{_e(card.stream_server)}</p>
        <p class="field-name">Stream key <span>(Khóa luồng)</span></p>
        <p class="value">{_e(card.stream_key)}</p>
        <ol class="steps">
          <li>OBS: Settings → Stream → Service «Custom…»; chép Server và Stream key ở trên vào hai ô tương ứng.</li>
          <li>Ứng dụng phát trên điện thoại (Larix Broadcaster…): quét mã bên cạnh — mã chứa cả máy chủ và khóa.</li>
          <li>Phát trước {check_at:%H:%M} để ban tổ chức kiểm tra kết nối, và giữ luồng phát đến hết buổi lễ
            ({end_at:%H:%M}).</li>
        </ol>
      </div>
      <figure class="qr" data-qr="stream">{qr_svg(card.publish_url, f"Mã QR phát trực tiếp của {card.label}")}
        <figcaption>Mã phát trực tiếp</figcaption></figure>
    </div>
  </section>"""
    return f"""<section class="card" data-point="{_e(point.id)}" aria-label="{_e(card.label)}">
  <header class="card-head">
    <p class="event-title">{_e(event.short_title)}</p>
    <p class="event-when">{_e(when_line(event))}</p>
  </header>
  {warning}
  <div class="who">
    <p class="kind kind-{_e(point.kind)}">{_e(card.kind_label)}</p>
    <h2>{_e(card.label)}</h2>
    {f'<p class="place">{_e(place)}</p>' if place else ''}
  </div>
  <section class="block upload">
    <h3>Gửi ảnh, video cho ban tổ chức</h3>
    <div class="block-body">
      <figure class="qr" data-qr="upload">{qr_svg(card.upload_link, f"Mã QR gửi ảnh của {card.label}")}
        <figcaption>Mã gửi ảnh, video</figcaption></figure>
      <div class="fields">
        <p class="field-name">Liên kết gửi ảnh</p>
        <p class="value link">{_e(card.upload_link)}</p>
        <p class="hint">{_e(upload_hint)}</p>
      </div>
    </div>
  </section>{stream}
  <footer class="card-foot">
    <p>Mật — chỉ trao cho {_e(card.label)}. Ai có {_e(holds)} đều {_e(can)} thay đội. Nếu bị lộ, báo ngay ban tổ
      chức để cấp mã mới: mã cũ ngừng hoạt động ngay.</p>
    <p class="index">{index}/{total} · {_e(point.id)}</p>
  </footer>
</section>"""
