"""Lidar detector: PointPillars encoder + BEV CNN + CenterPoint-style centre heads.

Two modules with a hard line between them:
- ``pillar_encoder`` (PillarFeatureNet + scatter) consumes the variable-size pillar tensor from
  ``voxelize.pillarize`` and writes a dense BEV pseudo-image. Its sizes depend on the data, so
  it stays in eager torch.
- ``bev_backbone_and_heads`` maps the fixed-size BEV image to a per-class heatmap and a
  regression map. It is plain conv/BN/ReLU/transposed-conv with no data-dependent control
  flow: this is what gets pruned, exported to ONNX/OpenVINO and quantised.

Default range x -19.2..70.4 m, y -40..40 m, z -3..1 m with 0.2 m pillars (448 x 400 cells):
mostly ahead, where the front camera looks and fusion needs it, with 19 m behind for objects
the 360-degree lidar sees overtaking. Heads run at output stride 4 (0.8 m cells, as
CenterPoint-pillars), which keeps the head convs cheap on a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ad_perception import CLASSES
from ad_perception.models.layers import conv_bn_relu, init_prior_bias
from ad_perception.models.voxelize import POINT_FEATURES, PillarGrid

# Regression channels at every BEV output cell, in this order.
REGRESSION_CHANNELS = ("offset_x", "offset_y", "z", "log_length", "log_width", "log_height",
                       "sin_yaw", "cos_yaw")


@dataclass(frozen=True)
class LidarDetectorConfig:
    """Everything needed to rebuild the lidar detector; stored verbatim in checkpoint cards."""

    point_cloud_range: tuple[float, ...] = (-19.2, -40.0, -3.0, 70.4, 40.0, 1.0)
    pillar_size: float = 0.2
    max_points_per_pillar: int = 20
    max_pillars: int = 16000
    pillar_channels: int = 32
    backbone_channels: tuple[int, ...] = (32, 64, 128)  # one block per entry, each stride 2
    backbone_layers: tuple[int, ...] = (2, 3, 3)  # 3x3 convs after each block's strided conv
    neck_channels: int = 64  # per block, after resampling to the output stride
    head_channels: int = 64
    output_stride: int = 4
    class_names: tuple[str, ...] = CLASSES
    score_threshold: float = 0.3
    max_detections: int = 100
    min_gaussian_radius: int = 2  # heatmap target radius floor, in output cells
    layer_widths: dict[str, Any] = field(default_factory=dict)  # filled for pruned models
    low_rank: dict[str, int] = field(default_factory=dict)  # layer -> rank, factored models

    def __post_init__(self) -> None:
        for key in ("point_cloud_range", "backbone_channels", "backbone_layers", "class_names"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        if len(self.point_cloud_range) != 6:
            raise ValueError("point_cloud_range is (x_min, y_min, z_min, x_max, y_max, z_max)")
        if len(self.backbone_channels) != len(self.backbone_layers):
            raise ValueError("backbone_channels and backbone_layers need one entry per block")
        channels = (self.pillar_channels, *self.backbone_channels, self.neck_channels,
                    self.head_channels)
        if any(c % 8 for c in channels):
            raise ValueError(f"channel counts must be multiples of 8, got {channels}")
        deepest = 2 ** len(self.backbone_channels)
        if self.output_stride not in {2 ** i for i in range(1, len(self.backbone_channels) + 1)}:
            raise ValueError(f"output_stride must be one of the block strides, "
                             f"got {self.output_stride}")
        nx, ny = self.grid.grid_size
        x_min, y_min, _, x_max, y_max, _ = self.point_cloud_range
        whole = (abs(nx * self.pillar_size - (x_max - x_min)) < 1e-6
                 and abs(ny * self.pillar_size - (y_max - y_min)) < 1e-6)
        if not whole or nx % deepest or ny % deepest:
            raise ValueError(
                f"the range must be a whole number of pillars, divisible by {deepest} along x "
                f"and y; got a {nx}x{ny} grid for pillar_size {self.pillar_size}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def grid(self) -> PillarGrid:
        return PillarGrid(tuple(self.point_cloud_range), self.pillar_size,  # type: ignore[arg-type]
                          self.max_points_per_pillar, self.max_pillars)

    @property
    def bev_shape(self) -> tuple[int, int, int]:
        """(channels, height = ny, width = nx) of the BEV pseudo-image."""
        nx, ny = self.grid.grid_size
        return self.pillar_channels, ny, nx

    @property
    def output_shape(self) -> tuple[int, int]:
        """(height, width) of the heatmap and regression maps."""
        _, ny, nx = self.bev_shape
        return ny // self.output_stride, nx // self.output_stride

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LidarDetectorConfig:
        return cls(**values)


class PillarFeatureNet(nn.Module):
    """Shared per-point linear + BN + ReLU, then max over the points of each pillar.

    Only real points go through the layers (padding rows are skipped, then the max is a
    ``scatter_reduce``): a pillar holds ~5-10 of its 20 slots on a road scene, so this does
    2-4x less work than running the dense (P, max_points) tensor, and BatchNorm statistics
    are not diluted by padding.
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(POINT_FEATURES, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor, num_points: torch.Tensor) -> torch.Tensor:
        pillars, max_points, _ = features.shape
        valid = torch.arange(max_points, device=features.device)[None, :] < num_points[:, None]
        pillar_of_point = torch.arange(pillars, device=features.device)[:, None].expand(
            -1, max_points)[valid]
        x = self.relu(self.norm(self.linear(features[valid])))
        # ReLU output is >= 0, so a zero start is a neutral element for the max.
        pooled = x.new_zeros(pillars, x.shape[1])
        index = pillar_of_point[:, None].expand(-1, x.shape[1])
        return pooled.scatter_reduce(0, index, x, "amax", include_self=True)


