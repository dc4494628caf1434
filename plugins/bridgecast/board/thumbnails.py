"""A picture of every live stream for the board, refreshed every few seconds without eating the 2-core box.

How: round-robin over the streams nginx says are publishing; for each, open `rtmp://<ingest>/live/<stream>`, let
the decoder skip everything but keyframes, decode the first keyframe, flush, scale to 320 px, JPEG →
S3 `objects.board_key("thumbnails/<stream>.jpg")` (overwritten; the board serves it from there).

Why in-process (PyAV) and not `ffmpeg -skip_frame nokey …` per grab: an ffmpeg process costs ~40 ms of CPU just to
start, and its H.264 decoder holds a keyframe back until the next picture arrives — with only keyframes fed
(one every 2 s) a grab took 6 s and 0.08–0.12 CPU-s; 64 streams every 10 s would take ~0.8 of a core. In-process,
the grab ends with the first keyframe (≤ one GOP) and costs 0.01 (240p) – 0.03 (720p) CPU-s.

Where it runs: next to nginx, because nginx lets only 127.0.0.1 play (`allow play 127.0.0.1`). The board plugin
starts it as a child of Airflow's api-server when the ingest Connection's `rtmp_url` is on this machine (the
embedded stack); on a deployment where the ingest is elsewhere, run it there:
`python -m bridgecast.board.thumbnails` (Connections from `AIRFLOW_CONN_*`). An S3 lease makes sure only one
thumbnailer grabs, however many api-servers or ingest hosts start one. It runs at nice 10: the relay and the
recordings come first.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from bridgecast.objects import board_key

log = logging.getLogger("bridgecast.board.thumbnails")

GRAB_EVERY_S = 6.0  # between two grabs of one stream (+ ≤ 1 s tick, + ≤ 2 s to its next keyframe): ≤ 10 s
WORKERS = 16  # grabs in flight: most of a grab is waiting for the next keyframe, not CPU
WIDTH = 320
GRAB_TIMEOUT_S = 6.0
LEASE_TTL_S = 20.0
STAT_EVERY_S = 1.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class NoPicture(RuntimeError):
    pass


def grab_jpeg(url: str, *, width: int = WIDTH, timeout_s: float = GRAB_TIMEOUT_S) -> bytes:
    """The first keyframe of the live stream at `url`, as a JPEG `width` pixels wide."""
    import av

    deadline = time.monotonic() + timeout_s
    # Probing decodes too: keyframes only and one thread there as well (a little less CPU per grab).
    options = {"rw_timeout": str(int(timeout_s * 1e6)), "fpsprobesize": "0", "skip_frame": "nokey", "threads": "1"}
    with av.open(url, options=options, timeout=(timeout_s, timeout_s)) as container:
        if not container.streams.video:
            raise NoPicture(f"{url}: no video stream")
        video = container.streams.video[0]
        for audio in container.streams.audio:
            audio.discard = av.stream.Discard.all
        video.thread_type = "NONE"  # frame threads would hold each picture back by one more keyframe
        decoder = video.codec_context
        decoder.skip_frame = "NONKEY"
        for packet in container.demux(video):
            if time.monotonic() > deadline:
                break
            if not packet.is_keyframe:
                continue
            frames = list(decoder.decode(packet)) + list(decoder.decode(None))  # flush: no wait for the next one
            if frames:
                return _jpeg(frames[0], width)
    raise NoPicture(f"{url}: no keyframe within {timeout_s:g} s")


def _jpeg(frame, width: int) -> bytes:
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    image = frame.reformat(width=width, height=height, format="rgb24").to_image()
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70, optimize=False)
    return out.getvalue()


class Lease:
    """One holder at a time across machines: a small JSON object in S3 written with conditional PUTs."""

    def __init__(self, storage, holder: str, ttl_s: float = LEASE_TTL_S, name: str = "thumbnailer-lease.json"):
        self.storage, self.holder, self.ttl_s = storage, holder, ttl_s
        self.key = board_key(name)

    def hold(self) -> bool:
        """Take the lease if it is free or expired, renew it if it is ours; False if someone else holds it."""
        from botocore.exceptions import ClientError

        client, bucket = self.storage.client, self.storage.bucket
        try:
            obj = client.get_object(Bucket=bucket, Key=self.key)
            current, condition = json.loads(obj["Body"].read()), {"IfMatch": obj["ETag"]}
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            current, condition = None, {"IfNoneMatch": "*"}
        if current and current.get("holder") != self.holder and current.get("expires", 0) > time.time():
            return False
        body = json.dumps({"holder": self.holder, "expires": time.time() + self.ttl_s}).encode()
        try:
            client.put_object(Bucket=bucket, Key=self.key, Body=body, ContentType="application/json", **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False  # another thumbnailer took or renewed it in between
            raise
        return True

    def release(self) -> None:
        """Hand the lease back at once (a restarted api-server's new thumbnailer need not wait for it to expire)."""
        from botocore.exceptions import ClientError

        try:
            obj = self.storage.client.get_object(Bucket=self.storage.bucket, Key=self.key)
            if json.loads(obj["Body"].read()).get("holder") == self.holder:
                self.storage.client.delete_object(Bucket=self.storage.bucket, Key=self.key)
        except ClientError:
            pass


class Thumbnailer:
    def __init__(self, storage, rtmp_url: str, stat_url: str, *, every_s: float = GRAB_EVERY_S,
                 workers: int = WORKERS, holder: str | None = None):
        import requests

        self.storage, self.rtmp_url, self.stat_url = storage, rtmp_url.rstrip("/"), stat_url
        self.every_s = every_s
        self.lease = Lease(storage, holder or f"{socket.gethostname()}:{os.getpid()}")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumb")
        self._http = requests.Session()
        self._last: dict[str, float] = {}
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self.grabs = self.failures = 0

    def publishing(self) -> list[str]:
        from bridgecast.board.sources import parse_stat

        resp = self._http.get(self.stat_url, timeout=4)
        resp.raise_for_status()
        return [s.name for s in parse_stat(resp.text).values() if s.publishing]

    def run(self, should_stop=lambda: False) -> None:
        holding, next_lease = False, 0.0
        try:
            while not should_stop():
                now = time.monotonic()
                if now >= next_lease:
                    holding = self._hold_lease()
                    next_lease = now + self.lease.ttl_s / 4
                if holding:
                    self.tick(now)
                time.sleep(STAT_EVERY_S)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.lease.release()

    def _hold_lease(self) -> bool:
        try:
            return self.lease.hold()
        except Exception as exc:  # noqa: BLE001 - S3 away: keep going when it comes back
            log.warning("cannot read the thumbnailer lease in S3 (%s); retrying", exc)
            return False

    def tick(self, now: float) -> list[str]:
        """Start a grab for every publishing stream whose last one is `every_s` old, oldest first."""
        try:
            streams = self.publishing()
        except Exception as exc:  # noqa: BLE001
            log.warning("nginx /stat not answering (%s)", exc)
            return []
        with self._lock:
            due = sorted((s for s in streams if s not in self._inflight
                          and now - self._last.get(s, -1e9) >= self.every_s), key=lambda s: self._last.get(s, -1e9))
            for stream in due:
                self._inflight.add(stream)
                self._last[stream] = now
        for stream in due:
            self._pool.submit(self._one, stream)
        return due

    def _one(self, stream: str) -> None:
        try:
            picture = grab_jpeg(f"{self.rtmp_url}/{stream}")
            self.storage.put_bytes(board_key(f"thumbnails/{stream}.jpg"), picture, content_type="image/jpeg")
            self.grabs += 1
        except Exception as exc:  # noqa: BLE001 - a stream that just stopped, a broken encoder: try it next round
            self.failures += 1
            log.info("no thumbnail of %s this round: %s", stream, exc)
        finally:
            with self._lock:
                self._inflight.discard(stream)


def on_this_machine(rtmp_url: str) -> bool:
    return (urlsplit(rtmp_url).hostname or "") in LOOPBACK


# --- the child process next to the api-server ------------------------------------------------------------------------
class Supervisor:
    """Keeps one thumbnailer running as a child of this process (restarted with back-off if it exits).

    `resolve()` returns the Connections to hand it ({conn_id: fields}), or None when there is nothing to do here
    (the ingest is on another machine); it is retried until it answers, because the stack writes the Connections
    into Airflow only after the api-server is up. The Connections go to the child on its stdin, never in its
    environment or command line."""

    RESOLVE_RETRY_S = 15.0

    def __init__(self, resolve):
        self.resolve = resolve
        self._proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="board-thumbnailer", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    def _connections(self) -> dict | None:
        while not self._stop.is_set():
            try:
                return self.resolve()
            except Exception as exc:  # noqa: BLE001 - not there yet: ask again
                log.info("thumbnailer waiting for its Connections (%s)", exc)
            self._stop.wait(self.RESOLVE_RETRY_S)
        return None

    def _run(self) -> None:
        connections = self._connections()
        if connections is None:
            return
        plugins = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (plugins, os.environ.get("PYTHONPATH")) if p)}
        backoff = 2.0
        while not self._stop.is_set():
            started = time.monotonic()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bridgecast.board.thumbnails", "--connections-on-stdin",
                 "--parent-pid", str(os.getpid())], stdin=subprocess.PIPE, env=env)
            self._proc.stdin.write(json.dumps(connections).encode())
            self._proc.stdin.close()
            code = self._proc.wait()
            if self._stop.is_set():
                return
            backoff = 2.0 if time.monotonic() - started > 60 else min(backoff * 2, 60.0)
            log.warning("the thumbnailer exited (%s); restarting in %.0f s", code, backoff)
            self._stop.wait(backoff)

    def stop(self) -> None:
        self._stop.set()
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def connection_fields(info) -> dict:
    return {"conn_type": info.conn_type, "host": info.host, "port": info.port, "login": info.login,
            "password": info.password, "schema": info.schema, "extra": info.extra}


