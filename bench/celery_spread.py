"""Celery spread benchmark: the ingest burst and the launch wrap-up, first on one Celery worker, then on two, on the
Celery-mode embedded stack. Prints each worker's share and throughput, the phase's wall time and the two-to-one
ratio. On this 2-core machine the point is that work spreads over the workers and nothing breaks (no photo lost,
nothing published twice) — not speed: two workers on the same two cores cannot be much faster than one.

It swaps the stack's own workers (default+live, media) for bench workers that each serve every queue with
`--concurrency` slots — one worker stands for one machine — and puts the stack's workers back at the end. The
wrap-up is that of a finished rehearsal run (cleared and rerun as an operator would: highlights, recap, vertical
recap, galleries, then the publishing, which the ledger keeps from posting twice).

    BRIDGECAST_VAR=var BRIDGECAST_PORT_BASE=18000 PYTHONPATH=.:plugins .venv/bin/python bench/celery_spread.py \\
        [--points 8 --photos 4] [--run-id rehearsal__…]
Needs `./bridgecast up --executor celery` and one finished `./bridgecast rehearsal --executor celery`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import ingest_burst  # bench/ingest_burst.py: the burst itself (photos, uploads, waiting, CPU meter)

LAUNCH, INGEST = "bridgecast_launch", "bridgecast_ingest"
# Cleared with everything downstream of them: recap, vertical recap, the three publications, the summary.
WRAPUP_TASKS = ["build_highlights", "build_galleries"]


@dataclass
class Share:
    """One worker's part of a phase."""
    tasks: int = 0
    busy_s: float = 0.0
    items: int = 0  # photos processed (burst) or tasks done (wrap-up)


@dataclass
class Phase:
    name: str
    workers: int
    wall_s: float
    items: int
    unit: str
    shares: dict[str, Share] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    cpu: str = ""

    @property
    def per_min(self) -> float:
        return self.items / self.wall_s * 60 if self.wall_s else 0.0


# --- the workers --------------------------------------------------------------------------------------------------
def bench_specs(count: int, concurrency: int):
    from devstack.stack.celery import DEFAULT_QUEUE, LIVE_QUEUE, MEDIA_QUEUE, WorkerSpec

    return tuple(WorkerSpec(f"bench-{n + 1}", (DEFAULT_QUEUE, MEDIA_QUEUE, LIVE_QUEUE), concurrency)
                 for n in range(count))


def swap_workers(stack, stop_specs, start_specs) -> None:
    from devstack.stack.celery import CeleryWorker

    for spec in stop_specs:
        if CeleryWorker(stack.layout, stack.env, stack.secrets, spec).stop():
            print(f"  stopped worker {spec.name}")
    for spec in start_specs:
        t0 = time.monotonic()
        CeleryWorker(stack.layout, stack.env, stack.secrets, spec).start()
        print(f"  started worker {spec.name} (queues {','.join(spec.queues)} × {spec.concurrency}, "
              f"{time.monotonic() - t0:.0f}s)")


def _worker_of(ti: dict) -> str:
    return (ti.get("hostname") or "?").split(".")[0]  # `<worker>.<machine>` (devstack.stack.celery.worker_hostname)


def _duration(ti: dict) -> float:
    return float(ti.get("duration") or 0.0)


def _after(ti: dict, since: datetime) -> bool:
    return bool(ti.get("start_date")) and datetime.fromisoformat(ti["start_date"]) >= since


# --- the phases ---------------------------------------------------------------------------------------------------
def burst_phase(api, target, bases, points: int, photos: int, workers: int, timeout_s: float) -> Phase:
    run_tag = uuid.uuid4().hex[:8]
    burst = ingest_burst.plan(target, points, photos, bases, run_tag)
    since = datetime.now(timezone.utc)
    with ingest_burst.CpuMeter(target.var) as cpu:
        began, _ = burst.upload_all()
        burst.wait_for_web_renditions(timeout_s)
    ready = [u for u in burst.uploads if u.web_at is not None]
    wall = (max(u.web_at for u in ready) - began) if ready else float("nan")
    phase = Phase("ingest burst", workers, wall, len(ready), "photos", cpu=cpu.report(len(burst.uploads)))
    lost = len(burst.uploads) - len(ready)
    if lost:
        phase.problems.append(f"{lost} of {len(burst.uploads)} photos without a web rendition")
    for run in api.runs(INGEST, limit=50):
        if datetime.fromisoformat(run["run_after"]) < since.replace(microsecond=0):
            continue
        for ti in api.task_instances(INGEST, run["dag_run_id"]):
            if ti["task_id"] != "process_batch" or ti["state"] != "success" or not _after(ti, since):
                continue
            share = phase.shares.setdefault(_worker_of(ti), Share())
            share.tasks += 1
            share.busy_s += _duration(ti)
            results = api.xcom(INGEST, run["dag_run_id"], "process_batch", map_index=ti["map_index"]) or []
            share.items += sum(r.get("status") == "processed" for r in results)
    return phase


