"""The staff form of bridgecast_schedule_post: its Params (Vietnamese, JSON schema) and the first task's
validation — every message names the field in Vietnamese and says what to do."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridgecast.posts.content import form_key
from bridgecast.posts.form import FormError, form_params, parse_local_time, validate_post

NOW = datetime(2026, 5, 22, 10, 0, tzinfo=timezone.utc)  # 17:00 in Vĩnh Phúc
PHOTO = "bhxh-vinhphuc-2020/vinh-yen/processed/web/0123456789abcdef.jpg"


def good(**changes) -> dict:
    return {"channels": ["portal", "fanpage"], "title": "Lễ ra quân Tháng vận động BHXH toàn dân",
            "body": "Đoạn một.\n\nĐoạn hai.", "publish_at": "2026-05-23T08:00", "photos": [PHOTO], "link": None,
            "repost": False, **changes}


def validate(params: dict, run_id: str = "manual__1"):
    return validate_post(params, now=NOW, photo_exists=lambda key: key == PHOTO, run_id=run_id)


def test_a_good_form_becomes_a_post_at_0100_utc_for_0800_local():
    post = validate(good())
    assert post.publish_at == datetime(2026, 5, 23, 1, 0, tzinfo=timezone.utc)
    assert post.publish_at_text == "08:00 23/05/2026 (giờ Việt Nam)"
    assert post.channels == ("portal", "fanpage") and post.media.keys == (PHOTO,) and post.approval_required
    assert post.key == form_key(post.title, post.publish_at) and post.key.startswith("form/le-ra-quan-thang")


@pytest.mark.parametrize("value", ["2026-05-23T08:00", "2026-05-23 08:00:00", "2026-05-23T08:00:00+07:00",
                                   "2026-05-23T01:00:00.000Z", "2026-05-23T01:00:00+00:00"])
def test_the_time_is_read_as_vietnam_time_unless_it_carries_its_offset(value):
    assert parse_local_time(value) == datetime(2026, 5, 23, 1, 0, tzinfo=timezone.utc)


BAD = [
    ({"channels": []}, "«Kênh đăng» (channels): chưa chọn kênh nào"),
    ({"channels": ["portal", "tiktok"]}, "«Kênh đăng» (channels): không có kênh 'tiktok'"),
    ({"title": "   "}, "«Tiêu đề» (title): đang trống"),
    ({"body": " \n\t "}, "«Nội dung» (body): đang trống"),
    ({"publish_at": "2020-05-23T08:00"}, "«Thời gian đăng» (publish_at): 08:00 23/05/2020 (giờ Việt Nam) đã qua — "
                                         "chọn một thời điểm sau 17:01 22/05/2026 (giờ Việt Nam)."),
    ({"publish_at": "2026-05-22T17:00:30"}, "«Thời gian đăng» (publish_at): 17:00 22/05/2026 (giờ Việt Nam) quá sát"),
    ({"publish_at": "2026-12-01T08:00"}, "«Thời gian đăng» (publish_at): 08:00 01/12/2026 (giờ Việt Nam) xa quá"),
    ({"publish_at": "ngày mai"}, "«Thời gian đăng» (publish_at): không đọc được 'ngày mai'"),
    ({"publish_at": ""}, "«Thời gian đăng» (publish_at): chưa chọn"),
    ({"photos": ["bhxh-vinhphuc-2020/vinh-yen/processed/web/khong-co.jpg"]},
     "«Ảnh» (photos): không tìm thấy ảnh «bhxh-vinhphuc-2020/vinh-yen/processed/web/khong-co.jpg» trong kho"),
    ({"photos": ["bhxh-vinhphuc-2020/vinh-yen/raw/video/a.mp4"]}, "«Ảnh» (photos): «bhxh-vinhphuc-2020/vinh-yen/raw"
                                                                  "/video/a.mp4» không phải ảnh"),
    ({"photos": [f"{PHOTO[:-4]}{i}.jpg" for i in range(11)]}, "«Ảnh» (photos): đã chọn 11 ảnh — một bài đăng có tối "
                                                              "đa 10 ảnh."),
    ({"link": "www.example.vn"}, "«Liên kết» (link): 'www.example.vn' không phải địa chỉ http(s)."),
]


@pytest.mark.parametrize("changes,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_is_refused_with_a_vietnamese_message_naming_the_field(changes, message):
    with pytest.raises(FormError) as err:
        validate(good(**changes))
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems
    assert str(err.value).startswith("Biểu mẫu chưa hợp lệ")


def test_every_problem_is_listed_at_once():
    with pytest.raises(FormError) as err:
        validate(good(channels=[], title="", body="", publish_at="2020-01-01T00:00"))
    assert [p.split(" ")[0] for p in err.value.problems] == ["«Kênh", "«Tiêu", "«Nội", "«Thời"]


def test_the_same_title_and_minute_is_the_same_post_and_a_repost_needs_the_box():
    first, again = validate(good(), "manual__1"), validate(good(body="Đã sửa."), "manual__2")
    assert first.key == again.key  # a second submission updates the post
    assert validate(good(title=" lễ ra quân tháng vận động bhxh toàn dân ")).key == first.key  # case, blanks
    repost = validate(good(repost=True), "manual__2")
    assert repost.key.startswith(first.key + "/dang-lai-") and repost.key != first.key
    assert validate(good(repost=True), "manual__2").key == repost.key  # clearing that run posts it once
    assert validate(good(publish_at="2026-05-23T08:01")).key != first.key


def test_the_form_params_are_vietnamese_and_the_schema_refuses_an_unknown_channel():
    from airflow.sdk.definitions.param import ParamsDict

    picker = {"keys": [PHOTO], "labels": {PHOTO: "Vĩnh Yên · 08:15 23/05/2026 · 01234567"}}
    params = form_params(picker)
    assert [params[k].schema["title"] for k in ("channels", "title", "body", "publish_at", "photos")] == [
        "Kênh đăng", "Tiêu đề", "Nội dung", "Thời gian đăng (giờ Việt Nam)", "Ảnh"]
    assert params["body"].schema["format"] == "multiline" and params["publish_at"].schema["format"] == "date-time"
    assert params["channels"].schema["examples"] == ["portal", "fanpage"]  # a multi-select in the UI
    assert params["photos"].schema["examples"] == [PHOTO] and params["photos"].schema["values_display"][PHOTO]
    assert "examples" not in form_params({"keys": [], "labels": {}})["photos"].schema  # free keys without a picker
    filled = ParamsDict(params)
    filled.update({"title": "Tiêu đề", "body": "Nội dung", "publish_at": "2026-05-23T08:00"})
    filled.validate()
    with pytest.raises(ValueError, match="Invalid input for param channels: 'tiktok' is not one of"):
        filled["channels"] = ["portal", "tiktok"]


def test_form_times_are_shown_in_vietnam_time():
    post = validate(good(publish_at="2026-05-23T00:30"))
    assert post.publish_at_text == "00:30 23/05/2026 (giờ Việt Nam)"
    assert post.publish_at == datetime(2026, 5, 22, 17, 30, tzinfo=timezone.utc)
    assert post.publish_at - NOW == timedelta(hours=7, minutes=30)
