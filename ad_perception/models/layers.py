"""Building blocks shared by the camera and lidar detectors.

Every convolution that is followed by a norm is a bias-free conv + plain ``BatchNorm2d`` +
ReLU: BatchNorm folds into the conv at export, torch-pruning follows it through the
dependency graph, and int8 toolchains fuse the triple into one quantized op. Frozen BN and
GroupNorm are avoided because neither of those is pruned (see FACTS.md).
"""

from __future__ import annotations

import math

from torch import nn


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (never below it).

    Multiples of 8 keep int8/bf16 kernels on their vectorised paths and match ``round_to=8``
    in pruning, so a pruned model has the same kind of widths as a freshly built one.
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:  # never lose more than 10% to rounding down
        rounded += divisor
    return rounded


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 relu: bool = True) -> nn.Sequential:
    """Conv (no bias) + BatchNorm2d (+ ReLU), the unit the whole network is made of."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def init_prior_bias(conv: nn.Conv2d, prior_probability: float = 0.01) -> None:
    """Start classification logits at a low object prior so focal loss is stable from
    step one (RetinaNet): otherwise the many background cells swamp the first updates."""
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, -math.log((1.0 - prior_probability) / prior_probability))
