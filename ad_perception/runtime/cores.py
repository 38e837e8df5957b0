"""What every backend's core shares: input checks and the lidar split.

A core is what ``CameraPipeline``/``LidarPipeline`` call between pre- and post-processing:
``camera_core(images (B, 3, H, W)) -> outputs`` (OpenVINO cores: (B, H, W, 3), their
``input_layout``; the pipeline letterboxes into whichever the core takes) and
``lidar_core(features, num_points, coords, batch_size) -> (heatmap, regression)``. For
every backend but eager torch the lidar pillar encoder (data-dependent sizes) stays in torch
and only the fixed-size BEV network runs in the backend, so ``LidarSplitCore`` glues the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ad_perception.runtime.errors import RuntimeInputError


def camera_input_shape(config: Any, batch: int = 1) -> tuple[int, int, int, int]:
    width, height = config.input_size
    return batch, 3, height, width


def lidar_bev_shape(config: Any, batch: int = 1) -> tuple[int, int, int, int]:
    return (batch, *config.bev_shape)


def check_input(name: str, tensor: Any, expected: Sequence[int], fixed_batch: bool) -> None:
    """Raise ``RuntimeInputError`` naming the input when its shape is not ``expected``
    (the batch dimension may differ unless the exported graph fixed it)."""
    shape = tuple(getattr(tensor, "shape", ()))
    want = tuple(expected)
    matches = len(shape) == len(want) and shape[1:] == want[1:] and (
        shape[0] == want[0] or not fixed_batch)
    if not matches:
        batch = want[0] if fixed_batch else "B"
        rest = ", ".join(map(str, want[1:]))
        raise RuntimeInputError(f"{name}: expected shape ({batch}, {rest}), got {shape}; "
                                f"letterbox/pillarise with the model's config (the pipelines do)")


def check_lidar_inputs(config: Any, features: torch.Tensor, num_points: torch.Tensor,
                       coords: torch.Tensor) -> None:
    points, features_per_point = config.max_points_per_pillar, 9
    if features.ndim != 3 or tuple(features.shape[1:]) != (points, features_per_point):
        raise RuntimeInputError(f"pillar features: expected (P, {points}, {features_per_point}), "
                                f"got {tuple(features.shape)}")
    pillars = features.shape[0]
    if tuple(num_points.shape) != (pillars,) or tuple(coords.shape) != (pillars, 3):
        raise RuntimeInputError(f"pillars: num_points {tuple(num_points.shape)} and coords "
                                f"{tuple(coords.shape)} must be ({pillars},) and ({pillars}, 3)")


class LidarSplitCore:
    """Eager torch pillar encoder + a backend's BEV network behind the lidar core call."""

    def __init__(self, pillar_encoder: torch.nn.Module, bev_core: Callable[[torch.Tensor], Any],
                 config: Any) -> None:
        self.pillar_encoder = pillar_encoder.eval()
        self.bev_core = bev_core
        self.config = config

    def __call__(self, features: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor,
                 batch_size: int) -> Sequence[Any]:
        check_lidar_inputs(self.config, features, num_points, coords)
        with torch.inference_mode():
            bev = self.pillar_encoder(features, num_points, coords, batch_size)
        return self.bev_core(bev)
