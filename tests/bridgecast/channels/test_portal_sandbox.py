"""What only the sandbox can show: injected failures, its reader view, restarts, and WordPress's rules in isolation."""
from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
import requests
import uvicorn

from bridgecast.channels.base import Publication, RejectedInput, Transient
from bridgecast.channels.portal import PortalChannel
from bridgecast.ledger import UNKNOWN, PublicationInProgress, publish_once
from devstack.sandboxes.portal import create_app
from devstack.sandboxes.smtp import free_port

PASSWORD = "sandbox-only pass 1234"


def article(event_id: str, token: str, **fields) -> Publication:
    defaults = dict(event_id=event_id, key="launch/article", kind="article", title=f"Tin nhanh {token}",
                    body="Nội dung.")
    return Publication(**{**defaults, **fields})


class _Site(requests.Session):
    """A session bound to one in-process sandbox: `site.get("/wp-json/...")`."""

    def __init__(self, base_url: str, auth):
        super().__init__()
        self.base_url, self.auth = base_url, auth

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 10)
        return super().request(method, self.base_url + url, *args, **kwargs)


@contextmanager
def serve(app, auth=("bridgecast", PASSWORD)):
    """Run a sandbox app on a free loopback port in a thread (a real HTTP server, as in production)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("in-process sandbox did not start")
        time.sleep(0.02)
    try:
        yield _Site(f"http://127.0.0.1:{port}", auth)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def client(tmp_path):
    with serve(create_app(tmp_path / "portal", "bridgecast", PASSWORD)) as site:
        yield site


def test_error_after_commit_is_reconciled_not_reposted(portal_sandbox, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    portal_sandbox.fault(mode="after", methods=["POST"], path_prefix="/wp-json/wp/v2/posts", count=1)
    with pytest.raises(Transient):
        publish_once(ledger, portal_sandbox.channel(), pub)
    assert ledger.get(event_id, "portal", pub.key).status == UNKNOWN
    assert portal_sandbox.count_posts(token) == 1  # it did happen, the client just could not know
    outcome = publish_once(ledger, portal_sandbox.channel(), pub)
    assert outcome.action == "reconciled" and portal_sandbox.count_posts(token) == 1


def test_timeout_then_rerun_finds_the_late_post(portal_sandbox, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    portal_sandbox.fault(mode="hang", hang_s=1.5, methods=["POST"], path_prefix="/wp-json/wp/v2/posts", count=1)
    with pytest.raises(Transient):
        publish_once(ledger, portal_sandbox.channel(timeout=(5.0, 0.5)), pub)
    deadline = time.monotonic() + 10
    while portal_sandbox.count_posts(token) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    outcome = publish_once(ledger, portal_sandbox.channel(), pub)
    assert outcome.action == "reconciled" and portal_sandbox.count_posts(token) == 1


def test_a_create_held_open_after_the_post_exists_is_reconciled_not_posted_again(portal_sandbox, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    portal_sandbox.fault(mode="hang_after", hang_s=3.0, methods=["POST"], path_prefix="/wp-json/wp/v2/posts",
                         count=1)
    with pytest.raises(Transient):  # our client gave up after 0.5 s; the draft was already saved
        publish_once(ledger, portal_sandbox.channel(timeout=(5.0, 0.5)), pub)
    assert ledger.get(event_id, "portal", pub.key).status == UNKNOWN
    assert portal_sandbox.count_posts(token) == 1

    outcome = publish_once(ledger, portal_sandbox.channel(), pub)  # the retry, at once

    assert outcome.action == "reconciled" and portal_sandbox.count_posts(token) == 1
    post = portal_sandbox.channel().client.get_post(int(outcome.ref.remote_id))
    assert post["status"] == "publish" and post["slug"] == pub.slug()  # the unseen draft was finished


def test_a_retry_waits_out_a_slow_create_instead_of_posting_again(portal_sandbox, ledger, event_id):
    """The server is still working on the first attempt's create when the retry looks: nothing is there yet, and
    posting now would make a twin. The retry waits until the first call's server-side deadline, then finds it."""
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    impatient = dict(timeout=(5.0, 0.5), server_margin_s=3.0)  # window: 5 + 0.5 + 3 s
    portal_sandbox.fault(mode="hang", hang_s=3.0, methods=["POST"], path_prefix="/wp-json/wp/v2/posts", count=1)
    with pytest.raises(Transient):
        publish_once(ledger, portal_sandbox.channel(**impatient), pub)
    assert portal_sandbox.count_posts(token) == 0  # still in the server's hands

    t0 = time.monotonic()
    outcome = publish_once(ledger, portal_sandbox.channel(**impatient), pub, wait_s=60)

    assert outcome.action == "reconciled" and portal_sandbox.count_posts(token) == 1
    assert time.monotonic() - t0 > 2.0  # it did wait for the earlier call


