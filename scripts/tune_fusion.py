#!/usr/bin/env python3
"""Choose the fusion's class-decision settings on validation bags, never on held-out ones.

The detectors run once per bag (their outputs are recorded and replayed in call order); then
every combination of camera class weight, score-fusion rule, lifting and tracker class
half-life is fused and scored with the one scorer, and the table of fused class accuracy and
BEV mAP (lidar alone as reference) is printed and written as JSON. The chosen defaults live
in ``FusionConfig`` and ``TrackingConfig``.

    .venv/bin/python scripts/tune_fusion.py --bags data/val/* --json fusion_sweep.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _Replay:
    """A pipeline called on the same bag in the same order each pass: the first pass runs it
    and records its outputs, later passes hand them back (``rewind`` starts a pass)."""

    def __init__(self, pipeline) -> None:
        self.pipeline, self.recorded, self.index = pipeline, [], 0
        self.last_times = pipeline.last_times

    def rewind(self) -> None:
        self.index = 0

    def __call__(self, item):
        if self.index == len(self.recorded):
            self.recorded.append((self.pipeline(item), self.pipeline.last_times))
        result, self.last_times = self.recorded[self.index]
        self.index += 1
        return result


def main() -> int:
    from tqdm import tqdm

    from ad_perception.core.frustum import LiftingConfig
    from ad_perception.core.fusion import FusionConfig, FusionPipeline
    from ad_perception.core.tracking import TrackingConfig
    from ad_perception.eval.offline import AP_SCORE_THRESHOLD, load_ground_truth, run_pipelines
    from ad_perception.eval.scoring import build_predictions, evaluate_predictions
    from ad_perception.eval.variants import resolve_variants
    from ad_perception.runtime import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", type=Path, nargs="+", required=True, help="validation bags")
    parser.add_argument("--variant", default="baseline")
    parser.add_argument("--weights", default="0,0.1,0.2,0.3,0.5,0.7",
                        help="camera class weights to try")
    parser.add_argument("--modes", default="linear,geometric")
    parser.add_argument("--lifting", default="on",
                        help="lift camera-only boxes to 3D: on, off or on,off (both)")
    parser.add_argument("--tracking", default=str(TrackingConfig().class_half_life_s),
                        help="class half-lives (s) of the tracker's votes to try, 'off' for no "
                             "tracking, 'inf' for votes that never fade: e.g. off,0.5,1,inf "
                             "(default: the shipped half-life)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    (variant,) = resolve_variants([args.variant])
    camera = load_pipeline(variant.camera_checkpoint, threads=args.threads,
                           score_threshold=AP_SCORE_THRESHOLD)
    lidar = load_pipeline(variant.lidar_checkpoint, threads=args.threads,
                          score_threshold=AP_SCORE_THRESHOLD)
    truths = [load_ground_truth(bag) for bag in args.bags]
    cameras = [_Replay(camera) for _ in truths]
    lidars = [_Replay(lidar) for _ in truths]
    rows = []
    settings = [(lift, mode, float(w), track) for lift in args.lifting.split(",")
                for mode in args.modes.split(",") for w in args.weights.split(",")
                for track in args.tracking.split(",")]
    for lift, mode, weight, track in tqdm(settings, desc="fusion settings"):
        tracking = (TrackingConfig(enabled=False) if track == "off"
                    else TrackingConfig(class_half_life_s=float(track)))
        fusion = FusionPipeline(FusionConfig(camera_class_weight=weight, score_fusion=mode,
                                             lifting=LiftingConfig(enabled=lift == "on"),
                                             tracking=tracking))
        predictions = []
        for truth, cam, lid in zip(truths, cameras, lidars, strict=True):
            cam.rewind()
            lid.rewind()
            outputs = run_pipelines(truth, cam, lid, fusion, progress=False)
            predictions.append(build_predictions(
                truth, outputs, tuple(lidar.config.point_cloud_range),
                tuple(lidar.config.class_names)))
        score = evaluate_predictions(predictions).entry
        rows.append({"lifting": lift, "mode": mode, "camera_class_weight": weight,
                     "class_half_life_s": track,
                     "fused_class_accuracy": score["fused"]["class_accuracy"],
                     "fused_map_bev": score["fused"]["map_bev"],
                     "lidar_class_accuracy": score["lidar"]["class_accuracy"],
                     "lidar_map_bev": score["lidar"]["map_bev"],
                     "matched": score["fused"]["matched"]})
    print(f"{'lifting':8} {'mode':10} {'w_cam':>6} {'track':>6} {'fused acc':>10} "
          f"{'fused mAP':>10} {'lidar acc':>10} {'lidar mAP':>10}")
    for row in rows:
        print(f"{row['lifting']:8} {row['mode']:10} {row['camera_class_weight']:6.2f} "
              f"{row['class_half_life_s']:>6} "
              f"{row['fused_class_accuracy']:10.5f} {row['fused_map_bev']:10.4f} "
              f"{row['lidar_class_accuracy']:10.5f} {row['lidar_map_bev']:10.4f}")
    if args.json:
        args.json.write_text(json.dumps({"bags": [str(b) for b in args.bags],
                                         "variant": args.variant, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
