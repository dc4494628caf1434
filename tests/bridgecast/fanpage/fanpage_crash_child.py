"""Child process for the crash test: runs `publish_once` on the fanpage and dies by SIGKILL right after the Graph
call returned, before the ledger records it — the window exactly-once has to survive.

Reads a pickled dict on stdin (the token travels there, never in argv): publication, base_url, page_id, page_token,
ledger_url, resume_dir.
"""
import os
import pickle
import signal
import sys

from bridgecast.channels.fanpage import FanpageChannel
from bridgecast.ledger import Ledger, publish_once


def _die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    job = pickle.loads(sys.stdin.buffer.read())
    channel = FanpageChannel(job["page_id"], job["page_token"], base_url=job["base_url"],
                             resume_dir=job["resume_dir"])
    Ledger.mark_published = _die  # the post exists on the Page; the ledger never hears of it
    publish_once(Ledger(job["ledger_url"]), channel, job["publication"])
    sys.exit("publish_once returned although the ledger write should have killed the process")


if __name__ == "__main__":
    main()
