"""``ad-perception demo`` (``make demo``): the whole story in one command.

1. a short embedded-world drive is generated once (cached under data/demo/);
2. compressed variants are built if missing (int8 with a small calibration set; variants
   built or shipped, e.g. prune50_int8, are picked up when present);
3. the perception graph is launched from its launch file for the baseline and for each
   compressed variant, the drive is played onto its topics at the recorded pace, every
   output is recorded and scored against the ground truth (``ad-perception eval --mode
   live``);
4. the comparison table (AP, end-to-end p50/p99, drops, speedup) is printed with the
   report's path.

What could not be done (no compressed variant, a graph that would not start) is said in
the output and the report, and the demo falls back to what can run instead of failing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ad_perception.ros_env import apply_ros_environment

DEFAULT_BAG = Path("data/demo/drive_seed7")
CALIB_SEED = 8
# shown when built or shipped
DEMO_VARIANTS = ("int8", "prune50_int8", "prune50_depth_int8", "lowrank_int8")
BUILT_BY_DEMO = ("int8",)  # cheap enough to build on a first run (no fine-tuning)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", type=Path, default=DEFAULT_BAG,
                        help="drive to replay; generated if missing (default %(default)s)")
    parser.add_argument("--frames", type=int, default=50, help="frames to generate (10 Hz)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="report folder")
    parser.add_argument("--variants", default="auto",
                        help="comma-separated compressed variants to compare with the "
                             f"baseline (default: those of {list(DEMO_VARIANTS)} that exist, "
                             "int8 built if missing)")
    parser.add_argument("--no-build", action="store_true",
                        help="never run the compression toolkit; show what exists")
    parser.add_argument("--calib-frames", type=int, default=16,
                        help="frames of the calibration drive for int8 (default %(default)s)")
    parser.add_argument("--mode", choices=["live", "offline"], default="live",
                        help="live: through the launched graph (default); offline: pipelines "
                             "called directly")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--camera-checkpoint", type=Path, help="baseline camera model override")
    parser.add_argument("--lidar-checkpoint", type=Path, help="baseline lidar model override")
    parser.add_argument("--artifacts", type=Path,
                        help="where compressed variants live (default: artifacts/)")


class _Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[demo {time.monotonic() - self.start:6.1f} s] {message}", flush=True)


def ensure_bag(path: Path, frames: int, seed: int, clock: _Clock) -> Path:
    """Generate the drive once; a half-written folder from an interrupted run is redone."""
    if (path / "metadata.yaml").exists():
        clock.say(f"reusing {path}")
        return path
    from ad_perception.sim.bag_output import generate_bag

    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    clock.say(f"generating {frames} frames of the embedded world (seed {seed}) -> {path}")
    generate_bag(partial, frames, seed, "mcap", "default")
    partial.rename(path)
    return path


def _variant_names(args: argparse.Namespace) -> list[str]:
    if args.variants != "auto":
        return [v.strip() for v in args.variants.split(",") if v.strip() and v != "baseline"]
    return list(DEMO_VARIANTS)


def build_variants(args: argparse.Namespace, names: list[str], baseline, clock: _Clock,
                   ) -> tuple[list[str], list[str]]:
    """(variants ready to compare, notes on those that are not)."""
    from ad_perception.eval.variants import (
        compress_command,
        default_variant_dir,
        resolve_variants,
    )

    ready, notes = [], []
    for name in names:
        try:
            resolve_variants([name])
            ready.append(name)
            continue
        except ValueError as err:
            reason = " ".join(line.strip() for line in str(err).splitlines())
        if args.no_build or (args.variants == "auto" and name not in BUILT_BY_DEMO):
            notes.append(f"{name}: not built ({reason})")
            continue
        calib = ensure_bag(args.bag.parent / f"calib_seed{CALIB_SEED}", args.calib_frames,
                           CALIB_SEED, clock)
        built = True
        for model, checkpoint in (("camera", baseline.camera_checkpoint),
                                  ("lidar", baseline.lidar_checkpoint)):
            out = default_variant_dir(model, name)
            if out.exists() and (out / "card.json").exists():
                continue
            clock.say(f"building {name} for the {model} model (ad-perception compress, "
                      f"{args.calib_frames} calibration frames)")
            command = [sys.executable, "-m", "ad_perception.cli", "compress", "--model", model,
                       "--recipe", name, "--calib", str(calib), "--val", str(calib),
                       "--baseline", str(checkpoint), "--out", str(out), "--threads", "2"]
            returncode, last = _run_teed(command)
            if returncode != 0:
                notes.append(f"{name}: building the {model} model failed: "
                             + " / ".join(last[-3:])
                             + f" (retry: {compress_command(model, name)})")
                built = False
                break
        if built:
            ready.append(name)
    return ready, notes


def _run_teed(command: list[str]) -> tuple[int, list[str]]:
    """Run a child with its output shown live (progress bars included); returns the exit
    status and its last lines for the summary."""
    import collections

    tail: collections.deque[str] = collections.deque(maxlen=20)
    process = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    partial = b""
    for chunk in iter(lambda: process.stdout.read1(4096), b""):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        partial += chunk
        *lines, partial = partial.replace(b"\r", b"\n").split(b"\n")
        tail.extend(line.decode(errors="replace").strip() for line in lines if line.strip())
    if partial.strip():
        tail.append(partial.decode(errors="replace").strip())
    return process.wait(), list(tail)


def _evaluate(args: argparse.Namespace, bag: Path, names: list[str], mode: str):
    from ad_perception.eval.cli import resolve_models
    from ad_perception.eval.evaluate import evaluate
    from ad_perception.eval.topic_map import TopicMap

    # the checkpoint overrides replace the baseline's models only
    variants = resolve_models(["baseline"], mode, args.camera_checkpoint, args.lidar_checkpoint)
    compressed = [n for n in names if n != "baseline"]
    if compressed:
        variants += resolve_models(compressed, mode, None, None)
    eval_args = argparse.Namespace(
        bags=[bag], mode=mode, out=args.out / "eval", rate=args.rate, clock=False, launch=None,
        launch_arg=[], workers=1, threads=2, fresh=True, no_progress=False,
        argv=["eval", str(bag), "--mode", mode, "--variants", ",".join(names), "--out",
              str(args.out / "eval")])
    eval_args.out.mkdir(parents=True, exist_ok=True)
    return evaluate(eval_args, variants, TopicMap())


def _table(results: dict) -> list[dict]:
    from ad_perception.eval.report import speedups

    speed = speedups(results["variants"])
    rows = []
    for name, entry in results["variants"].items():
        drops = entry.get("drops", {}).get("fused", {})
        rows.append({
            "variant": name, "camera_map50": entry["camera"]["map50"],
            "fused_map_bev": entry["fused"]["map_bev"],
            "e2e_p50_ms": entry["latency_ms"]["p50"], "e2e_p99_ms": entry["latency_ms"]["p99"],
            "frames_out": drops.get("frames_out"), "frames_in": drops.get("frames_in"),
            "speedup": speed.get(name)})
    return rows


def _print_table(rows: list[dict], mode: str) -> None:
    def fmt(value, spec):
        if value is None:  # a missing figure keeps its column's width
            return "-".rjust(int(spec.split(".")[0] or 0)) if spec[0].isdigit() else "-"
        return format(value, spec)

    latency = "e2e" if mode == "live" else "compute"
    width = max([14, *(len(row["variant"]) for row in rows)])
    print(f"\n{'variant':{width}s} {'cam mAP50':>9s} {'fused BEV mAP':>13s} "
          f"{latency + ' p50':>9s} {latency + ' p99':>9s} {'frames out':>10s} {'speedup':>8s}")
    for row in rows:
        frames = f"{fmt(row['frames_out'], 'd')}/{fmt(row['frames_in'], 'd')}"
        speed = "-" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        print(f"{row['variant']:{width}s} {fmt(row['camera_map50'], '9.3f')} "
              f"{fmt(row['fused_map_bev'], '13.3f')} {fmt(row['e2e_p50_ms'], '9.1f')} "
              f"{fmt(row['e2e_p99_ms'], '9.1f')} {frames:>10s} {speed:>8s}")


def run(args: argparse.Namespace) -> int:
    apply_ros_environment()
    if args.artifacts:
        os.environ["AD_PERCEPTION_ARTIFACTS"] = str(args.artifacts.resolve())
    from ad_perception.eval.variants import resolve_variants

    clock = _Clock()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        (baseline,) = resolve_variants(["baseline"], args.camera_checkpoint,
                                       args.lidar_checkpoint)
    except ValueError as err:
        print(f"demo: no baseline detectors: {err}\n  train them (README, Models) or pass "
              "--camera-checkpoint/--lidar-checkpoint", file=sys.stderr)
        return 2
    bag = ensure_bag(args.bag, args.frames, args.seed, clock)
    names, notes = build_variants(args, _variant_names(args), baseline, clock)
    if not names:
        clock.say("no compressed variant is available: showing the baseline alone")
    mode = args.mode
    clock.say(f"evaluating baseline{''.join(', ' + n for n in names)} ({mode}) on {bag}")
    results, scores = _evaluate(args, bag, ["baseline", *names], mode)
    live_failed = [f for f in results["failed"] if "live replay failed" in f["error"]]
    if mode == "live" and live_failed:
        for failure in live_failed:
            clock.say(f"live replay of {failure['variant']} failed: "
                      f"{failure['error'].splitlines()[0]}")
        clock.say("falling back to offline evaluation (pipelines called directly)")
        mode = "offline"
        results, scores = _evaluate(args, bag, ["baseline", *names], mode)
    from ad_perception.eval.plots import write_figures
    from ad_perception.eval.report import write_report

    out = args.out / "eval"
    (out / "results.json").write_text(json.dumps(results, indent=2))
    paths = write_report(results, write_figures(scores, out), out)
    rows = _table(results)
    _print_table(rows, mode)
    print("\ncam mAP50: camera AP@0.5; fused BEV mAP: fused objects, BEV AP at KITTI IoU; "
          + ("e2e: sensor message published -> fused objects received, through DDS and the "
             "launched nodes (ms)" if mode == "live" else
             "compute: camera + lidar + fusion per frame, no transport (ms)")
          + "; speedup: baseline p50 / variant p50.")
    for note in notes + [f"{f['variant']}: {f['error']}" for f in results["failed"]]:
        print(f"not shown: {note}")
    summary = {"bag": str(bag), "mode": mode, "rows": rows, "notes": notes,
               "report": str(paths["md"]), "seconds": round(time.monotonic() - clock.start, 1)}
    (args.out / "demo.json").write_text(json.dumps(summary, indent=2))
    print(f"\nreport: {paths['md']} (also {paths['html'].name}, pareto.png); "
          f"took {summary['seconds']:.0f} s")
    return 0 if rows else 1

