"""Benchmark: the recap montage for a 64-point event (issue 13), measured against the naive re-encode baseline in
the same run, and the whole wrap-up media path from the end of the event to the recap on the fanpage sandbox.

Goals: montage ≥ 20× faster than the baseline (re-encode every point's highlight, then concat); length within 5 % of
the budget (90 s); end of event → recap published on the fanpage ≤ 90 s (per point: join the recording's FLV
segments, cut the search window, score it, cut the best moment, take the T0 still — on 2 workers as Airflow's mapped
tasks would — then the montage, then the video upload and the 9:16 Reel to the sandbox).

    .venv/bin/python bench/media_recap.py            # 64 points, 720p, 10 s highlights, 20 s recordings
    .venv/bin/python bench/media_recap.py --quick    # 8 points at 426x240
"""
from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import media  # noqa: E402
from devstack.synthetic import synthetic_clip  # noqa: E402
from media.clips import joinable_signature  # noqa: E402
from media.montage import MontageClip, build_montage, cut_highlight  # noqa: E402
from media.normalize import target_profile, transcode  # noqa: E402

DISTINCT = 4  # encoding 64 distinct 720p recordings would cost more than the benchmark; copies are as good
GROUPS = ["Điểm cầu Trung ương", "Miền Bắc", "Miền Trung - Tây Nguyên", "Miền Nam"]
LOGO = Path(__file__).resolve().parents[1] / "config/brand/logo-bhxh-vinhphuc.png"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def highlight(recording_segments: list[Path], work: Path, *, search_s: float, length_s: float) -> dict:
    """What build_highlight does with a point's media (S3 transfer aside)."""
    joined = media.join_segments(recording_segments, work / "joined.mp4")
    made = cut_highlight(joined, work / "highlight.mp4", work / "t0.jpg", window=(0, min(search_s, joined.duration)),
                         length_s=length_s)
    return {"clip": made.clip.path, "still": made.still, "scores": made.scores,
            "signature": joinable_signature(made.clip.output)}


