"""Graph errors → typed errors with operator messages: every class of Meta's table injected on a publishing call,
the sandbox's own validation, usage headers → retry_after, and which calls retry (reads) and which do not (writes)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bridgecast.channels.base import (AuthError, ChannelError, DuplicateRejected, NotFound, PermissionMissing,
                                      PolicyBlocked, RateLimited, RejectedInput, Transient)
from bridgecast.channels.fanpage import FanpageChannel

# (id, fault, expected type, retryable, words the operator message must contain, attribute checks)
ERROR_TABLE = [
    ("190-463-expired", {"code": 190, "subcode": 463}, AuthError, False,
     ["expired", "renew", "bridgecast_fanpage"], {}),
    ("190-467-invalid", {"code": 190, "subcode": 467}, AuthError, False,
     ["invalid", "renew", "bridgecast_fanpage"], {}),
    ("4-app-limit", {"code": 4}, RateLimited, True, ["throttling", "wait about"], {"retry_after_s": 60}),
    ("17-user-limit", {"code": 17}, RateLimited, True, ["throttling"], {"retry_after_s": 60}),
    ("32-page-limit", {"code": 32}, RateLimited, True, ["throttling"], {"retry_after_s": 60}),
    ("613-custom-limit", {"code": 613}, RateLimited, True, ["throttling"], {"retry_after_s": 60}),
    ("80001-page-token-limit", {"code": 80001}, RateLimited, True, ["throttling"], {"retry_after_s": 60}),
    ("1-unknown", {"code": 1}, Transient, True, ["temporary", "retry"], {}),
    ("2-service", {"code": 2}, Transient, True, ["temporary", "retry"], {}),
    ("100-invalid-param", {"code": 100, "message": "(#100) Param message must be a string"}, RejectedInput, False,
     ["'message'", "fix it"], {"param": "message"}),
    ("10-permission", {"code": 10}, PermissionMissing, False, ["pages_read_engagement", "bridgecast_fanpage"],
     {"permission": "pages_read_engagement"}),
    ("200-permission", {"code": 200}, PermissionMissing, False, ["pages_manage_posts", "new page token"],
     {"permission": "pages_read_engagement, pages_manage_posts"}),
    ("299-permission", {"code": 299, "message": "(#299) Requires pages_manage_engagement permission"},
     PermissionMissing, False, ["pages_manage_engagement"], {"permission": "pages_manage_engagement"}),
    ("368-policy", {"code": 368}, PolicyBlocked, False, ["policy", "do not retry"], {}),
    ("506-duplicate", {"code": 506}, DuplicateRejected, False, ["duplicate", "ledger reconciles"], {}),
]


@pytest.mark.parametrize("fault, expected, retryable, words, attributes",
                         [case[1:] for case in ERROR_TABLE], ids=[case[0] for case in ERROR_TABLE])
def test_graph_error_becomes_a_typed_error_that_says_what_to_do(fanpage, sandbox, marker, no_secret, fault, expected,
                                                                retryable, words, attributes):
    sandbox.fault(endpoint="feed", method="POST", **fault)
    with pytest.raises(ChannelError) as caught:
        fanpage.create_post(f"Lỗi {marker}")
    error = caught.value
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.code == fault["code"] and error.status and error.status >= 400
    assert "fbtrace_id" in error.operator_message
    for word in words:
        assert word.lower() in error.operator_message.lower(), error.operator_message
    for name, value in attributes.items():
        assert getattr(error, name) == value
    no_secret(str(error) + repr(error), "the exception")
    assert sandbox.posts_with(marker) == []


@pytest.mark.parametrize("headers, wait_s", [
    ({"X-Business-Use-Case-Usage": json.dumps({"1": [{"type": "pages", "call_count": 100, "total_cputime": 30,
                                                      "total_time": 40, "estimated_time_to_regain_access": 3}]})}, 180),
    ({"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 10, "total_time": 12})}, 300),
    ({"X-Page-Usage": json.dumps({"call_count": 35, "total_cputime": 100, "total_time": 60})}, 300),
], ids=["business-use-case-minutes", "app-usage-full", "page-usage-full"])
def test_rate_limit_wait_comes_from_the_usage_headers(fanpage, sandbox, marker, headers, wait_s):
    sandbox.fault(endpoint="feed", method="POST", code=80001, headers=headers)
    with pytest.raises(RateLimited) as caught:
        fanpage.create_post(f"Giới hạn {marker}")
    assert caught.value.retry_after_s == wait_s
    assert f"{wait_s // 60} min" in caught.value.operator_message


def test_the_page_call_budget_runs_out_with_80001_and_a_regain_estimate(fanpage, sandbox):
    sandbox.knobs(rate_limit_calls=3, rate_limit_window_s=600)
    for _ in range(3):
        fanpage.scheduled_posts()
    with pytest.raises(RateLimited) as caught:
        fanpage.scheduled_posts()
    assert caught.value.code == 80001
    assert 60 <= caught.value.retry_after_s <= 600  # the sandbox's estimate, in whole minutes
    assert caught.value.retry_after_s % 60 == 0


def test_reads_retry_temporary_errors_with_growing_waits(fanpage, sandbox, sleeps):
    sandbox.fault(endpoint="scheduled_posts", method="GET", code=2, count=2)
    assert isinstance(fanpage.scheduled_posts(), list)
    assert len(sleeps) == 2 and 1 <= sleeps[0] < sleeps[1] <= 5


def test_reads_wait_out_a_rate_limit_within_the_cap(sandbox, sleeps, tmp_path):
    patient = sandbox.channel(sleep=sleeps.append, max_retry_wait_s=120)
    sandbox.fault(endpoint="scheduled_posts", method="GET", code=80001, count=1)
    assert isinstance(patient.scheduled_posts(), list)
    assert sleeps == [60]


def test_reads_give_up_when_the_rate_limit_wait_exceeds_the_cap(fanpage, sandbox, sleeps):
    sandbox.fault(endpoint="scheduled_posts", method="GET", code=80001, count=5)
    seq = sandbox.last_seq()
    with pytest.raises(RateLimited):
        fanpage.scheduled_posts()
    assert sleeps == [] and len(sandbox.requests_since(seq)) == 1


def test_a_publishing_call_is_never_retried_blindly(fanpage, sandbox, marker, sleeps):
    sandbox.fault(endpoint="feed", method="POST", code=2, count=1)
    seq = sandbox.last_seq()
    with pytest.raises(Transient):
        fanpage.create_post(f"Một lần {marker}")
    assert [c["endpoint"] for c in sandbox.requests_since(seq)] == ["feed"]
    assert sleeps == [] and sandbox.posts_with(marker) == []


def test_an_unknown_token_is_refused_with_190_467(sandbox, secret, no_secret):
    stranger = FanpageChannel(sandbox.page_id, secret("EAAB" + "x" * 40), base_url=sandbox.base_url)
    with pytest.raises(AuthError) as caught:
        stranger.create_post("Không được phép")
    assert caught.value.code == 190 and "190/467" in caught.value.operator_message
    no_secret(str(caught.value), "the exception")
    assert not stranger.check().ok


def test_an_expired_token_is_refused_with_190_463(fanpage, sandbox):
    sandbox.knobs(expired=True)
    with pytest.raises(AuthError) as caught:
        fanpage.scheduled_posts()
    assert "190/463" in caught.value.operator_message and "expired" in caught.value.operator_message


def test_a_missing_permission_is_named(fanpage, sandbox, marker):
    sandbox.knobs(permissions=["pages_show_list", "pages_read_engagement"])
    with pytest.raises(PermissionMissing) as caught:
        fanpage.create_post(f"Thiếu quyền {marker}")
    assert "pages_manage_posts" in caught.value.permission
    sandbox.knobs(permissions=["pages_show_list", "pages_manage_posts"])
    with pytest.raises(PermissionMissing) as caught:
        fanpage.scheduled_posts()
    assert caught.value.permission == "pages_read_engagement"


def test_sandbox_validation_is_reported_as_rejected_input_naming_the_parameter(fanpage, sandbox):
    page = sandbox.page_id
    soon = str(int((datetime.now(timezone.utc) + timedelta(minutes=2)).timestamp()))
    cases = [
        (f"{page}/feed", {"message": "Quá sớm", "published": "false", "scheduled_publish_time": soon},
         "scheduled_publish_time", "publish_at"),
        (f"{page}/feed", {"message": "Vừa đăng vừa hẹn", "scheduled_publish_time": soon},
         "scheduled_publish_time", "published post"),
        (f"{page}/feed", {"message": "x", "published": "maybe"}, "published", "boolean"),
        (f"{page}/feed", {"message": "x", "attached_media[0]": json.dumps({"media_fbid": "42"})},
         "attached_media[0]", "unpublished photo"),
        (f"{page}/live_videos", {"title": "t" * 255}, "title", "254"),
        (f"{page}/live_videos", {"title": "Cũ", "planned_start_time": soon}, "planned_start_time", "event_params"),
        (f"{page}/live_videos", {"status": "SCHEDULED_UNPUBLISHED",
                                 "event_params": json.dumps({"start_time": int(soon) + 8 * 86400})},
         "event_params", "7 days"),
        (f"{page}/videos", {"upload_phase": "transfer", "upload_session_id": "nope", "start_offset": "0"},
         "upload_session_id", "does not exist"),
    ]
    for path, data, param, words in cases:
        with pytest.raises(RejectedInput) as caught:
            fanpage.client.post(path, data)
        assert caught.value.param == param, (data, caught.value.operator_message)
        assert words in caught.value.operator_message, caught.value.operator_message


def test_reading_an_unknown_field_or_object_names_it(fanpage, sandbox):
    with pytest.raises(RejectedInput) as unknown_field:
        fanpage.client.get(sandbox.page_id, {"fields": "id,subscriber_count"})
    assert unknown_field.value.param == "subscriber_count"
    with pytest.raises(NotFound):
        fanpage.client.get("123456789", {"fields": "id"})
    with pytest.raises(RejectedInput) as user_edge:
        fanpage.client.get("me/permissions")  # a user-token edge: on a Page it does not exist
    assert user_edge.value.param == "permissions"


def test_photos_must_be_images(fanpage, sandbox, tmp_path):
    text = tmp_path / "not-a-photo.jpg"
    text.write_text("xin chào")
    with pytest.raises(RejectedInput) as caught:
        with open(text, "rb") as fh:
            fanpage.client.post(f"{sandbox.page_id}/photos", {"published": "false"},
                                files={"source": ("x.jpg", fh, "image/jpeg")})
    assert caught.value.code == 324 and caught.value.param == "source"


def test_appsecret_proof_is_sent_when_configured_and_checked(sandbox, secret):
    sandbox.knobs(require_appsecret_proof=True)
    with pytest.raises(RejectedInput) as missing:
        sandbox.channel().scheduled_posts()
    assert "appsecret_proof" in missing.value.operator_message
    assert isinstance(sandbox.channel(app_secret=sandbox.app_secret).scheduled_posts(), list)
    with pytest.raises(RejectedInput) as wrong:
        sandbox.channel(app_secret=secret("not-the-app-secret")).scheduled_posts()
    assert "Invalid appsecret_proof" in wrong.value.operator_message


def test_the_pinned_graph_version_is_used_and_an_expired_one_is_noticed(sandbox, caplog):
    seq = sandbox.last_seq()
    sandbox.channel().scheduled_posts()
    assert sandbox.requests_since(seq)[0]["path"].startswith("/v25.0/")

    old = FanpageChannel(sandbox.page_id, sandbox.token, graph_version="v19.0", base_url=sandbox.base_url)
    assert isinstance(old.scheduled_posts(), list)
    assert any("graph_version" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    future = FanpageChannel(sandbox.page_id, sandbox.token, graph_version="v99.0", base_url=sandbox.base_url)
    with pytest.raises(ChannelError) as caught:
        future.create_post("Phiên bản lạ")
    assert caught.value.code == 2500 and "graph_version" in caught.value.operator_message


def test_a_call_that_hangs_times_out_as_transient(sandbox, marker):
    impatient = sandbox.channel(timeout=(2.0, 0.5))
    sandbox.fault(endpoint="feed", method="POST", latency_s=1.5)
    with pytest.raises(Transient) as caught:
        impatient.create_post(f"Treo {marker}")
    assert "unknown" in caught.value.operator_message and "ledger reconciles" in caught.value.operator_message
