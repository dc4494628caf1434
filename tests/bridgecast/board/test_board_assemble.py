"""The board's rows, counters and alerts, assembled from the facts its sources read (no I/O)."""
from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta, timezone

import pytest

from bridgecast.board.assemble import Facts, assemble
from bridgecast.board.sources import Stream
from bridgecast.event import default_event_path, load_event

EVENT = load_event(default_event_path())
T0 = EVENT.start


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seen(point: str, *, publishing: bool, first: float | None = 0, since: float | None = 0, done: float | None = None,
         sessions: int = 1, segments: int = 0, pending: int = 0) -> dict:
    iso = lambda s: at(s).isoformat() if s is not None else None  # noqa: E731
    return {"event_id": EVENT.id, "point_id": point, "publishing": publishing, "first_live_at": iso(first),
            "live_since": iso(since), "last_done_at": iso(done), "sessions": sessions,
            "segments": [{"key": f"k{i}"} for i in range(segments)], "segments_pending": pending}


def stream(name: str, kbps: float = 2500, fps: float = 30) -> Stream:
    return Stream(name=name, publishing=True, bitrate_kbps=kbps, fps=fps, width=1280, height=720)


def facts(now: datetime, **kw) -> Facts:
    base = dict(live={}, streams={}, manifests=[], publications=[])
    return Facts(event=EVENT, now=now, **{**base, **kw})


def row(board: dict, point: str) -> dict:
    return next(r for r in board["points"] if r["id"] == point)