def start_sandbox(root: Path):
    import uvicorn

    from devstack.sandboxes.fanpage import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(root, page_id="1000000000000009", page_token="bench-page-token-" + "x" * 20,
                     app_secret="bench-app-secret", rtmp_base="rtmp://127.0.0.1:1/fblive",
                     upload_chunk_bytes=8 * 1024 * 1024)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--points", type=int)
    parser.add_argument("--budget", type=float, default=90.0)
    args = parser.parse_args()
    points = args.points or (8 if args.quick else 64)
    width, height = (426, 240) if args.quick else (1280, 720)
    length_s, record_s = 10.0, 20.0

    with tempfile.TemporaryDirectory(prefix="bench-recap-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        bases = []
        for i in range(DISTINCT):
            base = synthetic_clip(tmp / f"base{i}.mp4", width=width, height=height, duration=record_s, noise=True,
                                  marker_at=3.0 + 4 * i, label=f"Điểm cầu {i + 1:02d}")
            seg_dir = tmp / f"base{i}-flv"
            seg_dir.mkdir()
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-c", "copy", "-f", "segment",
                            "-segment_time", "10", "-segment_format", "flv", "-reset_timestamps", "1",
                            str(seg_dir / "rec-%03d.flv")], check=True)
            bases.append(sorted(seg_dir.glob("*.flv")))
        recordings = []
        for p in range(points):
            folder = tmp / "points" / f"p{p:02d}"
            folder.mkdir(parents=True)
            recordings.append([Path(shutil.copy(s, folder / s.name)) for s in bases[p % DISTINCT]])
        print(f"inputs: {points} recordings of {record_s:.0f} s at {width}x{height} as FLV segments "
              f"(generated in {time.monotonic() - t0:.1f} s)")

        server, base_url = start_sandbox(tmp / "sandbox")
        from bridgecast.channels.base import MediaFile
        from bridgecast.channels.fanpage import FanpageChannel
        from bridgecast.channels.reels import ReelChannel

        fanpage = FanpageChannel("1000000000000009", "bench-page-token-" + "x" * 20, base_url=base_url,
                                 resume_dir=tmp / "uploads")

        # --- the wrap-up path, from the end of the event -----------------------------------------------------------
        end_of_event = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            made = list(pool.map(lambda pr: highlight(pr[1], pr[1][0].parent, search_s=60, length_s=length_s),
                                 enumerate(recordings)))
        highlights_s = time.monotonic() - end_of_event
        material = [MontageClip(f"p{i:02d}", f"Điểm cầu số {i + 1}", GROUPS[0] if i == 0 else GROUPS[1 + i % 3],
                                h["clip"], h["scores"], 0 if i == 0 else 1, h["signature"]) for i, h in enumerate(made)]
        t0 = time.monotonic()
        recap = build_montage(material, tmp / "recap.mp4", budget_s=args.budget, groups=GROUPS, logo=LOGO,
                              mosaic_stills=[(m.point, h["still"]) for m, h in zip(material, made)],
                              mosaic_title=f"{points} điểm cầu đồng loạt ra quân", title="Lễ ra quân",
                              outro_lines=["Chính sách BHXH - Điểm tựa an sinh của NLĐ và nhân dân",
                                           "Hãy tham gia BHXH vì sự ổn định cuộc sống"])
        montage_s = time.monotonic() - t0
        t0 = time.monotonic()
        video_id = fanpage.upload_video(MediaFile.from_path(recap.path, "video/mp4"), title="Video tổng hợp",
                                        description="Lễ ra quân")
        published = time.monotonic()
        upload_s = published - t0
        to_fanpage = published - end_of_event
        vertical = media.vertical_variant(recap.path, tmp / "recap-9x16.mp4", width=540, max_seconds=89.5)
        reel_id = ReelChannel(fanpage, poll_every_s=0.2).upload_reel(vertical.path, title="Reel", description="x")
        ReelChannel(fanpage, poll_every_s=0.2).wait_published(reel_id)
        reel_s = time.monotonic() - published
        server.should_exit = True

        # --- the naive baseline: re-encode every point's highlight, then concat ---------------------------------------
        t0 = time.monotonic()
        encoded = []
        for index, h in enumerate(made):
            info = media.probe(h["clip"])
            out = tmp / "naive" / f"{index:02d}.mp4"
            out.parent.mkdir(exist_ok=True)
            transcode(h["clip"], out, info, target_profile(info))
            encoded.append(out)
        media.concat(encoded, tmp / "naive.mp4")
        baseline = time.monotonic() - t0

        artifacts = Path(__file__).resolve().parents[1] / "test-artifacts" / "recap"
        artifacts.mkdir(parents=True, exist_ok=True)
        head = next(s for p, s in zip(recap.parts, recap.part_starts) if p.kind == "lower_third")
        for name, at in (("bench-mosaic", 1.0), ("bench-lower-third", head + 0.5)):
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(recap.path), "-frames:v",
                            "1", str(artifacts / f"{name}.png")], check=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "10", "-i", str(vertical.path), "-frames:v", "1",
                        str(artifacts / "bench-reel.png")], check=True)

        ratio = baseline / montage_s
        within = abs(recap.duration - args.budget) <= 0.05 * args.budget
        print(f"baseline (re-encode {points} highlights of {length_s:.0f} s, then concat): {baseline:.1f} s")
        print(f"montage: {montage_s:.1f} s {recap.timings}; {len(recap.plan.clips)} points shown, "
              f"{len(recap.plan.left_out)} in the mosaic only; {recap.reencoded_s:.1f} s re-encoded, "
              f"{recap.copied_s:.1f} s stream-copied")
        print(f"speed-up: {ratio:.1f}× (goal ≥ 20×) {verdict(ratio >= 20)}")
        print(f"length: {recap.duration:.2f} s for a {args.budget:.0f} s budget "
              f"({(recap.duration / args.budget - 1) * 100:+.1f} %, goal within 5 %) {verdict(within)}")
        print(f"conformant output: {media.conformance(media.probe(recap.path)) or 'yes'}")
        print(f"end of event → recap on the fanpage: {to_fanpage:.1f} s (highlights {highlights_s:.1f} s, montage "
              f"{montage_s:.1f} s, upload {upload_s:.1f} s; goal ≤ 90 s) {verdict(to_fanpage <= 90)}")
        print(f"then the 9:16 Reel ({vertical.width}x{vertical.height}, {vertical.duration:.1f} s): {reel_s:.1f} s "
              f"(video {video_id}, reel {reel_id})")
        ok = (ratio >= 20 or args.quick) and within and to_fanpage <= 90
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
