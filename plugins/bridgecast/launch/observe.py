"""What the ingest side sees right now: the gateway's publish journal and nginx-rtmp's /stat XML."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import requests

from bridgecast.connections import get_connection


@dataclass(frozen=True)
class StreamStat:
    name: str
    publishing: bool
    bw_in_kbps: float
    width: int | None
    height: int | None
    frame_rate: float | None
    video_codec: str | None
    video_profile: str | None
    audio_codec: str | None
    audio_channels: int | None
    audio_rate: int | None


class IngestObserver:
    def __init__(self, gateway_url: str, admin_token: str, stat_url: str, timeout_s: float = 5.0):
        self.gateway_url = gateway_url.rstrip("/")
        self.stat_url = stat_url
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {admin_token}"

    def __repr__(self) -> str:
        return f"IngestObserver({self.gateway_url!r})"

    @classmethod
    def from_connection(cls, conn_id: str = "bridgecast_ingest") -> "IngestObserver":
        conn = get_connection(conn_id)
        return cls(conn.base_url(), conn.password, conn.extra["stat_url"])

    def healthy(self) -> bool:
        return self._session.get(f"{self.gateway_url}/healthz", timeout=self.timeout_s).ok

    def live(self, event_id: str) -> dict[str, dict]:
        """Per point of `event_id`: publishing, first_live_at, sessions, segments, finished…"""
        resp = self._session.get(f"{self.gateway_url}/api/live", params={"event": event_id}, timeout=self.timeout_s)
        resp.raise_for_status()
        return {p["point_id"]: p for p in resp.json()["points"]}

    def streams(self, app: str = "live") -> dict[str, StreamStat]:
        resp = requests.get(self.stat_url, timeout=self.timeout_s)
        resp.raise_for_status()
        return parse_stat(resp.text, app)


def parse_stat(xml_text: str, app: str = "live") -> dict[str, StreamStat]:
    root = ET.fromstring(xml_text)
    out = {}
    for application in root.iter("application"):
        if application.findtext("name") != app:
            continue
        for stream in application.iter("stream"):
            meta = stream.find("meta")
            video = meta.find("video") if meta is not None else None
            audio = meta.find("audio") if meta is not None else None

            def num(node, tag, kind=int):
                text = node.findtext(tag) if node is not None else None
                try:
                    return kind(text) if text not in (None, "") else None
                except ValueError:
                    return None

            name = stream.findtext("name") or ""
            out[name] = StreamStat(
                name=name, publishing=stream.find("publishing") is not None,
                bw_in_kbps=(num(stream, "bw_in", float) or 0) / 1000,
                width=num(video, "width"), height=num(video, "height"), frame_rate=num(video, "frame_rate", float),
                video_codec=video.findtext("codec") if video is not None else None,
                video_profile=video.findtext("profile") if video is not None else None,
                audio_codec=audio.findtext("codec") if audio is not None else None,
                audio_channels=num(audio, "channels"), audio_rate=num(audio, "sample_rate"))
    return out
