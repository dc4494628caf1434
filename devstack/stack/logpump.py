"""`python -m devstack.stack.logpump <log file> <server argv…>`: run the server with its output piped through us
into the log file, line by line, every secret the stack holds masked on the way (`bridgecast.redact`: the
Connections, the stack's settings, every point's keys).

Why: with the LocalExecutor, Airflow's supervisor echoes each task's output to the scheduler's stdout
(`subprocess_logs_to_stdout=True`, fixed in LocalExecutor) through the scheduler's own logging, which has no
secrets masker — a task that prints a Connection password shows it there in clear, masked only in its task log.
The embedded stack's Airflow processes therefore run under this pump. (Production runs Celery workers, whose
`task_logs_to_stdout` the compose file keeps off.)

The server gets our environment less `LOGPUMP_SECRETS_ENV` (a JSON object of the extra variables that only the
masking needs, e.g. the `AIRFLOW_CONN_*` an Airflow process must not see). We lead the process group: stopping
the group stops the server; we keep draining until it closes its output, then exit with its code.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

SECRETS_VAR = "LOGPUMP_SECRETS_ENV"


def main(argv: list[str]) -> int:
    path, *server = argv
    from bridgecast.redact import SecretRegistry
    from media.redact import redact

    child_env = {k: v for k, v in os.environ.items() if k != SECRETS_VAR}
    registry = SecretRegistry({**child_env, **json.loads(os.environ.get(SECRETS_VAR) or "{}")})
    # The group's SIGTERM is for the server; we end when its output does (its last lines, a traceback, too).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proc = subprocess.Popen(server, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=child_env, preexec_fn=_default_signals)
    with open(path, "ab", buffering=0) as out:
        for raw in proc.stdout:
            out.write(redact(raw.decode("utf-8", "replace"), registry.secrets()).encode("utf-8"))
    return proc.wait()


def _default_signals() -> None:  # the server must not inherit our ignored SIGTERM/SIGINT
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
