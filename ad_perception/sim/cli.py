"""``ad-perception sim``: generate an embedded-world bag, or ``sim preview BAG`` to draw one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=["preview"],
        help="`preview BAG --out PNG` draws a frame of an existing bag",
    )
    parser.add_argument("bag", nargs="?", type=Path, help="bag folder to preview")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="bag folder to create (generate) or PNG to write (preview)",
    )
    parser.add_argument("--frames", type=int, default=100, help="frames at 10 Hz (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument(
        "--preset",
        choices=["default", "carla"],
        default="default",
        help="topic layout: our defaults or carla-ros-bridge's",
    )
    parser.add_argument(
        "--frame-index",
        type=int,
        default=None,
        help="preview: which camera frame to draw (default: the middle one)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="frame-generating processes (default: one per core, at most 8; 1 = in-process)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "preview":
        if args.bag is None:
            print("sim preview needs a BAG folder", file=sys.stderr)
            return 2
        from ad_perception.sim.preview import write_preview

        write_preview(args.bag, args.out, args.frame_index)
        print(f"wrote {args.out}")
        return 0
    from ad_perception.sim.bag_output import generate_bag

    try:
        out = generate_bag(
            args.out,
            args.frames,
            args.seed,
            args.storage,
            args.preset,
            progress=not args.no_progress,
            workers=args.workers,
        )
    except (RuntimeError, FileExistsError, ValueError) as err:
        print(f"sim: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
