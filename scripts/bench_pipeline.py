#!/usr/bin/env python3
"""Pipeline benchmark: the launched perception graph fed a generated drive (camera 10 Hz +
lidar 10 Hz), per model variant and per process layout, all in one run.

For each variant (baseline and compressed ones from ad_perception.eval.variants) and each
mode (``composed``: every node in one process; ``multiprocess``: one process per node; both
with rclpy's EventsExecutor, the launch default; ``*_single`` and ``composed_multi``: the
same layout with a SingleThreadedExecutor / MultiThreadedExecutor; ``lidar_fusion``: the
lidar detector and the fusion in one process, the camera detector and the monitor in their
own, the launch default) the
graph is started from launch/perception.launch.py through the launch runner, the bag is
replayed restamped to wall time once the detectors are loaded, and the nodes' shutdown
summaries give per-stage and end-to-end latency, drops and throughput. CPU use is the
launched processes' CPU time over the replay (100 % = one core). ROS overhead is the part of
the fused output's median end-to-end latency spent outside computation on the critical path:
sensor transport into the detector, message decoding and packing, and the hops to fusion and
on to the monitor, each from the publish() call to the reader's receipt (medians, so an
estimate; publish() itself can return late on a loaded machine, after the woken reader has
computed on the same core, so its duration is reported but not summed). The bag player's
own lateness (it reads and sends camera and lidar from one thread, so the sweep waits for the
image's publish) is a sensor driver's delay, not ROS overhead: it stays in the reported
end-to-end latency but is taken out of the overhead share, on both sides of the division. The
first ``--warmup-s`` seconds of fused output (first inferences, allocations) are counted as
frames out but left out of the latency figures (the monitor's ``warmup_s``). A variant whose models
are not built yet is reported as missing, not as a failure of the run.

    .venv/bin/python scripts/bench_pipeline.py --json pipeline.json \\
        [--variants baseline,prune50_int8] [--modes composed,multiprocess] [--frames 100]
        [--custom NAME=CAMERA_MODEL,LIDAR_MODEL] [--repeats 4]

One replay is one sample of a noisy figure on a shared 2-core machine (the ROS overhead share
of the same graph varies by several points from run to run): ``--repeats N`` runs every case
N times, interleaved, and adds a per-case summary (median, range, runs within the targets)
and a PNG of every run beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ad_perception.monitoring import pipeline_report  # noqa: E402
from ad_perception.ros_env import apply_ros_environment  # noqa: E402

LAUNCH = ROOT / "launch" / "perception.launch.py"
IMAGE, INFO, POINTS = ("/sensing/camera/front/image_raw", "/sensing/camera/front/camera_info",
                       "/sensing/lidar/top/points")
CAMERA_OUT, LIDAR_OUT, FUSED = ("/perception/camera/front/detections",
                                "/perception/lidar/detections", "/perception/objects")
# mode -> launch arguments
MODES = {"multiprocess": {"composed": "false", "executor": "events", "rt_priority": "0"},
         "multiprocess_single": {"composed": "false", "executor": "single", "rt_priority": "0"},
         "multiprocess_rt": {"composed": "false", "executor": "events", "rt_priority": "10"},
         "composed": {"composed": "true", "executor": "events", "rt_priority": "0"},
         "composed_single": {"composed": "true", "executor": "single", "rt_priority": "0"},
         "composed_multi": {"composed": "true", "executor": "multi", "rt_priority": "0"},
         "composed_rt": {"composed": "true", "executor": "events", "rt_priority": "10"},
         "lidar_fusion": {"composed": "lidar_detector,fusion", "executor": "events",
                          "rt_priority": "0"}}
LAYOUTS = {"false": "multiprocess", "true": "composed"}  # else the nodes sharing a process


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--variants", default="baseline",
                        help="comma-separated variant names (default: baseline)")
    parser.add_argument("--modes", default="lidar_fusion,multiprocess,composed",
                        help=f"comma-separated, from {list(MODES)}")
    parser.add_argument("--frames", type=int, default=100, help="drive length at 10 Hz")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--bag", type=Path, help="reuse this drive instead of generating one")
    parser.add_argument("--threads", type=int, default=1, help="inference threads per detector")
    parser.add_argument("--camera-model", help="use this camera model for every variant")
    parser.add_argument("--lidar-model", help="use this lidar model for every variant")
    parser.add_argument("--custom", action="append", default=[], metavar="NAME=CAMERA,LIDAR",
                        help="an ad-hoc variant from two model paths (repeatable; benchmarked "
                        "after --variants, replaces a variant of the same name)")
    parser.add_argument("--keep", type=Path, help="keep the node summaries in this folder")
    parser.add_argument("--extra-params", type=Path, help="a parameters YAML loaded after the "
                        "package's (launch argument extra_params), e.g. to compare QoS")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every (variant, mode) this many times, interleaved (all "
                        "cases once, then again), and summarise the spread (.png beside)")
    parser.add_argument("--warmup-s", type=float, default=3.0,
                        help="seconds of fused output at the start left out of the latency "
                        "figures (first inferences, allocation); counted, and in frames out")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.custom_models = {}
    for item in args.custom:
        name, sep, paths = item.partition("=")
        camera, comma, lidar = paths.partition(",")
        if not (sep and comma and name and camera and lidar):
            parser.error(f"--custom needs NAME=CAMERA,LIDAR, got {item!r}")
        args.custom_models[name] = {"camera_model": camera, "lidar_model": lidar}
        if name not in args.variants:
            args.variants.append(name)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(args.modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {unknown}; choose from {list(MODES)}")
    return args


def _drive(args: argparse.Namespace) -> Path:
    if args.bag is not None:
        return args.bag
    bag = ROOT / "data" / "bench" / f"pipeline_seed{args.seed}_{args.frames}"
    if not (bag / "metadata.yaml").exists():
        from ad_perception.sim.bag_output import generate_bag

        print(f"[bench] generating {args.frames} frames (seed {args.seed}) -> {bag}")
        bag.parent.mkdir(parents=True, exist_ok=True)
        generate_bag(bag, args.frames, args.seed, progress=False)
    return bag


def _models(args: argparse.Namespace, name: str) -> dict[str, str] | str:
    """Launch arguments for a variant, or the reason it cannot run."""
    from ad_perception.eval.variants import resolve_variants

    if name in args.custom_models:
        missing = [p for p in args.custom_models[name].values() if not Path(p).exists()]
        return f"{name}: {missing} do not exist" if missing else args.custom_models[name]

    try:
        (variant,) = resolve_variants([name], args.camera_model and Path(args.camera_model),
                                      args.lidar_model and Path(args.lidar_model))
    except ValueError as err:
        return str(err)
    return {"camera_model": str(variant.camera_checkpoint),
            "lidar_model": str(variant.lidar_checkpoint)}


class CpuMeter:
    """CPU seconds of the launched processes and their children (psutil)."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self._procs = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                self._procs += [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue

    def seconds(self) -> float:
        import psutil

        total = 0.0
        for proc in self._procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total


