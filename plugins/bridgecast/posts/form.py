"""The staff form of `bridgecast_schedule_post`: Airflow Params (Vietnamese titles and help, JSON schema) and the
validation its first task runs, whose messages name the field in Vietnamese and give the way out.

The publish time is two plain text fields, «Ngày đăng» (dd/mm/yyyy) and «Giờ đăng» (HH:MM, 24-hour), read in the
event's zone (Asia/Ho_Chi_Minh) on the server. Why not Airflow's date-time widget: it converts what staff pick
with the *browser's* zone, so 08:00 typed on a laptop left in UTC became 15:00 in Vietnam. Why not the native
date/time inputs (`format: date|time`): Chromium shows them in the browser's locale (mm/dd/yyyy and AM/PM on an
English system — 05/06 is then the 6th of May for one officer and the 5th of June for another). Why not ISO text
with an offset: staff would have to type `+07:00`. Text fields carry no zone and look the same in every browser;
the server reads them, and every later step repeats the time in words («08:00 thứ Bảy 23/05/2020, giờ Việt Nam»,
`content.time_in_words`). Other callers (the calendar's approvals, a page of the board) build the two fields with
`publish_fields`.

The schema catches shape (an unknown channel, an empty text: the trigger is refused); `validate_post` catches
what a schema cannot (a date that does not exist, a time already past, a photo that is not in storage) before
anyone is asked to approve anything. Parse-time cost: this module imports only Airflow's Param.
"""
from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from bridgecast.posts.content import (CHANNEL_LABELS, LOCAL_TZ, POST_CHANNELS, MediaSpec, PostContent, ascii_slug,
                                      form_key, time_in_words)

MIN_LEAD = timedelta(minutes=1)  # the approver needs a moment; the run needs a few seconds
MAX_LEAD = timedelta(days=60)
MAX_PHOTOS = 10  # one fanpage post holds at most 10 photos
TITLE_MAX = 200
BODY_MAX = 20000
FIELD_NAMES = {"channels": "Kênh đăng", "title": "Tiêu đề", "body": "Nội dung", "publish_date": "Ngày đăng",
               "publish_time": "Giờ đăng", "photos": "Ảnh", "link": "Liên kết", "repost": "Đăng lại"}
PUBLISH_FIELDS = ("publish_date", "publish_time")
# The path of Airflow's "Required Actions" list (Browse menu), relative to the UI's <base href>.
REQUIRED_ACTIONS_PATH = "required_actions?response_received=false"


