"""Fanpage sandbox: the Graph API subset Bridgecast uses (facebook-graph.md), with Meta's validation, limits, errors and
usage headers, nginx-rtmp ingest callbacks with stream checks, a page view; state persists under `--data`."""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import json
import logging
import math
import os
import re
import secrets
import shutil
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse

from devstack.sandboxes.faults import FaultRules

log = logging.getLogger(__name__)

DEFAULT_VERSIONS = ("v25.0", "v26.0")
DEFAULT_PERMISSIONS = ("pages_show_list", "pages_read_engagement", "pages_manage_posts", "pages_manage_engagement",
                       "pages_read_user_engagement", "publish_video", "read_insights")
POSTING = ("pages_read_engagement", "pages_manage_posts")
VIDEO_POSTING = ("pages_show_list", "pages_read_engagement", "pages_manage_posts")
SCHEDULE_MIN_S = 10 * 60
SCHEDULE_MAX_S = 30 * 86400
LIVE_SCHEDULE_MAX_S = 7 * 86400
TITLE_MAX_CHARS = 254
RESUMABLE_MAX_BYTES = 10 * 1024 ** 3
CREATE_STATUSES = ("UNPUBLISHED", "LIVE_NOW", "SCHEDULED_UNPUBLISHED", "SCHEDULED_LIVE", "SCHEDULED_CANCELED")
BROADCAST_STATUSES = ("UNPUBLISHED", "LIVE", "LIVE_STOPPED", "PROCESSING", "VOD", "SCHEDULED_UNPUBLISHED",
                      "SCHEDULED_LIVE", "SCHEDULED_EXPIRED", "SCHEDULED_CANCELED")
ENDED = frozenset({"LIVE_STOPPED", "PROCESSING", "VOD", "SCHEDULED_CANCELED", "SCHEDULED_EXPIRED"})
SCHEDULED = frozenset({"SCHEDULED_UNPUBLISHED", "SCHEDULED_LIVE"})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001})
UPLOAD_FILE_TYPES = ("video/mp4", "video/quicktime", "video/x-msvideo", "image/jpeg", "image/png", "application/pdf")
IMAGE_SIGNATURES = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
                    (b"BM", "bmp"), (b"II*\x00", "tif"), (b"MM\x00*", "tif"))
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# A recording is probed over its first minutes only: Meta asks that settings never change mid-stream, so a sample
# shows them, and the probe of a two-hour recording stays bounded.
PROBE_SAMPLE_S = 120
PREVIEW_PROBE_AFTER_S = 6.0

