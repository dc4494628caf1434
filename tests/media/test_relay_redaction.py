"""The relay's output URL carries the fanpage's stream key: when ffmpeg fails and prints it, neither the relay's
health (last_error, events) nor the errors `run_ffmpeg` raises (message, stderr tail, argv) contain the key."""
from __future__ import annotations

import socket
import subprocess
import time

from media.errors import FFmpegError
from media.redact import redact_urls
from media.relay import RelaySupervisor
from media.run import run_ffmpeg

STREAM_KEY = "FB-998877665544-0-AbCdEfGhIjKlMnOpQrStUv"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _feed(tmp_path) -> str:
    """One second of program feed (H.264/AAC in FLV) the relay can read; its output is what will fail."""
    path = tmp_path / "program.flv"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10",
                    "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1", "-c:v", "libx264", "-c:a", "aac",
                    "-f", "flv", str(path)], check=True, timeout=60)
    return str(path)


def test_a_failing_relay_reports_its_error_without_the_stream_key(tmp_path):
    output = f"rtmps://127.0.0.1:{_closed_port()}/rtmp/{STREAM_KEY}"
    events = []
    relay = RelaySupervisor(_feed(tmp_path), output, on_event=events.append, backoff_initial_s=0.2)
    relay.start()
    deadline = time.monotonic() + 30
    while relay.health().last_error is None and time.monotonic() < deadline:
        time.sleep(0.1)
    health = relay.stop()
    assert health.last_error, "ffmpeg should have failed to reach the closed port"
    assert "rtmp" in health.last_error  # ffmpeg named the output URL: the message is about it, masked
    reported = " ".join([health.last_error, *events, repr(relay)])
    assert STREAM_KEY not in reported


def test_run_ffmpeg_errors_carry_no_stream_key(tmp_path):
    output = f"rtmp://127.0.0.1:{_closed_port()}/live/trung-uong?key={STREAM_KEY}"
    argv = ["ffmpeg", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-t", "1", "-c:v", "libx264",
            "-f", "flv", output]
    try:
        run_ffmpeg(argv, timeout=60, path=output)
    except FFmpegError as exc:
        error = exc
    else:
        raise AssertionError("publishing to a closed port should fail")
    assert STREAM_KEY not in str(error) and STREAM_KEY not in error.stderr_tail
    assert all(STREAM_KEY not in arg for arg in error.argv)
    assert "rtmp://127.0.0.1" in str(error) or "rtmp://127.0.0.1" in " ".join(error.argv)


def test_url_shapes_are_masked_and_plain_text_is_left_alone():
    text = (f"rtmps://live-api-s.facebook.com:443/rtmp/{STREAM_KEY} http://u:pa55word@h/x "
            "https://s3/b/k?X-Amz-Credential=AKIA123&X-Amz-Signature=abcdef Bearer abcdefghijklmnop")
    masked = redact_urls(text)
    for secret in (STREAM_KEY, "pa55word", "AKIA123", "abcdef&", "abcdefghijklmnop"):
        assert secret not in masked
    assert redact_urls("Điểm cầu Hà Nội: 64 điểm, key frame mỗi 2 s") == "Điểm cầu Hà Nội: 64 điểm, key frame mỗi 2 s"
