"""The staff form of `bridgecast_schedule_post`: Airflow Params (Vietnamese titles and help, JSON schema) and the
validation its first task runs, whose messages name the field in Vietnamese and give the way out.

The schema catches shape (an unknown channel, an empty text: the trigger is refused); `validate_post` catches what
a schema cannot (a time already past, a photo that is not in storage, a blank-looking text) before anyone is asked
to approve anything. Parse-time cost: this module imports only Airflow's Param and reads one local JSON file.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bridgecast.posts.content import (CHANNEL_LABELS, LOCAL_TZ, POST_CHANNELS, MediaSpec, PostContent, ascii_slug,
                                      form_key, local_text)

MIN_LEAD = timedelta(minutes=1)  # the approver needs a moment; the run needs a few seconds
MAX_LEAD = timedelta(days=60)
MAX_PHOTOS = 10  # one fanpage post holds at most 10 photos
TITLE_MAX = 200
BODY_MAX = 20000
FIELD_NAMES = {"channels": "Kênh đăng", "title": "Tiêu đề", "body": "Nội dung", "publish_at": "Thời gian đăng",
               "photos": "Ảnh", "link": "Liên kết", "repost": "Đăng lại"}


class FormError(ValueError):
    """Every problem of a submitted form, each naming its field: `«Tiêu đề» (title): …`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Biểu mẫu chưa hợp lệ / the form is not valid:\n" + "\n".join(f"- {p}" for p in problems))


def field_problem(name: str, problem: str) -> str:
    return f"«{FIELD_NAMES.get(name, name)}» ({name}): {problem}"


def form_params(picker: dict | None = None) -> dict:
    """The trigger form. `picker` lists the processed photos by point (see bridgecast.posts.media.read_picker)."""
    from airflow.sdk import Param

    picker = picker or {"keys": [], "labels": {}}
    photo_choices = {"examples": picker["keys"], "values_display": picker["labels"]} if picker.get("keys") else {}
    return {
        "channels": Param(
            list(POST_CHANNELS), type="array", items={"type": "string", "enum": list(POST_CHANNELS)},
            examples=list(POST_CHANNELS), values_display={"portal": "Cổng thông tin điện tử (portal)",
                                                          "fanpage": "Fanpage Facebook (fanpage)"},
            title="Kênh đăng", section="Bài đăng",
            description="Chọn một hoặc cả hai kênh: Cổng thông tin điện tử và/hoặc Fanpage."),
        "title": Param(
            type="string", minLength=1, maxLength=TITLE_MAX, title="Tiêu đề", section="Bài đăng",
            description="Tiêu đề bài (tối đa 200 ký tự). Cùng tiêu đề và cùng giờ đăng là cùng một bài: gửi lại sẽ "
                        "cập nhật bài đó, không đăng bài thứ hai."),
        "body": Param(
            type="string", format="multiline", minLength=1, maxLength=BODY_MAX, title="Nội dung",
            section="Bài đăng",
            description="Nội dung bài bằng tiếng Việt có dấu; để một dòng trống giữa các đoạn."),
        "publish_at": Param(
            type="string", format="date-time", title="Thời gian đăng (giờ Việt Nam)", section="Bài đăng",
            description="Ngày giờ bài lên kênh, theo giờ Việt Nam (UTC+7), ít nhất 1 phút sau lúc gửi. Bài phải "
                        "được duyệt trước giờ này; quá giờ chưa duyệt thì bài hết hạn và không được đăng."),
        "photos": Param(
            [], type="array", items={"type": "string"}, title="Ảnh", section="Ảnh", **photo_choices,
            description="Ảnh đã xử lý, theo điểm cầu (mới nhất trước), tối đa 10 ảnh. Danh sách được làm mới vài "
                        "phút một lần; ảnh vừa gửi về có thể chưa có trong danh sách."),
        "link": Param(
            None, type=["null", "string"], title="Liên kết (không bắt buộc)", section="Nâng cao",
            description="Một địa chỉ http(s) kèm theo bài, ví dụ bài gốc trên cổng thông tin."),
        "repost": Param(
            False, type="boolean", title="Đăng lại bài đã đăng", section="Nâng cao",
            description="Chỉ chọn khi CỐ Ý đăng lại một bài đã đăng (cùng tiêu đề và giờ): kênh sẽ có thêm một bài "
                        "mới. Không chọn thì gửi lại chỉ cập nhật bài cũ."),
    }


def _text(value) -> str:
    return unicodedata.normalize("NFC", str(value or "")).replace("\r\n", "\n").strip()


