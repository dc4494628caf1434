"""The one place that turns an event's `channels:` config into channel objects (credentials from Connections).

Each channel is built on its own and only when first asked for, so a broken fanpage Connection never stops the
portal article, and `check_channels_health` reports a channel it cannot build instead of crashing.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta

from bridgecast.channels.base import Channel
from bridgecast.connections import ConnectionNotFound
from bridgecast.event import Channels, Event

CHANNEL_NAMES = ("portal", "fanpage", "press")


def _portal(cfg: Channels) -> Channel:
    from bridgecast.channels.portal import PortalChannel

    return PortalChannel.from_connection(cfg.portal.connection_id)


def _fanpage(cfg: Channels) -> Channel:
    from bridgecast.channels.fanpage import FanpageChannel

    return FanpageChannel.from_connection(cfg.fanpage.connection_id, graph_version=cfg.fanpage.graph_version)


def _press(cfg: Channels) -> Channel:
    from bridgecast.channels.press import PressChannel

    return PressChannel.from_connection(cfg.press.connection_id, from_name=cfg.press.sender_name,
                                        default_recipients=tuple(o.email for o in cfg.press.outlets))


_BUILDERS = {"portal": _portal, "fanpage": _fanpage, "press": _press}


def connection_id(event: Event, name: str) -> str:
    """The Airflow Connection id channel `name` of this event reads its credentials from."""
    return getattr(event.channels, _known(name)).connection_id


def channel_for(event: Event, name: str) -> Channel:
    """Build channel `name` alone; errors of its Connection (missing, unreadable, incomplete) are raised here."""
    return _BUILDERS[_known(name)](event.channels)


def _known(name: str) -> str:
    if name not in _BUILDERS:
        raise KeyError(f"unknown channel {name!r}: the channels are {', '.join(CHANNEL_NAMES)}")
    return name


class LazyChannels(Mapping):
    """The event's channels by name, each built on first access and kept (one client, one session)."""

    def __init__(self, event: Event):
        self._event = event
        self._built: dict[str, Channel] = {}

    def __getitem__(self, name: str) -> Channel:
        if name not in self._built:
            self._built[name] = channel_for(self._event, name)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(CHANNEL_NAMES)

    def __len__(self) -> int:
        return len(CHANNEL_NAMES)

    def __repr__(self) -> str:
        return f"LazyChannels(event={self._event.id!r}, built={sorted(self._built)})"


def channels_for(event: Event) -> Mapping[str, Channel]:
    """`channels_for(event)["portal"]` builds the portal only; iterating builds each channel as it comes."""
    return LazyChannels(event)


# A credential must outlive the event by this much: the recap, the article and the press kit go out after the end.
EXPIRY_MARGIN = timedelta(hours=2)


def check_channels_health(event: Event) -> dict[str, dict]:
    """{name: {"ok", "detail"}} for every channel. Never raises: a preflight reports what it checks, and a
    channel whose Connection is missing or broken is a no-go that says which Connection to fix and how."""
    return {name: _health(event, name) for name in CHANNEL_NAMES}


def _health(event: Event, name: str) -> dict:
    conn_id = connection_id(event, name)
    try:
        channel = channel_for(event, name)
    except ConnectionNotFound:
        return {"ok": False, "detail": (
            f"Chưa có Airflow Connection '{conn_id}' cho kênh {name}: thêm nó trong Admin → Connections rồi chạy "
            f"lại bước kiểm tra. / Airflow Connection '{conn_id}' for the {name} channel is not defined: add it in "
            "Admin → Connections and run the check again.")}
    except Exception as exc:  # anything a Connection can hold wrong: bad JSON/URI, no password, an unusable host
        return {"ok": False, "detail": (
            f"Airflow Connection '{conn_id}' của kênh {name} không dùng được: sửa nó trong Admin → Connections rồi "
            f"chạy lại bước kiểm tra. / Airflow Connection '{conn_id}' of the {name} channel is not usable "
            f"({_reason(exc)}): fix it in Admin → Connections and run the check again.")}
    try:
        report = channel.check()
    except Exception as exc:  # check() reports auth problems itself; this is for the unforeseen
        return {"ok": False, "detail": f"Kiểm tra kênh {name} gặp lỗi ngoài dự kiến. / The {name} check failed: "
                                       f"{_reason(exc)}"}
    if report.ok and report.expires_at and report.expires_at < event.end + EXPIRY_MARGIN:
        at = report.expires_at.astimezone(event.tz)
        return {"ok": False, "expires_at": report.expires_at.isoformat(), "detail": (
            f"Mã truy cập của kênh {name} hết hạn lúc {at:%H:%M %d/%m/%Y} (giờ Việt Nam), trước khi sự kiện và "
            f"phần đăng bài sau đó kết thúc: tạo mã mới rồi lưu vào Airflow Connection '{conn_id}' (Admin → "
            f"Connections). / The {name} token expires at {report.expires_at:%Y-%m-%d %H:%M} UTC, before the event "
            f"and its wrap-up publishing end: generate a new one and save it in Airflow Connection '{conn_id}'.")}
    return {"ok": report.ok, "detail": report.detail}


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'operator_message', None) or exc}"
