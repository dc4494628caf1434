"""`bridgecast` command line: the embedded stack, config checks, point keys, and the main jobs.

    ./bridgecast up | down | status          the embedded stack (`up --executor celery`: Redis + 2 Celery workers)
    ./bridgecast config check FILE...        validate event files (exit 1 with every problem listed)
    ./bridgecast keys show|sheet|revoke ...  per-point stream keys and upload links (`sheet`: printable, QR codes)
    ./bridgecast arm [--event FILE]          validate the event, unpause the launch DAG, show when it runs
    ./bridgecast wiring                      run the wiring DAG through the scheduler
    ./bridgecast roles [--stop]              the production auth manager (FAB) and the office's roles, on base+84
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from bridgecast.event import EventConfigError, default_event_path, load_event
from bridgecast.ingest.assets import INGEST_LANES


def cmd_config_check(args) -> int:
    failed = 0
    for path in args.files:
        try:
            event = load_event(path)
        except EventConfigError as exc:
            failed += 1
            print(f"✗ {path}: {len(exc.problems)} problem(s)", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {exc.source}: {problem}", file=sys.stderr)
            continue
        print(f"✓ {path}: event {event.id} — {len(event.connection_points)} connection points, "
              f"{len(event.teams)} teams; starts {event.start_local.isoformat()} ({event.start.isoformat()})")
    return 1 if failed else 0


def _stack(args):
    from devstack.stack.manager import Stack

    return Stack.from_env(executor=getattr(args, "executor", None))


def cmd_up(args) -> int:
    stack = _stack(args)
    t0 = time.monotonic()
    print(f"Bridgecast embedded stack (state in {stack.layout.var}):")
    stack.up()
    api = _api(stack)
    for dag_id in INGEST_LANES:  # ingest must run whenever the stack runs: uploads never wait
        api.wait_for_dag(dag_id, timeout_s=180)
        api.set_paused(dag_id, False)
    print(f"up in {time.monotonic() - t0:.1f}s — `source {stack.layout.env_file}` to use it from a shell")
    _print_login(stack)
    return 0


def cmd_down(args) -> int:
    from devstack.stack.fab import FabApiServer

    stack = _stack(args)
    fab = FabApiServer(stack.layout, stack.env, stack.secrets, users=[])
    stopped = [fab.name] if fab.stop() else []  # before PostgreSQL goes
    stopped += stack.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args) -> int:
    status = _stack(args).status()
    for name, running in status.items():
        print(f"  {name:<22} {'running' if running else 'stopped'}")
    return 0 if all(status.values()) else 3


def cmd_roles(args) -> int:
    """A second api-server under the FAB auth manager (devstack.stack.fab), with the roles of bridgecast.roles and
    one workshop user per role; run again, it brings the roles and users up to date."""
    from bridgecast.roles import BY_KEY
    from devstack.stack.fab import USERS_FILE, FabApiServer

    stack = _stack(args)
    fab = FabApiServer(stack.layout, stack.env, stack.secrets)
    if args.stop:
        print(f"{fab.name}: {'stopped' if fab.stop() else 'was not running'}")
        return 0
    if not all(s.running() for s in stack.services() if s.name in ("postgres", "airflow-api-server")):
        print("the stack is not up: run ./bridgecast up first", file=sys.stderr)
        return 1
    started = fab.start()
    report = fab.report if started else fab.apply()
    for name, counts in report["roles"].items():
        print(f"  role {name:<16} +{counts['added']} −{counts['removed']} permission(s)")
    for user in fab.users:
        roles = ", ".join(BY_KEY[r].name for r in user["roles"])
        print(f"  user {user['username']:<16} {roles} ({report['users'][user['username']]})")
    print(f"FAB api-server {'started' if started else 'running'}: {fab.url()} — passwords in "
          f"{stack.layout.secrets / USERS_FILE}; the default api-server keeps the simple auth manager")
    return 0


def _print_login(stack) -> None:
    print(f"Airflow UI: http://127.0.0.1:{stack.layout.ports.airflow}/  users admin, approver — passwords in "
          f"{stack.layout.secrets / 'airflow-passwords.json'}")


def _api(stack):
    from bridgecast.airflow_api import AirflowAPI
    from devstack.stack.env import airflow_passwords

    return AirflowAPI(f"http://127.0.0.1:{stack.layout.ports.airflow}", "bridgecast-service",
                      airflow_passwords(stack.layout, stack.secrets)["bridgecast-service"])


def cmd_wiring(args) -> int:
    stack = _stack(args)
    t0 = time.monotonic()
    print("Bringing the embedded stack up…")
    stack.up()
    up_s = time.monotonic() - t0
    api = _api(stack)
    api.wait_for_dag("bridgecast_wiring", timeout_s=180)
    api.set_paused("bridgecast_wiring", False)
    run_id = f"wiring__{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
    t1 = time.monotonic()
    api.trigger("bridgecast_wiring", run_id=run_id)
    run = api.wait_run("bridgecast_wiring", run_id, timeout_s=900)
    tis = [ti for ti in api.task_instances("bridgecast_wiring", run_id) if ti["task_id"] == "write_and_read_back"]
    ok = sum(ti["state"] == "success" for ti in tis)
    print(f"wiring run {run_id}: {run['state']} — {ok}/{len(tis)} points round-tripped through S3 "
          f"({time.monotonic() - t1:.1f}s; stack up took {up_s:.1f}s)")
    for ti in tis:
        if ti["state"] != "success":
            print(f"  ✗ {ti.get('rendered_map_index') or ti['map_index']}: {ti['state']}")
    print(f"See it: http://127.0.0.1:{stack.layout.ports.airflow}/dags/bridgecast_wiring/runs/{run_id}")
    _print_login(stack)
    return 0 if run["state"] == "success" else 1


def cmd_rehearsal(args) -> int:
    from devstack.rehearsal import main_options, run

    return 0 if run(_stack(args), main_options(args)).ok else 1


def cmd_arm(args) -> int:
    """Validate the event, unpause bridgecast_launch and say when Airflow will run it (bridgecast.launch.arming)."""
    from bridgecast.launch.arming import arm

    stack = _stack(args)
    try:
        armed = arm(args.event or default_event_path(), _api(stack))
    except EventConfigError as exc:
        print(f"✗ {exc.source}: {len(exc.problems)} problem(s) — not armed", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(armed.describe())
    return 0 if armed.ok else 2


def _public_addresses(layout):
    """Where teams reach the gateway and nginx-rtmp: the ingest Connection as this shell has it (`source
    var/stack.env`, or production's AIRFLOW_CONN_BRIDGECAST_INGEST), else the embedded stack's own."""
    from bridgecast.connections import ConnectionInfo, ConnectionNotFound, get_connection
    from bridgecast.ingest.sheet import INGEST_CONNECTION, PublicAddresses
    from devstack.stack.env import ingest_connection_fields

    try:
        conn = get_connection(INGEST_CONNECTION)
    except ConnectionNotFound:
        fields = ingest_connection_fields(layout, admin_token="")
        conn = ConnectionInfo(INGEST_CONNECTION, conn_type=fields["conn_type"], host=fields["host"],
                              extra=fields["extra"])
    return PublicAddresses.from_connection(conn)


def _warn_addresses(addresses) -> None:
    if addresses.headline:
        print(f"⚠ {addresses.headline}", file=sys.stderr)
        for warning in addresses.warnings:
            print(f"  {warning}", file=sys.stderr)


def cmd_keys_show(args) -> int:
    from devstack.stack.layout import Layout
    from bridgecast.ingest.keys import issue_point_keys

    layout = Layout.from_env()
    event = load_event(args.event or default_event_path())
    path = issue_point_keys(layout.secrets, event.id, [p.id for p in event.points])
    data = json.loads(path.read_text())["points"]
    addresses = _public_addresses(layout)
    for p in event.points:
        keys = data[p.id]
        line = f"{p.id:<22} {p.name:<20} {addresses.upload_url}/u/{keys['upload_token']}"
        if p.streams:
            line += f" {addresses.rtmp_url}/{p.id}?key={keys['stream_key']}"
        print(line)
    print(f"(keys file: {path}; keep it private)")
    _warn_addresses(addresses)
    return 0


def cmd_keys_sheet(args) -> int:
    """The printable sheet of every point's links and QR codes (bridgecast.ingest.sheet). It holds every token and
    key: only its path and counts are printed."""
    from pathlib import Path

    from devstack.stack.layout import Layout
    from bridgecast.ingest.keys import issue_point_keys
    from bridgecast.ingest.sheet import links_sheet, write_sheet

    layout = Layout.from_env()
    event = load_event(args.event or default_event_path())
    keys_file = issue_point_keys(layout.secrets, event.id, [p.id for p in event.points])
    addresses = _public_addresses(layout)
    sheet = links_sheet(event, json.loads(keys_file.read_text())["points"], addresses)
    out = write_sheet(sheet, Path(args.out) if args.out else layout.secrets / f"keys-sheet-{event.id}.html")
    counts = sheet.counts
    print(f"keys sheet of {event.id}: {counts['cards']} cards ({counts['streaming']} connection points, "
          f"{counts['teams']} teams), one A4 page each — {out} (mode 600: it holds every point's keys; print it "
          f"from a browser, hand each page to its point only)")
    print(f"  upload site {addresses.upload_url} · RTMP server {addresses.rtmp_url}")
    _warn_addresses(addresses)
    return 0


def cmd_keys_revoke(args) -> int:
    from devstack.stack.layout import Layout
    from bridgecast.ingest.keys import revoke_point_keys

    layout = Layout.from_env()
    event = load_event(args.event or default_event_path())
    revoke_point_keys(layout.secrets, event.id, args.point)
    print(f"revoked and re-issued the keys of {args.point} for {event.id}: the old upload link stops working now, "
          f"and a publisher still live on the old stream key is dropped by the gateway within about 2 s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridgecast", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the embedded stack (idempotent)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="which services run").set_defaults(func=cmd_status)
    arm_cmd = sub.add_parser("arm", help="validate the event, unpause bridgecast_launch, show when it will run")
    arm_cmd.add_argument("--event", help="event file (default: config/event.yaml or $BRIDGECAST_EVENT); it must be "
                                         "the file the dag-processor reads")
    arm_cmd.set_defaults(func=cmd_arm)
    sub.add_parser("wiring", help="stack up + run the wiring DAG through the scheduler").set_defaults(func=cmd_wiring)
    roles = sub.add_parser("roles", help="start an api-server under the FAB auth manager with the office's roles "
                                         "(editor, approver, operator, admin) and a user for each")
    roles.add_argument("--stop", action="store_true", help="stop that api-server")
    roles.set_defaults(func=cmd_roles)
    rehearsal = sub.add_parser("rehearsal", help="the main job: a full launch dress rehearsal on the embedded stack")
    rehearsal.add_argument("--points", type=int, default=64, help="connection points to stream (default 64)")
    rehearsal.add_argument("--minutes", type=float, default=3.0, help="event length in minutes (default 3)")
    rehearsal.add_argument("--fail-point", metavar="ID", help="a point whose feed is missing at preflight (no-go) "
                                                              "and only starts after T0")
    rehearsal.add_argument("--drop-point", metavar="ID", help="a point whose feed drops in the middle of the event")
    rehearsal.add_argument("--kill-gateway", action="store_const", const=60.0, help="kill the ingest gateway one "
                           "minute before T0 and time how long until publishers are accepted again (goal ≤ 5 s)")
    rehearsal.add_argument("--timeout", type=float, default=30.0, help="give up after this many minutes")
    rehearsal.set_defaults(func=cmd_rehearsal)
    for command in (up, rehearsal):
        command.add_argument("--executor", choices=["local", "celery"],
                             help="Airflow's executor: local (default; LocalExecutor) or celery (Redis broker and "
                                  "two Celery workers, default+live and media queues); default $BRIDGECAST_EXECUTOR "
                                  "or what the running stack uses")

    config = sub.add_parser("config", help="event configuration").add_subparsers(dest="config_cmd", required=True)
    check = config.add_parser("check", help="validate event files")
    check.add_argument("files", nargs="+")
    check.set_defaults(func=cmd_config_check)

    keys = sub.add_parser("keys", help="per-point stream keys and upload tokens").add_subparsers(
        dest="keys_cmd", required=True)
    show = keys.add_parser("show", help="issue missing keys and print each point's upload link and publish URL")
    show.add_argument("--event", help="event file (default: config/event.yaml or $BRIDGECAST_EVENT)")
    show.set_defaults(func=cmd_keys_show)
    sheet = keys.add_parser("sheet", help="write the printable sheet of every point's upload link, stream URL "
                                          "and QR codes (on the Connection's public addresses)")
    sheet.add_argument("--event", help="event file (default: config/event.yaml or $BRIDGECAST_EVENT)")
    sheet.add_argument("--out", metavar="PATH", help="where to write it (default: the stack's secrets folder); "
                                                     "written mode 600")
    sheet.set_defaults(func=cmd_keys_sheet)
    revoke = keys.add_parser("revoke", help="revoke a point's keys and issue new ones")
    revoke.add_argument("point")
    revoke.add_argument("--event")
    revoke.set_defaults(func=cmd_keys_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