class FormError(ValueError):
    """Every problem of a submitted form, each naming its field: `«Tiêu đề» (title): …`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Biểu mẫu chưa hợp lệ / the form is not valid:\n" + "\n".join(f"- {p}" for p in problems))


def field_problem(name: str | tuple[str, ...], problem: str) -> str:
    names = (name,) if isinstance(name, str) else name
    shown = ", ".join(f"«{FIELD_NAMES.get(n, n)}»" for n in names)
    return f"{shown} ({', '.join(names)}): {problem}"


# --- the publish time: two text fields read in the event's zone ----------------------------------------------------
DATE_EXAMPLE = "23/05/2026"
_DATE = re.compile(r"(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{2,4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_TIME = re.compile(r"(\d{1,2})\s*(?:[:.hg]|giờ)\s*(\d{2})?\s*(?:phút|p)?", re.I)
_TWELVE_HOUR = re.compile(r"\b(am|pm|a\.m\.|p\.m\.|sa|ch|sáng|chiều|tối)\b", re.I)


def parse_publish_date(text) -> date:
    """`23/05/2026` (also 23-5-2026, 23.05.2026, or ISO 2026-05-23) → a date; ValueError says what is wrong."""
    raw = unicodedata.normalize("NFC", str(text or "")).strip()
    if not raw:
        raise ValueError(f"chưa nhập — nhập ngày theo dạng ngày/tháng/năm, ví dụ {DATE_EXAMPLE}.")
    if found := _ISO_DATE.fullmatch(raw):
        year, month, day = (int(g) for g in found.groups())
    elif found := _DATE.fullmatch(raw):
        day, month, year = (int(g) for g in found.groups())
        if len(found.group(3)) != 4:
            raise ValueError(f"«{raw}»: năm cần đủ 4 chữ số, ví dụ {DATE_EXAMPLE}.")
    else:
        raise ValueError(f"không đọc được «{raw}» — nhập ngày theo dạng ngày/tháng/năm (dd/mm/yyyy), ví dụ "
                         f"{DATE_EXAMPLE}.")
    if not 1 <= month <= 12:
        hint = f" Ngày đứng trước tháng: {month:02d}/{day:02d}/{year}?" if 1 <= day <= 12 else ""
        raise ValueError(f"«{raw}»: không có tháng {month} — tháng từ 1 đến 12 (dạng ngày/tháng/năm).{hint}")
    if not 1970 <= year <= 9999:
        raise ValueError(f"«{raw}»: năm {year} không hợp lệ.")
    last = calendar.monthrange(year, month)[1]
    if day < 1:
        raise ValueError(f"«{raw}»: không có ngày {day} — ngày từ 1 đến {last}.")
    if day > last:
        if month == 2 and day == 29:
            raise ValueError(f"«{raw}»: năm {year} không phải năm nhuận — tháng 2/{year} chỉ có 28 ngày.")
        raise ValueError(f"«{raw}»: tháng {month}/{year} chỉ có {last} ngày.")
    return date(year, month, day)


def parse_publish_clock(text) -> time:
    """`08:00` (also 8:00, 8h, 8h30, 08.30) on the 24-hour clock → a time; ValueError says what is wrong."""
    raw = unicodedata.normalize("NFC", str(text or "")).strip()
    if not raw:
        raise ValueError("chưa nhập — nhập giờ theo đồng hồ 24 giờ, ví dụ 08:00 hoặc 14:30.")
    if _TWELVE_HOUR.search(raw):
        raise ValueError(f"«{raw}»: hãy dùng đồng hồ 24 giờ, không ghi sáng/chiều hay AM/PM — ví dụ 20:00 cho 8 giờ "
                         "tối.")
    found = _TIME.fullmatch(raw)
    if not found or (found.group(2) is None and not re.search(r"[hg]|giờ", raw, re.I)):
        raise ValueError(f"không đọc được «{raw}» — nhập giờ và phút theo đồng hồ 24 giờ (HH:MM), ví dụ 08:00.")
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    if hour == 24:
        raise ValueError(f"«{raw}»: đồng hồ 24 giờ không có 24:00 — dùng 00:00 của ngày hôm sau, hoặc 23:59.")
    if hour > 23:
        raise ValueError(f"«{raw}»: không có {hour} giờ — giờ từ 00 đến 23.")
    if minute > 59:
        raise ValueError(f"«{raw}»: không có phút {minute} — phút từ 00 đến 59.")
    return time(hour, minute)


def read_publish_time(params: dict, tz: str = LOCAL_TZ) -> tuple[datetime | None, list[str]]:
    """(the publish time in UTC, problems) from the form's two fields, read in the event's zone `tz`."""
    problems = []
    try:
        day = parse_publish_date(params.get("publish_date"))
    except ValueError as exc:
        day = None
        problems.append(field_problem("publish_date", str(exc)))
    try:
        clock = parse_publish_clock(params.get("publish_time"))
    except ValueError as exc:
        clock = None
        problems.append(field_problem("publish_time", str(exc)))
    if day is None or clock is None:
        return None, problems
    return datetime.combine(day, clock, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc), []


def publish_fields(moment: datetime, tz: str = LOCAL_TZ) -> dict[str, str]:
    """The form's two fields for an aware `moment` — what a caller that is not a person puts in the conf."""
    local = moment.astimezone(ZoneInfo(tz))
    return {"publish_date": f"{local:%d/%m/%Y}", "publish_time": f"{local:%H:%M}"}


