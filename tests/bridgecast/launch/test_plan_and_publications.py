"""The typed launch plan (what crosses tasks as XCom) and the launch's publication definitions (what the ledger,
the summary and the rehearsal count by), on the real 2020 event file."""
from __future__ import annotations

import dataclasses
import json
import unicodedata
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from bridgecast.channels.factory import CHANNEL_NAMES
from bridgecast.event import load_event
from bridgecast.launch import publications as defs
from bridgecast.launch.plan import GO_LIVE_WAKE_EARLY_S, LaunchPlan

REPO = Path(__file__).resolve().parents[3]
EVENT = load_event(REPO / "config" / "event.yaml")
DAG_FILE = REPO / "dags" / "bridgecast_launch.py"


def plan() -> LaunchPlan:
    return LaunchPlan.for_event(EVENT, "bhxh-vinhphuc-2020/_launch/event.yaml")


def test_plan_survives_the_xcom_round_trip_as_a_small_json_dict():
    xcom = plan().to_xcom()
    assert LaunchPlan.from_xcom(json.loads(json.dumps(xcom, ensure_ascii=False))) == plan()
    assert len(json.dumps(xcom)) < 16_000  # 64 points and 9 teams: well inside a small XCom
    assert [p["id"] for p in xcom["points"]] == [p.id for p in EVENT.connection_points]


def test_plan_stage_times_come_from_t0_and_the_event_stages():
    p = plan()
    assert p.t0 == EVENT.start and p.t0.tzinfo is not None
    assert p.t0 - p.preflight_at == timedelta(minutes=60) and p.t0 - p.live_setup_at == timedelta(minutes=30)
    assert p.t0 - p.golive_wake_at == timedelta(seconds=GO_LIVE_WAKE_EARLY_S)
    assert p.end_at == EVENT.end and p.program_point == "trung-uong"
    assert len(p.points) == 64 and len(p.teams) == 9 and {t.parent for t in p.teams} == {"vinh-phuc"}


def test_every_stage_the_dag_waits_for_is_an_aware_iso_time_in_the_xcom():
    from bridgecast.steering import STAGE_WAITS

    dag_file = DAG_FILE.read_text()
    assert all(f'wait_until("{task_id}"' in dag_file for task_id in STAGE_WAITS)  # the DAG's waits are these
    xcom = plan().to_xcom()
    for field in STAGE_WAITS.values():
        assert getattr(LaunchPlan.from_xcom(xcom), field).isoformat() == xcom[field]
        assert xcom[field].endswith("+00:00")


def test_a_naive_time_in_the_xcom_is_refused_with_its_value_named():
    xcom = plan().to_xcom() | {"t0": "2020-05-23T01:00:00"}
    with pytest.raises(ValueError, match="2020-05-23T01:00:00"):
        LaunchPlan.from_xcom(xcom)


def test_plan_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan().t0 = plan().t0 + timedelta(minutes=1)


def test_artifacts_live_under_the_events_launch_folder():
    assert plan().artifact_key("summary.md") == "bhxh-vinhphuc-2020/_launch/summary.md"


# --- publications --------------------------------------------------------------------------------------------
def test_each_publication_has_its_own_ledger_key_and_label_and_goes_to_a_channel_of_the_event():
    assert len({d.key for d in defs.ALL}) == len({d.label for d in defs.ALL}) == len(defs.ALL) == 5
    assert {d.channel for d in defs.ALL} <= set(CHANNEL_NAMES)
    assert all(d.key.startswith("launch/") for d in defs.ALL)


def test_titles_are_built_from_the_event_in_nfc_vietnamese():
    titles = {d.label: d.title(EVENT) for d in defs.ALL}
    assert titles["fanpage:live-video"] == "TRỰC TIẾP: Lễ ra quân Tháng vận động BHXH toàn dân 2020"
    assert titles["portal:article"] == "Lễ ra quân Tháng vận động BHXH toàn dân 2020: đồng loạt phát động tại các điểm cầu"
    assert titles["press:press-kit"] == "[Thông cáo báo chí] Lễ ra quân Tháng vận động BHXH toàn dân 2020"
    assert all(unicodedata.is_normalized("NFC", t) for t in titles.values())


