#!/usr/bin/env python3
"""Benchmark the embedded-world generator: frames per second of camera render + lidar sweep +
ground truth + bag writing at the default preset, with time per stage.

Scene setup (world building, GL context, static BVH; with several workers, starting them
until every one is ready) is reported apart from the per-frame rate, since it is paid once per
bag. The CPU model and core count go into the JSON so numbers from different machines are
never compared by accident.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ad_perception.sim.bag_output import default_workers, generate_bag


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--frames", type=int, default=30, help="frames to generate (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=["default", "carla"], default="default")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="frame-generating processes (default: one per core, at most 8; 1 = in-process)",
    )
    args = parser.parse_args(argv)
    workers = default_workers(args.frames) if args.workers is None else args.workers

    workdir = Path(tempfile.mkdtemp(prefix="bench_sim_"))
    stages: dict[str, float] = {}
    try:
        start = time.perf_counter()
        generate_bag(
            workdir / "bag",
            args.frames,
            args.seed,
            args.storage,
            args.preset,
            progress=False,
            stage_seconds=stages,
            workers=workers,
        )
        total = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    setup = stages.pop("setup", 0.0)
    per_frame = total - setup
    result = {
        "frames": args.frames,
        "seconds": round(per_frame, 3),
        "fps": round(args.frames / per_frame, 3),
        "fps_including_setup": round(args.frames / total, 3),
        "setup_seconds": round(setup, 3),
        "per_stage_ms": {k: round(1000 * v / args.frames, 2) for k, v in sorted(stages.items())},
        "preset": args.preset,
        "storage": args.storage,
        "workers": workers,
        "cpu": _cpu(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    summed = f" (stage times summed over {workers} workers)" if workers > 1 else ""
    print(f"{'stage':<16}{'ms/frame':>10}{summed}")
    for name, ms in result["per_stage_ms"].items():
        print(f"{name:<16}{ms:>10.1f}")
    print(f"{'wall':<16}{1000 * per_frame / args.frames:>10.1f}")
    print(
        f"fps {result['fps']:.2f} (target >= 5 on 2 cores), setup {setup:.2f} s, "
        f"fps incl. setup {result['fps_including_setup']:.2f}, workers {workers}, {result['cpu']}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
