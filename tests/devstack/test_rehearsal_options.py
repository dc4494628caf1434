"""The rehearsal's options: the suite's 8-point rehearsal defined once, and a gateway kill that would land inside the
preflight's stream checks refused before any stack is touched."""
from __future__ import annotations

import pytest

from devstack.rehearsal import RehearsalOptions


def test_the_suites_rehearsal_is_one_definition_and_faults_are_added_to_it():
    base = RehearsalOptions.for_suite()
    assert (base.points, base.late_point, base.drop_point, base.kill_gateway_before_t0_s) == (8, "ha-giang", "ha-noi",
                                                                                              None)
    faulty = RehearsalOptions.for_suite(kill_program_at_s=30, kill_gateway_before_t0_s=60, preflight_min=2.0)
    assert (faulty.points, faulty.late_point, faulty.event_minutes) == (base.points, base.late_point,
                                                                        base.event_minutes)
    assert (faulty.kill_program_at_s, faulty.kill_gateway_before_t0_s) == (30, 60)


def test_a_gateway_kill_inside_the_preflight_is_refused():
    # preflight at T-75 s waits 30 s for the late point's stream: a kill at T-60 s would fail that check
    with pytest.raises(ValueError, match="falls inside the preflight"):
        RehearsalOptions.for_suite(kill_gateway_before_t0_s=60)
    assert RehearsalOptions(kill_gateway_before_t0_s=60).preflight_min == 2.0  # `./bridgecast rehearsal --kill-gateway`