def wrapup_phase(api, stack, run_id: str, workers: int, timeout_s: float) -> Phase:
    from bridgecast.event import load_event
    from devstack.rehearsal import count_on_channels

    event_id = run_id.split("__")[1]
    event = load_event(stack.layout.var / "rehearsals" / event_id / "event.yaml")
    before = count_on_channels(stack, event)
    since = datetime.now(timezone.utc)
    with ingest_burst.CpuMeter(stack.layout.var) as cpu:
        t0 = time.monotonic()
        api.clear_tasks(LAUNCH, run_id, WRAPUP_TASKS, downstream=True)
        time.sleep(3)  # the run turns `queued`/`running` again after the clear; do not read its old end state
        run = api.wait_run(LAUNCH, run_id, timeout_s=timeout_s, poll_s=3)
        wall = time.monotonic() - t0
    tis = [ti for ti in api.task_instances(LAUNCH, run_id) if _after(ti, since)]
    phase = Phase("wrap-up", workers, wall, sum(ti["state"] == "success" for ti in tis), "tasks",
                  cpu=cpu.report(max(1, len(tis))).replace("per photo", "per task").replace("the burst", "the wrap-up"))
    if run["state"] != "success":
        phase.problems.append(f"run {run_id} ended {run['state']}")
    failed = sorted({ti["task_id"] for ti in tis if ti["state"] != "success"})
    if failed:
        phase.problems.append(f"not successful: {', '.join(failed)}")
    after = count_on_channels(stack, event)
    if after != before:
        phase.problems.append(f"channels changed: {before} → {after}")
    for ti in tis:
        if ti["state"] == "success":
            share = phase.shares.setdefault(_worker_of(ti), Share())
            share.tasks += 1
            share.items += 1
            share.busy_s += _duration(ti)
    return phase


# --- report ---------------------------------------------------------------------------------------------------------
def print_phase(phase: Phase) -> None:
    print(f"\n{phase.name} on {phase.workers} worker(s): {phase.items} {phase.unit} in {phase.wall_s:.1f}s "
          f"= {phase.per_min:.1f} {phase.unit}/min")
    total = sum(s.items for s in phase.shares.values()) or 1
    for name, share in sorted(phase.shares.items()):
        rate = share.items / phase.wall_s * 60 if phase.wall_s else 0.0
        print(f"  {name:<10} {share.items:>4} {phase.unit} ({share.items / total:.0%}) in {share.tasks} task(s), "
              f"busy {share.busy_s:.1f}s — {rate:.1f} {phase.unit}/min")
    print(phase.cpu)
    for problem in phase.problems:
        print(f"  PROBLEM: {problem}")


def latest_rehearsal_run(api) -> str | None:
    for run in api.runs(LAUNCH, limit=20):
        if run["dag_run_id"].startswith("rehearsal__") and run["state"] == "success":
            return run["dag_run_id"]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=8, help="points uploading at once (default 8)")
    parser.add_argument("--photos", type=int, default=4, help="12 MP photos per point (default 4)")
    parser.add_argument("--concurrency", type=int, default=2, help="slots per bench worker (default 2)")
    parser.add_argument("--run-id", help="the finished launch run whose wrap-up is rerun (default: latest rehearsal)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per phase")
    args = parser.parse_args(argv)

    from devstack.cli import _api
    from devstack.stack.celery import WORKERS, running_executor
    from devstack.stack.manager import Stack

    stack = Stack.from_env(executor="celery")
    if running_executor(stack.layout) != "celery":
        sys.exit(f"the stack in {stack.layout.var} does not run on Celery: `./bridgecast up --executor celery` first")
    for key, value in stack.env.items():
        os.environ.setdefault(key, value)  # the channels and S3 as the tasks see them
    api = _api(stack)
    run_id = args.run_id or latest_rehearsal_run(api)
    if not run_id:
        sys.exit("no finished rehearsal run to rerun the wrap-up of: `./bridgecast rehearsal --executor celery "
                 "--points 8` first, or pass --run-id")
    target = ingest_burst.connect_to_stack()
    ingest_burst.ensure_ingest_dag_runs(target.airflow)
    bases = ingest_burst.base_photos(10, stack.layout.var / "bench" / "photos")
    print(f"Celery spread: burst {args.points} points × {args.photos} photos; wrap-up of {run_id}; "
          f"bench workers serve every queue with {args.concurrency} slots; {os.cpu_count()} cores")

    phases: list[Phase] = []
    current = WORKERS
    try:
        for count in (1, 2):
            specs = bench_specs(count, args.concurrency)
            print(f"\n--- {count} worker(s) ---")
            swap_workers(stack, current, specs)
            current = specs
            phases.append(burst_phase(api, target, bases, args.points, args.photos, count, args.timeout))
            print_phase(phases[-1])
            phases.append(wrapup_phase(api, stack, run_id, count, args.timeout))
            print_phase(phases[-1])
    finally:
        print("\nputting the stack's workers back")
        swap_workers(stack, current, WORKERS)

    print("\nsummary (two workers against one; > 1 = faster)")
    for name in ("ingest burst", "wrap-up"):
        one, two = (p for p in phases if p.name == name)
        spread = ", ".join(f"{w} {s.items}" for w, s in sorted(two.shares.items()))
        print(f"  {name:<13} {one.per_min:6.1f} → {two.per_min:6.1f} {one.unit}/min: ratio {two.per_min / one.per_min:.2f}"
              f" (wall {one.wall_s:.0f}s → {two.wall_s:.0f}s); on two workers: {spread}")
    problems = [f"{p.name} on {p.workers}: {x}" for p in phases for x in p.problems]
    both_used = all(len([s for s in p.shares.values() if s.items]) == 2 for p in phases if p.workers == 2)
    print(f"{'PASS' if not problems else 'FAIL'}: nothing lost or published twice" +
          ("" if not problems else " — " + "; ".join(problems)))
    print(f"{'PASS' if both_used else 'FAIL'}: both workers took part in each phase on two workers")
    return 0 if not problems and both_used else 1


if __name__ == "__main__":
    sys.exit(main())
