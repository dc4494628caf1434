"""Published once, attacked: concurrent attempts, calls that hang past the client's timeout, tasks cleared (killed)
while their call hangs, and a rerun storm mixing all of it — duplicates counted on the channels themselves.

Every attempt is its own process (`tests/bridgecast/channels/publish_attempt_child.py`, one Airflow try each), with
the stack's PostgreSQL as the ledger. Channels: the stack's portal and fanpage sandboxes (their fault knobs hold a
request open before or after doing the work) and the stack's real WordPress 6.1 (the portal the launch publishes
to), for which the same faults come from a small fault-injecting HTTP proxy in front of it (WordPress cannot be told
to hang). Only the stack services this needs are started (PostgreSQL, WordPress and the two sandboxes, from the
stack's own definitions, on BRIDGECAST_TEST_VAR/PORT_BASE), not Airflow: the attempts are what an Airflow try runs, and clearing a running task kills its process — as here.
"""
from __future__ import annotations

import http.client
import json
import os
import pickle
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from bridgecast.channels.base import MediaFile, Publication
from bridgecast.channels.portal import PortalChannel
from bridgecast.ledger import PUBLISHED, Ledger

REPO = Path(__file__).resolve().parents[3]
CHILD = REPO / "tests" / "bridgecast" / "channels" / "publish_attempt_child.py"
TEST_VAR = Path(os.environ.get("BRIDGECAST_TEST_VAR", REPO / "var" / "test-stack"))
TEST_PORT_BASE = int(os.environ.get("BRIDGECAST_TEST_PORT_BASE", "28000"))
NEEDED = ("postgres", "wordpress", "fanpage-sandbox", "portal-sandbox")
# An impatient client and short leases, so faults and takeovers happen within seconds. The server-side window is
# connect + read timeout + margin = 15.5 s while no hang below lasts more than 2.5 s: a real server ends its work
# inside PHP's/nginx's own limits, and this box, shared and loaded, has delayed a sandbox's 2.5 s hang by 7 s.
CLIENT = {"timeout": (2.0, 1.5), "upload_timeout": (2.0, 1.5), "server_margin_s": 12.0}
PATIENT = {"timeout": (2.0, 4.0), "upload_timeout": (2.0, 4.0), "server_margin_s": 10.0}  # outwaits a 2.5 s hang
POLICY = {"ttl_s": 2.0, "wait_s": 40.0, "poll_s": 0.1}
ARTICLE_POSTS = "/wp-json/wp/v2/posts"