def texts(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from texts(v)
    elif isinstance(value, str):
        yield value


def test_one_row_per_point_central_first_then_provinces_then_the_teams():
    board = assemble(facts(at(-600)))
    kinds = [r["kind"] for r in board["points"]]
    assert len(board["points"]) == 73 == len(EVENT.points)
    assert kinds == ["central"] + ["province"] * 63 + ["district"] * 9
    assert board["points"][0]["display_name"].startswith("Điểm cầu Trung ương")
    assert board["counters"]["points_planned"] == 64 and board["counters"]["teams"] == 9
    assert board["phase"] == "before"


def test_live_back_dropped_ended_waiting_and_missing_are_told_apart():
    live = {"ha-noi": seen("ha-noi", publishing=True, since=2),
            "hai-phong": seen("hai-phong", publishing=True, first=1, since=40, done=30, sessions=2),
            "ha-giang": seen("ha-giang", publishing=False, first=1, since=1, done=25)}
    board = assemble(facts(at(60), live=live, streams={"ha-noi": stream("ha-noi")}))
    assert row(board, "ha-noi")["live"]["state"] == "live"
    assert row(board, "ha-noi")["live"]["detail"] == "từ 08:00:02"
    back = row(board, "hai-phong")["live"]
    assert back["state"] == "back" and back["detail"] == "vào lại lúc 08:00:40 (mất lúc 08:00:30, 1 lần)"
    assert row(board, "ha-giang")["live"]["state"] == "dropped"
    assert row(board, "cao-bang")["live"]["state"] == "missing"  # after T0, never seen
    assert row(board, "vinh-yen")["live"]["state"] == "none"  # a district team uploads, it does not stream
    assert board["counters"]["points_live"] == 2 and board["counters"]["points_went_live"] == 3
    alerts = [a["text"] for a in board["alerts"]]
    assert "Hà Giang mất tín hiệu lúc 08:00:25" in alerts
    assert "Hải Phòng đã vào lại lúc 08:00:40" in alerts
    assert any(a.startswith("61 điểm cầu chưa lên sóng sau giờ G: ") and "và 53 điểm khác" in a for a in alerts)
    before = assemble(facts(at(-60), live={}))
    assert row(before, "cao-bang")["live"]["state"] == "waiting"
    assert not any("chưa lên sóng" in a["text"] for a in before["alerts"])


def test_a_feed_stopping_with_the_end_of_the_event_is_not_a_drop():
    end = (EVENT.end - T0).total_seconds()
    live = {"ha-noi": seen("ha-noi", publishing=False, done=end + 1),
            "ha-giang": seen("ha-giang", publishing=False, done=end - 600)}
    board = assemble(facts(at(end + 30), live=live))
    assert row(board, "ha-noi")["live"]["state"] == "ended"
    assert row(board, "ha-giang")["live"]["state"] == "dropped"
    assert [a["point"] for a in board["alerts"] if "mất tín hiệu" in a["text"]] == ["ha-giang"]
    assert board["phase"] == "ended"


def test_bitrate_fps_and_segments_come_with_the_row_and_a_silent_publisher_is_flagged():
    live = {"ha-noi": seen("ha-noi", publishing=True, segments=3, pending=1),
            "ha-giang": seen("ha-giang", publishing=True),
            "cao-bang": seen("cao-bang", publishing=True, since=55)}
    streams = {"ha-noi": stream("ha-noi", 2490.6, 30), "ha-giang": stream("ha-giang", 0),
               "cao-bang": stream("cao-bang", 0)}
    board = assemble(facts(at(60), live=live, streams=streams))
    assert row(board, "ha-noi")["stream"] == {"bitrate_kbps": 2491, "fps": 30, "size": "1280×720"}
    assert row(board, "ha-noi")["segments"] == {"stored": 3, "pending": 1}
    assert any(a["text"] == "Hà Giang: đang kết nối nhưng không có dữ liệu (0 kb/s)" for a in board["alerts"])
    # connected 5 s ago: nginx has not measured it yet — not a silent publisher
    assert row(board, "cao-bang")["stream"]["bitrate_kbps"] is None
    assert not any(a["point"] == "cao-bang" for a in board["alerts"])


def test_an_unreadable_gateway_shows_unknown_never_dropped_and_says_which_source():
    board = assemble(facts(at(30), live=None, errors={"gateway": "ingest gateway http://x: ConnectionError"}))
    assert {r["live"]["state"] for r in board["points"] if r["streams"]} == {"unknown"}
    assert board["counters"]["points_live"] is None
    assert board["alerts"][0]["text"].startswith("Không đọc được cổng tiếp nhận (ingest): ")
    assert board["sources"]["gateway"] != "ok" and board["sources"]["storage"] == "ok"


def test_preflight_verdicts_in_vietnamese_with_no_go_points_and_channels_alerted():
    preflight = {"points": [
        {"point": "ha-noi", "go": True, "problems": [], "notes": []},
        {"point": "ha-giang", "go": False, "problems": ["no test stream received by the ingest"], "notes": []},
        {"point": "cao-bang", "go": True, "problems": [],
         "notes": ["will be transcoded (~0.7 CPU cores): audio codec MP3 (need AAC)"]}],
        "channels": {"fanpage": {"ok": False, "detail": "token expired"}, "portal": {"ok": True, "detail": "ok"}}}
    board = assemble(facts(at(-1800), preflight=preflight))
    assert row(board, "ha-noi")["preflight"]["label"] == "Đạt"
    assert row(board, "ha-giang")["preflight"] == {"verdict": "no-go", "label": "Không đạt",
                                                    "detail": "không nhận được tín hiệu thử"}
    assert row(board, "cao-bang")["preflight"]["detail"] == "sẽ chuyển mã khi phát"
    assert row(board, "bac-kan")["preflight"]["verdict"] == "pending"  # not in the table
    assert row(board, "vinh-yen")["preflight"]["verdict"] == "none"
    alerts = [a["text"] for a in board["alerts"]]
    assert "Hà Giang: không đạt kiểm tra trước giờ G (không nhận được tín hiệu thử)" in alerts
    assert "Kiểm tra trước giờ G — Fanpage không đạt: token expired" in alerts
    assert board["counters"]["points_no_go"] == 1
    assert row(assemble(facts(at(-4000))), "ha-noi")["preflight"]["label"] == "Chưa kiểm tra"


def test_photos_received_processed_and_quarantined_per_team_and_in_total():
    manifests = [{"point_id": "vinh-yen", "kind": "photo", "status": s} for s in
                 ("processed", "processed", "received", "quarantined")]
    manifests += [{"point_id": "tam-dao", "kind": "photo", "status": "processed"},
                  {"point_id": "tam-dao", "kind": "video", "status": "processed"},
                  {"point_id": "ha-noi", "kind": "recording", "status": "processed"}]
    board = assemble(facts(at(100), manifests=manifests))
    assert row(board, "vinh-yen")["photos"] == {"received": 4, "processed": 2, "quarantined": 1, "videos": 0}
    assert row(board, "tam-dao")["photos"] == {"received": 1, "processed": 1, "quarantined": 0, "videos": 1}
    assert row(board, "ha-noi")["photos"]["received"] == 0  # its recordings are segments, not photos
    assert board["counters"]["photos"] == {"received": 5, "processed": 3, "quarantined": 1}
    assert board["counters"]["teams_with_photos"] == 2


def test_publications_link_to_the_points_they_show_and_failures_are_alerted():
    pubs = [{"channel": "portal", "key": "launch/portal-article", "status": "published", "url": "https://p/1",
             "at": at(7300).isoformat(), "media_points": []},
            {"channel": "fanpage", "key": "calendar/anh-tam-dao", "status": "published", "url": "https://f/2",
             "at": at(900).isoformat(), "media_points": ["tam-dao", "vinh-yen"]},
            {"channel": "fanpage", "key": "launch/fanpage-photos", "status": "unknown", "url": None,
             "at": at(7400).isoformat(), "media_points": []},
            {"channel": "press", "key": "launch/press-kit", "status": "failed", "url": None, "error": "SMTP 550",
             "at": at(7500).isoformat(), "media_points": []}]
    board = assemble(facts(at(7600), publications=pubs))
    links = row(board, "tam-dao")["publications"]
    assert [(p["channel_label"], p["url"]) for p in links] == [("Fanpage", "https://f/2")]
    assert row(board, "ha-noi")["publications"] == []
    assert [p["label"] for p in board["publications"]] == ["Bài viết tổng hợp", "calendar/anh-tam-dao", "Bài ảnh",
                                                           "Thông cáo báo chí"]
    assert board["counters"]["publications"] == {"total": 4, "published": 2, "pending": 0, "failed": 1, "unknown": 1}
    alerts = [a["text"] for a in board["alerts"] if a["at"]]
    assert alerts[0] == "Đăng bài lỗi: Báo chí — Thông cáo báo chí (SMTP 550)"  # newest first
    assert alerts[1].startswith("Không rõ đã đăng hay chưa: Fanpage — Bài ảnh — cần đối soát")


def test_thumbnails_are_versioned_shown_for_streams_and_greyed_once_the_stream_is_gone():
    shot = at(42)
    live = {"ha-noi": seen("ha-noi", publishing=True), "ha-giang": seen("ha-giang", publishing=False, done=30)}
    board = assemble(facts(at(50), live=live, thumbnails={"ha-noi": shot, "ha-giang": shot, "vinh-yen": shot}),
                     thumbnail_url=lambda s, t: f"t/{s}.jpg?v={t:%H%M%S}")
    assert row(board, "ha-noi")["thumbnail"] == {"url": "t/ha-noi.jpg?v=010042", "at": shot.isoformat(),
                                                 "at_local": "08:00:42", "stale": False}
    assert row(board, "ha-giang")["thumbnail"]["stale"] is True
    assert row(board, "cao-bang")["thumbnail"] is None
    assert row(board, "vinh-yen")["thumbnail"] is None


def test_a_paused_launch_dag_is_shouted_until_the_event_is_over():
    assert assemble(facts(at(-3600), dag_paused=True))["alerts"][0]["text"].startswith(
        "DAG bridgecast_launch đang TẠM DỪNG")
    assert not assemble(facts(at(-3600), dag_paused=False))["alerts"]
    assert not [a for a in assemble(facts(EVENT.end + timedelta(minutes=1), dag_paused=True))["alerts"]
                if "TẠM DỪNG" in a["text"]]


@pytest.mark.parametrize("now", [at(-60), at(60), EVENT.end + timedelta(minutes=5)])
def test_every_text_is_nfc_and_times_are_in_the_event_zone(now):
    live = {"ha-noi": seen("ha-noi", publishing=False, done=20)}
    board = assemble(facts(now, live=live, dag_paused=True))
    assert all(unicodedata.is_normalized("NFC", t) for t in texts(board))
    assert board["event"]["t0_local"] == "08:00 ngày 23/05/2020"
    assert datetime.fromisoformat(board["now"]).tzinfo == timezone.utc
