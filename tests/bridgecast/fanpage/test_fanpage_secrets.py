"""The Page token (and a live video's stream key) never shows up: not in any log line at DEBUG — urllib3's included —,
not in exception strings, not in reprs, not in the sandbox's log, not in a URL."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from bridgecast.channels.base import ChannelError, Publication
from bridgecast.channels.fanpage import FanpageChannel, JsonResumeFile


def test_no_token_in_any_log_line_exception_or_repr(sandbox, fanpage, photos, recap_video, event_id, marker, secret,
                                                    no_secret, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    seq = sandbox.last_seq()
    texts: list[tuple[str, str]] = []

    assert fanpage.check().ok
    fanpage.publish(Publication(event_id, "gallery", "post", f"Ảnh {marker}", "Nội dung", media=tuple(photos)))
    fanpage.publish(Publication(event_id, "later", "post", f"Hẹn {marker}", "Nội dung",
                                publish_at=datetime.now(timezone.utc) + timedelta(days=1)))
    fanpage.upload_video(recap_video, title="Video", description=marker, resume=tmp_path / "resume.json")
    live = fanpage.create_live_video(f"Trực tiếp {marker}")
    secret(live.secure_stream_url.split("a=", 1)[1])
    fanpage.live_status(live.remote_id)
    texts += [("repr(channel)", repr(fanpage)), ("repr(client)", repr(fanpage.client)), ("repr(live)", repr(live)),
              ("repr(auth)", repr(fanpage.client.transport.session.auth)),
              ("repr(resume)", repr(JsonResumeFile(tmp_path / "r.json"))),
              ("live status", str(fanpage.live_status(live.remote_id)))]

    wrong = FanpageChannel(sandbox.page_id, secret("EAAB" + "w" * 44), base_url=sandbox.base_url)
    texts.append(("check() with a wrong token", wrong.check().detail))
    def refused_token():
        wrong.create_post("x")

    def missing_permission():
        sandbox.fault(endpoint="feed", method="POST", code=200)
        fanpage.create_post("y")

    def expired_token():
        sandbox.knobs(expired=True)
        fanpage.scheduled_posts()

    failures = []
    for provoke in (refused_token, missing_permission, expired_token):
        try:
            provoke()
        except ChannelError as exc:
            failures.append(exc)
    assert len(failures) == 3
    for exc in failures:
        texts += [("str(exception)", str(exc)), ("repr(exception)", repr(exc)),
                  ("exception chain", repr(exc.__cause__))]

    urllib3_lines = [r for r in caplog.records if r.name.startswith("urllib3")]
    assert urllib3_lines, "urllib3 DEBUG logging must be captured for this check to mean anything"
    for record in caplog.records:
        texts.append((f"log record of {record.name}", record.getMessage()))
    for where, text in texts:
        no_secret(text, where)
    calls = sandbox.requests_since(seq)
    assert calls and {c["auth"] for c in calls} == {"header"}, "the token must travel in the Authorization header"
    for call in calls:
        no_secret(call["path"] + str(call["params"]), "a request line the sandbox received")
    no_secret(sandbox.log_path.read_text(errors="replace"), "the sandbox log")
