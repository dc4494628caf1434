"""Where the CPU goes during a phase of a run (the 64-point rehearsal's wrap-up, a photo burst): every process's own
CPU sampled once a second, grouped by what it is (ffmpeg, SeaweedFS, Airflow's task processes, …), against the
machine's busy time from /proc/stat. What no sample saw — processes that lived under a second, mostly
ffmpeg/ffprobe — is the difference, printed as "not sampled".

    .venv/bin/python bench/cpu_attribution.py sample var/cpu.jsonl &              # while the run runs
    .venv/bin/python bench/cpu_attribution.py report var/cpu.jsonl 07:43:51 07:45:01   # a phase, UTC times
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from datetime import datetime, timezone

import psutil

# (what the process is, words in its name or command line), first match wins
KINDS = (("ffmpeg", ("ffmpeg",)), ("ffprobe", ("ffprobe",)), ("seaweedfs", ("weed",)), ("postgres", ("postgres",)),
         ("nginx", ("nginx",)), ("mariadb", ("mariadb", "mysqld")), ("php", ("php",)),
         ("airflow scheduler", ("scheduler",)), ("airflow api-server", ("api-server", "api_server")),
         ("airflow triggerer", ("triggerer",)), ("airflow dag-processor", ("dag-processor",)),
         ("airflow celery", ("celery",)), ("airflow worker / task", ("airflow worker", "supervise")),
         ("gateway", ("gateway",)), ("sandboxes", ("sandbox",)), ("rehearsal driver", ("devstack.cli",)))


def kind_of(process: psutil.Process) -> str:
    try:
        name, words = process.name(), " ".join(process.cmdline())
    except (psutil.Error, OSError):
        return "?"
    for kind, marks in KINDS:
        if any(mark in name or mark in words for mark in marks):
            return kind
    return name[:24]


def machine_busy_s() -> float:
    ticks = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def sample(path: str, every_s: float = 1.0) -> None:
    kinds: dict[tuple[int, float], str] = {}
    with open(path, "a", encoding="utf-8") as out:
        while True:
            started = time.time()
            row = {}
            for process in psutil.process_iter():
                try:
                    key = (process.pid, process.create_time())
                    times = process.cpu_times()
                except (psutil.Error, OSError):
                    continue
                kind = kinds.setdefault(key, kind_of(process))
                row[f"{process.pid}:{key[1]}"] = [kind, times.user + times.system]
            out.write(json.dumps({"t": started, "busy": machine_busy_s(), "p": row}) + "\n")
            out.flush()
            time.sleep(max(0.0, every_s - (time.time() - started)))


def report(path: str, start: str, end: str) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    day = datetime.fromtimestamp(rows[0]["t"], timezone.utc).date().isoformat()
    since, until = (datetime.fromisoformat(f"{day}T{hms}+00:00").timestamp() for hms in (start, end))
    window = [r for r in rows if since <= r["t"] <= until]
    if len(window) < 2:
        sys.exit(f"fewer than two samples between {start} and {end} UTC in {path}")
    first_row, last_row = window[0], window[-1]
    first: dict[str, float] = {}
    last: dict[str, tuple[str, float]] = {}
    for row in window:
        for pid, (kind, cpu) in row["p"].items():
            # a process already running at the first sample counts from there; one born later from zero
            first.setdefault(pid, cpu if pid in first_row["p"] else 0.0)
            last[pid] = (kind, cpu)
    per_kind: collections.Counter[str] = collections.Counter()
    for pid, (kind, cpu) in last.items():
        per_kind[kind] += cpu - first[pid]
    span, busy = last_row["t"] - first_row["t"], last_row["busy"] - first_row["busy"]
    cores = os.cpu_count() or 1
    print(f"{start}–{end} UTC: {span:.1f} s, the machine busy {busy:.1f} CPU-s ({busy / span / cores:.0%} of "
          f"{cores} cores)")
    for kind, cpu in per_kind.most_common():
        if cpu >= 0.05:
            print(f"  {kind:28s} {cpu:7.1f} CPU-s")
    print(f"  {'not sampled (< 1 s each)':28s} {busy - sum(per_kind.values()):7.1f} CPU-s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sample").add_argument("path")
    rep = sub.add_parser("report")
    rep.add_argument("path")
    rep.add_argument("start", help="HH:MM:SS, UTC")
    rep.add_argument("end", help="HH:MM:SS, UTC")
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.path)
    else:
        report(args.path, args.start, args.end)


if __name__ == "__main__":
    main()
