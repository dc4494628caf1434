"""The «Kết quả vận động» panel, assembled from a numbers.json made by the results feature itself (its real shape),
and its two other states: no report yet, and S3 unreadable."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from bridgecast.board.assemble import Facts, assemble
from bridgecast.event import default_event_path, load_event
from bridgecast.objects import report_key
from bridgecast.results.numbers import build_numbers
from bridgecast.results.store import SignupStore, record_team_report

EVENT = load_event(default_event_path())
DAY = EVENT.campaign_start
TEAMS = [p.id for p in EVENT.points if p.kind == "district"]


@pytest.fixture
def numbers_json(tmp_path) -> dict:
    """numbers.json as bridgecast_report writes it: the first team reached 50 over two days, the second has 12."""
    store = SignupStore(f"sqlite:///{tmp_path / 'signups.sqlite'}")
    first, second = TEAMS[0], TEAMS[1]
    for district, day, count in ((first, DAY, 30), (first, DAY.replace(day=DAY.day + 1), 25), (second, DAY, 12)):
        record_team_report(EVENT.id, district, day, count, None, f"team_page:{district}", event=EVENT, store=store,
                           today=date(2020, 6, 25))
    numbers = build_numbers(EVENT, DAY.replace(day=DAY.day + 1), current=store.current(EVENT.id),
                            history=store.history(EVENT.id), launch_summary=None, manifests=[], ledger_rows=[],
                            reach={}, generated_at=datetime(2020, 5, 24, 12, tzinfo=timezone.utc))
    return json.loads(json.dumps(numbers))  # what the board reads back from S3


def board_with(report) -> dict:
    return assemble(Facts(event=EVENT, now=EVENT.start, live={}, streams={}, manifests=[], publications=[],
                          report=report))


def test_the_panel_shows_each_district_against_the_target_and_the_province_against_the_plan(numbers_json):
    day = numbers_json["as_of"]
    latest = {"day": day, "html_key": report_key(EVENT.id, date.fromisoformat(day), "report.html"),
              "pdf_key": report_key(EVENT.id, date.fromisoformat(day), "report.pdf"), "numbers_key": "n"}
    panel = board_with({"latest": latest, "numbers": numbers_json})["results"]
    assert panel["state"] == "ready"
    assert panel["day"] == day and panel["day_local"] == date.fromisoformat(day).strftime("%d/%m/%Y")
    by_id = {d["id"]: d for d in panel["districts"]}
    assert len(by_id) == len(TEAMS)
    assert by_id[TEAMS[0]]["total"] == 55 and by_id[TEAMS[0]]["reached"] and by_id[TEAMS[0]]["target"] >= 50
    assert by_id[TEAMS[1]]["total"] == 12 and not by_id[TEAMS[1]]["reached"]
    assert by_id[TEAMS[1]]["missing"] == by_id[TEAMS[1]]["target"] - 12
    assert by_id[TEAMS[2]]["total"] == 0
    assert panel["total"] == 67 and panel["units_reached"] == 1 and panel["units_total"] == len(TEAMS)
    assert panel["plan_6m"] == numbers_json["signups"]["plan_6m"]
    if panel["plan_6m"]:
        assert panel["plan_missing"] == panel["plan_6m"] - 67
    # the links go through the board's own authenticated route, never to S3
    assert panel["links"] == {"html": f"../api/report/html?event={EVENT.id}",
                              "pdf": f"../api/report/pdf?event={EVENT.id}"}
    assert not any("s3" in link or "X-Amz" in link for link in panel["links"].values())


def test_before_the_first_report_the_panel_says_there_is_none():
    panel = board_with({"latest": None, "numbers": None})["results"]
    assert panel == {"state": "none", "text": "Chưa có báo cáo."}


def test_an_unreadable_store_is_shown_as_unknown_not_as_no_report():
    panel = board_with(None)["results"]
    assert panel["state"] == "unknown" and "Không đọc được" in panel["text"]
