"""The board's readers that need no server: nginx /stat parsing, the few-seconds cache, keys → points."""
from __future__ import annotations

from bridgecast.board.sources import TTLCache, _point_of, parse_stat
from bridgecast.board.thumbnails import on_this_machine

# Shaped like nginx-rtmp 1.2.2's `rtmp_stat all` (trimmed): one publisher with metadata, one player-only name, and
# a second application whose streams are not the points'.
STAT = """<?xml version="1.0" encoding="utf-8" ?>
<rtmp><nginx_version>1.22.1</nginx_version><server>
<application><name>live</name><live>
<stream><name>ha-noi</name><time>1856884</time><bw_in>3596208</bw_in><bytes_in>750710100</bytes_in>
<client><id>3</id><address>127.0.0.1</address><publishing/><active/></client>
<meta><video><width>1280</width><height>720</height><frame_rate>29.97</frame_rate><codec>H264</codec></video>
<audio><codec>AAC</codec><channels>2</channels><sample_rate>48000</sample_rate></audio></meta>
<nclients>1</nclients><publishing/><active/></stream>
<stream><name>ha-giang</name><time>10</time><bw_in>0</bw_in><meta><video><width></width></video></meta>
<nclients>1</nclients></stream>
</live></application>
<application><name>fblive</name><live><stream><name>trung-uong</name><bw_in>100</bw_in><publishing/></stream>
</live></application>
</server></rtmp>"""


def test_stat_gives_bitrate_declared_fps_and_size_of_the_live_application_only():
    streams = parse_stat(STAT)
    assert set(streams) == {"ha-noi", "ha-giang"}
    hanoi = streams["ha-noi"]
    assert hanoi.publishing and round(hanoi.bitrate_kbps) == 3596
    assert (hanoi.fps, hanoi.width, hanoi.height) == (29.97, 1280, 720)
    giang = streams["ha-giang"]
    assert not giang.publishing and giang.bitrate_kbps == 0 and giang.width is None and giang.fps is None


def test_the_cache_serves_a_value_for_its_ttl_and_never_keeps_a_failure():
    now = [0.0]
    cache = TTLCache(clock=lambda: now[0])
    calls = []

    def load():
        calls.append(now[0])
        if len(calls) == 2:
            raise RuntimeError("S3 down")
        return len(calls)

    assert cache.get("k", 5, load) == 1
    now[0] = 4.9
    assert cache.get("k", 5, load) == 1
    now[0] = 5.0
    try:
        cache.get("k", 5, load)
    except RuntimeError:
        pass
    assert cache.get("k", 5, load) == 3  # the failure was not cached: asked again at once
    assert calls == [0.0, 5.0, 5.0]


def test_media_keys_name_their_point_and_run_artefacts_name_none():
    assert _point_of("ev", "ev/tam-dao/processed/web/abc.jpg") == "tam-dao"
    assert _point_of("ev", "ev/_launch/recap.mp4") is None
    assert _point_of("ev", "other/tam-dao/processed/web/abc.jpg") is None


def test_the_thumbnailer_starts_beside_the_api_server_only_when_nginx_is_on_this_machine():
    assert on_this_machine("rtmp://127.0.0.1:18935/live")
    assert on_this_machine("rtmp://localhost/live")
    assert not on_this_machine("rtmp://nginx-rtmp:1935/live")
