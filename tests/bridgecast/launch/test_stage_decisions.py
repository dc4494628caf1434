"""The choices the stages make, without a server: a point's go/no-go, the highlight's window in a short
recording, the recap's order, the galleries' tally, the go-live figure and what the summary counts as made."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bridgecast.launch import publications as defs
from bridgecast.launch.live import go_live_record, needs_transcode
from bridgecast.launch.observe import StreamStat
from bridgecast.launch.plan import LaunchPlan, PlanPoint, PlanTeam
from bridgecast.launch.preflight import judge_point, reported
from bridgecast.launch.summary import point_rows, summarize
from bridgecast.launch import wrapup
from bridgecast.launch.wrapup import clip_window, highlight_batches, recap_order, tally_galleries
from bridgecast.ledger import LedgerRow

T0 = datetime(2020, 5, 23, 1, 0, tzinfo=timezone.utc)
PLAN = LaunchPlan("ev", "ev/_launch/event.yaml", "Diễn tập", T0, T0, T0, T0, T0, T0 + timedelta(minutes=3), "trung-uong",
                  (PlanPoint("trung-uong", "Trung ương", "Điểm cầu Trung ương"),
                   PlanPoint("vinh-phuc", "Vĩnh Phúc", "Vĩnh Phúc"), PlanPoint("ha-giang", "Hà Giang", "Hà Giang")),
                  (PlanTeam("tam-dao", "Tam Đảo", "vinh-phuc"),))
POINT = {"id": "vinh-phuc", "name": "Vĩnh Phúc", "display_name": "Vĩnh Phúc"}


def stat(**overrides) -> StreamStat:
    values = dict(name="vinh-phuc", publishing=True, bw_in_kbps=812.4, width=426, height=240, frame_rate=30,
                  video_codec="H264", video_profile="High", audio_codec="AAC", audio_channels=2, audio_rate=48000)
    return StreamStat(**{**values, **overrides})


def test_point_streaming_and_recording_a_conformant_feed_is_go():
    result = judge_point(POINT, {"publishing": True, "recording_bytes": 1000}, stat())
    assert result["go"] and result["conformant"] and result["bitrate_kbps"] == 812 and result["size"] == "426x240"


def test_point_without_a_stream_is_no_go_and_says_why():
    result = judge_point(POINT, {}, None)
    assert not result["go"] and result["problems"] == ["no test stream received by the ingest"]


def test_point_received_but_not_yet_recorded_is_no_go():
    result = judge_point(POINT, {"publishing": True, "recording_bytes": 0}, stat())
    assert not result["go"] and result["problems"] == ["stream received but nothing recorded yet"]


def test_non_conformant_point_is_go_with_the_transcode_cost_noted():
    result = judge_point(POINT, {"publishing": True, "segments": [{}]}, stat(audio_codec="MP3", frame_rate=60))
    assert result["go"] and not result["conformant"]
    assert "will be transcoded" in result["notes"][0] and "60 fps" in result["notes"][0]


def test_an_unknown_program_feed_is_transcoded_and_a_conformant_one_copied():
    assert needs_transcode(None) and needs_transcode(stat(video_codec="HEVC")) and not needs_transcode(stat())


def test_a_check_that_cannot_run_becomes_a_no_go_line():
    def broken():
        raise ValueError("Airflow Connection 'bridgecast_fanpage' has no page_id")

    line = reported(broken, "fanpage channel cannot be built or checked")
    assert line == {"ok": False, "detail": "fanpage channel cannot be built or checked: ValueError: Airflow "
                                           "Connection 'bridgecast_fanpage' has no page_id"}
    assert reported(lambda: {"ok": True, "detail": "fine"}, "unused") == {"ok": True, "detail": "fine"}


def test_highlight_window_in_a_long_recording_starts_at_its_offset():
    assert clip_window(4.0, 10.0, 60.0) == (4.0, 14.0)


def test_a_point_that_streamed_less_than_the_window_gives_its_last_seconds():
    assert clip_window(20.0, 10.0, 25.0) == (15.0, 25.0)
    assert clip_window(3.0, 10.0, 6.0) == (0.0, 6.0)


def test_recap_follows_the_events_point_order_and_skips_points_without_a_highlight():
    highlights = [{"point": "ha-giang"}, None, {"point": "trung-uong"}, {"point": "not-in-plan"}]
    assert [h["point"] for h in recap_order(PLAN, highlights)] == ["trung-uong", "ha-giang"]
    assert recap_order(PLAN, None) == []


def test_highlights_run_as_at_most_eight_tasks_of_consecutive_points():
    points = [{"id": f"p{i:02d}"} for i in range(64)]
    batches = highlight_batches(points)
    assert [len(b) for b in batches] == [8] * 8 and [p for b in batches for p in b] == points
    assert [len(b) for b in highlight_batches(points[:8])] == [1] * 8  # a small event keeps a task per point
    assert [len(b) for b in highlight_batches(points[:9])] == [2, 2, 2, 2, 1]
    assert highlight_batches([]) == []


def test_a_point_whose_highlight_fails_leaves_the_others_of_its_batch_theirs(monkeypatch):
    deadlines = set()

    def fake(inputs, point, *, deadline):
        assert inputs == "read once for the batch"
        deadlines.add(deadline)
        if point["id"] == "bad":
            raise RuntimeError("its recording is broken")
        return {"point": point["id"]}

    monkeypatch.setattr(wrapup.HighlightInputs, "load", classmethod(lambda cls, plan_xcom: "read once for the batch"))
    monkeypatch.setattr(wrapup, "build_highlight", fake)
    made = wrapup.build_highlights({}, [{"id": "a", "name": "A"}, {"id": "bad", "name": "B"}, {"id": "c", "name": "C"}])
    assert made == [{"point": "a"}, None, {"point": "c"}]
    assert len(deadlines) == 1  # one deadline for the batch's waits, not one after another


def test_galleries_tally_each_point_oldest_photo_first_and_keep_the_rejects():
    manifests = [
        {"point_id": "tam-dao", "status": "processed", "sha256": "b", "received_at": "2020-05-23T01:02:00+00:00",
         "renditions": {"web": "w/b", "thumb": "t/b"}, "original_name": "b.jpg"},
        {"point_id": "tam-dao", "status": "processed", "sha256": "a", "received_at": "2020-05-23T01:01:00+00:00",
         "renditions": {"web": "w/a"}, "original_name": "a.jpg"},
        {"point_id": "tam-dao", "status": "quarantined", "sha256": "c", "received_at": "2020-05-23T01:03:00+00:00",
         "original_name": "hong.jpg", "reason": "truncated JPEG"},
        {"point_id": "unknown-team", "status": "received", "sha256": "d", "received_at": "x"},
    ]
    per_point = tally_galleries(manifests, {"tam-dao": "Tam Đảo"})
    tam_dao = per_point["tam-dao"]
    assert (tam_dao["name"], tam_dao["received"], tam_dao["processed"], tam_dao["quarantined"]) == ("Tam Đảo", 3, 2, 1)
    assert [p["sha256"] for p in tam_dao["photos"]] == ["a", "b"] and tam_dao["photos"][0]["thumb"] is None
    assert tam_dao["rejected"] == [{"original_name": "hong.jpg", "reason": "truncated JPEG"}]
    assert per_point["unknown-team"]["name"] == "unknown-team" and per_point["unknown-team"]["processed"] == 0


def test_go_live_figure_is_the_calls_time_against_t0():
    record = go_live_record(T0, T0 + timedelta(milliseconds=4), 0.0012, "LIVE")
    assert record == {"t0": T0.isoformat(), "called_at": (T0 + timedelta(milliseconds=4)).isoformat(),
                      "delta_s": 0.004, "woke_late_s": 0.001, "status": "LIVE"}


def row(channel: str, key: str, status: str = "published") -> LedgerRow:
    return LedgerRow("ev", channel, key, status, "1", f"http://{channel}/1", "h", 1, None, {}, T0, T0, T0)


def test_summary_counts_the_defined_publications_and_names_the_missing_ones():
    rows = [row(d.channel, d.key) for d in (defs.LIVE_VIDEO, defs.PORTAL_ARTICLE, defs.RECAP_VIDEO)]
    rows += [row("press", defs.PRESS_KIT.key, status="unknown"),  # may have gone out: not counted as made
             row("fanpage", "calendar/pre-announce-1")]  # not the launch's
    points = point_rows(PLAN, {}, {}, {}, set())
    summary = summarize(PLAN, points=points, ledger_rows=rows, preflight={}, went_live={"delta_s": 0.004},
                        recap=None, galleries={})
    assert (summary["publications_made"], summary["publications_expected"]) == (3, 4)  # no photos: no photo post
    assert summary["publications_missing"] == [f"press:{defs.PRESS_KIT.key}"]
    assert len(summary["publications"]) == 5 and summary["go_live_delta_s"] == 0.004
    with_photos = summarize(PLAN, points=points, ledger_rows=rows, preflight={}, went_live={}, recap=None,
                            galleries={"selection": [{"sha256": "a"}]})
    assert with_photos["publications_expected"] == 5
    assert f"fanpage:{defs.FANPAGE_PHOTOS.key}" in with_photos["publications_missing"]


def test_summary_rows_mark_no_go_points_and_give_teams_no_preflight():
    live = {"vinh-phuc": {"segments": [{}, {}]}}
    monitor = {"vinh-phuc": {"live_detected_at": T0.isoformat(), "live_detected_after_t0_s": 0.8, "drops": 1}}
    photos = {"tam-dao": {"received": 3, "processed": 2, "quarantined": 1}}
    rows = {r["id"]: r for r in point_rows(PLAN, live, monitor, photos, {"ha-giang"})}
    assert rows["ha-giang"]["preflight"] == "no-go" and rows["vinh-phuc"]["preflight"] == "go"
    assert (rows["vinh-phuc"]["segments"], rows["vinh-phuc"]["drops"], rows["vinh-phuc"]["live_after_t0_s"]) == (2, 1, 0.8)
    assert rows["tam-dao"]["kind"] == "team" and rows["tam-dao"]["preflight"] == "-"
    assert (rows["tam-dao"]["photos_processed"], rows["tam-dao"]["photos_quarantined"]) == (2, 1)
    summary = summarize(PLAN, points=list(rows.values()), ledger_rows=[], preflight={"no_go": ["ha-giang"]},
                        went_live={}, recap=None, galleries={})
    assert summary["points_live"] == 1 and summary["points_total"] == 3 and summary["preflight_no_go"] == ["ha-giang"]
