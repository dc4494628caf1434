"""Preflight (go/no-go): is each point's test stream arriving, conformant and being recorded; are the channels,
storage and disks ready. A no-go point is reported and alerted, never fatal for the others."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from bridgecast.launch.observe import IngestObserver, StreamStat

log = logging.getLogger(__name__)

# Planning anchor measured on the 2-core box (media-notes §3): one 720p30 veryfast live encode ≈ 0.7 core.
CORES_PER_720P30_ENCODE = 0.7
MIN_FREE_DISK_GB = 5.0


def stream_deviations(stat: StreamStat) -> list[str]:
    """Facebook Live / house-profile deviations visible in nginx's stream metadata."""
    problems = []
    if (stat.video_codec or "").upper() not in ("H264", "AVC"):
        problems.append(f"video codec {stat.video_codec or 'unknown'} (need H.264)")
    if (stat.audio_codec or "").upper() != "AAC":
        problems.append(f"audio codec {stat.audio_codec or 'none'} (need AAC)")
    if stat.height and stat.height > 1080:
        problems.append(f"{stat.width}x{stat.height} above 1080p")
    if stat.frame_rate and stat.frame_rate > 31:
        problems.append(f"{stat.frame_rate:g} fps (house profile 30)")
    if stat.audio_channels not in (None, 2):
        problems.append(f"{stat.audio_channels} audio channel(s) (need stereo)")
    if stat.audio_rate not in (None, 44100, 48000):
        problems.append(f"audio {stat.audio_rate} Hz (need 44.1/48 kHz)")
    return problems


def transcode_cost_cores(stat: StreamStat) -> float:
    pixels = (stat.width or 1280) * (stat.height or 720)
    fps = stat.frame_rate or 30
    return round(CORES_PER_720P30_ENCODE * pixels / (1280 * 720) * fps / 30, 2)


def check_point(observer: IngestObserver, event_id: str, point: dict, *, wait_s: float = 30.0) -> dict:
    """Wait up to `wait_s` for the point's test stream, then judge it. Never raises for a point problem."""
    deadline = time.monotonic() + wait_s
    live, stat = {}, None
    while True:
        live = observer.live(event_id).get(point["id"], {})
        stat = observer.streams().get(point["id"])
        if live.get("publishing") and stat and stat.publishing and live.get("recording_bytes", 0) > 0:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    problems, notes = [], []
    receiving = bool(live.get("publishing") and stat and stat.publishing)
    if not receiving:
        problems.append("no test stream received by the ingest")
    recording = bool(live.get("recording_bytes") or live.get("segments"))
    if receiving and not recording:
        problems.append("stream received but nothing recorded yet")
    deviations = stream_deviations(stat) if stat and receiving else []
    if deviations:
        notes.append(f"will be transcoded (~{transcode_cost_cores(stat)} CPU cores): " + "; ".join(deviations))
    result = {
        "point": point["id"], "name": point["name"], "go": not problems, "receiving": receiving,
        "recording": recording, "conformant": receiving and not deviations, "deviations": deviations,
        "bitrate_kbps": round(stat.bw_in_kbps) if stat else None,
        "size": f"{stat.width}x{stat.height}" if stat and stat.width else None,
        "problems": problems, "notes": notes,
    }
    if problems:
        log.error("NO-GO %s (%s): %s", point["name"], point["id"], "; ".join(problems))
    return result


def check_disk(paths: list[str]) -> dict:
    out = {}
    for path in paths:
        usage = shutil.disk_usage(Path(path))
        free_gb = usage.free / 1e9
        out[path] = {"free_gb": round(free_gb, 1), "ok": free_gb >= MIN_FREE_DISK_GB}
    return out


def go_no_go_table(plan: dict, point_results: list[dict], channels: dict) -> tuple[str, dict]:
    """Markdown table for logs/artefacts, plus the machine-readable summary."""
    point_results = [r for r in point_results if r]
    go = [r for r in point_results if r["go"]]
    lines = [f"# Preflight — {plan['title']}", "", f"T0 {plan['t0']} · {len(go)}/{len(point_results)} points GO", "",
             "| Điểm cầu | Kết quả | Tín hiệu | Ghi hình | Chuẩn | Bitrate | Ghi chú |", "|---|---|---|---|---|---|---|"]
    for r in sorted(point_results, key=lambda r: (r["go"], r["name"])):
        lines.append(f"| {r['name']} | {'✅ GO' if r['go'] else '❌ NO-GO'} | {'có' if r['receiving'] else 'không'} | "
                     f"{'có' if r['recording'] else 'không'} | {'đạt' if r['conformant'] else 'chuyển mã'} | "
                     f"{r['bitrate_kbps'] or '-'} kb/s | {'; '.join(r['problems'] + r['notes']) or ''} |")
    lines += ["", "| Kênh / hạ tầng | Kết quả | Chi tiết |", "|---|---|---|"]
    for name, c in channels.items():
        lines.append(f"| {name} | {'✅' if c['ok'] else '❌'} | {c['detail']} |")
    summary = {"points_go": len(go), "points_total": len(point_results),
               "no_go": [r["point"] for r in point_results if not r["go"]],
               "channels_ok": all(c["ok"] for c in channels.values()), "points": point_results, "channels": channels}
    return "\n".join(lines), summary
