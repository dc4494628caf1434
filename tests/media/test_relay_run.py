"""The ffmpeg supervisor (timeouts, progress) and the RTMP relay, tested against ffmpeg's own `-listen 1` server."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

import media
from media.errors import FFmpegError, FFmpegTimeout
from media.relay import RelaySupervisor, build_relay_argv
from media.run import parse_progress, run_ffmpeg
from devstack.synthetic import publish_argv


def test_copy_relay_reads_with_rw_timeout_and_writes_flv():
    argv = build_relay_argv("rtmp://127.0.0.1/live/program", "rtmps://live-api-s.example:443/rtmp/KEY", False)
    assert argv[argv.index("-rw_timeout") + 1] == "5000000" and "-timeout" not in argv and "-re" not in argv
    assert argv[argv.index("-c") + 1] == "copy" and argv[argv.index("-f") + 1] == "flv"
    assert argv[argv.index("-flvflags") + 1] == "no_duration_filesize" and argv[-1].endswith("/KEY")


def test_transcode_relay_encodes_the_house_profile():
    argv = build_relay_argv("rtmp://127.0.0.1/live/program", "rtmps://x/rtmp/KEY", True, media.HOUSE)
    for option, value in [("-c:v", "libx264"), ("-g", "60"), ("-keyint_min", "60"), ("-sc_threshold", "0"),
                          ("-profile:v", "high"), ("-level:v", "4.1"), ("-c:a", "aac"), ("-ar", "48000"),
                          ("-ac", "2"), ("-b:a", "128k"), ("-tune", "zerolatency")]:
        assert argv[argv.index(option) + 1] == value


def test_http_input_gets_http_reconnect_options_and_rtmp_does_not():
    http = build_relay_argv("https://cdn.example/program.m3u8", "rtmp://x/live/out", False)
    rtmp = build_relay_argv("rtmp://127.0.0.1/live/program", "rtmp://x/live/out", False)
    assert "-reconnect_streamed" in http and "-reconnect_streamed" not in rtmp


def test_run_ffmpeg_stops_a_stalled_run_at_its_timeout(tmp_path):
    started = time.monotonic()
    with pytest.raises(FFmpegTimeout) as caught:
        run_ffmpeg(["ffmpeg", "-f", "lavfi", "-i", "sine", "-f", "null", "-"], timeout=1, path=tmp_path / "x.mp4")
    assert time.monotonic() - started < 10 and caught.value.reason == "timeout" and "x.mp4" in str(caught.value)


def test_run_ffmpeg_failure_carries_the_stderr_tail(tmp_path):
    with pytest.raises(FFmpegError) as caught:
        run_ffmpeg(["ffmpeg", "-i", str(tmp_path / "missing.mp4"), "-f", "null", "-"], timeout=30,
                   path=tmp_path / "missing.mp4")
    assert "No such file" in caught.value.stderr_tail


def test_background_work_runs_its_ffmpeg_and_ffprobe_nicer_and_other_threads_keep_their_priority(tmp_path):
    """What the archive remux of recordings relies on to yield the cores to the wrap-up: the niceness of the real
    processes, read back from the kernel while they run."""
    import os
    import threading

    from media.run import BACKGROUND_NICENESS, FFmpegProcess, in_background, run_capture

    own = os.getpriority(os.PRIO_PROCESS, 0)
    endless = ["ffmpeg", "-f", "lavfi", "-i", "sine", "-f", "null", "-"]

    def niceness_of_one_started_here() -> int:
        process = FFmpegProcess(endless)
        try:
            return os.getpriority(os.PRIO_PROCESS, process.pid)
        finally:
            process.stop()

    seen = {}
    with in_background():
        seen["background"] = niceness_of_one_started_here()
        other = threading.Thread(target=lambda: seen.update(other_thread=niceness_of_one_started_here()))
        other.start()
        other.join()
        # ffprobe (run_capture) too: a shell that reports its own niceness (once it is lowered) stands in
        reported = run_capture(["sh", "-c", "sleep 0.2; ps -o ni= -p $$"], timeout=10, path=tmp_path / "x")
    seen["after"] = niceness_of_one_started_here()
    assert seen == {"background": own + BACKGROUND_NICENESS, "other_thread": own, "after": own}
    assert int(reported.stdout) == own + BACKGROUND_NICENESS and reported.returncode == 0


def test_progress_block_is_parsed_with_percent_and_speed():
    progress = parse_progress({"out_time_us": "5000000", "speed": "2.5x", "fps": "75.0",
                               "bitrate": "812.3kbits/s", "frame": "150", "progress": "continue"}, 10.0)
    assert (progress.out_time_s, progress.percent, progress.speed, progress.fps, progress.bitrate_kbps,
            progress.frame, progress.done) == (5.0, 50.0, 2.5, 75.0, 812.3, 150, False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rtmp_server(source, url: str) -> subprocess.Popen:
    """A one-client RTMP server that plays `source` in real time (ffmpeg as server: `-listen 1` on its output)."""
    argv = publish_argv(source, url)
    argv[argv.index(url):argv.index(url)] = ["-listen", "1"]
    return subprocess.Popen(argv[:1] + ["-v", "error", "-nostdin"] + argv[1:], stdin=subprocess.DEVNULL)


def rtmp_sink(url: str, dst) -> subprocess.Popen:
    return subprocess.Popen(["ffmpeg", "-v", "error", "-nostdin", "-y", "-listen", "1", "-i", url, "-c", "copy",
                             str(dst)], stdin=subprocess.DEVNULL)


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_relay_supervisor_restarts_after_the_source_dies_and_reports_it(conformant_clip, tmp_path):
    source_url = f"rtmp://127.0.0.1:{free_port()}/live/program"
    sink_url = f"rtmp://127.0.0.1:{free_port()}/live/fanpage"
    servers = [rtmp_sink(sink_url, tmp_path / "sink-1.flv"), rtmp_server(conformant_clip, source_url)]
    time.sleep(0.5)  # both listeners bound
    events: list[str] = []
    relay = RelaySupervisor(source_url, sink_url, rw_timeout_s=2, backoff_initial_s=0.3, backoff_max_s=1,
                            on_event=events.append)
    try:
        relay.start()
        assert wait_for(lambda: relay.health().run_out_time_s > 1.5, 20), relay.health()
        running = relay.health()
        # ffmpeg counts no frames when copying: speed (media s per wall s) and bitrate are the copy relay's pulse.
        assert running.state == "running" and running.speed and running.bitrate_kbps and running.pid
        servers[1].kill()  # the program feed drops mid-stream
        assert wait_for(lambda: relay.health().restarts >= 1, 20), relay.health()
        assert "exited" in relay.health().last_error
        servers += [rtmp_sink(sink_url, tmp_path / "sink-2.flv"), rtmp_server(conformant_clip, source_url)]
        assert wait_for(lambda: relay.health().state == "running" and relay.health().run_out_time_s > 1, 30), \
            relay.health()
    finally:
        final = relay.stop()
        for server in servers:
            server.kill()
            server.wait()
    assert final.state == "stopped" and final.restarts >= 1 and final.total_out_time_s > 2.5
    assert any("restarted" in e for e in events)
    assert media.probe(tmp_path / "sink-1.flv").duration > 1


def test_transcoding_relay_reports_fps_and_writes_the_house_profile(clip_factory, tmp_path):
    source_url = f"rtmp://127.0.0.1:{free_port()}/live/program"
    mono = clip_factory("mono44", audio_channels=1, sample_rate=44100)  # a feed that needs transcoding
    server = rtmp_server(mono, source_url)
    time.sleep(0.5)
    out = tmp_path / "relayed.flv"  # any ffmpeg output URL works: a file stands in for the fanpage
    relay = RelaySupervisor(source_url, str(out), transcode=True, profile=media.HOUSE.for_size(426, 240),
                            rw_timeout_s=2)
    try:
        relay.start()
        assert wait_for(lambda: (relay.health().fps or 0) > 0 and relay.health().run_out_time_s > 1.5, 20), \
            relay.health()
    finally:
        relay.stop()
        server.kill()
        server.wait()
    info = media.probe(out)
    assert (info.video.codec, info.video.profile, info.audio.sample_rate, info.audio.channels) == \
        ("h264", "High", 48000, 2)


def test_a_failing_progress_callback_neither_hangs_nor_hides_the_error(tmp_path):
    def explode(progress):
        raise RuntimeError("task logger is gone")

    with pytest.raises(RuntimeError, match="task logger is gone"):
        run_ffmpeg(["ffmpeg", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30", "-t", "3", "-f", "null", "-"],
                   timeout=30, path=tmp_path / "x", on_progress=explode)
