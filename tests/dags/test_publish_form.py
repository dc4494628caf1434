"""The staff form of bridgecast_schedule_post: its Params (Vietnamese, JSON schema) and the first task's
validation — every message names the field in Vietnamese and says what to do."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridgecast.posts.content import form_key, time_in_words
from bridgecast.posts.form import (FormError, form_params, parse_publish_clock, parse_publish_date, publish_fields,
                                   validate_post)

NOW = datetime(2026, 5, 22, 10, 0, tzinfo=timezone.utc)  # 17:00 on Friday 22/05/2026 in Vĩnh Phúc
PHOTO = "bhxh-vinhphuc-2020/vinh-yen/processed/web/0123456789abcdef.jpg"
WHEN = "«Ngày đăng», «Giờ đăng» (publish_date, publish_time)"


def good(**changes) -> dict:
    return {"channels": ["portal", "fanpage"], "title": "Lễ ra quân Tháng vận động BHXH toàn dân",
            "body": "Đoạn một.\n\nĐoạn hai.", "publish_date": "23/05/2026", "publish_time": "08:00",
            "photos": [PHOTO], "link": None, "repost": False, **changes}


def validate(params: dict, run_id: str = "manual__1"):
    return validate_post(params, now=NOW, photo_exists=lambda key: key == PHOTO, run_id=run_id)


def test_a_good_form_becomes_a_post_at_0100_utc_for_0800_local():
    post = validate(good())
    assert post.publish_at == datetime(2026, 5, 23, 1, 0, tzinfo=timezone.utc)
    assert post.publish_at_words == "08:00 thứ Bảy 23/05/2026, giờ Việt Nam"
    assert post.channels == ("portal", "fanpage") and post.media.keys == (PHOTO,) and post.approval_required
    assert post.key == form_key(post.title, post.publish_at) and post.key.startswith("form/le-ra-quan-thang")


def test_the_time_in_words_names_the_weekday_and_the_zone():
    assert time_in_words(datetime(2020, 5, 23, 1, 0, tzinfo=timezone.utc)) == "08:00 thứ Bảy 23/05/2020, giờ Việt Nam"
    assert time_in_words(datetime(2020, 5, 24, 1, 0, tzinfo=timezone.utc)) == "08:00 Chủ Nhật 24/05/2020, giờ Việt Nam"
    assert time_in_words(datetime(2020, 5, 24, 17, 30, tzinfo=timezone.utc)) == "00:30 thứ Hai 25/05/2020, giờ Việt Nam"
    assert time_in_words(datetime(2020, 5, 23, 1, 0, tzinfo=timezone.utc), "UTC") == "01:00 thứ Bảy 23/05/2020, giờ UTC"


@pytest.mark.parametrize("text", ["23/05/2026", "23/5/2026", " 23-05-2026 ", "23.05.2026", "2026-05-23"])
def test_the_date_is_day_month_year(text):
    assert parse_publish_date(text).isoformat() == "2026-05-23"


@pytest.mark.parametrize("text,expected", [("08:00", "08:00"), ("8:00", "08:00"), ("8h", "08:00"), ("8h30", "08:30"),
                                           ("20.15", "20:15"), ("8 giờ 30", "08:30"), ("00:00", "00:00"),
                                           ("23:59", "23:59")])
def test_the_time_is_the_24_hour_clock(text, expected):
    assert f"{parse_publish_clock(text):%H:%M}" == expected


def test_the_form_fields_are_vietnam_time_whatever_the_zone_of_the_caller():
    """What a browser in UTC sends is two strings: read on the server in Asia/Ho_Chi_Minh, never shifted."""
    post = validate(good(publish_date="23/05/2026", publish_time="08:00"))
    assert post.publish_at.isoformat() == "2026-05-23T01:00:00+00:00"
    assert publish_fields(post.publish_at) == {"publish_date": "23/05/2026", "publish_time": "08:00"}
    assert publish_fields(datetime(2026, 5, 22, 17, 30, tzinfo=timezone.utc)) == {"publish_date": "23/05/2026",
                                                                                  "publish_time": "00:30"}


BAD = [
    ({"channels": []}, "«Kênh đăng» (channels): chưa chọn kênh nào"),
    ({"channels": ["portal", "tiktok"]}, "«Kênh đăng» (channels): không có kênh 'tiktok'"),
    ({"title": "   "}, "«Tiêu đề» (title): đang trống"),
    ({"body": " \n\t "}, "«Nội dung» (body): đang trống"),
    # the date and time fields, each problem naming its field and the way out
    ({"publish_date": ""}, "«Ngày đăng» (publish_date): chưa nhập — nhập ngày theo dạng ngày/tháng/năm"),
    ({"publish_time": None}, "«Giờ đăng» (publish_time): chưa nhập — nhập giờ theo đồng hồ 24 giờ"),
    ({"publish_date": "ngày mai"}, "«Ngày đăng» (publish_date): không đọc được «ngày mai» — nhập ngày theo dạng "
                                   "ngày/tháng/năm (dd/mm/yyyy), ví dụ 23/05/2026."),
    ({"publish_date": "31/04/2026"}, "«Ngày đăng» (publish_date): «31/04/2026»: tháng 4/2026 chỉ có 30 ngày."),
    ({"publish_date": "29/02/2027"}, "«Ngày đăng» (publish_date): «29/02/2027»: năm 2027 không phải năm nhuận — "
                                     "tháng 2/2027 chỉ có 28 ngày."),
    ({"publish_date": "05/23/2026"}, "«Ngày đăng» (publish_date): «05/23/2026»: không có tháng 23 — tháng từ 1 đến "
                                     "12 (dạng ngày/tháng/năm). Ngày đứng trước tháng: 23/05/2026?"),
    ({"publish_date": "23/05/26"}, "«Ngày đăng» (publish_date): «23/05/26»: năm cần đủ 4 chữ số"),
    ({"publish_date": "00/05/2026"}, "«Ngày đăng» (publish_date): «00/05/2026»: không có ngày 0 — ngày từ 1 đến 31."),
    ({"publish_time": "24:00"}, "«Giờ đăng» (publish_time): «24:00»: đồng hồ 24 giờ không có 24:00 — dùng 00:00 "
                                "của ngày hôm sau, hoặc 23:59."),
    ({"publish_time": "25:10"}, "«Giờ đăng» (publish_time): «25:10»: không có 25 giờ — giờ từ 00 đến 23."),
    ({"publish_time": "08:61"}, "«Giờ đăng» (publish_time): «08:61»: không có phút 61 — phút từ 00 đến 59."),
    ({"publish_time": "8:00 PM"}, "«Giờ đăng» (publish_time): «8:00 PM»: hãy dùng đồng hồ 24 giờ"),
    ({"publish_time": "8 giờ sáng"}, "«Giờ đăng» (publish_time): «8 giờ sáng»: hãy dùng đồng hồ 24 giờ"),
    ({"publish_time": "8"}, "«Giờ đăng» (publish_time): không đọc được «8» — nhập giờ và phút"),
    ({"publish_time": "08:00:00"}, "«Giờ đăng» (publish_time): không đọc được «08:00:00»"),
    # a valid date and time that cannot be a publish time
    ({"publish_date": "23/05/2020"}, f"{WHEN}: 08:00 thứ Bảy 23/05/2020, giờ Việt Nam đã qua — chọn một thời điểm "
                                     "sau 17:01 thứ Sáu 22/05/2026, giờ Việt Nam."),
    ({"publish_date": "22/05/2026", "publish_time": "17:00"}, f"{WHEN}: 17:00 thứ Sáu 22/05/2026, giờ Việt Nam đã "
                                                              "qua"),
    ({"publish_date": "01/12/2026"}, f"{WHEN}: 08:00 thứ Ba 01/12/2026, giờ Việt Nam xa quá 60 ngày"),
    ({"photos": ["bhxh-vinhphuc-2020/vinh-yen/processed/web/khong-co.jpg"]},
     "«Ảnh» (photos): không tìm thấy ảnh «bhxh-vinhphuc-2020/vinh-yen/processed/web/khong-co.jpg» trong kho"),
    ({"photos": ["bhxh-vinhphuc-2020/vinh-yen/raw/video/a.mp4"]}, "«Ảnh» (photos): «bhxh-vinhphuc-2020/vinh-yen/raw"
                                                                  "/video/a.mp4» không phải ảnh"),
    ({"photos": [f"{PHOTO[:-4]}{i}.jpg" for i in range(11)]}, "«Ảnh» (photos): đã chọn 11 ảnh — một bài đăng có tối "
                                                              "đa 10 ảnh."),
    ({"link": "www.example.vn"}, "«Liên kết» (link): 'www.example.vn' không phải địa chỉ http(s) (hoặc «live»: video trực tiếp của lễ)."),
]


@pytest.mark.parametrize("changes,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_is_refused_with_a_vietnamese_message_naming_the_field(changes, message):
    with pytest.raises(FormError) as err:
        validate(good(**changes))
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems
    assert str(err.value).startswith("Biểu mẫu chưa hợp lệ")


def test_a_time_one_minute_ahead_is_too_close_only_below_the_minute():
    with pytest.raises(FormError, match="quá sát giờ gửi"):
        validate_post(good(publish_date="22/05/2026", publish_time="17:01"), now=NOW + timedelta(seconds=30),
                      photo_exists=lambda key: True, run_id="r")
    assert validate(good(publish_date="22/05/2026", publish_time="17:01")).publish_at == NOW + timedelta(minutes=1)


def test_every_problem_is_listed_at_once():
    with pytest.raises(FormError) as err:
        validate(good(channels=[], title="", body="", publish_date="01/01/2020", publish_time="25:00"))
    assert [p.split(" ")[0] for p in err.value.problems] == ["«Kênh", "«Tiêu", "«Nội", "«Giờ"]


def test_the_same_title_and_minute_is_the_same_post_and_a_repost_needs_the_box():
    first, again = validate(good(), "manual__1"), validate(good(body="Đã sửa."), "manual__2")
    assert first.key == again.key  # a second submission updates the post
    assert validate(good(title=" lễ ra quân tháng vận động bhxh toàn dân ")).key == first.key  # case, blanks
    repost = validate(good(repost=True), "manual__2")
    assert repost.key.startswith(first.key + "/dang-lai-") and repost.key != first.key
    assert validate(good(repost=True), "manual__2").key == repost.key  # clearing that run posts it once
    assert validate(good(publish_time="08:01")).key != first.key


def test_the_form_params_are_vietnamese_and_the_schema_refuses_an_unknown_channel():
    from airflow.sdk.definitions.param import ParamsDict

    picker = {"keys": [PHOTO], "labels": {PHOTO: "Vĩnh Yên — 08:15 23/05"}}
    params = form_params(picker, ["approver", "truong-phong"])
    assert list(params) == ["publish_date", "publish_time", "channels", "title", "body", "photos", "link", "repost"]
    assert [params[k].schema["title"] for k in ("publish_date", "publish_time", "channels", "title", "body",
                                                "photos")] == [
        "Ngày đăng (giờ Việt Nam)", "Giờ đăng (giờ Việt Nam)", "Kênh đăng", "Tiêu đề", "Nội dung",
        "Ảnh (không bắt buộc)"]
    # plain text: no date-time widget converting with the browser's zone, no locale-dependent date/time input
    assert all("format" not in params[k].schema for k in ("publish_date", "publish_time"))
    assert params["body"].schema["format"] == "multiline"
    assert params["channels"].schema["examples"] == ["portal", "fanpage"]  # a multi-select in the UI
    assert params["photos"].schema["examples"] == [PHOTO] and params["photos"].schema["values_display"][PHOTO]
    assert "examples" not in form_params({"keys": [], "labels": {}})["photos"].schema  # free keys without a picker
    filled = ParamsDict(params)
    filled.update({"title": "Tiêu đề", "body": "Nội dung", "publish_date": "23/05/2026", "publish_time": "08:00"})
    filled.validate()
    filled.update({"photos": None, "repost": None, "link": None})  # what the UI sends for an emptied field
    filled.validate()
    with pytest.raises(ValueError, match="Invalid input for param channels: 'tiktok' is not one of"):
        filled["channels"] = ["portal", "tiktok"]


def test_only_the_fields_that_must_be_filled_show_as_required():
    """Airflow's UI puts `*` on a field whose type does not allow null, default or not (FieldRow's isRequired)."""
    params = form_params({"keys": [PHOTO], "labels": {PHOTO: "Vĩnh Yên — 08:15 23/05"}})

    def required(name):
        kind = params[name].schema.get("type")
        return bool(kind) and not (isinstance(kind, list) and "null" in kind)

    assert {name for name in params if required(name)} == {"publish_date", "publish_time", "channels", "title",
                                                           "body"}


def test_the_first_field_warns_about_logical_date_and_says_who_approves_where():
    help_text = form_params(None, ["approver", "truong-phong"])["publish_date"].schema["description_md"]
    assert "**Logical Date**" in help_text and "**không phải giờ đăng**" in help_text
    assert "`approver`, `truong-phong`" in help_text
    assert "Browse → Required Actions" in help_text and "](required_actions?response_received=false)" in help_text
    assert "giờ Việt Nam" in help_text


def test_form_times_are_shown_in_vietnam_time():
    post = validate(good(publish_time="00:30"))
    assert post.publish_at_words == "00:30 thứ Bảy 23/05/2026, giờ Việt Nam"
    assert post.publish_at == datetime(2026, 5, 22, 17, 30, tzinfo=timezone.utc)
    assert post.publish_at - NOW == timedelta(hours=7, minutes=30)