def main(argv: list[str] | None = None) -> None:
    from bridgecast.connections import ConnectionInfo, get_connection
    from bridgecast.storage import Storage

    parser = argparse.ArgumentParser(description="Thumbnails of the live streams for the Bridgecast board.")
    parser.add_argument("--connections-on-stdin", action="store_true",
                        help="read the bridgecast_s3 / bridgecast_ingest Connections as JSON from stdin")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone (the api-server)")
    parser.add_argument("--rtmp-url", help="where to play the streams (default: the ingest Connection's rtmp_url)")
    parser.add_argument("--stat-url", help="nginx /stat (default: the ingest Connection's stat_url)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.connections_on_stdin:
        given = json.loads(sys.stdin.read())
        s3, ingest = (ConnectionInfo(conn_id=k, **given[k]) for k in ("bridgecast_s3", "bridgecast_ingest"))
    else:
        s3, ingest = get_connection("bridgecast_s3"), get_connection("bridgecast_ingest")
    os.nice(10)
    thumbnailer = Thumbnailer(Storage.from_info(s3), args.rtmp_url or ingest.extra["rtmp_url"],
                              args.stat_url or ingest.extra["stat_url"])
    orphaned = (lambda: os.getppid() != args.parent_pid) if args.parent_pid else (lambda: False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds through run(): the lease is handed back
    log.info("thumbnails of the streams on %s every %.0f s", thumbnailer.rtmp_url, thumbnailer.every_s)
    thumbnailer.run(should_stop=orphaned)


if __name__ == "__main__":
    main()
