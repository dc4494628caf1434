"""The event model: one YAML file describes one event (points, times, channels, targets, campaign, staff).

`load_event(path)` parses and validates the whole file and raises `EventConfigError` listing every problem
as `file: field.path: problem — what to do`. Names are stored in NFC and compared on `name_key()`, so the two
Vietnamese tone-mark orthographies (Hòa/Hoà, Thủy/Thuỷ) and NFC/NFD input match.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bridgecast.text import nfc

POINT_KINDS = ("central", "province", "district")
STREAMING_KINDS = ("central", "province")  # connection points; district teams send uploads
CHANNELS = ("portal", "fanpage", "press")
_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GRAPH_VERSION_RE = re.compile(r"^v\d+\.0$")
# Vietnamese tone marks (as combining characters after NFD); other diacritics (ă â ê ô ơ ư) are letters.
_TONE_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


class EventConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def name_key(name: str) -> str:
    """Comparison key: NFC/NFD-, case-, spacing- and tone-placement-insensitive, but tone-sensitive.

    Each syllable keeps its letters and its tone; where the tone mark sits (Hòa vs Hoà) no longer matters.
    """
    syllables = []
    for syllable in re.split(r"[\s\-–—]+", nfc(name).casefold().strip()):
        decomposed = unicodedata.normalize("NFD", syllable)
        tones = "".join(ch for ch in decomposed if ch in _TONE_MARKS)
        letters = "".join(ch for ch in decomposed if ch not in _TONE_MARKS)
        syllables.append(unicodedata.normalize("NFC", letters) + tones)
    return " ".join(s for s in syllables if s)


@dataclass(frozen=True)
class Point:
    id: str
    name: str
    kind: str
    parent: str | None = None
    code: str | None = None
    full_name: str | None = None
    city: bool = False
    aliases: tuple[str, ...] = ()
    formed_from: tuple[str, ...] = ()

    @property
    def streams(self) -> bool:
        return self.kind in STREAMING_KINDS

    @property
    def display_name(self) -> str:
        return self.full_name or self.name


@dataclass(frozen=True)
class PortalConfig:
    connection_id: str
    name: str
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FanpageConfig:
    connection_id: str
    name: str
    graph_version: str


@dataclass(frozen=True)
class Outlet:
    name: str
    email: str


@dataclass(frozen=True)
class StaffMember:
    """Someone of the organisers who receives the internal reports (never the press, never the public)."""

    name: str
    email: str


@dataclass(frozen=True)
class PressConfig:
    connection_id: str
    sender_name: str
    outlets: tuple[Outlet, ...]


@dataclass(frozen=True)
class Channels:
    portal: PortalConfig
    fanpage: FanpageConfig
    press: PressConfig


@dataclass(frozen=True)
class Stages:
    preflight_before_min: float = 60
    live_setup_before_min: float = 30
    final_check_before_min: float = 5  # the second go/no-go, just before T0
    drop_alert_after_s: float = 30  # a point silent this long after a drop is an incident (mailed once)


@dataclass(frozen=True)
class Highlight:
    offset_s: float = 0  # where a point's search for its best moment starts, after it went live
    length_s: float = 10  # the highlight kept per point: its best `length_s` within the search window
    search_s: float = 60  # how much of each point's recording is scored (motion + audio level) for that moment
    recap_s: float = 90  # the recap's length budget (mosaic + best moments + outro)


@dataclass(frozen=True)
class MediaSettings:
    max_photo_pixels: int = 64_000_000
    max_upload_mb: int = 2048
    watermark_text: str | None = None
    watermark_logo: str | None = None  # absolute path of a PNG (the YAML gives it relative to the repo)


@dataclass(frozen=True)
class Event:
    source: str
    id: str
    title: str
    short_title: str
    theme: str
    messages: tuple[str, ...]
    organisers: tuple[str, ...]
    plans: tuple[str, ...]
    units_valid_on: date | None
    timezone: str
    start: datetime  # aware, UTC
    duration: timedelta
    program_point: str
    stages: Stages
    highlight: Highlight
    targets: dict[str, float]
    media: MediaSettings
    channels: Channels
    points: tuple[Point, ...]
    # The month of action: from the launch day to `campaign_end` (inclusive, a local date).
    campaign_end: date | None = None
    staff: tuple[StaffMember, ...] = ()
    # Targets whose value is a stand-in until the real figure is known (shown as such in every report).
    placeholder_targets: tuple[str, ...] = ()
    _by_id: dict[str, Point] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self):
        object.__setattr__(self, "_by_id", {p.id: p for p in self.points})

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start_local(self) -> datetime:
        return self.start.astimezone(self.tz)

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    @property
    def campaign_start(self) -> date:
        """The first day of the month of action: the launch day, in the event's zone."""
        return self.start_local.date()

    @property
    def campaign_last_day(self) -> date:
        """The last day of the month of action (inclusive); one month after the launch when not configured."""
        return self.campaign_end or default_campaign_end(self.campaign_start)

    @property
    def connection_points(self) -> tuple[Point, ...]:
        """The points that stream: the central point and the provinces (64 for the 2020 event)."""
        return tuple(p for p in self.points if p.streams)

    @property
    def teams(self) -> tuple[Point, ...]:
        return tuple(p for p in self.points if p.kind == "district")

    def point(self, point_id: str) -> Point:
        try:
            return self._by_id[point_id]
        except KeyError:
            raise KeyError(f"event {self.id!r} has no point {point_id!r}") from None

    def children(self, point_id: str) -> tuple[Point, ...]:
        return tuple(p for p in self.points if p.parent == point_id)

    def find_point(self, name: str) -> Point | None:
        """Look a point up by id, name, full name or alias, in either orthography."""
        if name in self._by_id:
            return self._by_id[name]
        key = name_key(name)
        for p in self.points:
            if key in {name_key(n) for n in (p.name, p.full_name or "", *p.aliases)}:
                return p
        return None