def test_the_photo_post_is_expected_only_when_teams_sent_usable_photos():
    assert defs.FANPAGE_PHOTOS in defs.expected(photos=True) and len(defs.expected(photos=True)) == 5
    assert defs.expected(photos=False) == tuple(d for d in defs.ALL if d is not defs.FANPAGE_PHOTOS)


def test_live_video_publication_starts_at_t0_and_describes_the_event():
    pub = defs.live_video(EVENT)
    assert (pub.key, pub.kind, pub.title) == (defs.LIVE_VIDEO.key, "live", defs.live_video_title(EVENT))
    assert pub.publish_at == EVENT.start and pub.publish_at.tzinfo is not None
    assert EVENT.theme in pub.body and all(f"• {m}" in pub.body for m in EVENT.messages)


def test_rebuilding_a_publication_gives_the_same_payload_so_a_rerun_is_not_an_update():
    assert defs.live_video(EVENT).payload_hash() == defs.live_video(EVENT).payload_hash()
    later = dataclasses.replace(EVENT, start=EVENT.start + timedelta(minutes=5))
    assert defs.live_video(later).payload_hash() != defs.live_video(EVENT).payload_hash()


def test_story_counts_the_points_that_went_live_not_the_plan():
    live = [p.id for p in EVENT.connection_points][:-3]  # 3 points never went live
    teams = [t.id for t in EVENT.teams]
    text = defs.story(EVENT, points_live=live, teams_with_photos=teams, photos_processed=27, recap_points=60)
    assert "trung ương và 60 điểm cầu các tỉnh, thành phố; 60 điểm cầu có hình ảnh trong video tổng hợp." in text
    assert "63 điểm cầu" not in text and "64" not in text
    assert "Tại tỉnh Vĩnh Phúc, 9 đội tuyên truyền lưu động" in text and "gửi về 27 ảnh hoạt động" in text
    assert "Sáng 23/05/2020, lúc 08:00" in text  # the local time, not UTC
    assert str(len(EVENT.connection_points)) not in defs.article_title(EVENT)  # no planned count in the title


def test_story_names_only_the_teams_that_sent_photos():
    two = [t.id for t in EVENT.teams][:2]
    text = defs.story(EVENT, points_live=[EVENT.program_point], teams_with_photos=two, photos_processed=4)
    assert "2 đội tuyên truyền" in text and "4 ảnh" in text and "tại điểm cầu trung ương" in text
    quiet = defs.story(EVENT, points_live=[], teams_with_photos=[], photos_processed=0)
    assert "video tổng hợp" not in quiet and "ảnh hoạt động" not in quiet and "đội tuyên truyền" not in quiet


def test_story_says_thanh_pho_for_teams_of_a_city_province():
    hai_phong = next(p for p in EVENT.points if p.id == "hai-phong")
    points = [p for p in EVENT.points if p.kind != "district"]
    team = dataclasses.replace(EVENT.teams[0], parent=hai_phong.id)
    event = dataclasses.replace(EVENT, points=tuple(points + [team]))
    assert "Tại thành phố Hải Phòng, 1 đội tuyên truyền" in defs.story(
        event, points_live=[], teams_with_photos=[team.id], photos_processed=1)


def test_press_kit_goes_to_every_outlet_with_the_article_link():
    pub = defs.press_kit(EVENT, "Nội dung", (("Ảnh 1 — Tam Đảo", "http://s3/a.jpg"),), "http://portal/bai-viet/")
    assert pub.recipients == tuple(o.email for o in EVENT.channels.press.outlets) and len(pub.recipients) == 3
    assert pub.link == "http://portal/bai-viet/" and pub.kind == "email"


def test_photos_post_carries_the_theme_and_hashtags_and_the_portal_article_its_categories():
    post = defs.photos_post(EVENT, ())
    assert post.body == f"{EVENT.theme}\n\n#BHXHToànDân #BHXHTựNguyện"
    article = defs.portal_article(EVENT, "Nội dung", (), None)
    assert article.categories == ("Tin hoạt động",) and article.excerpt == EVENT.theme
    assert defs.GALLERY_SELECTION == 12 and defs.FANPAGE_PHOTOS.max_photos == 10


def test_times_in_the_plan_are_utc():
    assert all(getattr(plan(), f).utcoffset() == timezone.utc.utcoffset(None)
               for f in ("t0", "preflight_at", "live_setup_at", "golive_wake_at", "end_at"))
