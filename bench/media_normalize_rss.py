"""Benchmark: peak memory while normalising a 2 GB recording (goal: ≤ 300 MB for Python + ffmpeg together).

The recording is a 10 s high-bitrate 720p clip looped by stream copy to the target size (cheap to make). The
normalisation runs in a child Python process so its own peak RSS and its ffmpeg's are measured apart from ours.

    .venv/bin/python bench/media_normalize_rss.py           # 2 GB
    .venv/bin/python bench/media_normalize_rss.py --quick   # 200 MB
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import media  # noqa: E402

GOAL_MB = 300
CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
import media
seen = []
started = time.monotonic()
result = media.normalize(sys.argv[1], sys.argv[2], on_progress=lambda p: seen.append(p.percent))
print(json.dumps({
    "python_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "ffmpeg_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,  # the largest child: the encoder
    "seconds": time.monotonic() - started, "duration": result.output.duration,
    "deviations": [str(d) for d in media.conformance(result.output)], "progress_reports": len(seen),
}))
"""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 200 MB recording")
    args = parser.parse_args()
    target_bytes = (200 if args.quick else 2000) * 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        chunk = tmp / "chunk.mp4"
        # ~40 Mbit/s: a 2 GB recording of ~7 minutes, so the run stays minutes long, not an hour.
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=1280x720:rate=30,noise=alls=30:allf=t", "-f", "lavfi", "-i",
                        "sine=sample_rate=48000", "-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "40M",
                        "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(chunk)], check=True)
        loops = math.ceil(target_bytes / chunk.stat().st_size)
        recording = tmp / "recording.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-stream_loop", str(loops - 1), "-i", str(chunk),
                        "-c", "copy", str(recording)], check=True)
        size_mb = recording.stat().st_size / 1e6
        info = media.probe(recording)
        print(f"input: {size_mb:.0f} MB, {info.duration:.0f} s of 720p30 (made in {time.monotonic() - t0:.1f} s)")
        done = subprocess.run([sys.executable, "-c", CHILD, str(recording), str(tmp / "normalized.mp4"),
                               str(Path(__file__).resolve().parents[1])], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr)
            return 1
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        python_mb, ffmpeg_mb = figures["python_kb"] / 1024, figures["ffmpeg_kb"] / 1024
        total = python_mb + ffmpeg_mb
        print(f"normalised in {figures['seconds']:.0f} s ({figures['duration'] / figures['seconds']:.2f}× realtime), "
              f"{figures['progress_reports']} progress reports, output deviations: {figures['deviations'] or 'none'}")
        print(f"peak RSS: python {python_mb:.0f} MB + ffmpeg {ffmpeg_mb:.0f} MB = {total:.0f} MB "
              f"= {total / size_mb:.3f}× the file size; goal ≤ {GOAL_MB} MB ({total / GOAL_MB:.2f}× the goal) "
              f"{verdict(total <= GOAL_MB)}")
        ok = total <= GOAL_MB and not figures["deviations"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
