"""``ad-perception``: one entry point, one subcommand per capability.

Subcommands are registered by dotted path and imported only when used, so ``--help`` and
light commands never pay for importing torch or rclpy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ad_perception import __version__

# name -> (module, help). The module defines ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "info": ("ad_perception.cli_info", "show versions, backends and the DDS environment"),
    "sim": ("ad_perception.sim.cli", "generate embedded-world rosbags, or `sim preview BAG`"),
    "dataset": ("ad_perception.sim.dataset", "generate train/val/held-out bags (resumable)"),
    "import": ("ad_perception.data.import_cli", "convert datasets on disk (KITTI) to our bags"),
    "train": ("ad_perception.models.train_cli", "train the camera or lidar detector on bags"),
    "eval": ("ad_perception.eval.cli", "score models on bags against their ground truth"),
    "compress": ("ad_perception.compress.cli", "run a compression recipe: prune/int8/... variant"),
    "demo": ("ad_perception.ros.demo_cli", "the main job: replay the embedded drive (make demo)"),
    "play": ("ad_perception.ros.play_cli", "replay a rosbag2 onto live topics (loopback DDS)"),
    "launch": ("ad_perception.ros.launch_cli",
               "run launch/*.launch.py without launch_ros (ros2 launch subset, --dry-run)"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ad-perception",
        description="Compressed camera/lidar perception for ROS 2: simulate, train, compress, "
        "evaluate, launch.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == load:
            importlib.import_module(module_name).add_arguments(sub)
        else:
            sub.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    args.argv = argv  # the exact command, for model cards and reports
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
