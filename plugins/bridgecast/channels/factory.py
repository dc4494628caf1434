"""The one place that turns an event's `channels:` config into channel objects (credentials from Connections)."""
from __future__ import annotations

from bridgecast.channels.base import Channel
from bridgecast.event import Event


def channels_for(event: Event) -> dict[str, Channel]:
    from bridgecast.channels.fanpage import FanpageChannel
    from bridgecast.channels.portal import PortalChannel
    from bridgecast.channels.press import PressChannel

    cfg = event.channels
    return {
        "portal": PortalChannel.from_connection(cfg.portal.connection_id),
        "fanpage": FanpageChannel.from_connection(cfg.fanpage.connection_id, graph_version=cfg.fanpage.graph_version),
        "press": PressChannel.from_connection(cfg.press.connection_id,
                                              from_name=cfg.press.sender_name,
                                              default_recipients=tuple(o.email for o in cfg.press.outlets)),
    }
