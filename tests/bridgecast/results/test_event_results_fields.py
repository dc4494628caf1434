"""The event fields the results need: the month of action (`campaign_end`), the staff list, placeholder targets —
validated with messages that name the field."""
from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import pytest
import yaml

from bridgecast.event import EventConfigError, load_event, parse_event

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((REPO / "config" / "event.yaml").read_text(encoding="utf-8"))


def problems(raw: dict, change) -> list[str]:
    data = copy.deepcopy(raw)
    change(data)
    with pytest.raises(EventConfigError) as err:
        parse_event(data, "x.yaml")
    return err.value.problems


def test_the_2020_event_has_its_month_of_action_staff_and_a_marked_placeholder_plan():
    event = load_event(REPO / "config" / "event.yaml")
    assert (event.campaign_start, event.campaign_last_day) == (date(2020, 5, 23), date(2020, 6, 22))
    assert len(event.staff) == 3 and all("@" in m.email for m in event.staff)
    assert event.targets["annual_plan_new_voluntary_participants"] == 4000
    assert event.placeholder_targets == ("annual_plan_new_voluntary_participants",)
    example = load_event(REPO / "config" / "examples" / "event-2026-34-provinces.yaml")
    assert example.campaign_last_day == date(2027, 1, 14) and example.staff


def test_without_campaign_end_the_month_runs_30_days_after_the_launch(raw):
    data = copy.deepcopy(raw)
    del data["campaign_end"]
    data["start"] = "2026-12-15T08:00:00+07:00"  # what a rehearsal does: its own T0, no campaign_end
    assert parse_event(data).campaign_last_day == date(2027, 1, 14)


@pytest.mark.parametrize("change,field,phrase", [
    (lambda d: d.update(campaign_end=date(2020, 5, 1)), "campaign_end", "is before the launch day 2020-05-23"),
    (lambda d: d.update(campaign_end="cuối tháng 6"), "campaign_end", "must be a date like 2020-06-22"),
    (lambda d: d["staff"][1].update(email="bangiamdoc"), "staff[1].email", "not an e-mail address"),
    (lambda d: d["staff"].append(dict(d["staff"][0])), "staff[3].email", "listed twice (also staff[0])"),
    (lambda d: d["targets"].update(annual_plan_new_voluntary_participants={"value": 4000, "placeholder": "có"}),
     "targets.annual_plan_new_voluntary_participants.placeholder", "must be true or false"),
    (lambda d: d["targets"].update(annual_plan_new_voluntary_participants={"valeu": 4000}),
     "targets.annual_plan_new_voluntary_participants.valeu", "did you mean 'value'"),
])
def test_bad_results_fields_name_the_field(raw, change, field, phrase):
    found = problems(raw, change)
    assert any(p.startswith(field) and phrase in p for p in found), found
