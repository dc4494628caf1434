"""Preflight (go/no-go): is each point's test stream arriving, conformant and being recorded; are the channels,
storage and disks ready. A no-go point is reported and alerted, never fatal for the others; a check that cannot
even run (a broken Connection, an unreachable service) is a no-go line in the table, never a crash."""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from bridgecast.channels.factory import check_channels_health
from bridgecast.launch.observe import IngestObserver, StreamStat
from bridgecast.launch.plan import LaunchPlan, save_artifact

log = logging.getLogger(__name__)

# Planning anchor measured on the 2-core box (media-notes §3): one 720p30 veryfast live encode ≈ 0.7 core.
CORES_PER_720P30_ENCODE = 0.7
MIN_FREE_DISK_GB = 5.0
# The ingest lanes and what each processes (bridgecast.ingest.assets.INGEST_LANES; one feature does not import
# another, tests/dags/test_ingest_batching.py keeps the two equal).
INGEST_DAGS = {"bridgecast_ingest": "photos", "bridgecast_ingest_video": "team videos and recordings"}


# --- judging (pure) ----------------------------------------------------------------------------------------------
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


def judge_point(point: dict, live: dict, stat: StreamStat | None) -> dict:
    """Go/no-go of one point from what the gateway (`live`) and nginx (`stat`) see of its test stream."""
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
    return {
        "point": point["id"], "name": point["name"], "go": not problems, "receiving": receiving,
        "recording": recording, "conformant": receiving and not deviations, "deviations": deviations,
        "bitrate_kbps": round(stat.bw_in_kbps) if stat else None,
        "size": f"{stat.width}x{stat.height}" if stat and stat.width else None,
        "problems": problems, "notes": notes,
    }


def go_no_go_table(plan: LaunchPlan, point_results: list[dict], channels: dict) -> tuple[str, dict]:
    """Markdown table for logs/artefacts, plus the machine-readable summary."""
    point_results = [r for r in point_results if r]
    go = [r for r in point_results if r["go"]]
    lines = [f"# Preflight — {plan.title}", "", f"T0 {plan.t0.isoformat()} · {len(go)}/{len(point_results)} points GO",
             "", "| Điểm cầu | Kết quả | Tín hiệu | Ghi hình | Chuẩn | Bitrate | Ghi chú |",
             "|---|---|---|---|---|---|---|"]
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


# --- checking (I/O) ---------------------------------------------------------------------------------------------
def check_point(observer: IngestObserver, event_id: str, point: dict, *, wait_s: float = 30.0) -> dict:
    """Wait up to `wait_s` for the point's test stream, then judge it. Never raises for a point problem."""
    deadline = time.monotonic() + wait_s
    while True:
        live = observer.live(event_id).get(point["id"], {})
        stat = observer.streams().get(point["id"])
        if live.get("publishing") and stat and stat.publishing and live.get("recording_bytes", 0) > 0:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    result = judge_point(point, live, stat)
    if result["problems"]:
        log.error("NO-GO %s (%s): %s", point["name"], point["id"], "; ".join(result["problems"]))
    return result


def check_disk(paths: list[str]) -> dict:
    out = {}
    for path in paths:
        usage = shutil.disk_usage(Path(path))
        free_gb = usage.free / 1e9
        out[path] = {"free_gb": round(free_gb, 1), "ok": free_gb >= MIN_FREE_DISK_GB}
    return out


def reported(check: Callable[[], dict], failure: str) -> dict:
    """Run one check; if it cannot even run, its line says so ({ok: False, detail}) instead of crashing the rest."""
    try:
        return check()
    except Exception as exc:  # a preflight reports; it does not crash on what it is checking
        return {"ok": False, "detail": f"{failure}: {type(exc).__name__}: {exc}"}


# --- the preflight tasks ---------------------------------------------------------------------------------------
def check_stream(plan_xcom: dict, point: dict) -> dict:
    return check_point(IngestObserver.from_connection(), plan_xcom["event_id"], point)