def _lead_problem(publish_at: datetime, now: datetime, tz: str) -> str | None:
    earliest = now + MIN_LEAD
    if publish_at <= now:
        return f"{time_in_words(publish_at, tz)} đã qua — chọn một thời điểm sau {time_in_words(earliest, tz)}."
    if publish_at < earliest:
        return (f"{time_in_words(publish_at, tz)} quá sát giờ gửi — chọn từ {time_in_words(earliest, tz)} trở đi "
                "để kịp duyệt.")
    if publish_at > now + MAX_LEAD:
        return f"{time_in_words(publish_at, tz)} xa quá {MAX_LEAD.days} ngày — hãy lên lịch gần ngày đăng hơn."
    return None


# --- the form ------------------------------------------------------------------------------------------------------
def first_field_help(approvers: list[str]) -> str:
    """Markdown under the first field, right below Airflow's own «Logical Date» box (which no DAG setting hides):
    what that box is not, and who approves the post, where."""
    who = ", ".join(f"`{name}`" for name in approvers) or "`approver`"
    return (f"Ngày bài lên kênh, dạng **ngày/tháng/năm** (dd/mm/yyyy), ví dụ `{DATE_EXAMPLE}`. Ngày và giờ đăng "
            "luôn là **giờ Việt Nam**, dù máy tính đặt múi giờ nào.\n\n"
            "⚠️ Ô **Logical Date** ở trên **không phải giờ đăng**: đó là dấu thời gian kỹ thuật của lần chạy — để "
            "nguyên.\n\n"
            f"**Người duyệt:** tài khoản {who}. Sau khi bấm **Trigger**, bài chờ duyệt ở **Browse → Required "
            f"Actions** ([mở danh sách việc cần duyệt]({REQUIRED_ACTIONS_PATH})); quá giờ đăng chưa duyệt thì bài "
            "không được đăng.")


def form_params(picker: dict | None = None, approvers: list[str] | None = None) -> dict:
    """The trigger form. `picker` lists the processed photos by point (bridgecast.posts.media.read_picker);
    `approvers` are named in the help of the first field.

    Fields without a section stay in Airflow's default section, the only one open when the form opens. A field
    is marked required (`*`) by the UI when its type does not allow null — the optional ones therefore say
    `["null", …]` even when they have a default."""
    from airflow.sdk import Param

    picker = picker or {"keys": [], "labels": {}}
    photo_choices = {"examples": picker["keys"], "values_display": picker["labels"]} if picker.get("keys") else {}
    return {
        "publish_date": Param(
            type="string", maxLength=10, title="Ngày đăng (giờ Việt Nam)",
            description_md=first_field_help(approvers or [])),
        "publish_time": Param(
            type="string", maxLength=8, title="Giờ đăng (giờ Việt Nam)",
            description="Giờ:phút theo đồng hồ 24 giờ, giờ Việt Nam (UTC+7), ví dụ 08:00 hoặc 14:30 — ít nhất 1 "
                        "phút sau lúc gửi. Bài phải được duyệt trước giờ này."),
        "channels": Param(
            list(POST_CHANNELS), type="array", items={"type": "string", "enum": list(POST_CHANNELS)},
            examples=list(POST_CHANNELS), values_display={"portal": "Cổng thông tin điện tử (portal)",
                                                          "fanpage": "Fanpage Facebook (fanpage)"},
            title="Kênh đăng",
            description="Chọn một hoặc cả hai kênh: Cổng thông tin điện tử và/hoặc Fanpage."),
        "title": Param(
            type="string", minLength=1, maxLength=TITLE_MAX, title="Tiêu đề",
            description="Tiêu đề bài (tối đa 200 ký tự). Cùng tiêu đề và cùng giờ đăng là cùng một bài: gửi lại sẽ "
                        "cập nhật bài đó, không đăng bài thứ hai."),
        "body": Param(
            type="string", format="multiline", minLength=1, maxLength=BODY_MAX, title="Nội dung",
            description="Nội dung bài bằng tiếng Việt có dấu; để một dòng trống giữa các đoạn."),
        "photos": Param(
            [], type=["null", "array"], items={"type": "string"}, title="Ảnh (không bắt buộc)", **photo_choices,
            description="Ảnh đã xử lý, theo điểm cầu và giờ chụp gửi về (mới nhất trước), tối đa 10 ảnh. Ảnh mới "
                        "vào danh sách vài giây sau khi xử lý xong; người duyệt thấy ảnh thu nhỏ."
            if photo_choices else
            "Chưa có ảnh nào đã xử lý. Có thể dán khoá ảnh trong kho (mỗi dòng một khoá)."),
        "link": Param(
            None, type=["null", "string"], title="Liên kết (không bắt buộc)", section="Nâng cao (không bắt buộc)",
            description="Một địa chỉ http(s) kèm theo bài, ví dụ bài gốc trên cổng thông tin; hoặc «live»: đường "
                        "link video trực tiếp của lễ trên fanpage."),
        "repost": Param(
            False, type=["null", "boolean"], title="Đăng lại bài đã đăng", section="Nâng cao (không bắt buộc)",
            description="Chỉ bật khi CỐ Ý đăng lại một bài đã đăng (cùng tiêu đề và giờ): kênh sẽ có thêm một bài "
                        "mới. Không bật thì gửi lại chỉ cập nhật bài cũ."),
    }