def default_campaign_end(launch_day: date) -> date:
    """A month of action that is not configured lasts 30 days after the launch day (23/5 → 22/6)."""
    return launch_day + timedelta(days=30)


# --- loading ------------------------------------------------------------------------------------------------
class StrictYAMLLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictYAMLLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_event(path: str | Path) -> Event:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EventConfigError(str(path), ["file not found — pass the path of an event YAML file"]) from None
    return load_event_bytes(data, str(path))


def load_event_bytes(data: bytes, source: str) -> Event:
    """An event from YAML bytes (a file, or the copy a launch run keeps in S3); `source` names it in errors."""
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=StrictYAMLLoader)
    except UnicodeDecodeError as exc:
        raise EventConfigError(source, [f"not UTF-8 ({exc.reason}) — save the file as UTF-8"]) from None
    except yaml.YAMLError as exc:
        raise EventConfigError(source, [f"not valid YAML: {exc}"]) from None
    return parse_event(raw, source)


def parse_event(raw: Any, source: str = "<event>") -> Event:
    v = _Validator()
    event = v.event(raw)
    if v.problems:
        raise EventConfigError(source, v.problems)
    return Event(source=source, **event)


class _Validator:
    """Collects every problem with its field path instead of stopping at the first."""

    def __init__(self):
        self.problems: list[str] = []

    def bad(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    # generic field readers ---------------------------------------------------------------------------------
    def mapping(self, raw, path, allowed: tuple[str, ...]) -> dict:
        if not isinstance(raw, dict):
            self.bad(path or "(top level)", f"must be a mapping of fields, got {type(raw).__name__}")
            return {}
        for key in raw:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                self.bad(_join(path, str(key)), "unknown field" + (f" — did you mean '{hint[0]}'?" if hint else
                                                                   f"; allowed: {', '.join(allowed)}"))
        return raw

    def text(self, m, path, key, *, required=True, default=None) -> str | None:
        value = m.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.bad(_join(path, key), "missing — give a non-empty text")
            return default
        if not isinstance(value, str):
            self.bad(_join(path, key), f"must be text, got {type(value).__name__} {value!r} — quote it")
            return default
        return nfc(value.strip())

    def texts(self, m, path, key, *, required=False) -> tuple[str, ...]:
        value = m.get(key)
        if value is None:
            if required:
                self.bad(_join(path, key), "missing — give a list of texts")
            return ()
        if not isinstance(value, list):
            self.bad(_join(path, key), "must be a list")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.bad(f"{_join(path, key)}[{i}]", "must be a non-empty text")
            else:
                out.append(nfc(item.strip()))
        return tuple(out)

    def number(self, m, path, key, *, default=None, minimum=0.0, integer=False):
        value = m.get(key, default)
        if value is None:
            self.bad(_join(path, key), "missing — give a number")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.bad(_join(path, key), f"must be {'a whole number' if integer else 'a number'}, got {value!r}")
            return default
        if value < minimum:
            self.bad(_join(path, key), f"must be ≥ {minimum}, got {value!r}")
        return value

    def identifier(self, m, path, key) -> str | None:
        value = m.get(key)
        if value is None:
            self.bad(_join(path, key), "missing — give an ASCII id like 'vinh-phuc'")
            return None
        if not isinstance(value, str) or not _ID_RE.match(value):
            self.bad(_join(path, key), f"{value!r} is not a valid id — use lowercase ASCII letters, digits and "
                                       "single hyphens (e.g. 'vinh-phuc'); ids end up in S3 keys and stream names")
            return None
        return value

    # the event ---------------------------------------------------------------------------------------------
    def event(self, raw) -> dict:
        fields = ("id", "title", "short_title", "theme", "messages", "organisers", "plans", "units_valid_on",
                  "timezone", "start", "duration_minutes", "program_point", "stages", "highlight", "targets",
                  "campaign_end", "staff", "media", "channels", "points")
        m = self.mapping(raw, "", fields)
        tz_name = self.text(m, "", "timezone")
        tz = None
        if tz_name:
            try:
                tz = ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                self.bad("timezone", f"unknown time zone {tz_name!r} — use an IANA name such as 'Asia/Ho_Chi_Minh'")
        title = self.text(m, "", "title")
        points = self.points(m.get("points"))
        point_ids = {p.id for p in points}
        program = self.identifier(m, "", "program_point")
        if program and points and program not in point_ids:
            self.bad("program_point", f"unknown point {program!r} — it must be the id of one of the points")
        elif program and program in point_ids and not next(p for p in points if p.id == program).streams:
            self.bad("program_point", f"{program!r} is a district team; the program feed must come from a "
                                      "central or provincial point")
        duration = self.number(m, "", "duration_minutes", minimum=1)
        units_valid_on = m.get("units_valid_on")
        if units_valid_on is not None and not isinstance(units_valid_on, date):
            self.bad("units_valid_on", f"must be a date like 2020-05-23, got {units_valid_on!r}")
            units_valid_on = None
        start = self.start(m.get("start"), tz)
        targets, placeholders = self.targets(m.get("targets"))
        return dict(
            id=self.identifier(m, "", "id"),
            title=title,
            short_title=self.text(m, "", "short_title", required=False) or title,
            theme=self.text(m, "", "theme"),
            messages=self.texts(m, "", "messages", required=True),
            organisers=self.texts(m, "", "organisers", required=True),
            plans=self.texts(m, "", "plans"),
            units_valid_on=units_valid_on,
            timezone=tz_name,
            start=start,
            duration=timedelta(minutes=duration or 0),
            program_point=program,
            stages=self.stages(m.get("stages")),
            highlight=self.highlight(m.get("highlight")),
            targets=targets,
            placeholder_targets=placeholders,
            campaign_end=self.campaign_end(m.get("campaign_end"), start, tz),
            staff=self.staff(m.get("staff")),
            media=self.media(m.get("media")),
            channels=self.channels(m.get("channels")),
            points=tuple(points),
        )

    def start(self, value, tz) -> datetime | None:
        if value is None:
            self.bad("start", "missing — give the local start with its offset, e.g. 2020-05-23T08:00:00+07:00")
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                self.bad("start", f"{value!r} is not an ISO date-time — write e.g. 2020-05-23T08:00:00+07:00")
                return None
        if not isinstance(value, datetime):
            self.bad("start", f"must be a date-time with its UTC offset, got {value!r}")
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            self.bad("start", f"naive date-time {value.isoformat()} — add the UTC offset of the event's time "
                              "zone (e.g. +07:00 for Asia/Ho_Chi_Minh); a time without a zone is ambiguous")
            return None
        if tz is not None:
            expected = value.astimezone(tz).utcoffset()
            if value.utcoffset() != expected:
                self.bad("start", f"offset {value.isoformat()[-6:]} disagrees with the event time zone "
                                  f"(expected {_fmt_offset(expected)}) — fix the offset or the timezone")
        return value.astimezone(timezone.utc)

    def stages(self, raw) -> Stages:
        if raw is None:
            return Stages()
        m = self.mapping(raw, "stages", ("preflight_before_min", "live_setup_before_min", "final_check_before_min",
                                         "drop_alert_after_s"))
        preflight = self.number(m, "stages", "preflight_before_min", default=Stages.preflight_before_min)
        setup = self.number(m, "stages", "live_setup_before_min", default=Stages.live_setup_before_min)
        final = self.number(m, "stages", "final_check_before_min", default=min(Stages.final_check_before_min,
                                                                                  setup if isinstance(setup, (int, float)) else 5))
        drop = self.number(m, "stages", "drop_alert_after_s", default=Stages.drop_alert_after_s)
        if isinstance(preflight, (int, float)) and isinstance(setup, (int, float)) and setup > preflight:
            self.bad("stages.live_setup_before_min", "must not be earlier than the preflight "
                                                     f"({setup} > {preflight} minutes before the start)")
        if isinstance(final, (int, float)) and isinstance(setup, (int, float)) and final > setup:
            self.bad("stages.final_check_before_min", "must not be earlier than the live setup "
                                                      f"({final} > {setup} minutes before the start)")
        return Stages(preflight, setup, final, drop)

    def highlight(self, raw) -> Highlight:
        if raw is None:
            return Highlight()
        m = self.mapping(raw, "highlight", ("offset_s", "length_s", "search_s", "recap_s"))
        return Highlight(self.number(m, "highlight", "offset_s", default=0),
                         self.number(m, "highlight", "length_s", default=10, minimum=1),
                         self.number(m, "highlight", "search_s", default=Highlight.search_s, minimum=2),
                         self.number(m, "highlight", "recap_s", default=Highlight.recap_s, minimum=10))

    def targets(self, raw) -> tuple[dict[str, float], tuple[str, ...]]:
        """name → number; a figure not known yet is written `{value: N, placeholder: true}` and reported as such."""
        if raw is None:
            return {}, ()
        if not isinstance(raw, dict):
            self.bad("targets", "must be a mapping of target name → number")
            return {}, ()
        values, placeholders = {}, []
        for key, value in raw.items():
            if isinstance(value, dict):
                path = f"targets.{key}"
                m = self.mapping(value, path, ("value", "placeholder"))
                values[str(key)] = self.number(m, path, "value")
                flag = m.get("placeholder", False)
                if not isinstance(flag, bool):
                    self.bad(f"{path}.placeholder", "must be true or false")
                elif flag:
                    placeholders.append(str(key))
            else:
                values[str(key)] = self.number(raw, "targets", key)
        return values, tuple(placeholders)

    def campaign_end(self, value, start: datetime | None, tz) -> date | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value.strip())
            except ValueError:
                pass
        if isinstance(value, datetime) or not isinstance(value, date):
            self.bad("campaign_end", f"must be a date like 2020-06-22 (the last day of the month of action), "
                                     f"got {value!r}")
            return None
        if start is not None and tz is not None and value < start.astimezone(tz).date():
            self.bad("campaign_end", f"{value.isoformat()} is before the launch day "
                                     f"{start.astimezone(tz).date().isoformat()} — the month of action starts "
                                     "with the launch")
            return None
        return value

    def staff(self, raw) -> tuple[StaffMember, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.bad("staff", "must be a list of {name, email} (who receives the internal reports)")
            return ()
        out, seen = [], {}
        for i, item in enumerate(raw):
            path = f"staff[{i}]"
            m = self.mapping(item, path, ("name", "email"))
            name, email = self.text(m, path, "name"), self.text(m, path, "email")
            if email and not _EMAIL_RE.match(email):
                self.bad(f"{path}.email", f"{email!r} is not an e-mail address")
            elif email and email.casefold() in seen:
                self.bad(f"{path}.email", f"{email!r} is listed twice (also staff[{seen[email.casefold()]}])")
            elif email:
                seen[email.casefold()] = i
                out.append(StaffMember(name or email, email))
        return tuple(out)

    def media(self, raw) -> MediaSettings:
        if raw is None:
            return MediaSettings()
        m = self.mapping(raw, "media", ("max_photo_pixels", "max_upload_mb", "watermark_text", "watermark_logo"))
        return MediaSettings(
            max_photo_pixels=self.number(m, "media", "max_photo_pixels", default=MediaSettings.max_photo_pixels,
                                         minimum=1_000_000, integer=True),
            max_upload_mb=self.number(m, "media", "max_upload_mb", default=MediaSettings.max_upload_mb, minimum=1,
                                      integer=True),
            watermark_text=self.text(m, "media", "watermark_text", required=False),
            watermark_logo=self.logo(self.text(m, "media", "watermark_logo", required=False)),
        )

    def logo(self, given: str | None) -> str | None:
        """The watermark logo: a PNG, relative to the repo (where config/ is) unless absolute; checked now, so
        a wrong path is a config error before the event, not a failure of every photo on the day."""
        if given is None:
            return None
        path = Path(given) if Path(given).is_absolute() else Path(__file__).resolve().parents[2] / given
        try:
            head = path.read_bytes()[:8]
        except OSError:
            self.bad("media.watermark_logo", f"{given!r} not found (looked at {path}) — put the logo PNG there, or "
                                             "remove the field to stamp the text only")
            return None
        if head != b"\x89PNG\r\n\x1a\n":
            self.bad("media.watermark_logo", f"{given!r} is not a PNG — export the logo as PNG with transparency")
            return None
        return str(path)

    def channels(self, raw) -> Channels | None:
        if raw is None:
            self.bad("channels", f"missing — configure the channels {', '.join(CHANNELS)}")
            return None
        m = self.mapping(raw, "channels", CHANNELS)
        for name in CHANNELS:
            if name not in m:
                self.bad(f"channels.{name}", "missing channel — every event publishes to portal, fanpage and press")
        portal = fanpage = press = None
        if isinstance(m.get("portal"), dict):
            p = self.mapping(m["portal"], "channels.portal", ("connection_id", "name", "categories", "tags"))
            portal = PortalConfig(self.text(p, "channels.portal", "connection_id"), self.text(p, "channels.portal", "name"),
                                  self.texts(p, "channels.portal", "categories"), self.texts(p, "channels.portal", "tags"))
        elif "portal" in m:
            self.bad("channels.portal", "must be a mapping with connection_id and name")
        if isinstance(m.get("fanpage"), dict):
            f = self.mapping(m["fanpage"], "channels.fanpage", ("connection_id", "name", "graph_version"))
            version = self.text(f, "channels.fanpage", "graph_version")
            if version and not _GRAPH_VERSION_RE.match(version):
                self.bad("channels.fanpage.graph_version", f"{version!r} is not a Graph API version — pin one like "
                                                           "'v25.0'")
            fanpage = FanpageConfig(self.text(f, "channels.fanpage", "connection_id"),
                                    self.text(f, "channels.fanpage", "name"), version)
        elif "fanpage" in m:
            self.bad("channels.fanpage", "must be a mapping with connection_id, name and graph_version")
        if isinstance(m.get("press"), dict):
            pr = self.mapping(m["press"], "channels.press", ("connection_id", "sender_name", "outlets"))
            press = PressConfig(self.text(pr, "channels.press", "connection_id"),
                                self.text(pr, "channels.press", "sender_name"), self.outlets(pr.get("outlets")))
        elif "press" in m:
            self.bad("channels.press", "must be a mapping with connection_id, sender_name and outlets")
        if portal and fanpage and press:
            return Channels(portal, fanpage, press)
        return None

    def outlets(self, raw) -> tuple[Outlet, ...]:
        if not isinstance(raw, list) or not raw:
            self.bad("channels.press.outlets", "must be a non-empty list of {name, email}")
            return ()
        out = []
        for i, item in enumerate(raw):
            path = f"channels.press.outlets[{i}]"
            m = self.mapping(item, path, ("name", "email"))
            name, email = self.text(m, path, "name"), self.text(m, path, "email")
            if email and not _EMAIL_RE.match(email):
                self.bad(f"{path}.email", f"{email!r} is not an e-mail address")
            out.append(Outlet(name, email))
        return tuple(out)

    def points(self, raw) -> list[Point]:
        if not isinstance(raw, list) or not raw:
            self.bad("points", "missing — list the event's points (central, provinces, district teams)")
            return []
        fields = ("id", "name", "kind", "parent", "code", "full_name", "city", "aliases", "formed_from")
        points: list[Point] = []
        seen_ids: dict[str, int] = {}
        seen_names: dict[tuple[str | None, str], int] = {}
        for i, item in enumerate(raw):
            path = f"points[{i}]"
            m = self.mapping(item, path, fields)
            if not m:
                continue
            pid = self.identifier(m, path, "id")
            name = self.text(m, path, "name")
            kind = m.get("kind")
            if kind not in POINT_KINDS:
                self.bad(f"{path}.kind", f"{kind!r} is not a point kind — use one of {', '.join(POINT_KINDS)}")
            code = m.get("code")
            if code is not None and not (isinstance(code, str) and code.isdigit()):
                self.bad(f"{path}.code", f"{code!r} must be the GSO code as quoted digits, e.g. \"26\"")
                code = None
            if pid:
                if pid in seen_ids:
                    self.bad(f"{path}.id", f"duplicate point id {pid!r} (also points[{seen_ids[pid]}])")
                seen_ids.setdefault(pid, i)
            parent = m.get("parent")
            if name:
                slot = (parent, name_key(name))
                if slot in seen_names:
                    self.bad(f"{path}.name", f"duplicate point name {name!r} (same as points[{seen_names[slot]}] "
                                             "once tone marks and case are normalised)")
                seen_names.setdefault(slot, i)
            city = m.get("city", False)
            if not isinstance(city, bool):
                self.bad(f"{path}.city", "must be true or false")
                city = False
            points.append(Point(id=pid or f"<invalid-{i}>", name=name or "", kind=kind or "", parent=parent,
                                code=code, full_name=self.text(m, path, "full_name", required=False), city=city,
                                aliases=self.texts(m, path, "aliases"), formed_from=self.texts(m, path, "formed_from")))
        self.hierarchy(points)
        return points

    def hierarchy(self, points: list[Point]) -> None:
        by_id = {p.id: p for p in points}
        centrals = [i for i, p in enumerate(points) if p.kind == "central"]
        if len(centrals) != 1:
            self.bad("points", f"exactly one point must have kind 'central', found {len(centrals)}")
        for i, p in enumerate(points):
            path = f"points[{i}].parent"
            if p.parent is None:
                if p.kind == "district":
                    self.bad(path, "missing — a district team needs the id of its province as parent")
                continue
            parent = by_id.get(p.parent)
            if parent is None:
                self.bad(path, f"unknown parent {p.parent!r} — use the id of another point")
            elif p.kind == "district" and parent.kind != "province":
                self.bad(path, f"a district's parent must be a province, {p.parent!r} is {parent.kind!r}")
            elif p.kind == "province" and parent.kind != "central":
                self.bad(path, f"a province's parent can only be the central point, {p.parent!r} is {parent.kind!r}")
            elif p.kind == "central":
                self.bad(path, "the central point has no parent")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fmt_offset(delta: timedelta | None) -> str:
    if delta is None:
        return "?"
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def default_event_path() -> Path:
    import os

    return Path(os.environ.get("BRIDGECAST_EVENT", Path(__file__).resolve().parents[2] / "config" / "event.yaml"))
