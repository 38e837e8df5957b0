"""``ad-perception eval BAG... --mode offline --variants baseline --json OUT``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", type=Path, nargs="+", help="rosbag2 folders with ground truth")
    parser.add_argument("--mode", choices=["offline", "live"], default="offline")
    parser.add_argument("--variants", default="baseline", help="comma-separated names")
    parser.add_argument("--json", type=Path, help="write results.json-shaped output here")
    parser.add_argument("--camera-checkpoint", type=Path, help="override the camera model")
    parser.add_argument("--lidar-checkpoint", type=Path, help="override the lidar model")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.mode == "live":
        print("eval: --mode live (replay through the launched graph) is not built yet; "
              "use --mode offline", file=sys.stderr)
        return 2
    from ad_perception.core.fusion import FusionPipeline
    from ad_perception.core.pipelines import load_torch_pipeline
    from ad_perception.eval.offline import EvalError, run_bag, score
    from ad_perception.eval.variants import resolve_variants
    from ad_perception.models.checkpoint import CheckpointError

    try:
        variants = resolve_variants([v.strip() for v in args.variants.split(",") if v.strip()],
                                    args.camera_checkpoint, args.lidar_checkpoint)
    except ValueError as err:
        print(f"eval: {err}", file=sys.stderr)
        return 2
    results: dict = {"variants": {}}
    for variant in variants:
        try:
            camera = load_torch_pipeline(variant.camera_checkpoint, args.threads,
                                         score_threshold=0.05)
            lidar = load_torch_pipeline(variant.lidar_checkpoint, args.threads,
                                        score_threshold=0.05)
        except CheckpointError as err:
            print(f"eval: variant {variant.name}: {err}", file=sys.stderr)
            return 1
        fusion = FusionPipeline()
        predictions = []
        for bag in args.bags:
            try:
                predictions.append(run_bag(bag, camera, lidar, fusion, lidar.config,
                                           camera.config.class_names,
                                           progress=not args.no_progress))
            except EvalError as err:
                print(f"eval: {err}", file=sys.stderr)
                return 1
        results["variants"][variant.name] = {
            **score(predictions),
            "models": {"camera": str(variant.camera_checkpoint),
                       "lidar": str(variant.lidar_checkpoint)},
            "bags": [str(b) for b in args.bags],
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    return 0
