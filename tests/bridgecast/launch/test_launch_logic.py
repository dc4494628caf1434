"""The launch's decisions that need no server: which recording covers the highlight, gallery selection,
go/no-go judgement from nginx's /stat, the summary table and the precise wake-up for go-live."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bridgecast.launch.observe import parse_stat
from bridgecast.launch.plan import LaunchPlan
from bridgecast.launch.preflight import go_no_go_table, stream_deviations, transcode_cost_cores
from bridgecast.launch.summary import summary_markdown
from bridgecast.launch.wrapup import segment_start, segments_covering, select_photos
from bridgecast.timing import sleep_until

T0 = datetime(2020, 5, 23, 1, 0, tzinfo=timezone.utc)


def seg(at: datetime, n: int = 0) -> dict:
    return {"key": f"k{n}", "file": f"vinh-phuc-{int(at.timestamp())}-{at:%Y%m%dT%H%M%S}.flv"}


def test_segment_start_comes_from_nginx_file_name():
    assert segment_start(seg(T0)) == T0


def test_highlight_window_inside_one_segment():
    segments = [seg(T0 - timedelta(minutes=10), 0), seg(T0 - timedelta(minutes=5), 1), seg(T0 + timedelta(minutes=5), 2)]
    chosen = segments_covering(segments, T0, T0 + timedelta(seconds=10))
    assert [s["key"] for s in chosen] == ["k1"]


def test_highlight_window_across_a_segment_boundary():
    segments = [seg(T0 - timedelta(minutes=5), 0), seg(T0 + timedelta(seconds=5), 1)]
    chosen = segments_covering(segments, T0, T0 + timedelta(seconds=10))
    assert [s["key"] for s in chosen] == ["k0", "k1"]


def test_point_that_came_back_after_the_window_uses_its_first_later_segment():
    # dropped before T0 (its last segment started long ago), reconnected later
    segments = [seg(T0 + timedelta(minutes=2), 1)]
    assert [s["key"] for s in segments_covering(segments, T0, T0 + timedelta(seconds=10))] == ["k1"]


def test_gallery_selection_takes_turns_between_points():
    per_point = {
        "tam-dao": {"name": "Tam Đảo", "photos": [{"sha256": f"a{i}", "web": f"a{i}", "received_at": str(i)}
                                                  for i in range(8)]},
        "song-lo": {"name": "Sông Lô", "photos": [{"sha256": "b0", "web": "b0", "received_at": "0"}]},
        "yen-lac": {"name": "Yên Lạc", "photos": []},
    }
    chosen = select_photos(per_point, 4)
    assert [p["sha256"] for p in chosen] == ["b0", "a0", "a1", "a2"]
    assert {p["name"] for p in chosen} == {"Tam Đảo", "Sông Lô"}


STAT = """<rtmp><server><application><name>live</name><live>
<stream><name>vinh-phuc</name><bw_in>812000</bw_in><publishing/><meta>
<video><width>426</width><height>240</height><frame_rate>30</frame_rate><codec>H264</codec><profile>High</profile></video>
<audio><codec>AAC</codec><channels>2</channels><sample_rate>48000</sample_rate></audio></meta></stream>
<stream><name>ha-noi</name><bw_in>2500000</bw_in><publishing/><meta>
<video><width>1920</width><height>1080</height><frame_rate>60</frame_rate><codec>H264</codec></video>
<audio><codec>MP3</codec><channels>1</channels><sample_rate>44100</sample_rate></audio></meta></stream>
</live></application></server></rtmp>"""


def test_stat_parsing_and_conformance_judgement():
    streams = parse_stat(STAT)
    assert streams["vinh-phuc"].publishing and streams["vinh-phuc"].bw_in_kbps == 812
    assert stream_deviations(streams["vinh-phuc"]) == []
    problems = stream_deviations(streams["ha-noi"])
    assert any("AAC" in p for p in problems) and any("60 fps" in p for p in problems)
    assert any("stereo" in p for p in problems)
    assert transcode_cost_cores(streams["ha-noi"]) > 1  # 1080p60 costs more than one 720p30 encode


def test_go_no_go_table_names_the_failing_point_and_keeps_the_others():
    plan = LaunchPlan("ev", "ev/_launch/event.yaml", "Diễn tập", T0, T0, T0, T0, T0, T0, "trung-uong", (), ())
    results = [
        {"point": "vinh-phuc", "name": "Vĩnh Phúc", "go": True, "receiving": True, "recording": True,
         "conformant": True, "bitrate_kbps": 800, "problems": [], "notes": []},
        {"point": "ha-giang", "name": "Hà Giang", "go": False, "receiving": False, "recording": False,
         "conformant": False, "bitrate_kbps": None, "problems": ["no test stream received by the ingest"],
         "notes": []},
    ]
    table, summary = go_no_go_table(plan, results, {"portal": {"ok": True, "detail": "auth ok"}})
    assert summary["no_go"] == ["ha-giang"] and summary["points_go"] == 1
    assert "❌ NO-GO" in table and "Hà Giang" in table and "no test stream" in table


def test_summary_markdown_lists_points_and_publications():
    text = summary_markdown({
        "title": "Diễn tập", "t0": T0.isoformat(), "go_live_delta_s": 0.004, "points_live": 1, "points_total": 1,
        "preflight_no_go": [], "publications_made": 1, "publications_expected": 1, "publications_missing": [],
        "points": [{"name": "Vĩnh Phúc", "preflight": "go", "live_after_t0_s": 0.8, "drops": 0, "segments": 2,
                    "photos_received": 3, "photos_processed": 2, "photos_quarantined": 1}],
        "publications": [{"channel": "portal", "key": "launch/portal-article", "status": "published",
                          "url": "http://portal/bai-viet/"}]})
    assert "| Vĩnh Phúc | go | 0.8 | 0 | 2 | 3/2/1 |" in text
    assert "http://portal/bai-viet/" in text and "0.004 s" in text


def test_sleep_until_never_wakes_early_and_reports_its_lateness():
    target = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    late = sleep_until(target)
    woke = datetime.now(timezone.utc)
    assert woke >= target and 0 <= late <= (woke - target).total_seconds()
    assert sleep_until(datetime.now(timezone.utc) - timedelta(seconds=1)) >= 1  # already past: returns at once