# What Graph says for each injectable code when a fault rule gives no message of its own.
DEFAULT_MESSAGES = {
    1: "An unknown error has occurred.",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' "
        "feature.",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    200: "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with "
         "sufficient administrative permission",
    368: "It looks like you were misusing this feature by going too fast. You've been temporarily blocked from using "
         "it.",
    506: "(#506) Duplicate status message",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    6000: "(#6000) There was a problem uploading your video file. Please try again.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more info, "
           "please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}
TRANSIENT_CODES = frozenset({1, 2})

# Deviations from Meta's live encoder recommendations, as /{live-id}/errors entries (codes are the sandbox's own).
DEVIATION_CODES = {
    "NO_VIDEO": 9001, "NO_AUDIO": 9002, "VIDEO_CODEC": 9003, "AUDIO_CODEC": 9004, "AUDIO_PROFILE": 9005,
    "AUDIO_SAMPLE_RATE": 9006, "AUDIO_CHANNELS": 9007, "AUDIO_BITRATE": 9008, "KEYFRAME_INTERVAL": 9009,
    "VIDEO_BITRATE": 9010, "RESOLUTION": 9011, "FRAME_RATE": 9012, "ASPECT_RATIO": 9013, "PROBE_FAILED": 9099,
}
# (min short side in px, fps above 30?) → recommended video kbps (FB live reference, current version).
BITRATE_TIERS = ((1080, True, 4500, 9000, "1080p60"), (1080, False, 3000, 6000, "1080p30"),
                 (720, True, 2250, 6000, "720p60"), (720, False, 1500, 4000, "720p30"),
                 (480, None, 600, 2000, "480p"), (360, None, 400, 1000, "360p"))


# --- Graph-shaped errors ------------------------------------------------------------------------------------------
def fbtrace_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "A" + "".join(secrets.choice(alphabet) for _ in range(22))


class GraphError(Exception):
    def __init__(self, code: int, message: str, *, subcode: int | None = None, type_: str = "OAuthException",
                 status: int = 400, user_title: str | None = None, user_msg: str | None = None,
                 transient: bool = False, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.subcode, self.type = code, message, subcode, type_
        self.status, self.user_title, self.user_msg = status, user_title, user_msg
        self.transient, self.headers = transient, dict(headers or {})

    def body(self) -> dict:
        error = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.transient
        if self.user_title:
            error["error_user_title"] = self.user_title
        if self.user_msg:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.code == 190:
            headers.setdefault("WWW-Authenticate", f'OAuth "Facebook Platform" "invalid_token" "{self.message}"')
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def param_error(message: str, *, user_title: str | None = None, user_msg: str | None = None) -> GraphError:
    return GraphError(100, f"(#100) {message}", user_title=user_title, user_msg=user_msg)


def unsupported(method: str, object_id: str) -> GraphError:
    return GraphError(100, f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot "
                           "be loaded due to missing permissions, or does not support this operation. Please read the "
                           "Graph API documentation at https://developers.facebook.com/docs/graph-api",
                      subcode=33, type_="GraphMethodException")


def nonexisting_field(name: str, node_type: str) -> GraphError:
    return param_error(f"Tried accessing nonexisting field ({name}) on node type ({node_type})")


def unknown_path(path: str) -> GraphError:
    return GraphError(2500, f"Unknown path components: {path}")


def error_for_code(code: int, subcode: int | None = None, message: str | None = None, *, status: int | None = None,
                   user_msg: str | None = None, headers: dict | None = None) -> GraphError:
    if status is None:
        status = 500 if code == 1 else 503 if code == 2 else 400
    return GraphError(code, message or DEFAULT_MESSAGES.get(code, f"(#{code}) Error"), subcode=subcode,
                      status=status, transient=code in TRANSIENT_CODES, user_msg=user_msg, headers=headers)


# --- time -----------------------------------------------------------------------------------------------------------
class Clock:
    """Real time plus an offset tests can move forward (scheduled posts and lives fall due without waiting)."""

    def __init__(self):
        self.offset_s = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s


def fb_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def local_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%d/%m/%Y %H:%M")


# --- parameters -----------------------------------------------------------------------------------------------------
def parse_bool(params: dict, name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    value = str(raw).strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise param_error(f"Param {name} must be a boolean")


def parse_uint(params: dict, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not text.isdigit():
        raise param_error(f"Param {name} must be a valid unsigned integer")
    return int(text)


def parse_feed_time(raw: str) -> int:
    """The feed edge takes UNIX seconds or ISO-8601 (photos and videos only the integer)."""
    text = str(raw).strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise param_error("The specified scheduled publish time is invalid.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def check_schedule_window(when: int, now: float) -> None:
    if not now + SCHEDULE_MIN_S <= when <= now + SCHEDULE_MAX_S:
        raise param_error("The specified scheduled publish time is invalid.",
                          user_title="Invalid Scheduled Publish Time",
                          user_msg="The scheduled publish time must be between 10 minutes and 30 days from the "
                                   "time of the request.")


def requested_fields(params: dict) -> list[str] | None:
    raw = params.get("fields")
    if not raw:
        return None
    # Field expansion (`video{id,title}`) is answered with the plain field.
    flat = re.sub(r"\{[^{}]*\}", "", str(raw))
    return [f.strip() for f in flat.split(",") if f.strip()]


def sniff_image(data: bytes) -> str | None:
    for signature, ext in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return ext
    return None


# --- state ----------------------------------------------------------------------------------------------------------
class PageStore:
    """Every object of the Page in one JSON file (small), uploaded media as files beside it."""

    def __init__(self, root: Path):
        self.root = root
        self.files = root / "files"
        for sub in ("photos", "videos", "parts"):
            (self.files / sub).mkdir(parents=True, exist_ok=True)
        self.path = root / "state.json"
        self.lock = threading.RLock()
        data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        self.objects: dict[str, dict] = data.get("objects", {})
        self.sessions: dict[str, dict] = data.get("sessions", {})
        self.uploads: dict[str, dict] = data.get("uploads", {})
        self.seq: int = data.get("seq") or 10 ** 15 + secrets.randbelow(10 ** 14)

    def new_id(self) -> str:
        with self.lock:
            self.seq += 1 + secrets.randbelow(97)
            return str(self.seq)

    def save(self) -> None:
        with self.lock:
            data = {"seq": self.seq, "objects": self.objects, "sessions": self.sessions, "uploads": self.uploads}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)

    def get(self, object_id: str, kind: str | None = None) -> dict | None:
        obj = self.objects.get(object_id)
        if obj is None or obj.get("deleted") or (kind and obj["type"] != kind):
            return None
        return obj

    def of(self, kind: str) -> list[dict]:
        return [o for o in self.objects.values() if o["type"] == kind and not o.get("deleted")]


class CallBudget:
    """Per-Page call budget over a fixed window: the sandbox's stand-in for Meta's Business Use Case limits."""

    def __init__(self, calls: int, window_s: float):
        self.lock = threading.Lock()
        self.configure(calls, window_s)

    def configure(self, calls: int, window_s: float) -> None:
        with self.lock:
            self.calls, self.window_s = max(1, int(calls)), float(window_s)
            self.window_start, self.used = time.monotonic(), 0

    def _roll(self) -> None:
        if time.monotonic() - self.window_start >= self.window_s:
            self.window_start, self.used = time.monotonic(), 0

    def spend(self) -> bool:
        with self.lock:
            self._roll()
            self.used += 1
            return self.used <= self.calls

    def usage(self) -> tuple[int, int]:
        """(percent of the budget used, minutes until calls are accepted again)."""
        with self.lock:
            self._roll()
            percent = min(100, math.ceil(100 * self.used / self.calls))
            regain = 0
            if self.used >= self.calls:
                regain = max(1, math.ceil((self.window_start + self.window_s - time.monotonic()) / 60))
            return percent, regain


class Faults(FaultRules):
    """Rules that make matching Graph calls fail, slow down or hang; each fires `count` times after `skip` matches."""

    def parse(self, raw: dict) -> dict:
        rule = {
            "endpoint": raw.get("endpoint") or "*", "method": (raw.get("method") or "").upper() or None,
            "params": {str(k): str(v) for k, v in (raw.get("params") or {}).items()},
            "skip": int(raw.get("skip", 0)), "count": int(raw.get("count", 1)),
            "code": int(raw["code"]) if raw.get("code") is not None else None,
            "subcode": int(raw["subcode"]) if raw.get("subcode") is not None else None,
            "status": int(raw["status"]) if raw.get("status") is not None else None,
            "message": raw.get("message"), "user_msg": raw.get("user_msg"),
            "headers": {str(k): str(v) for k, v in (raw.get("headers") or {}).items()},
            "latency_s": float(raw.get("latency_s", 0.0)), "mode": raw.get("mode", "before"),
            # Held open AFTER the work is done and saved: the item exists while the client times out — the case
            # a retry must reconcile instead of posting again.
            "hang_after_s": float(raw.get("hang_after_s", 0.0)),
        }
        if rule["mode"] not in ("before", "after"):
            raise ValueError("mode must be 'before' (fail without doing the work) or 'after' (do it, then fail)")
        if rule["code"] is None and rule["latency_s"] <= 0 and rule["hang_after_s"] <= 0:
            raise ValueError("a rule needs an error code, a latency_s (hang before the work), a hang_after_s (hang "
                             "after it), or a combination")
        return rule

    def matches(self, rule: dict, method: str, endpoint: str, params: dict) -> bool:
        if rule["endpoint"] not in ("*", endpoint) or (rule["method"] and rule["method"] != method):
            return False
        return all(str(params.get(k, "")).lower() == v.lower() for k, v in rule["params"].items())


@dataclass
class GraphCall:
    method: str
    version: str
    segments: list[str]
    params: dict[str, str]
    files: dict = field(default_factory=dict)
    token: str | None = None
    token_source: str | None = None  # header | query | body: tests prove clients keep tokens out of URLs
    appsecret_proof: str | None = None

    @property
    def endpoint(self) -> str:
        """The name fault rules match on: the edge (`feed`, `videos`, …), `node`, `upload` or `debug_token`."""
        if not self.segments:
            return "root"
        head = self.segments[0]
        if head.startswith("upload:"):
            return "upload"
        if head == "video-upload":
            return "rupload"  # a Reel's bytes, on the rupload host
        if len(self.segments) == 1:
            return "debug_token" if head == "debug_token" else "node"
        return self.segments[1]


# --- stream conformance ---------------------------------------------------------------------------------------------
def _ratio(value: str | None) -> float:
    if not value or value in ("0/0", "N/A"):
        return 0.0
    num, _, den = value.partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


def stream_deviations(streams: list[dict], packets: list[dict]) -> tuple[dict, list[tuple[str, str]]]:
    """Compare an ingest recording with Meta's live encoder recommendations; returns (summary, deviations)."""
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    found: list[tuple[str, str]] = []
    summary: dict = {}
    by_stream: dict[int, list[tuple[float, int, bool]]] = {}
    for p in packets:
        if p.get("pts_time") in (None, "N/A"):
            continue
        by_stream.setdefault(int(p["stream_index"]), []).append(
            (float(p["pts_time"]), int(p.get("size") or 0), "K" in (p.get("flags") or "")))

    def kbps(index: int) -> float | None:
        items = sorted(by_stream.get(index, []))
        if len(items) < 2 or items[-1][0] - items[0][0] < 1.5:
            return None  # too short to judge a bitrate
        return sum(size for _, size, _ in items) * 8 / (items[-1][0] - items[0][0]) / 1000

    if video is None:
        found.append(("NO_VIDEO", "The stream has no video track; send both audio and video."))
    else:
        width, height = int(video.get("width") or 0), int(video.get("height") or 0)
        fps = _ratio(video.get("avg_frame_rate")) or _ratio(video.get("r_frame_rate"))
        summary["video"] = {"codec": video.get("codec_name"), "profile": video.get("profile"), "width": width,
                            "height": height, "fps": round(fps, 2)}
        if video.get("codec_name") != "h264":
            found.append(("VIDEO_CODEC", f"Video codec is {video.get('codec_name')}; use H.264."))
        short_side = min(width, height)
        if short_side > 1080:
            found.append(("RESOLUTION", f"Resolution {width}x{height} is above 1080p; send at most 1920x1080."))
        elif 0 < short_side < 360:
            found.append(("RESOLUTION", f"Resolution {width}x{height} is below 360p; send at least 640x360."))
        if fps > 60.5:
            found.append(("FRAME_RATE", f"Frame rate {fps:.0f} fps is above 60 fps."))
        if width and height and abs(max(width, height) / min(width, height) - 16 / 9) > 0.02:
            found.append(("ASPECT_RATIO", f"Aspect ratio {width}x{height} is not 16:9."))
        keys = [t for t, _, key in sorted(by_stream.get(int(video["index"]), [])) if key]
        times = [t for t, _, _ in by_stream.get(int(video["index"]), [])]
        if keys:
            gaps = [b - a for a, b in zip(keys, keys[1:])] + [max(times) - keys[-1]]
            interval = max(gaps)
            summary["video"]["max_keyframe_interval_s"] = round(interval, 2)
            if interval > 4.0 + 0.05:
                found.append(("KEYFRAME_INTERVAL", f"Keyframes arrive every {interval:.1f} s; send one every 2 s "
                                                   "(never more than 4 s)."))
        rate = kbps(int(video["index"]))
        if rate is not None:
            summary["video"]["kbps"] = round(rate)
            for min_side, high_fps, low, high, label in BITRATE_TIERS:
                if short_side >= min_side and (high_fps is None or high_fps == (fps > 30.5)):
                    if not low * 0.8 <= rate <= high * 1.2:  # a short sample of a CBR encode wanders a little
                        found.append(("VIDEO_BITRATE", f"Video bitrate {rate:.0f} kbps is outside {low}-{high} kbps "
                                                       f"recommended for {label}."))
                    break
    if audio is None:
        found.append(("NO_AUDIO", "The stream has no audio track; send both audio and video."))
    else:
        rate_hz, channels = int(audio.get("sample_rate") or 0), int(audio.get("channels") or 0)
        summary["audio"] = {"codec": audio.get("codec_name"), "profile": audio.get("profile"),
                            "sample_rate": rate_hz, "channels": channels}
        if audio.get("codec_name") != "aac":
            found.append(("AUDIO_CODEC", f"Audio codec is {audio.get('codec_name')}; use AAC-LC."))
        elif audio.get("profile") not in (None, "LC"):
            found.append(("AUDIO_PROFILE", f"AAC profile is {audio.get('profile')}; use AAC-LC."))
        if rate_hz not in (44100, 48000):
            found.append(("AUDIO_SAMPLE_RATE", f"Audio sample rate is {rate_hz} Hz; use 44.1 or 48 kHz."))
        if channels != 2:
            found.append(("AUDIO_CHANNELS", f"Audio has {channels} channel(s); send stereo."))
        rate = kbps(int(audio["index"]))
        if rate is not None:
            summary["audio"]["kbps"] = round(rate)
            if rate > 256 * 1.1:
                found.append(("AUDIO_BITRATE", f"Audio bitrate {rate:.0f} kbps exceeds 256 kbps (128 preferred)."))
    return summary, found


async def probe_recording(path: Path, timeout_s: float = 30.0) -> tuple[dict, list[tuple[str, str]]]:
    """ffprobe streams + packets of the first minutes of a recording (a growing file works too)."""
    argv = ["ffprobe", "-v", "error", "-read_intervals", f"%+{PROBE_SAMPLE_S}", "-show_entries",
            "stream=index,codec_type,codec_name,profile,width,height,avg_frame_rate,r_frame_rate,sample_rate,channels"
            ":packet=stream_index,pts_time,size,flags", "-of", "json", str(path)]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return {}, [("PROBE_FAILED", f"The stream could not be analysed within {timeout_s:.0f} s.")]
    if proc.returncode != 0:
        return {}, [("PROBE_FAILED", "The stream could not be read: " + err.decode(errors="replace").strip()[:200])]
    data = json.loads(out or b"{}")
    return stream_deviations(data.get("streams", []), data.get("packets", []))


# --- the app --------------------------------------------------------------------------------------------------------
def create_app(data_dir: str | os.PathLike, *, page_id: str, page_token: str, app_secret: str, rtmp_base: str,
               app_id: str = "1000000000000001", page_name: str = "Bưu điện tỉnh (sandbox)",
               versions: tuple[str, ...] = DEFAULT_VERSIONS, permissions: tuple[str, ...] = DEFAULT_PERMISSIONS,
               record_dir: str | os.PathLike | None = None, rate_limit_calls: int = 4800,
               rate_limit_window_s: float = 3600.0, upload_chunk_bytes: int = 4 * 1024 * 1024,
               duplicate_window_s: float = 0.0, require_appsecret_proof: bool = False,
               probe_timeout_s: float = 30.0) -> FastAPI:
    """A fanpage sandbox app. Admin calls (`/_sandbox/*`) are authorised with `Authorization: Bearer <app secret>`."""
    if not page_token or not app_secret:
        raise ValueError("the fanpage sandbox needs a Page token and an app secret")
    if not versions or any(not re.fullmatch(r"v\d+\.0", v) for v in versions):
        raise ValueError(f"versions must look like v25.0, got {versions!r}")
    store = PageStore(Path(data_dir))
    clock = Clock()
    budget = CallBudget(rate_limit_calls, rate_limit_window_s)
    faults = Faults()
    knobs = {"expired": False, "expires_at": 0, "permissions": set(permissions), "require_proof": require_appsecret_proof,
             "chunk": int(upload_chunk_bytes), "duplicate_window_s": float(duplicate_window_s)}
    accepted = sorted(versions, key=lambda v: int(v[1:].split(".")[0]))
    record_root = Path(record_dir).resolve() if record_dir else None
    rtmp_base = rtmp_base.rstrip("/")
    app_path = urlsplit(rtmp_base).path.strip("/")
    rtmp_app = app_path.split("/")[-1] if app_path else None  # nginx reports it as `app` in its callbacks
    requests_log: deque[dict] = deque(maxlen=5000)
    counter = {"seq": 0, "started": int(clock.now())}
    probing: set[str] = set()
    background: set[asyncio.Task] = set()
    app_name = "Bridgecast"

    # --- helpers ------------------------------------------------------------------------------------------------
    def in_background(coro) -> None:
        task = asyncio.create_task(coro)
        background.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(background.discard)

    def expected_proof(token: str) -> str:
        return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()

    def usage_headers(version: str) -> dict[str, str]:
        percent, regain = budget.usage()
        usage = {"call_count": percent, "total_cputime": max(1, percent // 4), "total_time": max(1, percent // 3)}
        buc = {page_id: [{"type": "pages", **usage, "estimated_time_to_regain_access": regain}]}
        return {"X-App-Usage": json.dumps(usage), "X-Business-Use-Case-Usage": json.dumps(buc),
                "facebook-api-version": version}

    def resolve_version(segments: list[str]) -> tuple[str, list[str]]:
        head = segments[0] if segments else ""
        match = re.fullmatch(r"v(\d+)\.(\d+)", head)
        if not match:
            return accepted[0], segments  # unversioned calls go to the oldest available version
        if head in accepted:
            return head, segments[1:]
        if match.group(2) == "0" and int(match.group(1)) < int(accepted[0][1:].split(".")[0]):
            return accepted[0], segments[1:]  # an expired version is served by the oldest usable one
        raise unknown_path("/" + "/".join(segments))

    async def parse_call(request: Request, full_path: str) -> GraphCall:
        version, segments = resolve_version([s for s in full_path.split("/") if s])
        params = {k: v for k, v in request.query_params.items()}
        files = {}
        content_type = request.headers.get("content-type", "")
        raw_upload = bool(segments) and segments[0].startswith("upload:") and request.method == "POST"
        if request.method in ("POST", "DELETE") and not raw_upload:
            if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
                form = await request.form(max_part_size=8 * 1024 * 1024)
                for key, value in form.multi_items():
                    if hasattr(value, "filename") and hasattr(value, "read"):
                        files[key] = value
                    else:
                        params[key] = value
            elif content_type.startswith("application/json"):
                body = json.loads(await request.body() or b"{}")
                for key, value in body.items():
                    if isinstance(value, bool):
                        params[key] = "true" if value else "false"
                    elif isinstance(value, (dict, list)):
                        params[key] = json.dumps(value)
                    else:
                        params[key] = str(value)
        query_token = request.query_params.get("access_token")
        method = request.method
        override = params.pop("method", "").upper()
        if method == "POST" and override in ("GET", "DELETE"):
            method = override  # Graph honours a `method` field for clients that cannot send every verb
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        header_token = value.strip() if scheme.lower() in ("oauth", "bearer") and value.strip() else None
        param_token = params.pop("access_token", None)
        source = "header" if header_token else "query" if query_token else "body" if param_token else None
        return GraphCall(method=method, version=version, segments=segments, params=params, files=files,
                         token=header_token or param_token, token_source=source,
                         appsecret_proof=params.pop("appsecret_proof", None))

    def token_expired() -> bool:
        """Expired by the knob, or because its `expires_at` (0: never, as a Page token from a long-lived user token)
        has passed: Graph then refuses every call with it, as it does."""
        return knobs["expired"] or 0 < knobs["expires_at"] <= clock.now()

    def authorise(call: GraphCall) -> None:
        if not call.token:
            raise GraphError(104, "An access token is required to request this resource.")
        if not hmac.compare_digest(call.token.encode(), page_token.encode()):
            raise GraphError(190, DEFAULT_MESSAGES[190], subcode=467)
        if token_expired():
            now = datetime.fromtimestamp(clock.now(), timezone.utc)
            raise GraphError(190, f"Error validating access token: Session has expired on {now:%A, %d-%b-%y} "
                                  f"01:00:00 PDT. The current time is {now:%A, %d-%b-%y %H:%M:%S} UTC.", subcode=463)
        if call.appsecret_proof is not None:
            if not hmac.compare_digest(call.appsecret_proof.encode(), expected_proof(call.token).encode()):
                raise GraphError(100, "Invalid appsecret_proof provided in the API argument",
                                 type_="GraphMethodException")
        elif knobs["require_proof"]:
            raise GraphError(100, "API calls from the server require an appsecret_proof argument",
                             type_="GraphMethodException")
        if not budget.spend():
            raise error_for_code(80001)

    def need(*wanted: str, read: bool = False) -> None:
        missing = [p for p in wanted if p not in knobs["permissions"]]
        if not missing:
            return
        if read:
            raise GraphError(10, f"(#10) This endpoint requires the '{missing[0]}' permission or the 'Page Public "
                                 "Content Access' feature. Refer to https://developers.facebook.com/docs/apps/review/"
                                 "login-permissions#manage-pages for details.", status=403)
        if set(missing) <= set(POSTING):
            raise GraphError(200, DEFAULT_MESSAGES[200], status=403)
        raise GraphError(200, f"(#200) Requires {' and '.join(missing)} permission to manage this Page's videos",
                         status=403)

    def page_post_id() -> str:
        return f"{page_id}_{store.new_id()}"

    def base_url(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    def render(obj: dict, fields: list[str] | None, default: tuple[str, ...], views: dict, node_type: str) -> dict:
        out = {}
        for name in fields or default:
            if name not in views:
                raise nonexisting_field(name, node_type)
            value = views[name](obj)
            if value is not None:
                out[name] = value
        out.setdefault("id", obj["id"])
        return out

    def paginate(items: list, params: dict, view) -> dict:
        try:
            limit = min(100, max(1, int(params.get("limit", 25))))
        except ValueError:
            raise param_error("Param limit must be an integer") from None
        start = 0
        if params.get("after"):
            try:
                start = int(base64.urlsafe_b64decode(params["after"].encode()).decode()) + 1
            except (ValueError, UnicodeDecodeError):
                raise param_error("Invalid cursor") from None
        page = items[start:start + limit]
        result = {"data": [view(i) for i in page]}
        if page:
            cursors = {"before": base64.urlsafe_b64encode(str(start).encode()).decode(),
                       "after": base64.urlsafe_b64encode(str(start + len(page) - 1).encode()).decode()}
            result["paging"] = {"cursors": cursors}
            if start + limit < len(items):
                result["paging"]["next"] = f"?after={cursors['after']}&limit={limit}"
        return result

    def time_filter(items: list[dict], params: dict, key: str) -> list[dict]:
        for name, keep in (("since", lambda t, b: t >= b), ("until", lambda t, b: t <= b)):
            if params.get(name):
                bound = parse_feed_time(params[name])
                items = [i for i in items if keep(i[key], bound)]
        return items

    # --- views ---------------------------------------------------------------------------------------------------
    def post_views(request: Request) -> dict:
        root = base_url(request)

        def attachments(post):
            media = [{"media_type": "photo", "target": {"id": pid},
                      "media": {"image": {"src": f"{root}/_files/photo/{pid}"}}} for pid in post.get("photos", [])]
            if not media:
                return None
            if len(media) == 1:
                return {"data": media}
            return {"data": [{"media_type": "album", "subattachments": {"data": media}}]}

        return {
            "id": lambda p: p["id"], "message": lambda p: p.get("message") or None,
            "created_time": lambda p: fb_time(p["created_time"]), "updated_time": lambda p: fb_time(p["updated_time"]),
            "is_published": lambda p: p["state"] == "published",
            "scheduled_publish_time": lambda p: p.get("scheduled_publish_time"),
            "link": lambda p: p.get("link"), "permalink_url": lambda p: f"{root}/?post={p['id']}",
            "attachments": attachments,
            "full_picture": lambda p: f"{root}/_files/photo/{p['photos'][0]}" if p.get("photos") else None,
            "status_type": lambda p: "added_photos" if p.get("photos") else "added_video" if p.get("video")
            else "shared_story" if p.get("link") else "mobile_status_update",
        }

    def video_views(request: Request) -> dict:
        root = base_url(request)
        return {
            "id": lambda v: v["id"], "title": lambda v: v.get("title") or None,
            "description": lambda v: v.get("description") or None,
            "created_time": lambda v: fb_time(v["created_time"]), "updated_time": lambda v: fb_time(v["updated_time"]),
            "length": lambda v: v.get("length"), "published": lambda v: v.get("published", True),
            "permalink_url": lambda v: f"/{page_id}/videos/{v['id']}/",
            "source": lambda v: f"{root}/_files/video/{v['id']}" if v.get("file") or v.get("recording") else None,
            "status": lambda v: reel_status(v) if v.get("reel") else {"video_status": "ready" if v.get("file") or v.get("recording") else "processing"
                                 if v.get("state") in ("processing", "live") else "uploading"},
        }

    def live_views(request: Request) -> dict:
        root = base_url(request)

        def stream_url(live):
            return f"{rtmp_base}/{live['id']}?s_bl=1&a={live['stream_secret']}"

        def stream_health(live):
            """While frames arrive: the probed health, with the bitrate measured from the growing recording
            (a stalled feed shows 0); None when nothing arrives."""
            if not live.get("receiving"):
                return None
            health = dict(live.get("stream_health") or {})
            path = newest_recording(live["id"])
            since = live.get("receiving_since")
            if path is not None and since:
                size, elapsed = path.stat().st_size, max(0.5, time.time() - max(since, path.stat().st_ctime))
                health.setdefault("video_bitrate", size * 8 / elapsed)
                health["bytes_received"] = size
                health["last_data_age_s"] = round(time.time() - path.stat().st_mtime, 1)
                if health["last_data_age_s"] > 5:
                    health["video_bitrate"] = 0.0
            return health

        def ingest_streams(live):
            return [{"stream_id": "0", "stream_url": stream_url(live), "secure_stream_url": stream_url(live),
                     "is_master": True, "stream_health": stream_health(live),
                     "dash_preview_url": f"{root}/?live={live['id']}" if live.get("receiving") else None}]

        return {
            "id": lambda lv: lv["id"], "status": lambda lv: lv["status"], "title": lambda lv: lv.get("title") or None,
            "description": lambda lv: lv.get("description") or None,
            "stream_url": stream_url, "secure_stream_url": stream_url,
            "stream_secondary_urls": lambda lv: [], "secure_stream_secondary_urls": lambda lv: [],
            "permalink_url": lambda lv: f"/{page_id}/videos/{lv['video_id']}/",
            "embed_html": lambda lv: f'<iframe src="{root}/?live={lv["id"]}" width="1280" height="720"></iframe>',
            "ingest_streams": ingest_streams, "live_views": live_viewers,
            "total_views": lambda lv: str(live_video_views(lv)),
            "video": lambda lv: {"id": lv["video_id"]},
            "broadcast_start_time": lambda lv: fb_time(lv.get("broadcast_start_time")),
            "creation_time": lambda lv: fb_time(lv["created_time"]),
            "planned_start_time": lambda lv: fb_time(lv.get("planned_start_time")),
            "dash_preview_url": lambda lv: f"{root}/?live={lv['id']}" if lv.get("receiving") else None,
            "published": lambda lv: lv.get("published", False),
        }

    def photo_views(request: Request) -> dict:
        root = base_url(request)
        return {"id": lambda p: p["id"], "name": lambda p: p.get("caption") or None,
                "created_time": lambda p: fb_time(p["created_time"]),
                "images": lambda p: [{"source": f"{root}/_files/photo/{p['id']}"}],
                "link": lambda p: f"{root}/_files/photo/{p['id']}", "published": lambda p: p["published"]}

    page_views = {"id": lambda p: page_id, "name": lambda p: page_name, "category": lambda p: "Government Organization",
                  "link": lambda p: f"https://www.facebook.com/{page_id}", "fan_count": lambda p: 1200,
                  "followers_count": lambda p: 1250}

    # --- insights (sandbox numbers, see insights_metrics and friends) -------------------------------------------
    def live_video_views(live: dict) -> int:
        video = store.objects.get(live["video_id"]) or {"id": live["video_id"]}
        return video_figures(video, clock.now(), public_since=live.get("broadcast_start_time"))["total_video_views"]

    def object_insights(call: GraphCall, obj: dict) -> dict:
        need(*INSIGHTS_PERMISSIONS, read=True)
        now = clock.now()
        if obj["type"] == "post":
            metrics, figures = insights_metrics(call.params, POST_METRICS), post_figures(obj, now)
        else:
            metrics = insights_metrics(call.params, VIDEO_METRICS)
            live = next((lv for lv in store.of("live") if lv["video_id"] == obj["id"]), None)
            figures = video_figures(obj, now, public_since=live.get("broadcast_start_time") if live else None)
        period = insights_period(call.params, ("lifetime",), "lifetime")
        # Lifetime values carry no end_time for videos; post values end now.
        value = (lambda m: {"value": figures[m]}) if obj["type"] == "video" else \
            (lambda m: {"value": figures[m], "end_time": fb_time(now)})
        return {"data": [insights_entry(obj["id"], m, period, [value(m)]) for m in metrics],
                "paging": {"previous": "", "next": ""}}

    def page_insights(call: GraphCall) -> dict:
        need(*INSIGHTS_PERMISSIONS, read=True)
        now = clock.now()
        metrics = insights_metrics(call.params, PAGE_METRICS)
        period = insights_period(call.params, PAGE_PERIODS, "day")
        starts = insights_day_starts(call.params, now)
        window = {"day": 1, "week": 7, "days_28": 28}[period]
        posts, videos = store.of("post"), [v for v in store.of("video") if v.get("file") or v.get("recording")]
        days: dict[float, dict] = {}

        def day(start: float) -> dict:
            if start not in days:
                days[start] = page_day_figures(start, posts, videos, now, page_id)
            return days[start]

        def value(metric: str, start: float):
            if metric == "page_follows":  # a count at the end of the day, not a sum
                return PAGE_FOLLOWERS
            return sum(day(start - k * DAY_S)[metric] for k in range(window))  # the day and the ones before

        data = [insights_entry(page_id, m, period, [{"value": value(m, start), "end_time": fb_time(start + DAY_S)}
                                                    for start in starts]) for m in metrics]
        return {"data": data, "paging": {"previous": "", "next": ""}}

    # --- posts ---------------------------------------------------------------------------------------------------
    def check_duplicate(message: str) -> None:
        # Off by default: Meta does not promise a duplicate refusal (#506) for photo posts, so exactly-once must not
        # lean on it; the `duplicate_window_s` knob turns it on for the tests of that answer.
        if not message or knobs["duplicate_window_s"] <= 0:
            return
        horizon = clock.now() - knobs["duplicate_window_s"]
        for post in store.of("post"):
            if post.get("message") == message and post["requested_time"] >= horizon and post["state"] != "unpublished":
                raise error_for_code(506)

    def new_post(message: str, *, state: str, when: int | None, link: str | None = None,
                 photos: list[str] = (), video: str | None = None) -> dict:
        now = clock.now()
        post = {"type": "post", "id": page_post_id(), "message": message, "link": link, "state": state,
                "scheduled_publish_time": when, "photos": list(photos), "video": video,
                "created_time": now, "updated_time": now, "requested_time": now}
        store.objects[post["id"]] = post
        for pid in photos:
            store.objects[pid]["post_id"] = post["id"]
            store.objects[pid]["published"] = state == "published"
        return post

    def publish_post(post: dict) -> None:
        post["state"] = "published"
        post["created_time"] = post["updated_time"] = clock.now()
        for pid in post.get("photos", []):
            store.objects[pid]["published"] = True
        if post.get("video") and post["video"] in store.objects:
            store.objects[post["video"]]["published"] = True

    def attached_photos(params: dict, scheduled: bool) -> list[str]:
        items: list[tuple[int, str, str]] = []
        for key, value in params.items():
            match = re.fullmatch(r"attached_media\[(\d+)\]", key)
            if match:
                items.append((int(match.group(1)), key, value))
        if "attached_media" in params:
            try:
                listed = json.loads(params["attached_media"])
            except json.JSONDecodeError:
                raise param_error("Param attached_media must be an array of objects") from None
            items += [(i, f"attached_media[{i}]", json.dumps(v)) for i, v in enumerate(listed)]
        photos = []
        for _, key, value in sorted(items):
            try:
                fbid = str(json.loads(value)["media_fbid"]) if isinstance(value, str) else str(value["media_fbid"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise param_error(f"param {key} must be a JSON object with a media_fbid") from None
            photo = store.get(fbid, "photo")
            if photo is None or photo["published"] or photo.get("post_id"):
                raise param_error(f"param {key} has media_fbid {fbid}, which is not an unpublished photo of this Page",
                                  user_msg="Attach only photos uploaded with published=false that no post uses yet.")
            if scheduled and not photo.get("temporary"):
                # Inferred from public code: photos for a scheduled post are uploaded with temporary=true.
                raise param_error(f"param {key}: photos attached to a scheduled post must be uploaded with "
                                  "temporary=true")
            photos.append(fbid)
        return photos

    def create_feed_post(call: GraphCall) -> dict:
        need(*POSTING)
        p = call.params
        message = p.get("message", "")
        link = p.get("link") or None
        published = parse_bool(p, "published", True)
        if link and urlsplit(link).scheme not in ("http", "https"):
            raise GraphError(1609005, "(#1609005) Error Posting Link: the link must be an http(s) URL",
                             user_msg="The link you are trying to post is invalid.")
        when = None
        if p.get("scheduled_publish_time"):
            if published:
                raise param_error("You cannot specify a scheduled publish time on a published post")
            when = parse_feed_time(p["scheduled_publish_time"])
            check_schedule_window(when, clock.now())
        photos = attached_photos(p, scheduled=when is not None)
        if not message and not link and not photos:
            raise param_error("Missing message or attachment")
        with store.lock:
            check_duplicate(message)
            state = "published" if published else "scheduled" if when else "unpublished"
            post = new_post(message, state=state, when=when, link=link, photos=photos)
            store.save()
        return {"id": post["id"]}

    def update_post(call: GraphCall, post: dict) -> dict:
        need(*POSTING)
        p = call.params
        with store.lock:
            if "message" in p:
                post["message"] = p["message"]
            if p.get("scheduled_publish_time"):
                if post["state"] != "scheduled":
                    raise param_error("You cannot specify a scheduled publish time on a published post")
                when = parse_feed_time(p["scheduled_publish_time"])
                check_schedule_window(when, clock.now())
                post["scheduled_publish_time"] = when
            if parse_bool(p, "is_published", False) and post["state"] != "published":
                publish_post(post)
            post["updated_time"] = clock.now()
            store.save()
        return {"success": True}

    # --- photos --------------------------------------------------------------------------------------------------
    async def fetch_url(url: str, limit: int) -> bytes:
        import httpx

        if urlsplit(url).scheme not in ("http", "https"):
            raise GraphError(324, "(#324) Missing or invalid image file")
        try:
            async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            raise GraphError(324, "(#324) Missing or invalid image file") from None
        if response.status_code != 200 or len(response.content) > limit:
            raise GraphError(324, "(#324) Missing or invalid image file")
        return response.content

    async def create_photo(call: GraphCall) -> dict:
        need(*POSTING)
        p = call.params
        published = parse_bool(p, "published", True)
        temporary = parse_bool(p, "temporary", False)
        when = parse_uint(p, "scheduled_publish_time")
        if when is not None:
            if published:
                raise param_error("You cannot specify a scheduled publish time on a published post")
            check_schedule_window(when, clock.now())
        if "source" in call.files:
            data = await call.files["source"].read()
        elif p.get("url"):
            data = await fetch_url(p["url"], 30 * 1024 * 1024)
        else:
            raise GraphError(324, "(#324) Requires upload file")
        ext = sniff_image(data)
        if ext is None:
            raise GraphError(324, "(#324) Missing or invalid image file",
                             user_msg="Photos must be JPEG, PNG, GIF, BMP or TIFF files.")
        text = p.get("message") or p.get("caption") or ""
        with store.lock:
            photo_id = store.new_id()
            rel = f"photos/{photo_id}.{ext}"
            (store.files / rel).write_bytes(data)
            now = clock.now()
            store.objects[photo_id] = {"type": "photo", "id": photo_id, "file": rel, "caption": text,
                                       "published": False, "temporary": temporary, "post_id": None,
                                       "created_time": now, "updated_time": now,
                                       "sha256": hashlib.sha256(data).hexdigest()}
            result = {"id": photo_id}
            if published or when is not None:
                post = new_post(text, state="published" if published else "scheduled", when=when, photos=[photo_id])
                result["post_id"] = post["id"]
            store.save()
        return result

    # --- videos --------------------------------------------------------------------------------------------------
    def new_video(title: str, description: str, *, state: str) -> dict:
        now = clock.now()
        video = {"type": "video", "id": store.new_id(), "title": title, "description": description, "file": None,
                 "state": state, "published": False, "created_time": now, "updated_time": now}
        store.objects[video["id"]] = video
        return video

    def finish_video(video: dict, source: Path, params: dict) -> None:
        """Move an uploaded file into place, hash it, and publish (or schedule) the video's post."""
        published = parse_bool(params, "published", True)
        when = parse_uint(params, "scheduled_publish_time")
        if when is not None:
            if published:
                raise param_error("You cannot specify a scheduled publish time on a published post")
            check_schedule_window(when, clock.now())
        rel = f"videos/{video['id']}.mp4"
        os.replace(source, store.files / rel)
        digest = hashlib.sha256()
        with open(store.files / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1024 * 1024), b""):
                digest.update(block)
        video.update(file=rel, state="ready", sha256=digest.hexdigest(), size=(store.files / rel).stat().st_size,
                     updated_time=clock.now())
        for key in ("title", "description"):
            if params.get(key):
                video[key] = params[key]
        if published or when is not None:
            new_post(video.get("description") or video.get("title") or "", state="published" if published
                     else "scheduled", when=when, video=video["id"])
            video["published"] = published

    async def copy_upload(upload_file, target: Path, offset: int) -> int:
        """Write an uploaded part at `offset`, 1 MiB at a time (chunks can be large)."""
        written = 0
        mode = "r+b" if target.exists() else "wb"
        with open(target, mode) as out:
            out.seek(offset)
            while block := await upload_file.read(1024 * 1024):
                out.write(block)
                written += len(block)
        return written

    async def resumable_phase(call: GraphCall, phase: str) -> dict:
        p = call.params
        chunk = knobs["chunk"]
        if phase == "start":
            size = parse_uint(p, "file_size")
            if not size:
                raise param_error("Param file_size must be a positive integer")
            if size > RESUMABLE_MAX_BYTES:
                raise param_error("The video file is too large: resumable uploads take at most 10 GB")
            with store.lock:
                video = new_video(p.get("title", ""), p.get("description", ""), state="uploading")
                session_id = store.new_id()
                store.sessions[session_id] = {"video_id": video["id"], "file_size": size, "received": 0,
                                              "part": f"parts/{session_id}.part", "finished": False}
                store.save()
            return {"video_id": video["id"], "upload_session_id": session_id, "start_offset": "0",
                    "end_offset": str(min(chunk, size))}
        session_id = p.get("upload_session_id", "")
        session = store.sessions.get(session_id)
        if session is None:
            raise param_error(f"Invalid upload_session_id {session_id!r}: the upload session does not exist or has "
                              "expired")
        if phase == "cancel":
            with store.lock:
                store.sessions.pop(session_id, None)
                (store.files / session["part"]).unlink(missing_ok=True)
                store.objects[session["video_id"]]["deleted"] = True
                store.save()
            return {"success": True}
        if phase == "transfer":
            start = parse_uint(p, "start_offset")
            if start is None:
                raise param_error("Param start_offset is required for upload_phase=transfer")
            upload = call.files.get("video_file_chunk")
            if upload is None:
                raise param_error("Param video_file_chunk is required for upload_phase=transfer")
            size, received = session["file_size"], session["received"]
            expected = min(chunk, size - received)
            if start < received:
                # The client resends a chunk we already hold (its previous answer was lost): acknowledge it.
                return {"start_offset": str(received), "end_offset": str(min(received + chunk, size))}
            if start != received:
                raise param_error(f"Invalid start_offset {start}: the upload session expects {received}")
            part = store.files / session["part"]
            length = await copy_upload(upload, part, start)
            if length != expected:
                with open(part, "r+b") as fh:
                    fh.truncate(received)
                raise param_error(f"The chunk at start_offset {start} must be {expected} bytes, got {length}")
            with store.lock:
                session["received"] = received + length
                store.save()
            received = session["received"]
            return {"start_offset": str(received), "end_offset": str(min(received + chunk, size))}
        # finish
        if session["finished"]:
            return {"success": True}
        if session["received"] < session["file_size"]:
            raise error_for_code(6000, subcode=1363030, message="(#6000) There was a problem uploading your video "
                                 f"file: {session['received']} of {session['file_size']} bytes arrived.",
                                 user_msg="Send every chunk before finishing the upload.")
        with store.lock:
            finish_video(store.objects[session["video_id"]], store.files / session["part"], p)
            session["finished"] = True
            store.save()
        return {"success": True}

    async def videos_post(call: GraphCall) -> dict:
        need(*VIDEO_POSTING)
        p = call.params
        phase = (p.get("upload_phase") or "").lower()
        if phase:
            if phase not in ("start", "transfer", "finish", "cancel"):
                raise param_error("Param upload_phase must be one of {START, TRANSFER, FINISH, CANCEL}")
            return await resumable_phase(call, phase)
        part = store.files / "parts" / f"direct-{store.new_id()}.part"
        if p.get("fbuploader_video_file_chunk"):
            handle = p["fbuploader_video_file_chunk"]
            upload = next((u for u in store.uploads.values() if u.get("handle") == handle), None)
            if upload is None or upload["offset"] < upload["file_length"]:
                raise param_error("Param fbuploader_video_file_chunk is not the handle of a completed upload")
            shutil.copyfile(store.files / upload["file"], part)
        elif "source" in call.files:
            await copy_upload(call.files["source"], part, 0)
        elif p.get("file_url"):
            part.write_bytes(await fetch_url(p["file_url"], 1024 ** 3))
        else:
            raise param_error("No video file: send source, file_url, fbuploader_video_file_chunk or use upload_phase")
        with store.lock:
            video = new_video(p.get("title", ""), p.get("description", ""), state="processing")
            finish_video(video, part, p)
            store.save()
        return {"id": video["id"]}

    def update_video(call: GraphCall, video: dict) -> dict:
        need(*VIDEO_POSTING)
        with store.lock:
            for key in ("title", "description"):
                if key in call.params:
                    video[key] = call.params[key]
            video["updated_time"] = clock.now()
            store.save()
        return {"success": True}

    # --- Reels (/{page-id}/video_reels + the rupload host; facebook-graph.md §R) ----------------------------------
    def reel_status(v: dict) -> dict:
        """A Reel's `status` as Graph shows it, from where it is in start → upload → finish."""
        uploaded = 0 < v.get("file_size", 0) <= v.get("received", 0)
        errors = v.get("reel_errors") or []
        finished = v.get("state") in ("ready", "error")
        published = v.get("state") == "ready" and v.get("video_state") == "PUBLISHED"
        return {"video_status": "error" if errors else "ready" if finished else "processing",
                "uploading_phase": {"status": "complete" if uploaded else "in_progress",
                                    "bytes_transferred": v.get("received", 0), "source_file_size": v.get("file_size", 0)},
                "processing_phase": {"status": "error" if errors else "complete" if finished else "not_started",
                                     **({"errors": errors} if errors else {})},
                "publishing_phase": {"status": "complete" if published else "not_started",
                                     "publish_status": "published" if published else "not_published",
                                     "publish_time": fb_time(v.get("published_time"))},
                "copyright_check_status": {"status": "complete" if finished else "not_started"}}

    async def reel_deviations(path: Path) -> list[str]:
        """What breaks the Reel spec: MP4, 9:16, ≥540×960, 3–90 s, H.264/H.265 video, AAC audio at 48 kHz."""
        proc = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), probe_timeout_s)
        info = json.loads(out or b"{}")
        streams = info.get("streams", [])
        video = next((st for st in streams if st.get("codec_type") == "video"), None)
        audio = next((st for st in streams if st.get("codec_type") == "audio"), None)
        if video is None:
            return ["The file is not a video Facebook can read"]
        problems = []
        width, height = int(video.get("width", 0)), int(video.get("height", 0))
        if not height or abs(width / height - 9 / 16) > 0.01:
            problems.append(f"The video must be 9:16, got {width}x{height}")
        if width < 540 or height < 960:
            problems.append(f"The video must be at least 540x960, got {width}x{height}")
        seconds = float((info.get("format") or {}).get("duration") or 0)
        if not 3 <= seconds <= 90:
            problems.append(f"A Reel must last 3 to 90 seconds, got {seconds:.1f}")
        if video.get("codec_name") not in ("h264", "hevc"):
            problems.append(f"The video codec must be H.264 or H.265, got {video.get('codec_name')}")
        if audio is None or audio.get("codec_name") != "aac" or audio.get("sample_rate") != "48000":
            problems.append("The audio must be AAC at 48 kHz")
        return problems

    async def reels_post(call: GraphCall, request: Request) -> dict:
        need(*VIDEO_POSTING)
        p = call.params
        phase = (p.get("upload_phase") or "").lower()
        if phase == "start":
            with store.lock:
                video = new_video("", "", state="uploading")
                video.update(reel=True, received=0, file_size=0)
                store.save()
            return {"video_id": video["id"],
                    "upload_url": f"{base_url(request)}/video-upload/{call.version}/{video['id']}"}
        if phase != "finish":
            raise param_error("Param upload_phase must be one of {START, FINISH} for video_reels")
        video = store.get(p.get("video_id", ""), "video")
        if video is None or not video.get("reel"):
            raise param_error(f"Invalid video_id {p.get('video_id')!r}: no Reel upload with this id")
        if video["state"] in ("ready", "error"):
            return {"success": True}
        state = (p.get("video_state") or "").upper()
        if state not in ("PUBLISHED", "DRAFT", "SCHEDULED"):
            raise param_error("Param video_state must be one of {DRAFT, PUBLISHED, SCHEDULED}")
        when = parse_uint(p, "scheduled_publish_time")
        if state == "SCHEDULED":
            if when is None:
                raise param_error("Param scheduled_publish_time is required for video_state=SCHEDULED")
            check_schedule_window(when, clock.now())
        if not 0 < video["file_size"] <= video["received"]:
            raise error_for_code(6000, subcode=1363130, message="(#6000) Video Upload Is Missing: "
                                 f"{video['received']} of {video['file_size'] or '?'} bytes arrived",
                                 user_msg="Upload the file to the upload_url before finishing.")
        part = store.files / "parts" / f"reel-{video['id']}.part"
        problems = await reel_deviations(part)
        with store.lock:
            video.update(title=p.get("title", ""), description=p.get("description", ""), video_state=state,
                         updated_time=clock.now())
            if problems:
                video.update(state="error", reel_errors=[{"message": m} for m in problems])
            else:
                rel = f"videos/{video['id']}.mp4"
                os.replace(part, store.files / rel)
                video.update(file=rel, state="ready", size=(store.files / rel).stat().st_size,
                             sha256=hashlib.sha256((store.files / rel).read_bytes()).hexdigest())
                if state != "DRAFT":
                    video.update(published=state == "PUBLISHED", published_time=clock.now() if state == "PUBLISHED"
                                 else when)
                    new_post(video["description"] or video["title"], state="published" if state == "PUBLISHED"
                             else "scheduled", when=when, video=video["id"])
            store.save()
        return {"success": True}

    async def reel_upload(call: GraphCall, request: Request, video_id: str) -> dict:
        """POST rupload/video-upload/vX/<video_id>: the bytes (headers offset + file_size) or a `file_url`."""
        video = store.get(video_id, "video")
        if video is None or not video.get("reel") or call.method != "POST":
            raise unsupported(call.method, video_id)
        if call.token_source != "header":
            raise GraphError(190, "The upload host takes the token as an 'Authorization: OAuth <token>' header")
        offset = request.headers.get("offset", "")
        if not offset.isdigit():
            raise param_error("The offset header is required and must be an integer")
        part = store.files / "parts" / f"reel-{video_id}.part"
        if request.headers.get("file_url"):
            data = await fetch_url(request.headers["file_url"], 1024 ** 3)
            part.write_bytes(data)
            received, size = len(data), len(data)
        else:
            size_header = request.headers.get("file_size", "")
            if not size_header.isdigit() or int(size_header) <= 0:
                raise param_error("The file_size header is required and must be a positive integer")
            if int(offset) != video["received"]:
                raise param_error(f"offset {offset} does not match the {video['received']} bytes already received")
            size, received = int(size_header), int(offset)
            with open(part, "r+b" if part.exists() else "wb") as out:
                out.seek(received)
                async for block in request.stream():
                    out.write(block)
                    received += len(block)
            if received > size:
                raise param_error(f"{received} bytes arrived, more than file_size {size}")
        with store.lock:
            video.update(received=received, file_size=size, updated_time=clock.now())
            store.save()
        return {"success": True}

    # --- Resumable Upload API (/{app-id}/uploads, /upload:<session>) ----------------------------------------------
    def start_upload(call: GraphCall) -> dict:
        p = call.params
        length = parse_uint(p, "file_length")
        if not length:
            raise param_error("Param file_length must be a positive integer")
        if p.get("file_type") not in UPLOAD_FILE_TYPES:
            raise param_error(f"Param file_type must be one of {{{', '.join(UPLOAD_FILE_TYPES)}}}")
        session = secrets.token_urlsafe(18)
        with store.lock:
            store.uploads[session] = {"file_name": p.get("file_name", ""), "file_length": length,
                                      "file_type": p["file_type"], "offset": 0, "file": f"parts/up-{session}.part",
                                      "handle": None}
            store.save()
        return {"id": f"upload:{session}"}

    async def upload_session(call: GraphCall, request: Request) -> dict:
        session = call.segments[0].split(":", 1)[1]
        upload = store.uploads.get(session)
        if upload is None:
            raise unsupported(call.method, call.segments[0])
        if call.method == "GET":
            return {"id": f"upload:{session}", "file_offset": upload["offset"]}
        if call.method != "POST":
            raise unsupported(call.method, call.segments[0])
        raw_offset = request.headers.get("file_offset", "")
        if not raw_offset.isdigit():
            raise param_error("The file_offset header is required and must be an integer")
        if int(raw_offset) != upload["offset"]:
            raise param_error(f"file_offset {raw_offset} does not match the {upload['offset']} bytes already "
                              "received; resume from that offset")
        target = store.files / upload["file"]
        with open(target, "r+b" if target.exists() else "wb") as out:
            out.seek(upload["offset"])
            try:
                async for block in request.stream():
                    if upload["offset"] + len(block) > upload["file_length"]:
                        raise param_error("The body is longer than the file_length of the upload session")
                    out.write(block)
                    upload["offset"] += len(block)
            finally:  # whatever arrived before a disconnect counts: the client resumes from there
                with store.lock:
                    store.save()
        if upload["offset"] == upload["file_length"] and not upload["handle"]:
            upload["handle"] = f"{secrets.randbelow(9) + 1}:{base64.b64encode(session.encode()).decode()}"
            store.save()
        return {"h": upload["handle"] or ""}

    # --- live videos ---------------------------------------------------------------------------------------------
    def parse_start_time(raw: str) -> int:
        text = str(raw).strip()
        if text.isdigit():
            return int(text)
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise param_error("Param event_params must be an object") from None
        start = value.get("start_time") if isinstance(value, dict) else value
        if isinstance(start, str) and start.isdigit():
            start = int(start)
        if not isinstance(start, int) or isinstance(start, bool):
            raise param_error("Param event_params[start_time] must be a UNIX timestamp")
        return start

    def create_live(call: GraphCall) -> dict:
        need(*POSTING)
        p = call.params
        if "planned_start_time" in p:
            raise param_error("Calls to POST /ID/live-video with planned_start_time will return an error. To schedule "
                              "a live video, use the event_params parameter.")
        status = (p.get("status") or "UNPUBLISHED").upper()
        if status not in CREATE_STATUSES or status == "SCHEDULED_CANCELED":
            raise param_error("Param status must be one of {UNPUBLISHED, LIVE_NOW, SCHEDULED_UNPUBLISHED, "
                              "SCHEDULED_LIVE}")
        title = p.get("title", "")
        if len(title) > TITLE_MAX_CHARS:
            raise param_error(f"Param title must be at most {TITLE_MAX_CHARS} characters long")
        published = parse_bool(p, "published", status != "UNPUBLISHED")
        start = None
        if status in SCHEDULED:
            if not p.get("event_params"):
                raise param_error("A scheduled live video needs event_params with a start_time")
            start = parse_start_time(p["event_params"])
            now = clock.now()
            if start <= now:
                raise param_error("The start_time in event_params must be in the future")
            if start > now + LIVE_SCHEDULE_MAX_S:
                raise param_error("The start_time in event_params is too far ahead: a live video can be scheduled "
                                  "at most 7 days ahead", user_msg="Choose a start time within the next 7 days.")
        with store.lock:
            live_id = store.new_id()
            video = new_video(title, p.get("description", ""), state="live")
            now = clock.now()
            live = {"type": "live", "id": live_id, "video_id": video["id"], "title": title,
                    "description": p.get("description", ""),
                    "status": "LIVE" if status == "LIVE_NOW" else status, "published": published,
                    "planned_start_time": start, "created_time": now, "updated_time": now,
                    "stream_secret": secrets.token_urlsafe(24), "receiving": False, "receiving_since": None,
                    "awaiting_record": False, "recordings": [], "errors": [], "stream_health": None,
                    "broadcast_start_time": None, "preview_probed": False}
            if status == "LIVE_NOW":  # on air only when frames arrive (go_live below)
                live["status"] = "UNPUBLISHED"
                go_live(live)
            store.objects[live_id] = live
            store.save()
        url = f"{rtmp_base}/{live_id}?s_bl=1&a={live['stream_secret']}"
        return {"id": live_id, "stream_url": url, "secure_stream_url": url, "stream_secondary_urls": [],
                "secure_stream_secondary_urls": []}

    def go_live(live: dict) -> None:
        """As Facebook: LIVE_NOW asks for the broadcast; it starts (status LIVE, the post on the Page) only once
        stream data arrives — a live video without frames stays off the Page with its pre-live status."""
        live["live_requested"] = True
        live["published"] = True
        if live.get("receiving"):
            live["status"] = "LIVE"
            live["broadcast_start_time"] = live.get("broadcast_start_time") or clock.now()
            live["broadcast_started_at"] = live.get("broadcast_started_at") or time.time()

    def end_live(live: dict) -> None:
        if live["status"] in ENDED:
            return
        was_broadcast = live["status"] == "LIVE" or live.get("recordings") or live.get("receiving")
        live["status"] = "LIVE_STOPPED"
        live["ended_time"] = clock.now()
        if was_broadcast:
            finalize(live)

    def finalize(live: dict) -> None:
        """An ended broadcast becomes a VOD once its last recording has been written (record_done)."""
        if live["status"] != "LIVE_STOPPED" or live.get("receiving") or live.get("awaiting_record"):
            return
        if not live.get("recordings"):
            return
        live["status"] = "VOD"
        video = store.objects.get(live["video_id"])
        if video is not None:
            biggest = max(live["recordings"], key=lambda r: r.get("size", 0))
            video.update(state="ready", recording=biggest["path"], published=True, updated_time=clock.now(),
                         title=live.get("title", ""), description=live.get("description", ""))

    def update_live(call: GraphCall, live: dict) -> dict:
        need(*POSTING)
        p = call.params
        with store.lock:
            if "title" in p:
                if len(p["title"]) > TITLE_MAX_CHARS:
                    raise param_error(f"Param title must be at most {TITLE_MAX_CHARS} characters long")
                live["title"] = p["title"]
            if "description" in p:
                live["description"] = p["description"]
            if p.get("planned_start_time"):
                when = parse_uint(p, "planned_start_time")
                if live["status"] not in SCHEDULED:
                    raise param_error("Only a scheduled live video has a planned_start_time")
                if not clock.now() < when <= clock.now() + LIVE_SCHEDULE_MAX_S:
                    raise param_error("Param planned_start_time must be in the future and at most 7 days ahead")
                live["planned_start_time"] = when
            if parse_bool(p, "end_live_video", False):
                end_live(live)
            status = (p.get("status") or "").upper()
            if status:
                if status not in CREATE_STATUSES:
                    raise param_error("Param status must be one of {UNPUBLISHED, LIVE_NOW, SCHEDULED_UNPUBLISHED, "
                                      "SCHEDULED_LIVE, SCHEDULED_CANCELED}")
                if live["status"] in ENDED and status != "SCHEDULED_CANCELED":
                    raise param_error("This live video has ended and cannot change its status")
                if status == "LIVE_NOW":
                    go_live(live)
                elif status == "SCHEDULED_CANCELED":
                    if live["status"] not in SCHEDULED | {"SCHEDULED_CANCELED"}:
                        raise param_error("Only a scheduled live video can be canceled")
                    live["status"] = "SCHEDULED_CANCELED"
                elif status in SCHEDULED and live["status"] in SCHEDULED:
                    live["status"] = status
                elif status == "UNPUBLISHED" and live["status"] == "UNPUBLISHED":
                    pass
                else:
                    raise param_error(f"A live video in status {live['status']} cannot move to {status}")
            if "published" in p:
                live["published"] = parse_bool(p, "published", live.get("published", False))
            live["updated_time"] = clock.now()
            store.save()
        return {"id": live["id"]}

    def live_errors(call: GraphCall, live: dict) -> dict:
        need(*POSTING)
        items = sorted(live.get("errors", []), key=lambda e: e["creation_time"], reverse=True)
        return paginate(items, call.params, lambda e: {"creation_time": fb_time(e["creation_time"]),
                                                       "error_code": e["error_code"], "error_type": e["error_type"],
                                                       "error_message": e["error_message"]})

    def record_deviations(live: dict, deviations: list[tuple[str, str]], source: str) -> None:
        """Append to the live video's error log; a deviation already logged is not repeated."""
        logged = {(e["error_type"], e["error_message"]) for e in live.get("errors", [])}
        for kind, text in deviations:
            if (kind, text) not in logged:
                live.setdefault("errors", []).append({"error_type": kind, "error_code": DEVIATION_CODES[kind],
                                                      "error_message": text, "creation_time": clock.now(),
                                                      "source": source})

    async def probe_into(live_id: str, path: Path, source: str, recording_index: int | None = None) -> None:
        if live_id in probing and source == "preview":
            return
        probing.add(live_id)
        try:
            summary, deviations = await probe_recording(path, probe_timeout_s)
        finally:
            probing.discard(live_id)
        with store.lock:
            live = store.objects.get(live_id)
            if live is None:
                return
            record_deviations(live, deviations, source)
            if summary:
                live["stream_health"] = {
                    "video_codec": summary.get("video", {}).get("codec"),
                    "video_width": summary.get("video", {}).get("width"),
                    "video_height": summary.get("video", {}).get("height"),
                    "video_framerate": summary.get("video", {}).get("fps"),
                    "video_bitrate": (summary.get("video", {}).get("kbps") or 0) * 1000,
                    "audio_codec": summary.get("audio", {}).get("codec"),
                    "audio_channels": summary.get("audio", {}).get("channels"),
                    "audio_sample_rate": summary.get("audio", {}).get("sample_rate"),
                    "audio_bitrate": (summary.get("audio", {}).get("kbps") or 0) * 1000}
            if recording_index is not None and recording_index < len(live["recordings"]):
                live["recordings"][recording_index].update(probed=True, summary=summary)
            store.save()
        if deviations:
            log.info("live video %s deviates from the recommended settings: %s", live_id,
                     ", ".join(kind for kind, _ in deviations))

    def newest_recording(live_id: str) -> Path | None:
        if record_root is None or not record_root.is_dir():
            return None
        candidates = [f for f in record_root.iterdir() if f.suffix == ".flv" and
                      (f.stem == live_id or f.name.startswith(live_id + "-"))]
        return max(candidates, key=lambda f: f.stat().st_mtime) if candidates else None

    # --- ticking: scheduled posts and lives fall due ---------------------------------------------------------------
    def tick() -> list[tuple[str, Path]]:
        """Publish due scheduled posts, start due scheduled lives; returns preview recordings to probe."""
        to_probe = []
        now = clock.now()
        with store.lock:
            changed = False
            for post in store.of("post"):
                if post["state"] == "scheduled" and post["scheduled_publish_time"] <= now:
                    publish_post(post)
                    changed = True
            for live in store.of("live"):
                if live["status"] in SCHEDULED and live.get("receiving") and live["planned_start_time"] <= now:
                    go_live(live)
                    changed = True
                if (live.get("receiving") and not live.get("preview_probed") and live.get("receiving_since")
                        and time.time() - live["receiving_since"] >= PREVIEW_PROBE_AFTER_S):
                    path = newest_recording(live["id"])
                    if path is not None:
                        live["preview_probed"] = True
                        to_probe.append((live["id"], path))
                        changed = True
            if changed:
                store.save()
        return to_probe

    async def ticker() -> None:
        while True:
            try:
                for live_id, path in tick():
                    in_background(probe_into(live_id, path, "preview"))
            except Exception:  # the ticker must survive a bad object; the next tick tries again
                log.exception("sandbox tick failed")
            await asyncio.sleep(1.0)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(ticker())
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(title="Bridgecast fanpage sandbox", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store, app.state.clock, app.state.faults, app.state.knobs = store, clock, faults, knobs

    # --- admin ------------------------------------------------------------------------------------------------------
    def admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), app_secret.encode()):
            raise GraphError(190, "Sandbox admin calls need Authorization: Bearer <app secret>", status=401)

    @app.exception_handler(GraphError)
    async def _graph_error(_request, exc: GraphError):
        return exc.response()

    @app.get("/healthz")
    async def healthz():
        return PlainTextResponse("ok\n")

    @app.get("/_sandbox/faults")
    async def list_faults(request: Request):
        admin(request)
        with faults.lock:
            return {"rules": [dict(r) for r in faults.rules]}

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request):
        admin(request)
        try:
            rule = faults.add(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": f"invalid fault rule: {exc}"}, status_code=400)
        return JSONResponse({"rule": rule}, status_code=201)

    @app.delete("/_sandbox/faults")
    async def clear_faults(request: Request):
        admin(request)
        faults.clear()
        return {"rules": []}

    @app.post("/_sandbox/knobs")
    async def set_knobs(request: Request):
        """Token expiry, granted permissions, appsecret_proof requirement, call budget, chunk size, duplicate window."""
        admin(request)
        body = json.loads(await request.body() or b"{}")
        if "expired" in body:
            knobs["expired"] = bool(body["expired"])
        if "token_expires_at" in body:  # epoch seconds; 0 = the token never expires
            knobs["expires_at"] = int(body["token_expires_at"])
        if "permissions" in body:
            knobs["permissions"] = set(body["permissions"])
        if "require_appsecret_proof" in body:
            knobs["require_proof"] = bool(body["require_appsecret_proof"])
        if "upload_chunk_bytes" in body:
            knobs["chunk"] = int(body["upload_chunk_bytes"])
        if "duplicate_window_s" in body:
            knobs["duplicate_window_s"] = float(body["duplicate_window_s"])
        if "rate_limit_calls" in body or "rate_limit_window_s" in body:
            budget.configure(body.get("rate_limit_calls", budget.calls),
                             body.get("rate_limit_window_s", budget.window_s))
        return {"expired": knobs["expired"], "token_expires_at": knobs["expires_at"],
                "permissions": sorted(knobs["permissions"]),
                "require_appsecret_proof": knobs["require_proof"], "upload_chunk_bytes": knobs["chunk"],
                "rate_limit_calls": budget.calls, "rate_limit_window_s": budget.window_s,
                "duplicate_window_s": knobs["duplicate_window_s"]}

    @app.post("/_sandbox/clock")
    async def move_clock(request: Request):
        admin(request)
        body = json.loads(await request.body() or b"{}")
        if "offset_s" in body:
            clock.offset_s = float(body["offset_s"])
        clock.offset_s += float(body.get("advance_s", 0))
        for live_id, path in tick():
            in_background(probe_into(live_id, path, "preview"))
        return {"offset_s": clock.offset_s, "now": clock.now()}

    @app.get("/_sandbox/requests")
    async def list_requests(request: Request):
        """Graph calls received (never tokens or file contents), for tests that prove a call did or did not happen."""
        admin(request)
        since = int(request.query_params.get("since", 0))
        return {"last": counter["seq"], "requests": [dict(r) for r in requests_log if r["seq"] > since]}

    @app.get("/_sandbox/objects/{object_id}")
    async def raw_object(object_id: str, request: Request):
        admin(request)
        obj = store.objects.get(object_id)
        if obj is None:
            return JSONResponse({"error": "no such object"}, status_code=404)
        return {k: v for k, v in obj.items() if k != "stream_secret"}

    # --- nginx-rtmp callbacks ------------------------------------------------------------------------------------
    @app.post("/_ingest/on_publish")
    async def on_publish(request: Request):
        form = dict((await request.form()).items())
        live_id, given = str(form.get("name", "")), str(form.get("a", ""))
        with store.lock:
            live = store.get(live_id, "live")
            reason = None
            if live is None:
                reason = "no such live video"
            elif not given or not hmac.compare_digest(given.encode(), live["stream_secret"].encode()):
                reason = "wrong stream key"
            elif live["status"] in ENDED:
                reason = f"the live video is {live['status']}"
            elif rtmp_app and form.get("app") and form.get("app") != rtmp_app:
                reason = f"wrong RTMP application {form.get('app')!r}"
            if reason:
                log.warning("refused a publisher for live video %r: %s", live_id, reason)
                return PlainTextResponse("refused\n", status_code=403)
            live.update(receiving=True, receiving_since=time.time(), awaiting_record=True, preview_probed=False)
            live.setdefault("publish_sessions", []).append(live["receiving_since"])  # for rehearsal figures
            if live.get("live_requested") and live["status"] not in ENDED:
                go_live(live)  # frames arrive for a live asked to go on air: the broadcast starts now
            live["updated_time"] = clock.now()
            store.save()
        log.info("live video %s is receiving a stream from %s", live_id, form.get("addr", "?"))
        return PlainTextResponse("ok\n")

    @app.post("/_ingest/on_publish_done")
    async def on_publish_done(request: Request):
        form = dict((await request.form()).items())
        with store.lock:
            live = store.get(str(form.get("name", "")), "live")
            if live is not None:
                live.update(receiving=False, receiving_since=None, updated_time=clock.now())
                finalize(live)
                store.save()
        return PlainTextResponse("ok\n")

    @app.post("/_ingest/on_record_done")
    async def on_record_done(request: Request):
        form = dict((await request.form()).items())
        live_id, raw_path = str(form.get("name", "")), str(form.get("path", ""))
        path = Path(raw_path).resolve() if raw_path else None
        with store.lock:
            live = store.get(live_id, "live")
            # Only files nginx wrote for this live video get registered: they are served back under /_files.
            acceptable = (live is not None and path is not None and path.is_file() and path.suffix in (".flv", ".mp4")
                          and (path.stem == live_id or path.name.startswith(live_id + "-"))
                          and (record_root is None or record_root in path.parents))
            if not acceptable:
                log.warning("ignored a record_done for %r (%s)", live_id, raw_path)
                return PlainTextResponse("ignored\n")
            live["recordings"].append({"path": str(path), "size": path.stat().st_size, "at": clock.now(),
                                       "probed": False})
            index = len(live["recordings"]) - 1
            if not live.get("receiving"):
                live["awaiting_record"] = False  # the final record_done arrives after publish_done
            finalize(live)
            store.save()
        # nginx waits for this answer (netcall_timeout); the probe of a long recording must not hold it.
        in_background(probe_into(live_id, path, "recording", index))
        return PlainTextResponse("ok\n")

    # --- files and the page view ---------------------------------------------------------------------------------
    @app.get("/_files/photo/{photo_id}")
    async def photo_file(photo_id: str):
        photo = store.get(photo_id, "photo")
        if photo is None:
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(store.files / photo["file"])

    @app.get("/_files/video/{video_id}")
    async def video_file(video_id: str):
        video = store.get(video_id, "video")
        if video is None or not (video.get("file") or video.get("recording")):
            return PlainTextResponse("not found\n", status_code=404)
        if video.get("file"):
            return FileResponse(store.files / video["file"], media_type="video/mp4")
        return FileResponse(video["recording"], media_type="video/x-flv")

    @app.get("/_files/live/{live_id}/{index}")
    async def live_file(live_id: str, index: int):
        live = store.get(live_id, "live")
        if live is None or not 0 <= index < len(live["recordings"]):
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(live["recordings"][index]["path"], media_type="video/x-flv")

    @app.get("/", response_class=HTMLResponse)
    async def page_view(request: Request):
        return HTMLResponse(render_page(store, page_name, clock.now()))

    # --- Graph ---------------------------------------------------------------------------------------------------
    async def route(call: GraphCall, request: Request):
        seg = call.segments
        if not seg:
            raise unknown_path("/")
        head = seg[0]
        if head == "debug_token" and len(seg) == 1:
            return debug_token(call)
        if head.startswith("upload:") and len(seg) == 1:
            return await upload_session(call, request)
        if head == "video-upload" and len(seg) == 3:  # the rupload host of Reels, served here too
            return await reel_upload(call, request, seg[2])
        if len(seg) > 2:
            raise unknown_path("/" + "/".join(seg))
        node_id = page_id if head == "me" else head
        edge = seg[1] if len(seg) == 2 else None
        if node_id == page_id:
            return await page_call(call, edge, request)
        if node_id == app_id:
            if edge == "uploads" and call.method == "POST":
                return start_upload(call)
            raise unsupported(call.method, node_id)
        obj = store.get(node_id)
        if obj is None:
            raise unsupported(call.method, node_id)
        if edge is not None:
            if obj["type"] == "live" and edge == "errors" and call.method == "GET":
                return live_errors(call, obj)
            if (obj["type"], edge, call.method) in (("post", "insights", "GET"), ("video", "video_insights", "GET")):
                return object_insights(call, obj)
            raise nonexisting_field(edge, {"live": "LiveVideo", "post": "PagePost", "photo": "Photo",
                                           "video": "Video"}[obj["type"]])
        return object_call(call, obj, request)

    async def page_call(call: GraphCall, edge: str | None, request: Request):
        p = call.params
        if edge is None:
            if call.method != "GET":
                raise unsupported(call.method, page_id)
            return render({"id": page_id}, requested_fields(p), ("name", "id"), page_views, "Page")
        if (edge, call.method) == ("feed", "POST"):
            return create_feed_post(call)
        if (edge, call.method) == ("photos", "POST"):
            return await create_photo(call)
        if (edge, call.method) == ("videos", "POST"):
            return await videos_post(call)
        if (edge, call.method) == ("video_reels", "POST"):
            return await reels_post(call, request)
        if (edge, call.method) == ("video_reels", "GET"):
            need("pages_read_engagement", read=True)
            items = sorted(time_filter([v for v in store.of("video") if v.get("reel")], p, "created_time"),
                           key=lambda v: (v["created_time"], v["id"]), reverse=True)
            return paginate(items, p, lambda v: render(v, requested_fields(p), ("created_time", "description", "id"),
                                                       video_views(request), "Video"))
        if (edge, call.method) == ("live_videos", "POST"):
            return create_live(call)
        if call.method != "GET":
            raise unsupported(call.method, f"{page_id}/{edge}")
        if edge == "insights":
            return page_insights(call)
        fields = requested_fields(p)
        if edge in ("feed", "posts", "scheduled_posts"):
            need("pages_read_engagement", read=True)
            views = post_views(request)
            state = "scheduled" if edge == "scheduled_posts" else "published"
            items = [q for q in store.of("post") if q["state"] == state]
            if state == "scheduled":
                items.sort(key=lambda q: (q["scheduled_publish_time"], q["id"]))
            else:
                items = time_filter(items, p, "created_time")
                items.sort(key=lambda q: (q["created_time"], q["id"]), reverse=True)
            return paginate(items, p, lambda q: render(q, fields, ("created_time", "message", "id"), views,
                                                       "PagePost"))
        if edge == "videos":
            need("pages_read_engagement", read=True)
            views = video_views(request)
            items = sorted((v for v in store.of("video") if v.get("file") or v.get("recording")),
                           key=lambda v: (v["created_time"], v["id"]), reverse=True)
            return paginate(items, p, lambda v: render(v, fields, ("created_time", "description", "id"),
                                                       views, "Video"))
        if edge == "live_videos":
            need("pages_read_engagement", read=True)
            views = live_views(request)
            items = store.of("live")
            if p.get("broadcast_status"):
                raw = p["broadcast_status"]
                try:
                    wanted = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
                except json.JSONDecodeError:
                    raise param_error("Param broadcast_status must be an array of statuses") from None
                wanted = [str(w).strip().upper() for w in wanted]
                if any(w not in BROADCAST_STATUSES for w in wanted):
                    raise param_error(f"Param broadcast_status must be a subset of {{{', '.join(BROADCAST_STATUSES)}}}")
                items = [lv for lv in items if lv["status"] in wanted]
            items.sort(key=lambda lv: (lv["created_time"], lv["id"]), reverse=True)
            return paginate(items, p, lambda lv: render(lv, fields, ("status", "stream_url", "secure_stream_url",
                                                                     "embed_html", "id"), views, "LiveVideo"))
        if edge == "photos":
            need("pages_read_engagement", read=True)
            views = photo_views(request)
            items = sorted((ph for ph in store.of("photo") if ph["published"]),
                           key=lambda ph: ph["created_time"], reverse=True)
            return paginate(items, p, lambda ph: render(ph, fields, ("created_time", "name", "id"), views, "Photo"))
        # /me/permissions belongs to user tokens; on a Page it is an unknown field, as Graph answers.
        raise nonexisting_field(edge, "Page")

    def object_call(call: GraphCall, obj: dict, request: Request):
        kind = obj["type"]
        if call.method == "GET":
            need("pages_read_engagement", read=True)
            fields = requested_fields(call.params)
            if kind == "post":
                return render(obj, fields, ("created_time", "message", "id"), post_views(request), "PagePost")
            if kind == "photo":
                return render(obj, fields, ("created_time", "name", "id"), photo_views(request), "Photo")
            if kind == "video":
                return render(obj, fields, ("created_time", "description", "id"), video_views(request), "Video")
            return render(obj, fields, ("status", "stream_url", "secure_stream_url", "embed_html", "id"),
                          live_views(request), "LiveVideo")
        if call.method == "DELETE":
            need(*POSTING)
            with store.lock:
                obj["deleted"] = True
                if kind == "live" and obj["status"] in SCHEDULED:
                    obj["status"] = "SCHEDULED_CANCELED"
                for pid in obj.get("photos", []):
                    store.objects[pid]["deleted"] = True
                store.save()
            return {"success": True}
        if kind == "post":
            return update_post(call, obj)
        if kind == "live":
            return update_live(call, obj)
        if kind == "video":
            return update_video(call, obj)
        need(*POSTING)
        with store.lock:
            if "caption" in call.params or "message" in call.params:
                obj["caption"] = call.params.get("caption", call.params.get("message", ""))
            store.save()
        return {"success": True}

    def debug_token(call: GraphCall) -> dict:
        given = call.params.get("input_token")
        if not given:
            raise param_error("The parameter input_token is required")
        valid = hmac.compare_digest(given.encode(), page_token.encode())
        if not valid:
            return {"data": {"is_valid": False, "scopes": [], "error": {
                "code": 190, "subcode": 467, "message": "Invalid OAuth access token - Cannot parse access token"}}}
        scopes = sorted(knobs["permissions"])
        return {"data": {"app_id": app_id, "type": "PAGE", "application": app_name, "data_access_expires_at": 0,
                         "expires_at": knobs["expires_at"], "is_valid": not token_expired(),
                         "issued_at": counter["started"],
                         "profile_id": page_id, "scopes": scopes,
                         "granular_scopes": [{"scope": s, "target_ids": [page_id]} for s in scopes
                                             if s.startswith("pages_")]}}

    @app.api_route("/{full_path:path}", methods=["GET", "POST", "DELETE"])
    async def graph(full_path: str, request: Request):
        counter["seq"] += 1
        entry = {"seq": counter["seq"], "at": clock.now(), "method": request.method, "path": "/" + full_path,
                 "endpoint": None, "params": {}, "status": None, "code": None}
        requests_log.append(entry)
        version = accepted[0]
        try:
            call = await parse_call(request, full_path)
            version = call.version
            entry.update(method=call.method, endpoint=call.endpoint,
                         params={k: v for k, v in call.params.items() if k not in ("input_token",)},
                         files=sorted(call.files), auth=call.token_source)
            rule = faults.take(call.method, call.endpoint, call.params)
            if rule and rule["latency_s"] > 0:
                await asyncio.sleep(rule["latency_s"])
            if rule and rule["code"] is not None and rule["mode"] == "before":
                raise fault_error(rule)
            authorise(call)
            result = await route(call, request)
            if rule and rule["hang_after_s"] > 0:
                await asyncio.sleep(rule["hang_after_s"])
            if rule and rule["code"] is not None and rule["mode"] == "after":
                raise fault_error(rule)
            response = JSONResponse(result)
        except GraphError as exc:
            response = exc.response()
            entry["code"] = exc.code
        except json.JSONDecodeError:
            exc = param_error("The request body is not valid JSON")
            response = exc.response()
            entry["code"] = exc.code
        except Exception:  # a sandbox bug still answers like Graph does (code 1), and the log shows why
            log.exception("unhandled error on %s /%s", request.method, full_path)
            exc = error_for_code(1)
            response = exc.response()
            entry["code"] = exc.code
        for key, value in usage_headers(version).items():
            response.headers.setdefault(key, value)
        entry["status"] = response.status_code
        log.info("%s /%s -> %s%s", request.method, full_path, response.status_code,
                 f" (#{entry['code']})" if entry["code"] else "")
        return response

    def fault_error(rule: dict) -> GraphError:
        headers = dict(rule["headers"])
        if rule["code"] in RATE_LIMIT_CODES and not headers:
            usage = {"call_count": 100, "total_cputime": 40, "total_time": 60}
            headers["X-Business-Use-Case-Usage"] = json.dumps(
                {page_id: [{"type": "pages", **usage, "estimated_time_to_regain_access": 1}]})
        return error_for_code(rule["code"], rule["subcode"], rule["message"], status=rule["status"],
                              user_msg=rule["user_msg"], headers=headers)

    return app


# --- insights (sandbox numbers) ---------------------------------------------------------------------------------------
# Meta measures reach; a sandbox cannot. These figures are made up but plausible and deterministic, derived from the
# object itself: a digest of its id, its kind (photos reach further), the Page's followers, and the whole hours it has
# been public (reach grows over the first day, then levels off). Two reads within the same hour agree. The shapes,
# metric names, periods, ranges and errors follow facebook-graph.md §I.
INSIGHTS_PERMISSIONS = ("read_insights", "pages_read_engagement")
PAGE_FOLLOWERS = 1250
POST_METRICS = ("post_media_view", "post_total_media_view_unique", "post_clicks", "post_reactions_by_type_total")
VIDEO_METRICS = ("total_video_views", "total_video_views_unique", "total_video_avg_time_watched",
                 "total_video_view_total_time")
PAGE_METRICS = ("page_media_view", "page_total_media_view_unique", "page_post_engagements", "page_video_views",
                "page_follows", "page_daily_follows_unique")
PAGE_PERIODS = ("day", "week", "days_28")
INSIGHTS_PERIODS = ("day", "week", "days_28", "month", "lifetime", "total_over_range")
INSIGHTS_MAX_RANGE_S = 90 * 86400
DAY_S = 86400
PACIFIC_MIDNIGHT_UTC_H = 7  # Graph's daily values end at midnight Pacific (T07:00:00+0000 in summer)
METRIC_TITLES = {
    "post_media_view": "Post media views", "post_total_media_view_unique": "Post total media viewers",
    "post_clicks": "Post clicks", "post_reactions_by_type_total": "Total post reactions by type",
    "total_video_views": "Total video views", "total_video_views_unique": "Total unique video views",
    "total_video_avg_time_watched": "Average time video viewed", "total_video_view_total_time": "Total time viewed",
    "page_media_view": "Media views", "page_total_media_view_unique": "Total media viewers",
    "page_post_engagements": "Post engagements", "page_video_views": "Total video views",
    "page_follows": "Followers", "page_daily_follows_unique": "Daily new followers",
}


def _unit(*parts) -> float:
    """A number in [0, 1) fixed by its parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def _grown(final: float, public_since: float | None, now: float) -> int:
    """`final` reached over the first day: whole hours public → 1 - e^(-h/6) of it."""
    if public_since is None or now < public_since:
        return 0
    hours = math.floor((now - public_since) / 3600) + 1
    return round(final * (1 - math.exp(-hours / 6)))


def post_figures(post: dict, now: float) -> dict:
    """Lifetime figures of a Page post (0 until it is published)."""
    public = post["created_time"] if post.get("state") == "published" else None
    pid = post["id"]
    views = _grown(PAGE_FOLLOWERS * (0.8 + 1.6 * _unit(pid, "views")) * (1.3 if post.get("photos") else 1.0),
                   public, now)
    unique = round(views * (0.55 + 0.2 * _unit(pid, "unique")))
    reactions = round(unique * (0.03 + 0.05 * _unit(pid, "reactions")))
    love = round(reactions * 0.2)
    care = round(reactions * 0.06)
    return {"post_media_view": views, "post_total_media_view_unique": unique,
            "post_clicks": round(unique * (0.02 + 0.05 * _unit(pid, "clicks"))),
            "post_reactions_by_type_total": {"like": reactions - love - care, "love": love, "care": care}}


def video_figures(video: dict, now: float, *, public_since: float | None = None) -> dict:
    """Lifetime figures of a video (a recorded upload, or the video of a live broadcast)."""
    if public_since is None and (video.get("file") or video.get("recording")) and video.get("published", True):
        public_since = video["created_time"]
    vid = video["id"]
    views = _grown(PAGE_FOLLOWERS * (0.6 + 1.2 * _unit(vid, "views")), public_since, now)
    length_s = float(video.get("length") or 60)
    avg_ms = round(min(length_s, 120) * 1000 * (0.3 + 0.4 * _unit(vid, "watched")))
    return {"total_video_views": views, "total_video_views_unique": round(views * (0.6 + 0.2 * _unit(vid, "u"))),
            "total_video_avg_time_watched": avg_ms if views else 0, "total_video_view_total_time": avg_ms * views}


def live_viewers(live: dict) -> int:
    """People watching right now: only while it is live."""
    if live.get("status") != "LIVE":
        return 0
    return round(PAGE_FOLLOWERS * 0.04 * (0.5 + _unit(live["id"], "viewers")))


def page_day_figures(day_start: float, posts: list[dict], videos: list[dict], now: float, page_id: str) -> dict:
    """One day of the Page: a baseline plus what the posts and videos published that day drew."""
    day_end = day_start + DAY_S
    mine = [p for p in posts if p.get("state") == "published" and day_start <= p["created_time"] < day_end]
    clips = [v for v in videos if day_start <= v["created_time"] < day_end]
    figures = [post_figures(p, now) for p in mine]
    base = PAGE_FOLLOWERS * 0.15 * (0.6 + 0.8 * _unit(page_id, day_start))
    views = round(base) + sum(f["post_media_view"] for f in figures)
    return {"page_media_view": views, "page_total_media_view_unique": round(views * 0.7),
            "page_post_engagements": round(base * 0.05) + sum(f["post_clicks"] + sum(
                f["post_reactions_by_type_total"].values()) for f in figures),
            "page_video_views": sum(video_figures(v, now)["total_video_views"] for v in clips),
            "page_daily_follows_unique": 3 + round(10 * _unit(page_id, day_start, "follows"))}


def insights_metrics(params: dict, allowed: tuple[str, ...]) -> list[str]:
    """The requested metrics; no metric → 3001/1504028; one unknown or retired name fails the whole list."""
    raw = params.get("metric")
    if raw and raw.strip().startswith("["):
        try:
            names = [str(n) for n in json.loads(raw)]
        except json.JSONDecodeError:
            raise param_error("The value must be a valid insights metric") from None
    else:
        names = [n.strip() for n in str(raw or "").split(",") if n.strip()]
    if not names:
        raise GraphError(3001, "Invalid query", subcode=1504028, type_="OAuthException",
                         user_title="No Metric Specified", user_msg="No metric was specified to be fetched.")
    if any(n not in allowed for n in names):
        raise param_error("The value must be a valid insights metric")
    return list(dict.fromkeys(names))


def insights_period(params: dict, allowed: tuple[str, ...], default: str) -> str:
    period = str(params.get("period") or default).strip()
    if period not in INSIGHTS_PERIODS:
        raise param_error(f"Param period must be one of {{{', '.join(INSIGHTS_PERIODS)}}}")
    if period not in allowed:
        raise param_error(f"The period '{period}' is not supported by the requested metrics; use "
                          f"{' or '.join(allowed)}")
    return period


def insights_entry(object_id: str, metric: str, period: str, values: list[dict]) -> dict:
    return {"name": metric, "period": period, "values": values, "title": METRIC_TITLES[metric],
            "description": f"Sandbox figure: {METRIC_TITLES[metric]} (derived from the object, not measured)",
            "id": f"{object_id}/insights/{metric}/{period}"}


def insights_time(params: dict, name: str, default: float) -> float:
    raw = params.get(name)
    if not raw:
        return default
    text = str(raw).strip()
    if text.isdigit():
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise param_error(f"Param {name} must be a UNIX timestamp or a date like 2020-05-23") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def insights_day_starts(params: dict, now: float) -> list[float]:
    """The days (07:00 UTC to 07:00 UTC) from `since` to `until` that have begun; each value's end_time is its
    day's end, so the first end_time is since + 1 day. since–until is at most 90 days."""
    until = insights_time(params, "until", now)
    since = insights_time(params, "since", until - 2 * DAY_S)
    if until < since:
        raise param_error("Param until must be later than since")
    if until - since > INSIGHTS_MAX_RANGE_S:
        raise param_error("There cannot be more than 90 days (7776000 s) between since and until")
    start = math.floor((since - PACIFIC_MIDNIGHT_UTC_H * 3600) / DAY_S) * DAY_S + PACIFIC_MIDNIGHT_UTC_H * 3600
    starts = []
    while start < until and start < now:
        starts.append(start)
        start += DAY_S
    return starts

# --- the page as a reader sees it ----------------------------------------------------------------------------------
LIVE_LABELS = {"UNPUBLISHED": "Xem trước (chưa công khai)", "LIVE": "Đang phát trực tiếp",
               "LIVE_STOPPED": "Đã kết thúc", "PROCESSING": "Đang xử lý", "VOD": "Đã kết thúc — có bản ghi",
               "SCHEDULED_UNPUBLISHED": "Đã lên lịch", "SCHEDULED_LIVE": "Đã lên lịch (công khai)",
               "SCHEDULED_EXPIRED": "Lịch đã hết hạn", "SCHEDULED_CANCELED": "Đã huỷ"}


def _text(value: str) -> str:
    return html.escape(value or "").replace("\n", "<br>")


def render_page(store: PageStore, page_name: str, now: float) -> str:
    with store.lock:
        posts = sorted((p for p in store.of("post") if p["state"] == "published"),
                       key=lambda p: p["created_time"], reverse=True)
        scheduled = sorted((p for p in store.of("post") if p["state"] == "scheduled"),
                           key=lambda p: p["scheduled_publish_time"])
        lives = sorted(store.of("live"), key=lambda lv: lv["created_time"], reverse=True)
        videos = sorted((v for v in store.of("video") if v.get("file")), key=lambda v: v["created_time"],
                        reverse=True)

        def post_html(post: dict, when: str) -> str:
            photos = "".join(f'<img src="/_files/photo/{p}" alt="{html.escape(store.objects[p].get("caption", ""))}">'
                             for p in post.get("photos", []) if p in store.objects)
            link = (f'<p><a href="{html.escape(post["link"], quote=True)}">{html.escape(post["link"])}</a></p>'
                    if post.get("link") else "")
            video = (f'<video controls src="/_files/video/{post["video"]}"></video>' if post.get("video") else "")
            return (f'<article id="{post["id"]}"><p class="meta">{when}</p><p>{_text(post.get("message", ""))}</p>'
                    f'{link}<div class="photos">{photos}</div>{video}</article>')

        def live_html(live: dict) -> str:
            parts = [f'<h3>{html.escape(live.get("title") or "(không tiêu đề)")}</h3>',
                     f'<p class="meta">{LIVE_LABELS.get(live["status"], live["status"])}'
                     + (" · đang nhận tín hiệu" if live.get("receiving") else "")
                     + (" · đã lệnh phát, CHƯA CÓ TÍN HIỆU: chưa lên Trang" if live.get("live_requested")
                        and live["status"] != "LIVE" and live["status"] not in ENDED else "")
                     + (f' · dự kiến {local_time(live["planned_start_time"])}' if live.get("planned_start_time")
                        else "") + "</p>", f'<p>{_text(live.get("description", ""))}</p>']
            for index, rec in enumerate(live.get("recordings", [])):
                parts.append(f'<p><a href="/_files/live/{live["id"]}/{index}">Bản ghi {index + 1}</a> '
                             f'({rec.get("size", 0) / 1e6:.1f} MB)</p>')
            if live.get("errors"):
                items = "".join(f"<li>{html.escape(e['error_message'])}</li>" for e in live["errors"])
                parts.append(f'<p>Tín hiệu chưa đúng khuyến nghị:</p><ul class="warn">{items}</ul>')
            return f'<article id="live-{live["id"]}">{"".join(parts)}</article>'

        sections = [
            ("Video trực tiếp", "".join(live_html(lv) for lv in lives) or "<p>Chưa có video trực tiếp.</p>"),
            ("Bài viết đã lên lịch", "".join(post_html(p, "Sẽ đăng lúc " + local_time(p["scheduled_publish_time"]))
                                             for p in scheduled) or "<p>Không có bài viết nào đã lên lịch.</p>"),
            ("Bài viết", "".join(post_html(p, local_time(p["created_time"])) for p in posts)
             or "<p>Chưa có bài viết nào.</p>"),
            ("Video", "".join(f'<article><h3>{html.escape(v.get("title") or "")}</h3>'
                              f'<p>{_text(v.get("description", ""))}</p>'
                              f'<video controls src="/_files/video/{v["id"]}"></video></article>' for v in videos)
             or "<p>Chưa có video nào.</p>"),
        ]
    body = "".join(f"<section><h2>{title}</h2>{content}</section>" for title, content in sections)
    return ('<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">'
            f"<title>{html.escape(page_name)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1"><style>'
            "body{font-family:'Noto Sans','DejaVu Sans',sans-serif;max-width:760px;margin:auto;padding:1em;"
            "background:#f0f2f5}article{background:#fff;border-radius:8px;padding:1em;margin:1em 0}"
            ".meta{color:#65676b;font-size:.9em}.photos{display:grid;grid-template-columns:repeat(auto-fill,"
            "minmax(160px,1fr));gap:4px}.photos img,video{width:100%}.warn{color:#b00}</style></head>"
            f"<body><header><h1>{html.escape(page_name)}</h1><p class=\"meta\">Trang thử nghiệm — cập nhật "
            f"{local_time(now)}</p></header>{body}</body></html>")


# --- entry point ----------------------------------------------------------------------------------------------------
def read_secrets(path: str | None) -> dict[str, str]:
    """Page token and app secret from a JSON file (the stack's var/secrets/stack.json works) or the environment —
    never argv, which every user of the machine can read in `ps`."""
    found = {}
    if path:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        found = {k: str(data[k]) for k in ("fanpage_page_token", "fanpage_app_secret", "fanpage_page_id") if k in data}
    found.setdefault("fanpage_page_token", os.environ.get("BRIDGECAST_FANPAGE_PAGE_TOKEN", ""))
    found.setdefault("fanpage_app_secret", os.environ.get("BRIDGECAST_FANPAGE_APP_SECRET", ""))
    if not found["fanpage_page_token"] or not found["fanpage_app_secret"]:
        raise SystemExit("the fanpage sandbox needs fanpage_page_token and fanpage_app_secret: pass --secrets-file "
                         "or set BRIDGECAST_FANPAGE_PAGE_TOKEN and BRIDGECAST_FANPAGE_APP_SECRET")
    return found


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m devstack.sandboxes.fanpage", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True, help="state directory (state.json + files/)")
    parser.add_argument("--rtmp-base", required=True,
                        help="ingest application URL, e.g. rtmp://127.0.0.1:1935/fblive; stream URLs are "
                             "<base>/<live id>?s_bl=1&a=<stream secret>")
    parser.add_argument("--page-id", default=None, help="defaults to fanpage_page_id of --secrets-file")
    parser.add_argument("--page-name", default="Bưu điện tỉnh Vĩnh Phúc (sandbox)")
    parser.add_argument("--app-id", default="1000000000000001")
    parser.add_argument("--secrets-file", default=None,
                        help="JSON with fanpage_page_token and fanpage_app_secret (else $BRIDGECAST_FANPAGE_PAGE_TOKEN "
                             "and $BRIDGECAST_FANPAGE_APP_SECRET)")
    parser.add_argument("--versions", default=",".join(DEFAULT_VERSIONS), help="accepted Graph versions")
    parser.add_argument("--permissions", default=",".join(DEFAULT_PERMISSIONS),
                        help="permissions the Page token carries")
    parser.add_argument("--record-dir", default=None,
                        help="nginx record_path of the ingest application: lets the sandbox check a stream during "
                             "preview, and only files below it are accepted from on_record_done")
    parser.add_argument("--rate-limit-calls", type=int, default=4800)
    parser.add_argument("--rate-limit-window-s", type=float, default=3600.0)
    parser.add_argument("--upload-chunk-kb", type=int, default=4096)
    parser.add_argument("--duplicate-window-s", type=float, default=0.0,
                        help="refuse a repeated message within this many seconds (#506); 0 = never, as Meta "
                             "does not promise it")
    args = parser.parse_args(argv)
    found = read_secrets(args.secrets_file)
    page_id = args.page_id or found.get("fanpage_page_id")
    if not page_id:
        raise SystemExit("--page-id is required (or fanpage_page_id in --secrets-file)")
    app = create_app(args.data, page_id=page_id, page_token=found["fanpage_page_token"],
                     app_secret=found["fanpage_app_secret"], rtmp_base=args.rtmp_base, app_id=args.app_id,
                     page_name=args.page_name, versions=tuple(v.strip() for v in args.versions.split(",") if v.strip()),
                     permissions=tuple(p.strip() for p in args.permissions.split(",") if p.strip()),
                     record_dir=args.record_dir, rate_limit_calls=args.rate_limit_calls,
                     rate_limit_window_s=args.rate_limit_window_s, upload_chunk_bytes=args.upload_chunk_kb * 1024,
                     duplicate_window_s=args.duplicate_window_s)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn's access log prints query strings; Graph calls log their path and outcome themselves instead.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
