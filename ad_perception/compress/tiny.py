"""Tiny detector configs and helpers for fast tests and smoke runs of every compression step
(a 160x96 camera core and a 25.6 m lidar grid run in milliseconds on one thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

TINY_CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25,
                                   fpn_channels=32)
TINY_LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                                 pillar_channels=16, backbone_channels=(16, 32, 64),
                                 backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)


def randomise_batchnorm(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms: a fresh BN is the
    identity, which would hide folding, pruning and export errors."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            count = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(count, generator=generator) * 0.1)
    return model


def tiny_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A random tiny detector whose outputs vary enough to give detections above 0.05 (the
    training-time initialisation starts heatmaps at a 1% prior: nothing would be detected)."""
    torch.manual_seed(seed)
    if kind == "camera":
        model = build_camera_detector(TINY_CAMERA)
    else:
        model = build_lidar_detector(TINY_LIDAR)
        heatmap = model.bev_backbone_and_heads.heatmap
        with torch.no_grad():
            heatmap.weight.normal_(0.0, 0.05)
            heatmap.bias.fill_(-1.0)
    return randomise_batchnorm(model.eval(), seed + 1)


def tiny_config(kind: str) -> CameraDetectorConfig | LidarDetectorConfig:
    return TINY_CAMERA if kind == "camera" else TINY_LIDAR


def save_tiny_checkpoint(kind: str, path: str | Path, seed: int = 0) -> Path:
    """A tiny random checkpoint with its card, as ``save_checkpoint`` writes them."""
    from ad_perception.models.checkpoint import save_checkpoint

    save_checkpoint(tiny_model(kind, seed), path, tiny_config(kind),
                    {"command": "tiny test model", "seed": seed, "data": []})
    return Path(path)


def synthetic_camera_samples(count: int, seed: int = 0) -> Any:
    """``count`` letterboxed noise-and-blocks images at the tiny input size, no labels yet
    (see ``pseudo_labelled``)."""
    from ad_perception.core.types import Detections2D
    from ad_perception.models.train_camera import CameraSamples

    rng = np.random.default_rng(seed)
    width, height = TINY_CAMERA.input_size
    images = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    for image in images:  # a few solid blocks give the detector structure to respond to
        for _ in range(4):
            x, y = rng.integers(0, width - 24), rng.integers(0, height - 24)
            image[y:y + rng.integers(8, 24), x:x + rng.integers(8, 24)] = rng.integers(0, 256, 3)
    empty = [np.zeros((0, 4), np.float32)] * count
    return CameraSamples(images, empty, [np.zeros(0, np.int64)] * count,
                         [Detections2D.empty()] * count, [np.zeros(0, bool)] * count,
                         (width, height))


def synthetic_lidar_samples(count: int, seed: int = 0) -> Any:
    """``count`` random clouds inside the tiny lidar range, no labels yet."""
    from ad_perception.core.types import Boxes3D
    from ad_perception.models.train_lidar import LidarSamples

    rng = np.random.default_rng(seed)
    low, high = TINY_LIDAR.point_cloud_range[:3], TINY_LIDAR.point_cloud_range[3:]
    points = [np.column_stack([rng.uniform(low, high, (4000, 3)),
                               rng.uniform(0, 1, 4000)]).astype(np.float32)
              for _ in range(count)]
    return LidarSamples(points, [Boxes3D.empty()] * count, [np.zeros(0, np.int64)] * count)


def pseudo_labelled(frames: Any, core: Any, top_k: int = 8) -> Any:
    """``frames.samples`` relabelled with ``core``'s own top-k detections per frame: the model
    scores ~100 points on them, so any loss of fidelity (int8, pruning) shows as lost AP.
    Returns new samples (camera: nothing ignored; lidar: every box counts as observed)."""
    from dataclasses import replace

    from ad_perception.compress.frames import run_core

    detections = [frames.decode(o) for o in run_core(frames, core)]
    best = [d.select(np.argsort(-d.scores, kind="stable")[:top_k]) for d in detections]
    samples = frames.samples
    if hasattr(samples, "images"):
        return replace(samples, gt=best, ignore=[np.zeros(len(d), bool) for d in best])
    return replace(samples, gt=best, num_points=[np.full(len(d), 100) for d in best])