def _text(value) -> str:
    return unicodedata.normalize("NFC", str(value or "")).replace("\r\n", "\n").strip()


def _channel_problems(channels) -> list[str]:
    unknown = [c for c in channels if c not in POST_CHANNELS]
    problems = []
    if unknown:
        problems.append(field_problem("channels", f"không có kênh {', '.join(map(repr, unknown))} — chỉ có "
                                                  "portal (Cổng thông tin điện tử) và fanpage (Fanpage Facebook)."))
    if not channels:
        problems.append(field_problem("channels", "chưa chọn kênh nào — chọn Cổng thông tin điện tử và/hoặc "
                                                  "Fanpage."))
    return problems


def _photo_problems(photos: list[str], photo_exists) -> list[str]:
    problems = []
    if len(photos) > MAX_PHOTOS:
        problems.append(field_problem("photos", f"đã chọn {len(photos)} ảnh — một bài đăng có tối đa {MAX_PHOTOS} "
                                                "ảnh."))
    for key in photos:
        if not re.search(r"\.(jpe?g|png|gif)$", key, re.I):
            problems.append(field_problem("photos", f"«{key}» không phải ảnh JPEG/PNG/GIF."))
        elif not photo_exists(key):
            problems.append(field_problem("photos", f"không tìm thấy ảnh «{key}» trong kho — chọn lại trong danh "
                                                    "sách ảnh đã xử lý."))
    return problems


def validate_post(params: dict, *, now: datetime, photo_exists, run_id: str, tz: str = LOCAL_TZ) -> PostContent:
    """The form's values as a PostContent, or FormError listing every problem (in Vietnamese, naming the field)."""
    channels = params.get("channels") or []
    channels = [channels] if isinstance(channels, str) else list(channels)
    problems = _channel_problems(channels)
    title = _text(params.get("title"))
    if not title:
        problems.append(field_problem("title", "đang trống — nhập tiêu đề bài."))
    elif len(title) > TITLE_MAX:
        problems.append(field_problem("title", f"dài {len(title)} ký tự — tối đa {TITLE_MAX}."))
    body = _text(params.get("body"))
    if not body:
        problems.append(field_problem("body", "đang trống — nhập nội dung bài."))
    publish_at, time_problems = read_publish_time(params, tz)
    problems += time_problems
    if publish_at is not None and (lead := _lead_problem(publish_at, now, tz)):
        problems.append(field_problem(PUBLISH_FIELDS, lead))
    photos = list(dict.fromkeys(_text(p) for p in (params.get("photos") or []) if _text(p)))
    problems += _photo_problems(photos, photo_exists)
    link = _text(params.get("link")) or None
    if link and link != "live" and not re.match(r"^https?://\S+$", link):
        problems.append(field_problem("link", f"{link!r} không phải địa chỉ http(s) (hoặc «live»: video trực tiếp "
                                              "của lễ)."))
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
