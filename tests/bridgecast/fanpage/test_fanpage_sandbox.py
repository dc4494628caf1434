"""The sandbox itself: state survives a restart, every Graph answer carries Meta's usage headers and a fresh
fbtrace_id, and its admin controls need the app secret."""
from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time

import requests
import uvicorn

from devstack.sandboxes.fanpage import create_app


@contextlib.contextmanager
def served(app):
    """`create_app(...)` served by uvicorn on a free loopback port for the length of the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process sandbox did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_posts_and_live_videos_survive_a_restart(tmp_path):
    token = secrets.token_urlsafe(24)  # generated per test, like the stack's: no credential-shaped literal
    settings = dict(page_id="1001", page_token=token, app_secret=secrets.token_urlsafe(24),
                    rtmp_base="rtmp://127.0.0.1:1935/fblive")
    auth = {"Authorization": f"OAuth {token}"}
    with served(create_app(tmp_path / "data", **settings)) as first:
        post_id = requests.post(f"{first}/v25.0/1001/feed", data={"message": "Trước khi khởi động lại"},
                                headers=auth, timeout=10).json()["id"]
        live_id = requests.post(f"{first}/v25.0/1001/live_videos", data={"title": "Trực tiếp"}, headers=auth,
                                timeout=10).json()["id"]
    with served(create_app(tmp_path / "data", **settings)) as second:
        post = requests.get(f"{second}/v25.0/{post_id}", params={"fields": "message"}, headers=auth, timeout=10)
        live = requests.get(f"{second}/v25.0/{live_id}", params={"fields": "status"}, headers=auth, timeout=10)
        assert post.json()["message"] == "Trước khi khởi động lại"
        assert live.json()["status"] == "UNPUBLISHED"
        assert "Trước khi khởi động lại" in requests.get(second + "/", timeout=10).text


def test_every_graph_answer_carries_usage_headers_and_a_fresh_fbtrace_id(sandbox):
    auth = {"Authorization": f"OAuth {sandbox.token}"}
    ok = requests.get(f"{sandbox.base_url}/v25.0/{sandbox.page_id}", headers=auth, timeout=10)
    bad = [requests.get(f"{sandbox.base_url}/v25.0/{sandbox.page_id}", params={"fields": "nope"}, headers=auth,
                        timeout=10) for _ in range(2)]
    for response in [ok, *bad]:
        usage = json.loads(response.headers["X-Business-Use-Case-Usage"])[sandbox.page_id][0]
        assert usage["type"] == "pages" and "estimated_time_to_regain_access" in usage
        assert set(json.loads(response.headers["X-App-Usage"])) == {"call_count", "total_time", "total_cputime"}
        assert response.headers["facebook-api-version"] == "v25.0"
    traces = [r.json()["error"]["fbtrace_id"] for r in bad]
    assert traces[0] != traces[1] and all(len(t) >= 11 for t in traces)
    assert bad[0].json()["error"]["type"] == "OAuthException" and bad[0].status_code == 400


def test_admin_controls_need_the_app_secret(sandbox):
    for headers in ({}, {"Authorization": f"Bearer {sandbox.token}"}):
        response = requests.post(f"{sandbox.base_url}/_sandbox/knobs", json={"expired": True}, headers=headers,
                                 timeout=10)
        assert response.status_code == 401
    assert sandbox.knobs()["expired"] is False


def test_a_repeated_message_is_accepted_by_default_as_meta_does_not_promise_to_refuse_it(sandbox):
    """No safety net the real Graph does not promise: exactly-once must hold without a #506 refusal."""
    auth = {"Authorization": f"OAuth {sandbox.token}"}
    message = f"Lặp lại {secrets.token_hex(6)}"
    answers = [requests.post(f"{sandbox.base_url}/v25.0/{sandbox.page_id}/feed", data={"message": message},
                             headers=auth, timeout=10) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[0].json()["id"] != answers[1].json()["id"]
    sandbox.knobs(duplicate_window_s=600)  # the opt-in knob, for the tests of Meta's #506 answer
    refused = requests.post(f"{sandbox.base_url}/v25.0/{sandbox.page_id}/feed", data={"message": message},
                            headers=auth, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == 506


def test_a_call_held_open_after_the_work_still_does_the_work(sandbox):
    auth = {"Authorization": f"OAuth {sandbox.token}"}
    message = f"Giữ máy {secrets.token_hex(6)}"
    sandbox.fault(endpoint="feed", method="POST", hang_after_s=3.0)
    with contextlib.suppress(requests.Timeout):
        requests.post(f"{sandbox.base_url}/v25.0/{sandbox.page_id}/feed", data={"message": message},
                      headers=auth, timeout=(2, 0.5))
    listed = requests.get(f"{sandbox.base_url}/v25.0/{sandbox.page_id}/posts", params={"fields": "message"},
                          headers=auth, timeout=10).json()["data"]
    assert [p["message"] for p in listed].count(message) == 1  # made before the client gave up
