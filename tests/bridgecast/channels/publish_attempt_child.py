"""Child process: ONE attempt of a publication, as one Airflow task try runs it (its own process, its own lease).

The concurrency and storm tests start several of these at once and kill some mid-call, as clearing a running task
does. Reads a pickled dict on stdin (credentials travel there, never in argv):
  channel: ("portal", base_url, user, app_password, options) or ("fanpage", page_id, token, base_url, options)
  ledger_url, policy (LeasePolicy fields), publication, action ("publish" | "cancel"), wait_s (optional)
Prints one JSON line — {"action", "remote_id"} or {"error", "retryable"} — and exits 0 (done) or 3 (typed error).
"""
import json
import logging
import pickle
import sys

from bridgecast.channels.base import ChannelError
from bridgecast.channels.fanpage import FanpageChannel
from bridgecast.channels.portal import PortalChannel
from bridgecast.ledger import Ledger, LeasePolicy, cancel_once, publish_once


def build_channel(spec):
    kind, *args, options = spec
    if kind == "portal":
        base_url, user, password = args
        return PortalChannel(base_url, user, password, **options)
    page_id, token, base_url = args
    return FanpageChannel(page_id, token, base_url=base_url, **options)


def main() -> None:
    job = pickle.loads(sys.stdin.buffer.read())
    # What the attempt decided (takeovers, waits, twins) goes to stderr, for the parent to show when a test fails.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ledger = Ledger(job["ledger_url"], policy=LeasePolicy(**job.get("policy", {})))
    attempt = cancel_once if job.get("action") == "cancel" else publish_once
    try:
        outcome = attempt(ledger, build_channel(job["channel"]), job["publication"], wait_s=job.get("wait_s"))
    except ChannelError as exc:
        print(json.dumps({"error": type(exc).__name__, "retryable": exc.retryable}), flush=True)
        sys.exit(3)
    ref = outcome.ref if outcome else None
    print(json.dumps({"action": outcome.action if outcome else None, "remote_id": ref.remote_id if ref else None}),
          flush=True)


if __name__ == "__main__":
    main()
