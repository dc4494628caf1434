"""Start and stop background servers by pid file and process group.

`down` must stop exactly what `up` started: a pid file records the pid *and* the process start time, so a
recycled pid is never mistaken for ours, and the whole process group is signalled (Airflow's workers ignore
SIGTERM when idle, nginx forks workers, SeaweedFS runs several servers in one process).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol


class ServiceDied(RuntimeError):
    """The process exited while we waited for it to become ready."""


def _start_time(pid: int) -> str | None:
    """The process's start time, or None if it is gone — a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22: starttime in clock ticks since boot


@dataclass(frozen=True)
class PidFile:
    path: Path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid} {_start_time(pid) or ''}\n")

    def read(self) -> int | None:
        """The recorded pid if that very process is still alive, else None."""
        try:
            pid_text, _, started = self.path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        current = _start_time(pid)
        if current is None or (started and current != started):
            return None
        return pid

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def recorded(self) -> int | None:
        """The pid written in the file, alive or not."""
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def crashed(self) -> bool:
        """The file is there (nobody stopped it on purpose: `stop` clears it) but its process is gone."""
        return self.path.exists() and self.recorded() is not None and self.read() is None


def spawn(argv: list[str], *, pidfile: PidFile, log_path: Path, env: dict | None = None,
          cwd: str | os.PathLike | None = None, user: str | None = None,
          redact_env: dict | None = None) -> int:
    """Start `argv` in a new session (its own process group), output appended to `log_path` — through the
    redacting pump (`devstack.stack.logpump`) when `redact_env` is given: the environment whose secrets it masks
    (the server itself still gets `env`). The pump then leads the group and its pid is recorded."""
    import json
    import sys

    log_path.parent.mkdir(parents=True, exist_ok=True)
    if user and os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    env = dict(os.environ if env is None else env)
    if redact_env is not None:
        extra = {k: v for k, v in redact_env.items() if env.get(k) != v}
        env["LOGPUMP_SECRETS_ENV"] = json.dumps(extra)
        argv = [sys.executable, "-m", "devstack.stack.logpump", str(log_path), *argv]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                          str(Path(__file__).resolve().parents[2] / "plugins"),
                                                          env.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    pidfile.write(proc.pid)
    return proc.pid


def stop_group(pidfile: PidFile, *, grace_s: float = 20.0) -> bool:
    """SIGTERM the process group, then SIGKILL what is left after `grace_s`. True if something was stopped."""
    pid = pidfile.read()
    if pid is None:
        pidfile.clear()
        return False
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pidfile.clear()
        return False
    pidfile.clear()  # first: a supervisor seeing the process gone must not take this stop for a crash
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.3)
    pidfile.clear()
    return True


def kill_leftovers(pidfile: PidFile) -> bool:
    """SIGKILL what is left of a dead leader's process group (nginx workers outlive a killed master and keep
    its ports). True if something was killed."""
    pgid = pidfile.recorded()
    if pgid is None or pgid == os.getpgrp() or not _group_alive(pgid):
        return False
    if Path(f"/proc/{pgid}").exists():
        return False  # a live process holds that pid now: the pid was reused, that group is not ours
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":  # field 5 pgrp; zombies don't count
            return True
    return False


def wait_until(check, *, timeout_s: float, what: str, interval_s: float = 0.5, log_path: Path | None = None):
    """Poll `check()` until it returns truthy; on timeout raise with the tail of the service log."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            if isinstance(exc, ServiceDied):
                raise RuntimeError(f"{exc}\n{_tail(log_path)}") from None  # the service is still coming up
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s (last error: {last_error}); see {log_path}\n"
                       f"{_tail(log_path)}")


def _tail(log_path: Path | None, lines: int = 25) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


# --- the supervisor's loop ----------------------------------------------------------------------------------------
class Supervised(Protocol):
    name: str
    pidfile: PidFile

    def start(self) -> bool: ...


class Watchdog:
    """Restarts every watched service whose process died (its pid file is still there, its process is not), and
    writes one JSON line per event to `alerts` (`{"at", "service", "event": "down"|"restarted"|"restart_failed",
    "down_s", "detail"}`) for the control room to read. A service stopped on purpose (`down`, `stop`) has no pid
    file and is left alone."""

    def __init__(self, services: list[Supervised], alerts: Callable[[dict], None], poll_s: float = 0.2):
        self.services, self.alerts, self.poll_s = services, alerts, poll_s
        self._restarting: set[str] = set()
        self._failures: dict[str, int] = {}  # consecutive failed restarts: back off 1, 2, 4 … 30 s between them
        self._next_try: dict[str, float] = {}
        self._lock = threading.Lock()

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        while not should_stop():
            _reap_children()  # what this process restarted is its child: a dead one must not linger as a zombie
            self.check_once()
            time.sleep(self.poll_s)

    def check_once(self) -> list[str]:
        """Start a restart (in its own thread: nginx must not wait for a slow gateway) for each crashed service."""
        started = []
        for service in self.services:
            with self._lock:
                if (service.name in self._restarting or time.monotonic() < self._next_try.get(service.name, 0)
                        or not service.pidfile.crashed()):
                    continue
                self._restarting.add(service.name)
            threading.Thread(target=self._restart, args=(service,), name=f"restart-{service.name}",
                             daemon=True).start()
            started.append(service.name)
        return started

    def _restart(self, service: Supervised) -> None:
        died_seen = time.monotonic()
        try:
            self.alerts(_alert(service.name, "down", None, f"pid {service.pidfile.recorded()} is gone"))
            kill_leftovers(service.pidfile)
            service.pidfile.clear()
            service.start()
            self.alerts(_alert(service.name, "restarted", time.monotonic() - died_seen,
                               f"new pid {service.pidfile.recorded()}"))
            self._failures.pop(service.name, None)
        except Exception as exc:  # keep watching; tried again after a back-off (its pid file shows it dead)
            failures = self._failures[service.name] = self._failures.get(service.name, 0) + 1
            self._next_try[service.name] = time.monotonic() + min(30.0, 2.0 ** (failures - 1))
            self.alerts(_alert(service.name, "restart_failed", time.monotonic() - died_seen, str(exc)[:500]))
        finally:
            with self._lock:
                self._restarting.discard(service.name)


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _alert(service: str, event: str, down_s: float | None, detail: str) -> dict:
    return {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "service": service, "event": event,
            "down_s": None if down_s is None else round(down_s, 2), "detail": detail}


_print_lock = threading.Lock()


def print_alert(alert: dict) -> None:
    """One JSON line on stdout (the supervisor's log file)."""
    with _print_lock:
        print(json.dumps(alert, ensure_ascii=False), flush=True)
