"""Start and stop background servers by pid file and process group.

`down` must stop exactly what `up` started: a pid file records the pid *and* the process start time, so a
recycled pid is never mistaken for ours, and the whole process group is signalled (Airflow's workers ignore
SIGTERM when idle, nginx forks workers, SeaweedFS runs several servers in one process).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ServiceDied(RuntimeError):
    """The process exited while we waited for it to become ready."""


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime in clock ticks since boot


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


def spawn(argv: list[str], *, pidfile: PidFile, log_path: Path, env: dict | None = None,
          cwd: str | os.PathLike | None = None, user: str | None = None) -> int:
    """Start `argv` in a new session (its own process group), output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if user and os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
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
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.3)
    pidfile.clear()
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
