"""Child process for the crash tests: runs `publish_once` and dies by SIGKILL right after the channel's remote
call returned, before the ledger records it — the window exactly-once has to survive.

Reads a pickled dict on stdin (credentials travel there, never in argv): publication, base_url, user,
app_password, ledger_url.
"""
import os
import pickle
import signal
import sys

from bridgecast.channels.portal import PortalChannel
from bridgecast.ledger import Ledger, publish_once


def _die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    job = pickle.loads(sys.stdin.buffer.read())
    channel = PortalChannel(job["base_url"], job["user"], job["app_password"])
    Ledger.mark_published = _die  # the post exists on the server; the ledger never hears of it
    publish_once(Ledger(job["ledger_url"]), channel, job["publication"])
    sys.exit("publish_once returned although the ledger write should have killed the process")


if __name__ == "__main__":
    main()
