"""``ad-perception launch [PACKAGE] FILE [name:=value ...]``: ros2 launch without launch_ros.

FILE is a path, or the name of a file in the package's ``share/<pkg>/launch`` (for
``ad_perception`` the source tree's ``launch/`` when it is not installed), as with
``ros2 launch``. On a full ROS install prefer ``ros2 launch``; this runner still works
there but only implements the subset of launch our files use.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="+", metavar="ARG",
                        help="[PACKAGE] FILE [name:=value ...]: a launch file path, or a file "
                        "name under share/PACKAGE/launch (PACKAGE defaults to ad_perception), "
                        "then launch arguments")
    parser.add_argument("--dry-run", action="store_true",
                        help="print resolved command lines and environment changes; start "
                        "nothing")
    parser.add_argument("--sigterm-timeout", type=float, default=5.0, metavar="SEC",
                        help="after SIGINT, wait this long before SIGTERM (default 5)")
    parser.add_argument("--sigkill-timeout", type=float, default=5.0, metavar="SEC",
                        help="after SIGTERM, wait this long before SIGKILL (default 5)")


def _launch_file(positional: list[str]) -> Path:
    """Resolve ``FILE`` or ``PACKAGE FILE`` the way ros2 launch does."""
    from ad_perception.ros.launch_shim._base import LaunchArgumentError
    from ad_perception.ros.launch_shim._ros import find_package_share

    if len(positional) == 1:
        path = Path(positional[0])
        if path.is_file():
            return path
        package, name = "ad_perception", positional[0]
    elif len(positional) == 2:
        package, name = positional
    else:
        raise LaunchArgumentError(f"expected [PACKAGE] FILE, got {' '.join(positional)}")
    path = Path(find_package_share(package, os.environ), "launch", name)
    if not path.is_file():
        raise LaunchArgumentError(f"launch file {name!r} not found (looked at {path})")
    return path


def run(args: argparse.Namespace) -> int:
    from ad_perception.ros.launch_runner import LaunchError, LaunchRunner
    from ad_perception.ros.launch_shim import real_launch_ros_available

    positional = [t for t in args.target if ":=" not in t]
    tokens = [t for t in args.target if ":=" in t]
    try:
        path = _launch_file(positional)
        runner = LaunchRunner(path, tokens, sigterm_timeout=args.sigterm_timeout,
                              sigkill_timeout=args.sigkill_timeout)
        if real_launch_ros_available():
            print("launch: note: launch_ros is installed; `ros2 launch` is the reference "
                  "implementation (this runner covers only a subset of launch)", file=sys.stderr)
        if args.dry_run:
            print(runner.dry_run())
            return 0
        # Installed before any child starts: children then begin with default SIGINT
        # handling even when this shell ignored SIGINT (background jobs), and Ctrl-C or
        # SIGTERM here is forwarded once instead of killing the runner outright.
        handle_ref: list = []
        stops = {"count": 0}

        def _on_signal(signum: int, frame: object) -> None:
            stops["count"] += 1
            if handle_ref:
                handle_ref[0].request_stop(escalate=stops["count"] > 1)

        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            handle = runner.start()
            handle_ref.append(handle)
            if stops["count"]:
                handle.request_stop()
            returncode = None
            while returncode is None:
                returncode = handle.wait(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    except LaunchError as err:
        print(f"launch: error: {err}", file=sys.stderr)
        return err.exit_code
    if handle.failed:
        print(f"launch: {handle.failed} died; stopped the other processes", file=sys.stderr)
    return returncode