def test_a_retry_too_far_from_the_earlier_calls_deadline_is_told_to_come_back(portal_sandbox, ledger, event_id):
    token = uuid.uuid4().hex[:10]
    pub = article(event_id, token)
    portal_sandbox.fault(mode="hang", hang_s=1.0, methods=["POST"], path_prefix="/wp-json/wp/v2/posts", count=1)
    with pytest.raises(Transient):
        publish_once(ledger, portal_sandbox.channel(timeout=(5.0, 0.2)), pub)
    with pytest.raises(PublicationInProgress) as refused:  # window 5 + 0.2 + 60 s: not waited out within 1 s
        publish_once(ledger, portal_sandbox.channel(timeout=(5.0, 0.2)), pub, wait_s=1)
    assert refused.value.retryable and refused.value.retry_after_s > 30
    time.sleep(1.5)
    assert portal_sandbox.count_posts(token) == 1  # the late create landed; the retry never made a second


def test_reads_retry_on_5xx_but_writes_never_retry(portal_sandbox, event_id):
    channel = portal_sandbox.channel(first_wait_s=0.01)
    portal_sandbox.fault(mode="before", methods=["GET"], path_prefix="/wp-json/wp/v2/posts", count=2)
    assert channel.find(article(event_id, "x")) is None  # two HTML 500s, then the answer

    token = uuid.uuid4().hex[:10]
    portal_sandbox.fault(mode="before", methods=["POST"], path_prefix="/wp-json/wp/v2/posts", count=1)
    with pytest.raises(Transient) as caught:
        channel.publish(article(event_id, token))
    assert caught.value.status == 500 and "critical error" in caught.value.operator_message
    assert portal_sandbox.count_posts(token) == 0  # a blind retry would have created it


def test_html_413_from_the_web_server_is_a_typed_rejection(tmp_path, photos):
    with serve(create_app(tmp_path / "small", "bridgecast", PASSWORD, max_body_bytes=1024)) as site:
        channel = PortalChannel(site.base_url, "bridgecast", PASSWORD)
        with pytest.raises(RejectedInput) as caught:
            channel.client.upload(photos[0])
    assert caught.value.status == 413 and caught.value.param == "file"
    assert "client_max_body_size" in caught.value.operator_message