def check_channels(plan_xcom: dict) -> dict:
    """Channels, storage, the ingest gateway and its DAG, disks: one {ok, detail} line each, never an exception."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    try:  # each channel is built and checked on its own: a broken Connection is its own no-go line
        results = check_channels_health(plan.load_event())
    except Exception as exc:  # the run's event unreadable: no channel list, but the rest can still be checked
        results = {"event": {"ok": False, "detail": f"cannot read the run's event {plan.event_key}, so the channels "
                                                    f"were not checked: {exc}"}}
    results["storage"] = reported(_storage_check, "S3 not writable")
    results["ingest"] = reported(_gateway_check, "ingest gateway unreachable")
    results["ingest_dag"] = reported(_ingest_dag_check, f"cannot read the state of {' / '.join(INGEST_DAGS)}")
    results["launch_dag"] = reported(_launch_dag_check, "cannot read the state of bridgecast_launch")
    results["disk"] = reported(_disk_check, "cannot read the free disk space")
    for name, result in results.items():
        (log.info if result["ok"] else log.error)("%s %s: %s", "OK" if result["ok"] else "PROBLEM", name,
                                                  result["detail"])
    return results


def _storage_check() -> dict:
    from bridgecast.storage import Storage

    Storage.from_connection().check_writable()
    return {"ok": True, "detail": "S3 bucket writable (write, read back, delete)"}


def _gateway_check() -> dict:
    ok = IngestObserver.from_connection().healthy()
    return {"ok": ok, "detail": "ingest gateway answering" if ok else "ingest gateway unhealthy"}


def _ingest_dag_check() -> dict:
    """DAGs are created paused: a paused ingest lane would sit on every photo (or video, recording) sent during
    the event. Both lanes must be on."""
    from bridgecast.airflow_api import AirflowAPI

    api = AirflowAPI.from_connection()
    paused = [dag_id for dag_id in INGEST_DAGS if api.dag(dag_id)["is_paused"]]
    if not paused:
        return {"ok": True, "detail": f"{' and '.join(INGEST_DAGS)} active"}
    return {"ok": False, "detail": "; ".join(f"{dag_id} is PAUSED — unpause it in the Airflow UI, or "
                                             f"{INGEST_DAGS[dag_id]} are not processed" for dag_id in paused)}


def _launch_dag_check() -> dict:
    """A paused launch DAG runs nothing more: not the go-live, not the wrap-up (a run already started stops
    scheduling its next tasks). Shouted at preflight, on the board and by mail."""
    from bridgecast.airflow_api import AirflowAPI

    paused = AirflowAPI.from_connection().dag("bridgecast_launch")["is_paused"]
    return {"ok": not paused, "detail": "bridgecast_launch is PAUSED — run `./bridgecast arm` or unpause it in the "
                                        "Airflow UI, or nothing after this check runs" if paused
            else "bridgecast_launch active (armed)"}


def _disk_check() -> dict:
    disks = check_disk([tempfile.gettempdir()])
    return {"ok": all(d["ok"] for d in disks.values()),
            "detail": ", ".join(f"{p}: {d['free_gb']} GB free" for p, d in disks.items())}


def report_preflight(plan_xcom: dict, points: list[dict], channels: dict) -> dict:
    plan = LaunchPlan.from_xcom(plan_xcom)
    table, summary = go_no_go_table(plan, list(points or []), channels or {})
    print(table)
    summary["table_key"] = save_artifact(plan, "preflight.md", table)
    save_artifact(plan, "preflight.json", summary)
    tell_no_go(plan, "preflight", summary)
    return {k: v for k, v in summary.items() if k != "points"}


PROBLEMS_VI = {"no test stream received by the ingest": "không nhận được tín hiệu thử",
               "stream received but nothing recorded yet": "có tín hiệu nhưng chưa ghi hình được"}


def tell_no_go(plan: LaunchPlan, stage: str, summary: dict) -> None:
    """Each no-go point and each failed check is an incident (mailed once, shown on the board)."""
    from bridgecast.launch import incidents

    for result in summary.get("points", []):
        if not result["go"]:
            log.error("ALERT: point %s is NO-GO at %s; the event proceeds for the others", result["point"], stage)
            incidents.preflight_no_go(plan, stage, result,
                                      "; ".join(PROBLEMS_VI.get(p, p) for p in result["problems"]))
    for name, check in summary.get("channels", {}).items():
        if not check["ok"]:
            incidents.preflight_check_failed(plan, stage, name, check["detail"])


def final_check(plan_xcom: dict) -> dict:
    """The second go/no-go, at T-5 min: every point judged on what the ingest sees now (no waiting), the launch DAG
    armed; each new no-go is told once (a point already no-go at the first check is told again only as
    "final-check"). Stored as final-check.json for the board."""
    plan = LaunchPlan.from_xcom(plan_xcom)
    observer = IngestObserver.from_connection()
    results = [check_point(observer, plan.event_id, LaunchPlan.point_item(p), wait_s=0) for p in plan.points]
    checks = {"launch_dag": reported(_launch_dag_check, "cannot read the state of bridgecast_launch")}
    table, summary = go_no_go_table(plan, results, checks)
    print(table)
    save_artifact(plan, "final-check.json", summary)
    tell_no_go(plan, "final-check", summary)
    return {k: v for k, v in summary.items() if k != "points"}