def _params_file(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict]:
    """The user's --extra-params with the monitor's warm-up added (one file per launch), and
    those parameters."""
    import yaml

    params = (yaml.safe_load(args.extra_params.read_text()) if args.extra_params else {}) or {}
    monitor = params.setdefault("/**/latency_monitor", {}).setdefault("ros__parameters", {})
    monitor["warmup_s"] = args.warmup_s
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "bench_params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path, params


def run_case(args, bag: Path, name: str, mode: str, models: dict[str, str],
             workdir: Path) -> dict:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from ad_perception.data.bag_io import read_messages
    from ad_perception.ros.bag_player import BagPlayer
    from ad_perception.ros.launch_runner import LaunchRunner
    from ad_perception.ros.replay_when_ready import graph_ready, wait_until

    summary_dir = workdir / f"{name}_{mode}"
    arguments = models | MODES[mode] | {"threads": str(args.threads),
                          "summary_dir": str(summary_dir), "log_level": "warn"}
    params_file, params = _params_file(args, workdir)
    arguments["extra_params"] = str(params_file)
    # the lidar detector, and the fusion unless --extra-params turned its points off
    fusion = params.get("/**/fusion", {}).get("ros__parameters", {})
    points_readers = 1 + bool(fusion.get("use_points", True))
    errors: list[str] = []
    handle = LaunchRunner(LAUNCH, arguments, output=lambda who, line, err: errors.append(
        f"[{who}] {line}") if err and "Failed to publish log" not in line else None).start()
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_player", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        player = BagPlayer(node, bag, topics=[IMAGE, INFO, POINTS, "/tf_static"], restamp=True)
        ready = wait_until(lambda: graph_ready(node, [CAMERA_OUT, LIDAR_OUT, FUSED],
                                               {IMAGE: 1, POINTS: points_readers}),
                           180.0, lambda: executor.spin_once(timeout_sec=0.1))
        if not ready or handle.failed:
            raise RuntimeError(f"graph did not come up: {errors[-10:]}")
        wait_until(lambda: False, 1.0, lambda: executor.spin_once(timeout_sec=0.1))
        meter = CpuMeter(list(p.pid for p in handle.processes.values()))
        cpu_before, started = meter.seconds(), time.monotonic()
        played = player.play()
        wait_until(lambda: False, 1.0, lambda: executor.spin_once(timeout_sec=0.1))
        wall = time.monotonic() - started
        cpu_percent = 100.0 * (meter.seconds() - cpu_before) / wall
        player.close()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        returncode = handle.stop(60)
    if returncode != 0:
        raise RuntimeError(f"launch exited with {returncode}: {errors[-10:]}")
    summaries = {path.stem: json.loads(path.read_text())
                 for path in summary_dir.glob("*.json")}
    frames_in = len({t for _, t, _ in read_messages(bag, [IMAGE])})
    fused = summaries["latency_monitor"]["topics"][FUSED]["totals"]
    e2e_p50, e2e_p99 = float(fused["p50_ms"] or 0), float(fused["p99_ms"] or 0)
    overhead = pipeline_report.ros_overhead(
        summaries, e2e_p50, FUSED,
        {kind: played.lateness_p50_ms(topic) for kind, topic in (("camera", IMAGE),
                                                                  ("lidar", POINTS))})
    gate_drops = {n: summaries[n]["dropped"] for n in ("camera_detector", "lidar_detector")}
    frames_out = int(fused["count"] + fused.get("warmup", 0) - fused["duplicates"])
    return {
        "name": name, "mode": mode, "status": "ok",
        "layout": LAYOUTS.get(MODES[mode]["composed"],
                              MODES[mode]["composed"].replace(",", "+")),
        "executor": MODES[mode]["executor"],
        "rt_priority": int(MODES[mode]["rt_priority"]),
        "e2e_ms_p50": e2e_p50, "e2e_ms_p99": e2e_p99, "e2e_ms_max": fused["max_ms"],
        "warmup_frames": fused.get("warmup", 0),
        "frames_in": frames_in, "frames_out": frames_out,
        "dropped": max(frames_in - frames_out, 0),  # sensor frames without a fused output
        "gate_drops": gate_drops,  # replaced in a detector's gate while it was busy
        "fusion_kinds": summaries["fusion"]["frames"],
        "ros_overhead_share": overhead["share"], "ros_overhead": overhead,
        "cpu_percent": cpu_percent,
        "output_rate_hz": frames_out / played.wall_seconds if played.wall_seconds else None,
        "stages_ms": {node: {stage: {"p50": v["p50"], "p99": v["p99"]}
                             for stage, v in summaries[node]["stages_ms"].items()}
                      for node in ("camera_detector", "lidar_detector", "fusion")},
        "queue_ms_p99": max(pipeline_report.stage_value(summaries[n], "queue", "p99")
                            for n in ("camera_detector", "lidar_detector")),
        "models": models,
    }