def test_reader_view_shows_title_featured_image_gallery_and_video(portal_sandbox, photos, recap_video, event_id):
    token = uuid.uuid4().hex[:10]
    ref = portal_sandbox.channel().publish(article(event_id, token, kind="video", media=tuple(photos),
                                                   video=recap_video))
    page = requests.get(ref.url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'lang="vi"' in page.text and '<meta charset="utf-8">' in page.text
    assert f"Tin nhanh {token}" in page.text and 'class="featured"' in page.text
    assert "wp-block-gallery" in page.text and page.text.count("<img") == 4  # featured + 3 in the gallery
    assert "<video controls" in page.text and "<!-- wp:" not in page.text
    home = requests.get(portal_sandbox.base_url + "/", timeout=10)
    assert f"Tin nhanh {token}" in home.text


def test_state_survives_a_restart(tmp_path):
    with serve(create_app(tmp_path, "bridgecast", PASSWORD)) as first:
        created = first.post("/wp-json/wp/v2/posts", json={"title": "Còn đó sau khi khởi động lại",
                                                           "status": "publish"}).json()
        upload = first.post("/wp-json/wp/v2/media", data=b"\xff\xd8\xff\xe0 not really a jpeg",
                            headers={"Content-Type": "image/jpeg",
                                     "Content-Disposition": 'attachment; filename="a.jpg"'}).json()
    with serve(create_app(tmp_path, "bridgecast", PASSWORD)) as second:
        again = second.get(f"/wp-json/wp/v2/posts/{created['id']}", params={"context": "edit"}).json()
        assert again["title"]["raw"] == "Còn đó sau khi khởi động lại"
        assert second.get(f"/wp-content/uploads/{upload['media_details']['file']}").status_code == 200
        assert second.post("/wp-json/wp/v2/posts", json={"title": "x"}).json()["id"] > upload["id"]


def test_slug_rules_follow_wordpress_rest(client):
    def create(**fields):
        return client.post("/wp-json/wp/v2/posts", json=fields).json()

    assert create(title="A", status="publish", slug="bc-one")["slug"] == "bc-one"
    assert create(title="A", status="publish", slug="bc-one")["slug"] == "bc-one-2"
    # Through REST an explicit slug is made unique even for a draft; without one a draft has none.
    assert create(title="A", status="draft", slug="bc-one")["slug"] == "bc-one-3"
    assert create(title="Lễ ra mắt", status="draft")["slug"] == ""
    assert create(title="Lễ ra mắt", status="publish")["slug"] == "le-ra-mat"
    assert create(title="Lễ ra mắt", status="publish")["slug"] == "le-ra-mat-2"


def test_status_follows_the_date_like_wp_insert_post(client):
    future = (datetime.now(timezone.utc) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    past = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    made = client.post("/wp-json/wp/v2/posts", json={"title": "a", "status": "publish", "date_gmt": future}).json()
    assert made["status"] == "future"
    made = client.post("/wp-json/wp/v2/posts", json={"title": "b", "status": "future", "date_gmt": past}).json()
    assert made["status"] == "publish"
    local = client.post("/wp-json/wp/v2/posts", json={"title": "c", "status": "draft",
                                                      "date": "2027-01-15T08:00:00"}).json()
    assert local["date_gmt"] == "2027-01-15T01:00:00" and local["date"] == "2027-01-15T08:00:00"


def test_wordpress_error_bodies_and_auth(client):
    anonymous = _Site(client.base_url, None)
    assert anonymous.get("/wp-json/wp/v2/users/me").json()["code"] == "rest_not_logged_in"
    refused = _Site(client.base_url, ("bridgecast", "wrong")).post("/wp-json/wp/v2/posts", json={"title": "x"})
    assert refused.status_code == 401 and refused.json() == {
        "code": "rest_cannot_create", "message": "Sorry, you are not allowed to create posts as this user.",
        "data": {"status": 401}}
    bad = client.post("/wp-json/wp/v2/posts", json={"title": "x", "status": "soon", "featured_media": "a"}).json()
    assert bad["code"] == "rest_invalid_param" and set(bad["data"]["params"]) == {"status", "featured_media"}
    upload = client.post("/wp-json/wp/v2/media", data=b"x", headers={
        "Content-Type": "image/jpeg", "Content-Disposition": "attachment; filename*=UTF-8''%E1%BA%A2nh.jpg"})
    assert upload.json()["code"] == "rest_upload_invalid_disposition"
    trashed = client.post("/wp-json/wp/v2/posts", json={"title": "t", "status": "publish", "slug": "bc-t"}).json()
    assert client.delete(f"/wp-json/wp/v2/posts/{trashed['id']}").json()["slug"] == "bc-t__trashed"
    assert client.delete(f"/wp-json/wp/v2/posts/{trashed['id']}").json()["code"] == "rest_already_trashed"