# --- a fault-injecting proxy in front of the real WordPress ---------------------------------------------------------
class FaultProxy:
    """Forwards every request to WordPress; a rule holds a matching request open `hang_s` before forwarding it
    (`hang`: the post appears late) or after WordPress answered (`hang_after`: the post exists while the client
    times out). Logs nothing (requests carry the Application Password)."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.rules: list[dict] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rule = proxy.take(self.command, self.path)
                if rule and rule["mode"] == "hang":
                    time.sleep(rule["hang_s"])
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                upstream.close()
                if rule and rule["mode"] == "hang_after":
                    time.sleep(rule["hang_s"])
                try:
                    self.send_response(answer.status, answer.reason)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up meanwhile: what WordPress did stands

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, method: str, path: str) -> dict | None:
        with self.lock:
            for rule in self.rules:
                if rule["count"] > 0 and method == rule["method"] and path.startswith(rule["path_prefix"]):
                    rule["count"] -= 1
                    return dict(rule)
        return None

    def add(self, **rule) -> None:
        with self.lock:
            self.rules.append({"method": "POST", "path_prefix": ARTICLE_POSTS, "count": 1, **rule})

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def left(self) -> int:
        with self.lock:
            return sum(r["count"] for r in self.rules)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the channels under attack --------------------------------------------------------------------------------------
@dataclass
class Target:
    """One channel as the attempts see it, its fault knob, and a count of what it holds, made on the channel."""

    name: str
    make_spec: object = field(repr=False)  # client options -> how a child builds the channel (holds credentials)
    hang: object = field(repr=False)  # hang(mode, seconds, count): the next matching create calls hang
    clear: object = field(repr=False)
    hangs_left: object = field(repr=False)  # hangs_left() -> how many more calls the hang rules will hold
    count: object = field(repr=False)  # count(token) -> items on the channel carrying token
    kind: str = "article"
    media: tuple = ()


def _portal_count(channel: PortalChannel):
    def count(token: str) -> int:
        posts = channel.client.list_posts(search=token, status="publish,future,draft,pending,private")
        return sum(1 for p in posts if token in p["title"]["raw"])
    return count


def _fanpage_count(base_url: str, page_id: str, token: str):
    def count(marker: str) -> int:
        found = 0
        for edge in ("posts", "scheduled_posts"):
            page = requests.get(f"{base_url}/v25.0/{page_id}/{edge}", params={"fields": "id,message", "limit": 100},
                                headers={"Authorization": f"OAuth {token}"}, timeout=10).json()
            found += sum(1 for p in page["data"] if marker in p.get("message", ""))
        return found
    return count


@pytest.fixture(scope="module")
def stack_pieces():
    """PostgreSQL and the two sandboxes of a stack under BRIDGECAST_TEST_VAR, started here unless already up."""
    from devstack.stack.manager import Stack

    stack = Stack.from_env(var=TEST_VAR, port_base=TEST_PORT_BASE)
    services = [s for s in stack.services() if s.name in NEEDED]
    started = []
    try:
        for service in services:
            try:
                if service.start():
                    started.append(service)
            except Exception:  # noqa: BLE001 - ports ≥ 32768 can be taken by an ephemeral port: one more try
                time.sleep(2)
                if service.start():
                    started.append(service)
        yield stack
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="module")
def ledger_url(stack_pieces) -> str:
    url = stack_pieces.env["BRIDGECAST_LEDGER_URL"]
    Ledger(url)  # the table exists before the first attempt
    return url


@pytest.fixture(scope="module")
def wordpress(stack_pieces):
    """The stack's own WordPress (the portal the launch publishes to), behind the fault-injecting proxy."""
    info = stack_pieces.wordpress().info()
    proxy = FaultProxy(info.base_url)
    yield info, proxy
    proxy.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> MediaFile:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "diem-cau.jpg"
    Image.new("RGB", (320, 240), (30, 120, 200)).save(path, quality=80)
    return MediaFile.from_path(path, "image/jpeg", "Điểm cầu")


@pytest.fixture(scope="module")
def targets(stack_pieces, wordpress, photo) -> dict[str, Target]:
    secrets, ports = stack_pieces.secrets, stack_pieces.layout.ports
    sandbox_url = f"http://127.0.0.1:{ports.portal}"
    sandbox_auth = ("bridgecast", secrets["portal_app_password"])

    def sandbox_hang(mode, seconds, count=1):
        requests.post(f"{sandbox_url}/__sandbox/faults", auth=sandbox_auth, timeout=10, json={
            "mode": mode, "hang_s": seconds, "methods": ["POST"], "path_prefix": ARTICLE_POSTS, "count": count})

    def sandbox_clear():
        requests.delete(f"{sandbox_url}/__sandbox/faults", auth=sandbox_auth, timeout=10)

    def sandbox_left():
        rules = requests.get(f"{sandbox_url}/__sandbox/faults", auth=sandbox_auth, timeout=10).json()["rules"]
        return sum(r["count"] for r in rules)

    graph_url, page_id, token = (f"http://127.0.0.1:{ports.fanpage}", secrets["fanpage_page_id"],
                                 secrets["fanpage_page_token"])
    admin = {"Authorization": f"Bearer {secrets['fanpage_app_secret']}"}

    def graph_hang(mode, seconds, count=1):
        knob = {"hang": "latency_s", "hang_after": "hang_after_s"}[mode]
        requests.post(f"{graph_url}/_sandbox/faults", headers=admin, timeout=10,
                      json={"endpoint": "feed", "method": "POST", knob: seconds, "count": count})

    def graph_clear():
        requests.delete(f"{graph_url}/_sandbox/faults", headers=admin, timeout=10)

    def graph_left():
        rules = requests.get(f"{graph_url}/_sandbox/faults", headers=admin, timeout=10).json()["rules"]
        return sum(r["count"] for r in rules)

    info, proxy = wordpress
    uploads = str(TEST_VAR / "fb-uploads")
    made = {
        "portal-sandbox": Target("portal-sandbox", lambda client: ("portal", sandbox_url, *sandbox_auth, client),
                                 sandbox_hang, sandbox_clear, sandbox_left,
                                 _portal_count(PortalChannel(sandbox_url, *sandbox_auth))),
        "wordpress": Target("wordpress",
                            lambda client: ("portal", proxy.url, info.user, info.app_password, client),
                            lambda mode, seconds, count=1: proxy.add(mode=mode, hang_s=seconds, count=count),
                            proxy.clear, proxy.left,
                            _portal_count(PortalChannel(info.base_url, info.user, info.app_password))),
        "fanpage-sandbox": Target("fanpage-sandbox",
                                  lambda client: ("fanpage", page_id, token, graph_url,
                                                  {**client, "resume_dir": uploads}),
                                  graph_hang, graph_clear, graph_left,
                                  _fanpage_count(graph_url, page_id, token), kind="post", media=(photo,)),
    }
    yield made
    for target in made.values():
        target.clear()