def _case(args: argparse.Namespace, bag: Path, name: str, mode: str, models: dict | str,
          workdir: Path, repeat: int) -> dict:
    """One row: the case's figures, or why it is missing or failed."""
    row = {"name": name, "mode": mode, "repeat": repeat}
    if isinstance(models, str):
        return row | {"status": "missing", "reason": models}
    print(f"[bench] {name} / {mode}" + (f" (run {repeat + 1}/{args.repeats})"
                                        if args.repeats > 1 else "") + " ...", flush=True)
    try:
        # each run its own summaries: a node that fails to write must not leave the last's
        folder = workdir / f"run{repeat + 1}" if args.repeats > 1 else workdir
        return run_case(args, bag, name, mode, models, folder) | {"repeat": repeat}
    except (RuntimeError, KeyError) as err:
        return row | {"status": "failed", "reason": f"{type(err).__name__}: {err}"}


def _table(rows: list[dict]) -> str:
    # the reference per mode: baseline if it ran, else the first variant that did
    baseline: dict[str, dict] = {}
    for r in sorted((r for r in rows if r["status"] == "ok"),
                    key=lambda r: r["name"] != "baseline"):
        baseline.setdefault(r["mode"], r)
    lines = [f"{'variant':<22} {'mode':<19} {'e2e p50':>8} {'e2e p99':>8} {'vs base':>8} "
             f"{'in':>4} {'out':>4} {'drop':>5} {'ROS %':>6} {'CPU %':>6}"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['name']:<22} {r['mode']:<19} {r['status']}: {r['reason'][:60]}")
            continue
        base = baseline.get(r["mode"])
        ratio = (f"{base['e2e_ms_p99'] / r['e2e_ms_p99']:.2f}x"
                 if base and r["e2e_ms_p99"] else "-")
        share = r["ros_overhead_share"]
        lines.append(
            f"{r['name']:<22} {r['mode']:<19} {r['e2e_ms_p50']:>8.1f} {r['e2e_ms_p99']:>8.1f} "
            f"{ratio:>8} {r['frames_in']:>4} {r['frames_out']:>4} {r['dropped']:>5} "
            f"{(share or 0) * 100:>6.1f} {r['cpu_percent']:>6.0f}")
    return "\n".join(lines)


def main() -> int:
    args = _parse()
    apply_ros_environment()
    os.environ.setdefault("AMENT_PREFIX_PATH", str(ROOT / ".venv"))
    bag = _drive(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        workdir = args.keep or Path(tmp)
        models = {name: _models(args, name) for name in args.variants}
        for repeat in range(args.repeats):
            for name in args.variants:
                for mode in args.modes:
                    rows.append(_case(args, bag, name, mode, models[name], workdir, repeat))
    summary = pipeline_report.summarise_runs(rows)
    report = {
        "variants": rows, "repeats": args.repeats, "summary": summary,
        "bag": str(bag), "command": " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(_table(rows))
    written = [args.json]
    if args.repeats > 1:
        print()
        print(pipeline_report.format_summary(summary))
        written.append(pipeline_report.plot_runs(rows, args.json.with_suffix(".png")))
    print(f"[bench] wrote {', '.join(map(str, written))}")
    return 0 if all(r["status"] != "failed" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
