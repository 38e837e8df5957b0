"""Camera detector: FCOS-style, anchor-free, on a width-scalable ResNet-18 trunk.

The module built here is only the network core, ``core(image) -> tuple of raw tensors``:
letterboxing (``letterbox.py``), decoding and NMS (``camera_postprocess.py``) and the loss
(``camera_loss.py``) live outside it, so the core exports to ONNX/OpenVINO as one fixed-size
graph with no data-dependent control flow, and compression tools see only convolutions.

Why this shape (DESIGN.md, "Models built to be compressed"):
- plain BatchNorm after every conv (pruning and BN folding reach every layer);
- channel counts are multiples of 8;
- one head per pyramid level (not shared across levels) because PT2E QAT breaks on shared
  heads (FACTS.md), and an unshared head can be pruned per level;
- classification logits, box regression and centerness leave the core as separate tensors, so
  int8 calibration gives each its own range instead of one range for a concatenation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from ad_perception import CLASSES
from ad_perception.models.backbone import DROPPABLE_BLOCKS, STEMS, ResNetTrunk
from ad_perception.models.layers import conv_bn_relu, init_prior_bias

# Per level the core emits: class logits (B, K, H, W), box distances (B, 4, H, W) as
# left/top/right/bottom in units of the level stride (before ReLU), centerness logit (B, 1, H, W).
OUTPUTS_PER_LEVEL = 3
_TRUNK_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class CameraDetectorConfig:
    """Everything needed to rebuild the camera detector; stored verbatim in checkpoint cards."""

    input_size: tuple[int, int] = (640, 384)  # network input (width, height) in pixels
    width_multiplier: float = 1.0  # ResNet-18 trunk width; 1.0 is torchvision's resnet18
    stem: str = "conv7_maxpool"  # conv5_maxpool, patch4 (4x4 stride-4 conv): backbone.STEMS
    dropped_blocks: tuple[str, ...] = ()  # trunk blocks replaced by identity ("layer1.1")
    fpn_channels: int = 96
    head_convs: int = 2  # conv+BN+ReLU layers in each classification / regression tower
    strides: tuple[int, ...] = (8, 16, 32)  # pyramid levels; > 32 adds stride-2 convs on P5
    class_names: tuple[str, ...] = CLASSES
    score_threshold: float = 0.3
    nms_iou_threshold: float = 0.6
    pre_nms_top_k: int = 1000  # per level, before NMS
    max_detections: int = 100
    center_sampling_radius: float = 1.5  # in strides (FCOS centre sampling)
    layer_widths: dict[str, Any] = field(default_factory=dict)  # filled for pruned models
    low_rank: dict[str, int] = field(default_factory=dict)  # layer -> rank, factored models

    def __post_init__(self) -> None:
        width, height = self.input_size
        strides = tuple(self.strides)
        if not strides or list(strides) != sorted(strides) or strides[0] not in _TRUNK_STRIDES:
            raise ValueError(f"strides must ascend from one of {_TRUNK_STRIDES}, got {strides}")
        if any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False)):
            raise ValueError(f"strides must double from level to level, got {strides}")
        if width % strides[-1] or height % strides[-1]:
            raise ValueError(
                f"input_size {self.input_size} must be divisible by the largest stride "
                f"{strides[-1]} so every level has a whole number of cells"
            )
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        unknown = sorted(set(self.dropped_blocks) - set(DROPPABLE_BLOCKS))
        if unknown:
            raise ValueError(f"dropped_blocks {unknown} cannot be dropped; droppable blocks: "
                             f"{', '.join(DROPPABLE_BLOCKS)}")
        if self.fpn_channels % 8:
            raise ValueError(f"fpn_channels must be a multiple of 8, got {self.fpn_channels}")
        object.__setattr__(self, "input_size", (int(width), int(height)))
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "dropped_blocks", tuple(sorted(set(self.dropped_blocks))))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CameraDetectorConfig:
        values = dict(values)
        for key in ("input_size", "strides", "class_names", "dropped_blocks"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def scale_ranges(config: CameraDetectorConfig) -> list[tuple[float, float]]:
    """FCOS regression ranges: level with stride s takes objects whose largest side distance
    lies in [4s, 8s) — (0, 64), (64, 128), (128, inf) for strides 8/16/32."""
    ranges = []
    for index, stride in enumerate(config.strides):
        low = 0.0 if index == 0 else 4.0 * stride
        high = math.inf if index == len(config.strides) - 1 else 8.0 * stride
        ranges.append((low, high))
    return ranges


class FeaturePyramid(nn.Module):
    """Top-down FPN over the trunk levels in use, plus stride-2 convs for levels beyond 32."""

    def __init__(self, trunk_channels: tuple[int, ...], strides: tuple[int, ...],
                 channels: int) -> None:
        super().__init__()
        trunk_levels = [s for s in strides if s in _TRUNK_STRIDES]
        self.first_trunk_level = _TRUNK_STRIDES.index(trunk_levels[0])
        used = trunk_channels[self.first_trunk_level:]
        self.lateral = nn.ModuleList(conv_bn_relu(c, channels, 1, relu=False) for c in used)
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels) for _ in used)
        self.extra = nn.ModuleList(
            conv_bn_relu(channels, channels, stride=2) for s in strides if s > 32
        )

    def forward(self, trunk_features: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        features = trunk_features[self.first_trunk_level:]
        merged = [self.lateral[-1](features[-1])]
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1]),
                                    strict=True):
            top_down = functional.interpolate(merged[0], scale_factor=2.0, mode="nearest")
            merged.insert(0, lateral(feature) + top_down)
        levels = [smooth(x) for smooth, x in zip(self.smooth, merged, strict=True)]
        for extra in self.extra:
            levels.append(extra(levels[-1]))
        return levels


class LevelHead(nn.Module):
    """FCOS head for one pyramid level: classification tower and a regression tower that
    also predicts centerness (the FCOS-imprv placement)."""

    def __init__(self, channels: int, num_classes: int, num_convs: int) -> None:
        super().__init__()
        self.cls_tower = nn.Sequential(*(conv_bn_relu(channels, channels)
                                         for _ in range(num_convs)))
        self.reg_tower = nn.Sequential(*(conv_bn_relu(channels, channels)
                                         for _ in range(num_convs)))
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.box_regression = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        init_prior_bias(self.cls_logits)
        for conv in (self.box_regression, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            # Distances start at ~1 stride so the first GIoU gradients are meaningful.
            nn.init.constant_(conv.bias, 1.0 if conv is self.box_regression else 0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls_features = self.cls_tower(x)
        reg_features = self.reg_tower(x)
        return (self.cls_logits(cls_features), self.box_regression(reg_features),
                self.centerness(reg_features))


class CameraDetector(nn.Module):
    """Network core: normalised letterboxed image (B, 3, H, W) -> flat tuple of raw tensors,
    ``OUTPUTS_PER_LEVEL`` per level in stride order (cls, box, centerness, cls, ...)."""

    def __init__(self, config: CameraDetectorConfig) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(config.width_multiplier, config.stem, config.dropped_blocks)
        self.fpn = FeaturePyramid(self.trunk.out_channels, config.strides, config.fpn_channels)
        self.heads = nn.ModuleList(
            LevelHead(config.fpn_channels, config.num_classes, config.head_convs)
            for _ in config.strides
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        levels = self.fpn(self.trunk(images))
        outputs: list[torch.Tensor] = []
        for head, features in zip(self.heads, levels, strict=True):
            outputs.extend(head(features))
        return tuple(outputs)

    def output_layers(self) -> list[nn.Module]:
        """Final convs whose output channels mean something (classes, box sides): pruning
        must leave their outputs alone, so this is the pruner's ``ignored_layers`` list."""
        return [conv for head in self.heads
                for conv in (head.cls_logits, head.box_regression, head.centerness)]


