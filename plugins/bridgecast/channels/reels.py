"""Reels on the fanpage (Graph `/{page-id}/video_reels`, facebook-graph.md §R) over the fanpage client's transport.

The flow: `upload_phase=start` → `{video_id, upload_url}` (the rupload host); the bytes POSTed to that URL with
`Authorization: OAuth <page token>`, `offset` and `file_size` headers; `upload_phase=finish` with
`video_state=PUBLISHED` — an acknowledgement only, so the Reel's `status` is polled until its publishing phase is
complete (or the video is in error, with the reason Graph gives). A Reel is ours by its deterministic description
(title + description), like the fanpage's videos; the ledger calls `find`/`reconcile` after an unknown outcome."""
from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlsplit

from bridgecast.channels.base import (Channel, ChannelError, HealthReport, NotFound, Publication, RejectedInput,
                                      RemoteRef)
from bridgecast.channels.fanpage import CHANNEL, FanpageChannel, graph_error, normalize_text

log = logging.getLogger(__name__)

RUPLOAD_HOST = "rupload.facebook.com"
POLL_EVERY_S = 2.0
POLL_TIMEOUT_S = 300.0
# Reel spec (facebook-graph.md §R): 9:16, at least 540×960, 3–90 s, H.264/H.265, AAC.
MIN_SIZE = (540, 960)
SECONDS = (3.0, 90.0)


class ReelChannel(Channel):
    """The fanpage's Reels edge. Built on a FanpageChannel: same Page, token, Graph version and transport."""

    name = CHANNEL
    supports_update = True
    compensates = False

    def __init__(self, fanpage: FanpageChannel, *, poll_every_s: float = POLL_EVERY_S,
                 poll_timeout_s: float = POLL_TIMEOUT_S, sleep=time.sleep):
        self.fanpage, self.client, self.page_id = fanpage, fanpage.client, fanpage.page_id
        self.poll_every_s, self.poll_timeout_s, self.sleep = poll_every_s, poll_timeout_s, sleep

    def __repr__(self) -> str:
        return f"ReelChannel(page_id={self.page_id!r}, token=<hidden>)"

    # --- Channel interface -------------------------------------------------------------------------------------
    def publish(self, pub: Publication) -> RemoteRef:
        if pub.video is None:
            raise RejectedInput(CHANNEL, f"{pub.key}: a Reel needs its video file", param="video")
        video_id = self.upload_reel(pub.video.path, title=pub.title, description=pub.body.strip())
        status = self.wait_published(video_id)
        return RemoteRef(CHANNEL, video_id, url=self._url(video_id),
                         extra={"kind": "reel", "video_sha256": pub.video.sha256,
                                "publish_time": (status.get("publishing_phase") or {}).get("publish_time")})

    def find(self, pub: Publication) -> RemoteRef | None:
        title, description = normalize_text(pub.title), normalize_text(pub.body)
        for item in self.client.get_all(f"{self.page_id}/video_reels", {"fields": "id,title,description,created_time"}):
            if normalize_text(item.get("title") or "") == title and \
                    normalize_text(item.get("description") or "") == description:
                return RemoteRef(CHANNEL, str(item["id"]), url=self._url(str(item["id"])), extra={"kind": "reel"})
        return None

    def update(self, ref: RemoteRef, pub: Publication) -> RemoteRef:
        self.client.post(ref.remote_id, {"title": pub.title, "description": pub.body.strip()}, video=True)
        return RemoteRef(CHANNEL, ref.remote_id, url=ref.url, extra=dict(ref.extra))

    def delete(self, ref: RemoteRef) -> None:
        try:
            self.client.delete(ref.remote_id)
        except NotFound:
            log.info("reel %s was already gone", ref.remote_id)

    def check(self) -> HealthReport:
        return self.fanpage.check()

    def server_window_s(self, pub: Publication) -> float:
        connect, read = self.client.transport.upload_timeout
        return connect + read + self.poll_timeout_s + self.fanpage.server_margin_s

    # --- the three phases ----------------------------------------------------------------------------------------
    def upload_reel(self, path: str | os.PathLike, *, title: str, description: str) -> str:
        """start → bytes to the rupload URL → finish (PUBLISHED); returns the Reel's video id."""
        size = os.path.getsize(path)
        started = self.client.post(f"{self.page_id}/video_reels", {"upload_phase": "start"})
        video_id = str(started["video_id"])
        upload_url = started.get("upload_url") or f"https://{RUPLOAD_HOST}/video-upload/{self.client.version}/{video_id}"
        self._send_bytes(upload_url, path, size)
        self.client.post(f"{self.page_id}/video_reels", {"upload_phase": "finish", "video_id": video_id,
                                                          "video_state": "PUBLISHED", "title": title,
                                                          "description": description})
        log.info("fanpage reel %s uploaded (%d bytes), waiting for it to be published", video_id, size)
        return video_id

    def status(self, video_id: str) -> dict:
        return self.client.get(video_id, {"fields": "status"}).get("status") or {}

    def wait_published(self, video_id: str) -> dict:
        """Poll the Reel's status until its publishing phase is complete; a video in error raises with Graph's
        reason (processing or publishing phase errors)."""
        deadline = time.monotonic() + self.poll_timeout_s
        while True:
            status = self.status(video_id)
            if status.get("video_status") == "error":
                errors = [e.get("message", "") for phase in ("uploading_phase", "processing_phase", "publishing_phase")
                          for e in (status.get(phase) or {}).get("errors") or []]
                raise RejectedInput(CHANNEL, f"Facebook refused Reel {video_id}: {'; '.join(errors) or 'no reason'}"
                                             " — check it is 9:16, ≥540×960, 3–90 s, H.264 + AAC 48 kHz",
                                    param="video")
            if (status.get("publishing_phase") or {}).get("status") == "complete":
                return status
            if time.monotonic() > deadline:
                raise ChannelError(CHANNEL, f"Reel {video_id} was not published within {self.poll_timeout_s:.0f} s "
                                            f"(status {status}); the ledger will find it on a rerun",
                                   code="reel_pending")
            self.sleep(self.poll_every_s)

    def _send_bytes(self, upload_url: str, path: str | os.PathLike, size: int) -> None:
        """The raw file to the rupload URL in one request, streamed from disk. The Page token goes only to
        Facebook's rupload host or to the configured Graph hosts (a sandbox), never to a host a reply named."""
        host = urlsplit(upload_url).netloc
        allowed = {RUPLOAD_HOST, urlsplit(self.client.base_url).netloc, urlsplit(self.client.video_base_url).netloc}
        if host not in allowed:
            raise ChannelError(CHANNEL, f"Facebook answered with an upload URL on {host!r}, not {RUPLOAD_HOST}: "
                                        "refusing to send the Page token there", code="upload_url")
        with open(path, "rb") as body:
            response = self.client.transport.send(
                "POST", upload_url, f"reel upload of {size} bytes", upload=True, data=body,
                headers={"offset": "0", "file_size": str(size), "Content-Type": "application/octet-stream"})
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400 or not isinstance(payload, dict) or not payload.get("success"):
            raise graph_error(response.status_code, payload, response.headers, conn_id=self.client.conn_id,
                              what="POST reel upload", scrub=self.client.scrub)

    def _url(self, video_id: str) -> str:
        return f"{self.fanpage.web_url}/reel/{video_id}/"
