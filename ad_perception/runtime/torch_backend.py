"""The torch backend: eager (or ``torch.compile``d) modules on CPU or CUDA in fp32/fp16/bf16.

Reduced precision casts the module and its float inputs; outputs come back as float32 on the
CPU because decoding (thresholds, NMS, numpy boxes) runs there for every backend alike. For
the lidar detector the pillar encoder stays fp32 (a scatter-max over few points gains nothing
from half precision) and only the BEV network is cast and compiled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ad_perception.runtime.cores import (
    camera_input_shape,
    check_input,
    check_lidar_inputs,
)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _to_host(outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(o.float().cpu() if (o.dtype != torch.float32 or o.device.type != "cpu")
                 else o for o in outputs)


def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Conv + BatchNorm folded into one conv (torch.fx), exact in eval mode up to rounding:
    one kernel per layer instead of two in eager mode."""
    from torch.fx.experimental.optimization import fuse

    return fuse(module.eval())


class TorchCameraCore:
    """Camera core: normalised images -> raw outputs, on ``device`` in ``precision``."""

    def __init__(self, model: torch.nn.Module, config: Any, device: str, precision: str,
                 compile_model: bool = False, fold: bool = False) -> None:
        self.dtype, self.device, self.config = DTYPES[precision], torch.device(device), config
        model = fold_batchnorm(model) if fold else model.eval()
        self.module = model.to(self.device, self.dtype)
        self.run = torch.compile(self.module) if compile_model else self.module

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_input("camera image tensor", images, camera_input_shape(self.config),
                    fixed_batch=False)
        with torch.inference_mode():
            return _to_host(self.run(images.to(self.device, self.dtype)))


class TorchLidarCore:
    """Lidar core: pillar encoder in fp32, BEV network in ``precision`` (optionally
    compiled), both on ``device``."""

    def __init__(self, model: torch.nn.Module, config: Any, device: str, precision: str,
                 compile_model: bool = False, fold: bool = False) -> None:
        self.dtype, self.device, self.config = DTYPES[precision], torch.device(device), config
        model = model.eval().to(self.device)
        self.pillar_encoder = model.pillar_encoder
        bev = model.bev_backbone_and_heads
        self.bev = (fold_batchnorm(bev) if fold else bev).to(self.dtype)
        self.run_bev = torch.compile(self.bev) if compile_model else self.bev

    def __call__(self, features: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor,
                 batch_size: int) -> tuple[torch.Tensor, ...]:
        check_lidar_inputs(self.config, features, num_points, coords)
        with torch.inference_mode():
            bev = self.pillar_encoder(features.to(self.device), num_points.to(self.device),
                                      coords.to(self.device), batch_size)
            return _to_host(self.run_bev(bev.to(self.dtype)))


def load_core(model: torch.nn.Module, kind: str, config: Any, device: str, precision: str,
              compile_model: bool = False, fold: bool = False
              ) -> TorchCameraCore | TorchLidarCore:
    core_type = TorchCameraCore if kind == "camera" else TorchLidarCore
    return core_type(model, config, device, precision, compile_model, fold)
