"""``ad-perception train {camera,lidar} --data BAG... --out DIR``: train a detector on bags.

Progress per epoch, validation AP after each, ``train_state.pt`` for resume (rerun the same
command), ``best.pt`` + card for the best epoch, ``history.json`` for plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["camera", "lidar"])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="training bags")
    parser.add_argument("--val", type=Path, nargs="*", default=None,
                        help="validation bags (default: --val-fraction of --data frames)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a "
                        "train_state.pt is in --out")
    parser.add_argument("--init", type=Path, help="start from this checkpoint (with card)")
    parser.add_argument("--teacher", type=Path, help="distil from this checkpoint's outputs")
    parser.add_argument("--distill-weight", type=float, default=1.0)
    camera = parser.add_argument_group("camera model")
    camera.add_argument("--width-multiplier", type=float, default=0.5)
    camera.add_argument("--fpn-channels", type=int, default=64)
    camera.add_argument("--repeat-threshold", type=float, default=0.0,
                        help="repeat-factor sampling of frames with rare classes (LVIS t; "
                        "0 = uniform)")
    camera.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("W", "H"),
                        help="network input, multiples of 32 (default 640 384; with --init: "
                        "the checkpoint's, or this size to fine-tune it at another "
                        "resolution)")
    lidar = parser.add_argument_group("lidar model")
    lidar.add_argument("--pillar-size", type=float, default=0.32)
    lidar.add_argument("--range", type=float, nargs=6, metavar="M",
                       default=(-20.48, -30.72, -3.0, 61.44, 30.72, 1.0),
                       help="x_min y_min z_min x_max y_max z_max in the lidar frame")
    lidar.add_argument("--output-stride", type=int, default=2)


def build_task(args: argparse.Namespace):
    """Model, task adapter and config for ``args`` (shared by train and the compressor)."""
    from ad_perception.models.checkpoint import load_checkpoint

    cache = args.out / "cache"
    for bag in [*args.data, *(args.val or [])]:
        if not (Path(bag) / "metadata.yaml").is_file():
            raise ValueError(f"{bag} is not a rosbag2 folder (no metadata.yaml)")
    val_bags = args.val if args.val else args.data
    train_split, val_split = ("all", "all") if args.val else ("train", "val")
    if args.model == "camera":
        from ad_perception.models.camera_detector import (
            CameraDetectorConfig,
            build_camera_detector,
        )
        from ad_perception.models.train_camera import CameraTask, load_camera_samples

        input_size = getattr(args, "input_size", None)
        if args.init:
            model, card = load_checkpoint(args.init)
            config = CameraDetectorConfig.from_dict(card.config)
            if input_size:  # the detector is fully convolutional: weights fit any size
                config = dataclasses.replace(config, input_size=tuple(input_size))
        else:
            config = CameraDetectorConfig(width_multiplier=args.width_multiplier,
                                          fpn_channels=args.fpn_channels,
                                          input_size=tuple(input_size or (640, 384)))
            model = build_camera_detector(config)
        train = load_camera_samples(args.data, config.input_size, train_split,
                                    args.val_fraction, args.seed, cache_dir=cache)
        val = load_camera_samples(val_bags, config.input_size, val_split, args.val_fraction,
                                  args.seed, scoring=True, cache_dir=cache)
        return CameraTask(model, config, train, val, args.batch_size, args.seed,
                          repeat_threshold=args.repeat_threshold)
    from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector
    from ad_perception.models.train_lidar import LidarTask, load_lidar_samples

    if args.init:
        model, card = load_checkpoint(args.init)
        config = LidarDetectorConfig.from_dict(card.config)
    else:
        config = LidarDetectorConfig(pillar_size=args.pillar_size,
                                     point_cloud_range=tuple(args.range),
                                     output_stride=args.output_stride)
        model = build_lidar_detector(config)
    train = load_lidar_samples(args.data, config, train_split, args.val_fraction, args.seed,
                               cache_dir=cache)
    val = load_lidar_samples(val_bags, config, val_split, args.val_fraction, args.seed,
                             cache_dir=cache)
    return LidarTask(model, config, train, val, args.batch_size, args.seed)


def output_distillation(teacher: torch.nn.Module, task, weight: float):
    """The plain response-distillation hook: the student's raw outputs regress the
    teacher's on the same inputs (the compression toolkit adds feature losses)."""
    teacher.eval()

    def hook(student_outputs, batch, inputs) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            teacher_outputs = task.forward_with(teacher, inputs)
        losses = [torch.nn.functional.mse_loss(s, t)
                  for s, t in zip(student_outputs, teacher_outputs, strict=True)]
        return {"distill": weight * torch.stack(losses).mean()}

    return hook


def run(args: argparse.Namespace) -> int:
    from ad_perception.models.checkpoint import CheckpointError, load_checkpoint, read_card
    from ad_perception.models.train_loop import TrainConfig, train

    torch.manual_seed(args.seed)
    try:
        task = build_task(args)
    except (ValueError, CheckpointError) as err:
        print(f"train: {err}", file=sys.stderr)
        return 1
    print(f"{args.model}: {len(task.train_samples)} training frames, "
          f"{len(task.val_samples)} validation frames, config {task.model_config}")
    distillation = None
    if args.teacher:
        teacher, _ = load_checkpoint(args.teacher)
        distillation = output_distillation(teacher, task, args.distill_weight)
    produced_by = {"command": "ad-perception " + shlex.join(getattr(args, "argv", sys.argv[1:])),
                   "seed": args.seed, "data": [str(p) for p in args.data],
                   "val": [str(p) for p in (args.val or [])]}
    if args.init:  # the lineage: what the starting weights were and how they were made
        init_card = read_card(args.init)
        produced_by["init"] = {"path": str(args.init), "sha256": init_card.sha256,
                               "produced_by": init_card.produced_by}
    result = train(task, TrainConfig(epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                                     threads=args.threads),
                   args.out, produced_by, resume=not args.no_resume, distillation=distillation)
    print(f"best epoch {result.best_epoch}: {result.best_metrics}")
    print(f"checkpoint: {result.checkpoint}")
    return 0