def parse_local_time(value, tz: str = LOCAL_TZ) -> datetime:
    """A time from the form: ISO 8601 with an offset (what the UI's picker sends) or without one (local time)."""
    text = str(value or "").strip()
    if not text:
        raise ValueError("empty")
    moment = datetime.fromisoformat(text)  # 3.11: `Z`, a space instead of `T`, seconds optional
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment.astimezone(timezone.utc)


def validate_post(params: dict, *, now: datetime, photo_exists, run_id: str, tz: str = LOCAL_TZ) -> PostContent:
    """The form's values as a PostContent, or FormError listing every problem (in Vietnamese, naming the field)."""
    problems: list[str] = []
    channels = params.get("channels") or []
    if isinstance(channels, str):
        channels = [channels]
    unknown = [c for c in channels if c not in POST_CHANNELS]
    if unknown:
        problems.append(field_problem("channels", f"không có kênh {', '.join(map(repr, unknown))} — chỉ có "
                                                  "portal (Cổng thông tin điện tử) và fanpage (Fanpage Facebook)."))
    if not channels:
        problems.append(field_problem("channels", "chưa chọn kênh nào — chọn Cổng thông tin điện tử và/hoặc "
                                                  "Fanpage."))
    title = _text(params.get("title"))
    if not title:
        problems.append(field_problem("title", "đang trống — nhập tiêu đề bài."))
    elif len(title) > TITLE_MAX:
        problems.append(field_problem("title", f"dài {len(title)} ký tự — tối đa {TITLE_MAX}."))
    body = _text(params.get("body"))
    if not body:
        problems.append(field_problem("body", "đang trống — nhập nội dung bài."))
    publish_at = None
    raw_time = params.get("publish_at")
    try:
        publish_at = parse_local_time(raw_time, tz)
    except (ValueError, TypeError):
        problems.append(field_problem("publish_at", f"không đọc được {raw_time!r} — chọn ngày giờ bằng lịch, ví dụ "
                                                    "2026-05-23T08:00 (giờ Việt Nam)." if raw_time else
                                      "chưa chọn — chọn ngày giờ đăng (giờ Việt Nam)."))
    if publish_at is not None:
        earliest = now + MIN_LEAD
        if publish_at <= now:
            problems.append(field_problem("publish_at", f"{local_text(publish_at, tz)} đã qua — chọn một thời điểm "
                                                        f"sau {local_text(earliest, tz)}."))
        elif publish_at < earliest:
            problems.append(field_problem("publish_at", f"{local_text(publish_at, tz)} quá sát giờ gửi — chọn từ "
                                                        f"{local_text(earliest, tz)} trở đi để kịp duyệt."))
        elif publish_at > now + MAX_LEAD:
            problems.append(field_problem("publish_at", f"{local_text(publish_at, tz)} xa quá {MAX_LEAD.days} ngày — "
                                                        "hãy lên lịch gần ngày đăng hơn."))
    photos = [_text(p) for p in (params.get("photos") or []) if _text(p)]
    photos = list(dict.fromkeys(photos))
    if len(photos) > MAX_PHOTOS:
        problems.append(field_problem("photos", f"đã chọn {len(photos)} ảnh — một bài đăng có tối đa {MAX_PHOTOS} "
                                                "ảnh."))
    for key in photos:
        if not re.search(r"\.(jpe?g|png|gif)$", key, re.I):
            problems.append(field_problem("photos", f"«{key}» không phải ảnh JPEG/PNG/GIF."))
        elif not photo_exists(key):
            problems.append(field_problem("photos", f"không tìm thấy ảnh «{key}» trong kho — chọn lại trong danh "
                                                    "sách ảnh đã xử lý."))
    link = _text(params.get("link")) or None
    if link and not re.match(r"^https?://\S+$", link):
        problems.append(field_problem("link", f"{link!r} không phải địa chỉ http(s)."))
    if problems:
        raise FormError(problems)
    key = form_key(title, publish_at, tz)
    if params.get("repost"):
        # A deliberate second post: its own key, stable for this run, so clearing the run still posts it once.
        key = f"{key}/dang-lai-{ascii_slug(run_id, 60)}"
    return PostContent(key=key, label=title, channels=tuple(dict.fromkeys(channels)), title=title, body=body,
                       publish_at=publish_at, link=link, media=MediaSpec(keys=tuple(photos)),
                       media_wait=timedelta(minutes=5), approval_required=True, timezone=tz)


def channel_names(channels) -> str:
    return ", ".join(CHANNEL_LABELS.get(c, c) for c in channels)