def build_camera_detector(config: CameraDetectorConfig | None = None) -> CameraDetector:
    """Build the core with random weights (nothing pretrained can be downloaded here), then
    apply the per-layer widths a pruned checkpoint recorded, if any."""
    config = config or CameraDetectorConfig()
    model = CameraDetector(config)
    if config.low_rank:
        from ad_perception.models.structure import apply_low_rank

        apply_low_rank(model, config.low_rank)
    if config.layer_widths:
        from ad_perception.models.structure import apply_layer_widths

        apply_layer_widths(model, config.layer_widths)
    return model


def split_levels(outputs: tuple[torch.Tensor, ...] | list[Any]) -> list[tuple[Any, Any, Any]]:
    """Group the flat core outputs into (cls, box, centerness) per level."""
    if len(outputs) % OUTPUTS_PER_LEVEL:
        raise ValueError(f"expected {OUTPUTS_PER_LEVEL} outputs per level, got {len(outputs)}")
    return [tuple(outputs[i:i + OUTPUTS_PER_LEVEL])  # type: ignore[misc]
            for i in range(0, len(outputs), OUTPUTS_PER_LEVEL)]


def level_points(config: CameraDetectorConfig, device: torch.device | None = None
                 ) -> list[torch.Tensor]:
    """Cell centres in network-input pixels, (H*W, 2) as x, y per level, row-major like the
    flattened head outputs."""
    width, height = config.input_size
    points = []
    for stride in config.strides:
        ys = (torch.arange(height // stride, device=device, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(width // stride, device=device, dtype=torch.float32) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
    return points


__all__ = ["CameraDetector", "CameraDetectorConfig", "build_camera_detector", "level_points",
           "scale_ranges", "split_levels"]