# --- attempts -------------------------------------------------------------------------------------------------------
def publication(target: Target, event_id: str, token: str) -> Publication:
    return Publication(event_id=event_id, key=f"launch/{token}", kind=target.kind,
                       title=f"Lễ ra quân {token}", body="Toàn bộ 64 điểm cầu đã kết nối.", media=target.media)


def start_attempt(target: Target, ledger_url: str, pub: Publication, client: dict = CLIENT,
                  **job) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins")])
    proc = subprocess.Popen([sys.executable, str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=REPO)
    proc.stdin.write(pickle.dumps({"channel": target.make_spec(client), "ledger_url": ledger_url, "policy": POLICY,
                                   "publication": pub, **job}))
    proc.stdin.close()
    proc.stdin = None  # written and closed: communicate() must not touch it again
    return proc


def result(proc: subprocess.Popen, timeout_s: float = 180) -> dict:
    out, err = proc.communicate(timeout=timeout_s)
    if proc.returncode < 0:
        return {"killed": True}
    assert proc.returncode in (0, 3), err.decode(errors="replace")[-3000:]
    answer = json.loads(out.decode().strip().splitlines()[-1])
    answer["log"] = err.decode(errors="replace")[-3000:]  # shown by a failing assertion
    return answer


def wait_until(predicate, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def row_of(ledger: Ledger, target: Target, pub: Publication):
    return ledger.get(pub.event_id, "fanpage" if target.kind == "post" else "portal", pub.key)


TARGETS = ["portal-sandbox", "wordpress", "fanpage-sandbox"]


@pytest.fixture
def event_id() -> str:
    return f"hardening-once-{uuid.uuid4().hex[:8]}"


# --- the attacks ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TARGETS)
def test_two_attempts_of_one_publication_at_once_make_one_item(targets, ledger_url, event_id, name):
    target, token = targets[name], uuid.uuid4().hex[:10]
    pub = publication(target, event_id, token)
    target.hang("hang", 2.0)  # the first create is slow: the second attempt arrives while it is inside the call

    attempts = [start_attempt(target, ledger_url, pub, PATIENT, wait_s=60) for _ in range(2)]
    results = [result(p) for p in attempts]

    assert sorted(r.get("action") for r in results) == ["created", "existing"], results
    assert target.count(token) == 1
    assert row_of(Ledger(ledger_url), target, pub).attempts == 1  # the second never called the channel


@pytest.mark.parametrize("name", TARGETS)
def test_a_create_that_hangs_past_the_client_timeout_after_creating_is_reconciled(targets, ledger_url, event_id,
                                                                                   name):
    target, token = targets[name], uuid.uuid4().hex[:10]
    pub = publication(target, event_id, token)
    target.hang("hang_after", 4.0)  # the item exists; the answer comes after our 1.5 s read timeout

    first = result(start_attempt(target, ledger_url, pub))
    assert (first.get("error"), first.get("retryable")) == ("Transient", True), first
    assert target.count(token) == 1
    retry = result(start_attempt(target, ledger_url, pub))  # Airflow's retry, at once

    assert retry.get("action") == "reconciled", retry
    assert target.count(token) == 1
    assert row_of(Ledger(ledger_url), target, pub).status == PUBLISHED


@pytest.mark.parametrize("name", TARGETS)
def test_clearing_a_task_while_its_create_hangs_does_not_post_twice(targets, ledger_url, event_id, name):
    """The server holds the create and makes the item late; the task is cleared (its process killed) meanwhile and
    the new try starts at once: it takes the dead try's lease, finds nothing yet, and waits out the dead call's
    server-side deadline instead of posting."""
    target, token = targets[name], uuid.uuid4().hex[:10]
    pub = publication(target, event_id, token)
    ledger = Ledger(ledger_url)
    target.hang("hang", 2.5)
    slow = start_attempt(target, ledger_url, pub, PATIENT)
    wait_until(lambda: target.hangs_left() == 0, "the create to reach the server")  # it is held there now
    assert row_of(ledger, target, pub).status == "pending"
    time.sleep(0.4)
    slow.kill()
    assert result(slow) == {"killed": True}

    again = result(start_attempt(target, ledger_url, pub))

    assert again.get("action") == "reconciled", again
    assert target.count(token) == 1
    time.sleep(3)  # nothing else is still on its way
    assert target.count(token) == 1 and row_of(ledger, target, pub).status == PUBLISHED


def test_rerun_storm_with_hanging_calls_and_kills_leaves_no_duplicate(targets, ledger_url, event_id, artifacts_dir):
    """Rounds of concurrent attempts per publication, with random hangs before and after the server's work and
    random kills mid-call; then one clean attempt each. Duplicates are counted on each channel."""
    seed = int(os.environ.get("BRIDGECAST_STORM_SEED", time.time()))
    rng = random.Random(seed)
    ledger = Ledger(ledger_url)
    figures = {}
    for name, target in targets.items():
        pubs = {token: publication(target, event_id, token) for token in (uuid.uuid4().hex[:10] for _ in range(3))}
        attempts = kills = hangs = 0
        for _round in range(4):
            target.clear()
            for _ in range(rng.randint(1, 3)):
                target.hang(rng.choice(["hang", "hang_after"]), round(rng.uniform(0.5, 2.5), 2), rng.randint(1, 2))
                hangs += 1
            running, killers = [], []
            for pub in pubs.values():
                for _ in range(rng.randint(2, 3)):
                    proc = start_attempt(target, ledger_url, pub)
                    running.append(proc)
                    attempts += 1
                    if rng.random() < 0.5:  # cleared while running: killed at a random moment of its try
                        killers.append(threading.Timer(rng.uniform(0.2, 2.5), proc.kill))
                        killers[-1].start()
                    time.sleep(rng.uniform(0, 0.3))
            outcomes = [result(p) for p in running]
            for killer in killers:
                killer.cancel()
            kills += sum(1 for o in outcomes if o.get("killed"))
        target.clear()
        final = {token: result(start_attempt(target, ledger_url, pub, PATIENT, wait_s=120))
                 for token, pub in pubs.items()}
        time.sleep(4)  # let every held request land (hangs are ≤ 2.5 s): a late twin must be counted too
        counts = {token: target.count(token) for token in pubs}
        duplicates = sum(max(0, n - 1) for n in counts.values())
        figures[name] = {"seed": seed, "publications": len(pubs), "attempts": attempts + len(pubs), "killed": kills,
                         "hang_rules": hangs, "duplicates": duplicates,
                         "missing": sum(1 for n in counts.values() if n == 0)}
        print(f"rerun storm on {name}: {duplicates} duplicates — {figures[name]}")
        assert all(r.get("action") in ("created", "existing", "reconciled") for r in final.values()), final
        for token, pub in pubs.items():
            row = row_of(ledger, target, pub)
            assert row.status == PUBLISHED and row.remote_id, (name, token, row)
    (artifacts_dir / "publish-storm.json").write_text(json.dumps(figures, indent=1))
    print(f"duplicates under the rerun storm (goal 0): {sum(f['duplicates'] for f in figures.values())}")
    assert {name: f["duplicates"] for name, f in figures.items()} == {name: 0 for name in figures}
    assert {name: f["missing"] for name, f in figures.items()} == {name: 0 for name in figures}
