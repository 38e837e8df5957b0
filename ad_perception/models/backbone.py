"""A width-scalable ResNet-18 trunk made of torchvision's own ``BasicBlock``.

torchvision's ``resnet18`` hard-codes 64/128/256/512 channels; the camera detector needs a
width multiplier to trade accuracy for the 2-core CPU, so the trunk is assembled here from the
same blocks. At ``width_multiplier=1.0`` the parameter names and shapes are exactly those of
``torchvision.models.resnet18`` (minus ``fc``), so ImageNet weights load if a user has them.
Plain BatchNorm throughout (torchvision's classification builder never uses FrozenBatchNorm).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from ad_perception import CAMERA_DROPPABLE_BLOCKS, CAMERA_STEMS
from ad_perception.models.layers import make_divisible

RESNET18_WIDTHS = (64, 128, 256, 512)
RESNET18_DEPTHS = (2, 2, 2, 2)
# Output stride of the stem and of each of the four stages.
STAGE_STRIDES = (4, 8, 16, 32)
# How the stem reaches stride 4. ``conv7_maxpool`` is torchvision's (7x7 stride-2 conv, 3x3
# stride-2 max-pool). ``patch4`` is a 4x4 stride-4 conv on non-overlapping patches: on the
# int8 CPU path the 7x7 conv over 3 input channels and the max-pool over the half-resolution
# map were a third of the pruned detector's time, while the patch conv is one dense GEMM over
# 48 values per output and no pool. Both give the same channels at stride 4, so the rest of
# the network is untouched; a compression step (``restem``) swaps one for the other.
# ``conv5_maxpool`` is torchvision's stem with a 5x5 kernel: 51 % of the 7x7 conv's MACs, same
# pool, and its weights start as the centre of the 7x7 kernel they replace.
STEMS = CAMERA_STEMS
# Blocks that may be removed (``dropped_blocks``): the second block of each stage keeps the
# stage's channels and resolution, so taking it out leaves its input as the stage output.
DROPPABLE_BLOCKS = CAMERA_DROPPABLE_BLOCKS


class ResNetTrunk(nn.Module):
    """ResNet-18 trunk returning the stride-8, 16 and 32 feature maps (C3, C4, C5)."""

    def __init__(self, width_multiplier: float = 1.0, stem: str = "conv7_maxpool",
                 dropped_blocks: tuple[str, ...] = ()) -> None:
        super().__init__()
        widths = [make_divisible(w * width_multiplier) for w in RESNET18_WIDTHS]
        self.out_channels = tuple(widths[1:])
        self.stem_kind = stem
        self.conv1, pool = make_stem(stem, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = pool  # the name torchvision gives it, Identity for a patch stem
        in_channels = widths[0]
        for index, (width, depth) in enumerate(zip(widths, RESNET18_DEPTHS, strict=True)):
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}", _make_stage(in_channels, width, depth, stride))
            in_channels = width
        for name in dropped_blocks:
            drop_block(self, name)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c3, c4, c5


def drop_block(trunk: ResNetTrunk, name: str) -> None:
    """Replace residual block ``name`` ("layer2.1") by the identity, in place."""
    if name not in DROPPABLE_BLOCKS:
        raise ValueError(f"block {name!r} cannot be dropped; droppable blocks: "
                         f"{', '.join(DROPPABLE_BLOCKS)}")
    stage, index = name.split(".")
    getattr(trunk, stage)[int(index)] = nn.Identity()


def make_stem(kind: str, channels: int) -> tuple[nn.Conv2d, nn.Module]:
    """(conv, pool) of a stem; the batch norm and ReLU between them are the same for all."""
    if kind in ("conv7_maxpool", "conv5_maxpool"):
        size = 7 if kind == "conv7_maxpool" else 5
        return (nn.Conv2d(3, channels, kernel_size=size, stride=2, padding=size // 2,
                          bias=False),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    if kind == "patch4":
        return nn.Conv2d(3, channels, kernel_size=4, stride=4, bias=False), nn.Identity()
    raise ValueError(f"unknown stem {kind!r}; choose one of {', '.join(STEMS)}")


def _make_stage(in_channels: int, width: int, depth: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != width:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(width),
        )
    blocks = [BasicBlock(in_channels, width, stride, downsample)]
    blocks += [BasicBlock(width, width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)