class PillarEncoder(nn.Module):
    """Pillars -> dense BEV pseudo-image (B, C, ny, nx) by scattering pillar features."""

    def __init__(self, config: LidarDetectorConfig) -> None:
        super().__init__()
        self.feature_net = PillarFeatureNet(config.pillar_channels)
        self.grid_size = config.grid.grid_size

    def forward(self, features: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor,
                batch_size: int) -> torch.Tensor:
        pillar_features = self.feature_net(features, num_points)
        nx, ny = self.grid_size
        channels = pillar_features.shape[1]
        # Channel-major canvas: for batch 1 the final layout needs no copy.
        bev = pillar_features.new_zeros(channels, batch_size * ny * nx)
        bev[:, coords[:, 0] * (ny * nx) + coords[:, 1] * nx + coords[:, 2]] = pillar_features.T
        return bev.reshape(channels, batch_size, ny, nx).transpose(0, 1).contiguous()


def _resample(in_channels: int, out_channels: int, factor: float) -> nn.Sequential:
    """Bring a block's output to the head's stride: strided conv down, transposed conv up."""
    if factor == 1:
        return conv_bn_relu(in_channels, out_channels, kernel_size=1)
    if factor > 1:
        step = int(factor)
        up = nn.ConvTranspose2d(in_channels, out_channels, step, stride=step, bias=False)
        return nn.Sequential(up, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
    step = int(round(1 / factor))
    down = nn.Conv2d(in_channels, out_channels, step, stride=step, bias=False)
    return nn.Sequential(down, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class BevBackboneAndHeads(nn.Module):
    """Fixed-size BEV image -> (heatmap logits (B, K, H, W), regression (B, 8, H, W)).

    The exportable, prunable core of the lidar detector.
    """

    def __init__(self, config: LidarDetectorConfig) -> None:
        super().__init__()
        in_channels = config.pillar_channels
        blocks, resamplers = [], []
        for index, (channels, depth) in enumerate(
            zip(config.backbone_channels, config.backbone_layers, strict=True)
        ):
            layers = [conv_bn_relu(in_channels, channels, stride=2)]
            layers += [conv_bn_relu(channels, channels) for _ in range(depth)]
            blocks.append(nn.Sequential(*layers))
            factor = 2 ** (index + 1) / config.output_stride
            resamplers.append(_resample(channels, config.neck_channels, factor))
            in_channels = channels
        self.blocks = nn.ModuleList(blocks)
        self.neck = nn.ModuleList(resamplers)
        fused = config.neck_channels * len(blocks)
        self.shared = conv_bn_relu(fused, config.head_channels)
        self.heatmap_tower = conv_bn_relu(config.head_channels, config.head_channels)
        self.heatmap = nn.Conv2d(config.head_channels, config.num_classes, 3, padding=1)
        self.regression_tower = conv_bn_relu(config.head_channels, config.head_channels)
        self.regression = nn.Conv2d(config.head_channels, len(REGRESSION_CHANNELS), 3,
                                    padding=1)
        init_prior_bias(self.heatmap)
        nn.init.normal_(self.regression.weight, std=0.01)
        nn.init.zeros_(self.regression.bias)

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        resampled = []
        x = bev
        for block, resample in zip(self.blocks, self.neck, strict=True):
            x = block(x)
            resampled.append(resample(x))
        shared = self.shared(torch.cat(resampled, dim=1))
        return (self.heatmap(self.heatmap_tower(shared)),
                self.regression(self.regression_tower(shared)))

    def output_layers(self) -> list[nn.Module]:
        """Final convs (classes, regression channels): the pruner's ``ignored_layers``."""
        return [self.heatmap, self.regression]


class LidarDetector(nn.Module):
    """Pillars -> (heatmap logits, regression); see the module docstring for the split."""

    def __init__(self, config: LidarDetectorConfig) -> None:
        super().__init__()
        self.pillar_encoder = PillarEncoder(config)
        self.bev_backbone_and_heads = BevBackboneAndHeads(config)

    def forward(self, features: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor,
                batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        bev = self.pillar_encoder(features, num_points, coords, batch_size)
        return self.bev_backbone_and_heads(bev)

    def output_layers(self) -> list[nn.Module]:
        return self.bev_backbone_and_heads.output_layers()


def build_lidar_detector(config: LidarDetectorConfig | None = None) -> LidarDetector:
    """Build with random weights, then apply a pruned checkpoint's layer widths, if any."""
    config = config or LidarDetectorConfig()
    model = LidarDetector(config)
    if config.low_rank:
        from ad_perception.models.structure import apply_low_rank

        apply_low_rank(model, config.low_rank)
    if config.layer_widths:
        from ad_perception.models.structure import apply_layer_widths

        apply_layer_widths(model, config.layer_widths)
    return model
