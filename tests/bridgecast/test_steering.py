"""Steering the launch (go live now, postpone T0, switch the program point, end early): the decisions, their
audit trail (create-only entries, as S3 keeps them with If-None-Match), and the plan the tasks then work on."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridgecast import steering
from bridgecast.event import load_event
from bridgecast.launch.plan import LaunchPlan
from bridgecast.steering import Steering, SteeringRefused, Times, decide

REPO = Path(__file__).resolve().parents[2]
EVENT = load_event(REPO / "config" / "event.yaml")
PLANNED = Times(EVENT.start, EVENT.end, EVENT.program_point)
POINTS = {p.id: p.display_name for p in EVENT.connection_points}


def at(minutes_from_t0: float) -> datetime:
    return EVENT.start + timedelta(minutes=minutes_from_t0)


def test_postpone_moves_t0_and_the_end_together_and_says_so_in_vietnam_time():
    after, said = decide(Steering(), PLANNED, "postpone", now=at(-10), streaming_points=POINTS, minutes=15)
    assert after.t0 == EVENT.start + timedelta(minutes=15) and after.end_at == EVENT.end + timedelta(minutes=15)
    assert after.revision == 1 and said == "Lùi giờ G 15 phút: từ 08:00:00 sang 08:15:00"
    again, _ = decide(after, PLANNED, "postpone", now=at(-1), streaming_points=POINTS, minutes=5)
    assert again.t0 == EVENT.start + timedelta(minutes=20) and again.revision == 2


def test_go_live_now_brings_t0_to_now_and_keeps_the_length_of_the_event():
    now = at(-3)
    after, said = decide(Steering(), PLANNED, "go_live_now", now=now, streaming_points=POINTS)
    assert after.t0 == now and after.end_at - after.t0 == EVENT.end - EVENT.start
    assert "07:57:00" in said


def test_switch_program_takes_a_streaming_point_of_the_event_only():
    after, said = decide(Steering(), PLANNED, "switch_program", now=at(5), streaming_points=POINTS,
                         point="vinh-phuc")
    assert after.program_point == "vinh-phuc" and "Vĩnh Phúc" in said
    with pytest.raises(SteeringRefused, match="không có trong sự kiện"):
        decide(Steering(), PLANNED, "switch_program", now=at(5), streaming_points=POINTS, point="hack")
    with pytest.raises(SteeringRefused, match="đang là điểm cầu chương trình"):
        decide(Steering(), PLANNED, "switch_program", now=at(5), streaming_points=POINTS, point="trung-uong")


def test_end_early_only_once_live_and_nothing_after_the_end():
    after, _ = decide(Steering(), PLANNED, "end_early", now=at(30), streaming_points=POINTS)
    assert after.end_at == at(30) and after.t0 is None
    with pytest.raises(SteeringRefused, match="Chưa đến giờ G"):
        decide(Steering(), PLANNED, "end_early", now=at(-1), streaming_points=POINTS)
    with pytest.raises(SteeringRefused, match="đã kết thúc"):
        decide(after, PLANNED, "postpone", now=at(31), streaming_points=POINTS, minutes=5)


@pytest.mark.parametrize("minutes", [None, 0, -5, 121])
def test_a_postpone_needs_a_sensible_number_of_minutes(minutes):
    with pytest.raises(SteeringRefused, match="Số phút"):
        decide(Steering(), PLANNED, "postpone", now=at(-10), streaming_points=POINTS, minutes=minutes)


def test_nothing_moves_t0_once_it_has_passed_and_unknown_actions_are_refused():
    for action in ("go_live_now", "postpone"):
        with pytest.raises(SteeringRefused, match="Đã qua giờ G"):
            decide(Steering(), PLANNED, action, now=at(1), streaming_points=POINTS, minutes=5)
    with pytest.raises(SteeringRefused, match="Không có lệnh"):
        decide(Steering(), PLANNED, "rm -rf", now=at(1), streaming_points=POINTS)


def test_the_plan_in_force_moves_every_later_stage_with_t0_and_applying_twice_changes_nothing():
    plan = LaunchPlan.for_event(EVENT, "k")
    record, _ = decide(Steering(), PLANNED, "postpone", now=at(-90), streaming_points=POINTS, minutes=10)
    steered = plan.steered(record)
    for name in ("t0", "preflight_at", "live_setup_at", "final_check_at", "golive_wake_at", "end_at"):
        assert getattr(steered, name) - getattr(plan, name) == timedelta(minutes=10), name
    assert steered.steered(record) == steered
    record, _ = decide(record, PLANNED, "switch_program", now=at(20), streaming_points=POINTS, point="ha-noi")
    record, _ = decide(record, PLANNED, "end_early", now=at(30), streaming_points=POINTS)
    final = plan.steered(record)
    assert final.program_point == "ha-noi" and final.end_at == at(30) and final.t0 == at(10)


def test_the_record_survives_its_json_round_trip():
    record = Steering(3, at(5), at(60), "ha-noi")
    assert Steering.from_json(record.to_json()) == record
    assert Steering.from_json({}) == Steering()


def test_each_decision_is_a_numbered_entry_with_who_and_two_at_once_cannot_both_win(memory_storage):
    storage, now = memory_storage, at(-10)
    before = steering.load(storage, EVENT.id)
    after, said = decide(before, PLANNED, "postpone", now=now, streaming_points=POINTS, minutes=5)
    entry = steering.record(storage, EVENT.id, before, after, action="postpone", said=said, by="operator", now=now)
    assert entry["by"] == "operator" and entry["label"] == "Lùi giờ G" and entry["revision"] == 1
    assert steering.load(storage, EVENT.id) == after
    rival, rival_said = decide(before, PLANNED, "go_live_now", now=now, streaming_points=POINTS)
    with pytest.raises(SteeringRefused, match="cùng lúc"):  # decided on the record before the first decision
        steering.record(storage, EVENT.id, before, rival, action="go_live_now", said=rival_said, by="admin",
                        now=now)
    assert steering.load(storage, EVENT.id) == after
    assert [e["said"] for e in steering.audit_log(storage, EVENT.id)] == [said]
    assert datetime.fromisoformat(entry["at"]).tzinfo == timezone.utc


def test_the_story_tells_the_t0_that_was_when_it_was_moved():
    from bridgecast.launch import publications as defs

    told = defs.story(EVENT, points_live=["trung-uong"], teams_with_photos=[], photos_processed=0,
                      started_at=at(15))
    assert "lúc 08:15" in told and "lúc 08:00" not in told
    assert "lúc 08:00" in defs.story(EVENT, points_live=["trung-uong"], teams_with_photos=[], photos_processed=0)
