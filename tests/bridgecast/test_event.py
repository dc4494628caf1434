"""The event model: the 2020 file, the 34-province example, and broken variants with precise messages."""
from __future__ import annotations

import copy
import subprocess
import sys
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from bridgecast.event import EventConfigError, load_event, name_key, parse_event

REPO = Path(__file__).resolve().parents[2]
EVENT_2020 = REPO / "config" / "event.yaml"
EVENT_2026 = REPO / "config" / "examples" / "event-2026-34-provinces.yaml"


@pytest.fixture(scope="module")
def raw_2020() -> dict:
    return yaml.safe_load(EVENT_2020.read_text(encoding="utf-8"))


def test_2020_event_has_central_63_provinces_and_9_district_teams():
    event = load_event(EVENT_2020)
    assert len(event.connection_points) == 64
    assert len([p for p in event.points if p.kind == "province"]) == 63
    assert len(event.teams) == 9
    assert all(t.parent == "vinh-phuc" for t in event.teams)
    assert {t.name for t in event.teams} == {"Vĩnh Yên", "Phúc Yên", "Bình Xuyên", "Lập Thạch", "Sông Lô",
                                            "Tam Dương", "Tam Đảo", "Vĩnh Tường", "Yên Lạc"}
    assert event.start == datetime(2020, 5, 23, 1, 0, tzinfo=timezone.utc)
    assert event.start_local.hour == 8 and event.timezone == "Asia/Ho_Chi_Minh"
    assert event.program_point == "trung-uong"
    assert event.targets["new_voluntary_participants_per_district"] == 50
    assert event.theme == "Chính sách BHXH - Điểm tựa an sinh của NLĐ và nhân dân"


def test_names_are_stored_in_nfc_and_ids_are_ascii():
    event = load_event(EVENT_2020)
    for p in event.points:
        assert p.name == unicodedata.normalize("NFC", p.name)
        assert p.id.isascii()
    assert len({p.id for p in event.points}) == len(event.points)


def test_point_lookup_ignores_tone_mark_placement_nfd_and_old_spellings():
    event = load_event(EVENT_2020)
    assert event.find_point("Hoà Bình").id == "hoa-binh"
    assert event.find_point(unicodedata.normalize("NFD", "Khánh Hoà")).id == "khanh-hoa"
    assert event.find_point("thanh hoá").id == "thanh-hoa"
    assert event.find_point("Bắc Cạn").id == "bac-kan"
    assert name_key("Hòa") != name_key("Hoá")  # tone-sensitive: different words stay different


def test_34_province_example_is_a_new_file_only():
    event = load_event(EVENT_2026)
    provinces = [p for p in event.points if p.kind == "province"]
    assert len(provinces) == 34 and not event.teams
    assert event.find_point("Phú Thọ").formed_from == ("Phú Thọ", "Vĩnh Phúc", "Hòa Bình")


def _broken(raw: dict, change) -> list[str]:
    data = copy.deepcopy(raw)
    change(data)
    with pytest.raises(EventConfigError) as err:
        parse_event(data, "broken.yaml")
    return err.value.problems


def _set(path: list, value):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


def _delete(path: list):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return change


BROKEN = [
    ("duplicate point id", _set(["points", 5, "id"], "ha-noi"), "points[5].id", "duplicate point id 'ha-noi'"),
    ("unknown parent", _set(["points", 70, "parent"], "vinh-phu"), "points[70].parent", "unknown parent"),
    ("naive datetime", _set(["start"], datetime(2020, 5, 23, 8, 0)), "start", "naive date-time"),
    ("unknown timezone", _set(["timezone"], "Asia/Hanoi_City"), "timezone", "unknown time zone"),
    ("missing channel", _delete(["channels", "fanpage"]), "channels.fanpage", "missing channel"),
    ("offset disagrees with zone", _set(["start"], "2020-05-23T08:00:00+08:00"), "start", "disagrees"),
    ("bad point kind", _set(["points", 3, "kind"], "provice"), "points[3].kind", "not a point kind"),
    ("non-ascii id", _set(["points", 2, "id"], "hà-giang"), "points[2].id", "not a valid id"),
    ("duplicate name by normalised key", _set(["points", 2, "name"], "Hoà Bình"), "points[", "duplicate point name"),
    ("typo in a field", lambda d: d.update(strat=d.pop("start")), "strat", "did you mean 'start'"),
    ("unknown program point", _set(["program_point"], "nowhere"), "program_point", "unknown point"),
    ("bad graph version", _set(["channels", "fanpage", "graph_version"], "25"), "channels.fanpage.graph_version",
     "not a Graph API version"),
    ("district without parent", _delete(["points", 65, "parent"]), "points[65].parent", "needs the id"),
    ("bad outlet email", _set(["channels", "press", "outlets", 0, "email"], "toasoan"),
     "channels.press.outlets[0].email", "not an e-mail"),
]


@pytest.mark.parametrize("label,change,field,phrase", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_variant_names_the_field_and_the_problem(raw_2020, label, change, field, phrase):
    problems = _broken(raw_2020, change)
    assert any(p.startswith(field) and phrase in p for p in problems), problems


def test_every_problem_is_reported_at_once_with_the_file_name(raw_2020):
    data = copy.deepcopy(raw_2020)
    data["timezone"] = "Mars/Olympus"
    data["points"][1]["id"] = "trung-uong"
    with pytest.raises(EventConfigError) as err:
        parse_event(data, "config/bad.yaml")
    assert len(err.value.problems) >= 2
    assert all(line.startswith("config/bad.yaml: ") for line in str(err.value).splitlines())


def test_duplicate_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(EVENT_2020.read_text(encoding="utf-8") + "\ntimezone: UTC\n", encoding="utf-8")
    with pytest.raises(EventConfigError, match="duplicate key 'timezone'"):
        load_event(path)


def test_cli_config_check_exits_nonzero_with_the_messages(tmp_path, raw_2020):
    bad = copy.deepcopy(raw_2020)
    bad["start"] = "2020-05-23T08:00:00"
    bad["points"][10]["parent"] = "nowhere"
    path = tmp_path / "bad-event.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'plugins'}", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "devstack.cli", "config", "check", str(EVENT_2020), str(EVENT_2026)],
                        capture_output=True, text=True, env=env, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert "64 connection points" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "devstack.cli", "config", "check", str(path)],
                            capture_output=True, text=True, env=env, cwd=REPO)
    assert failed.returncode == 1
    assert f"{path}: start: naive date-time" in failed.stderr
    assert f"{path}: points[10].parent: unknown parent 'nowhere'" in failed.stderr
