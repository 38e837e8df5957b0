"""Structured pruning with torch-pruning reaches both detector cores (the reason their layers
look the way they do): 50% channels -> at least 40% fewer MACs, same output shapes."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp

from ad_perception.models.camera_detector import CameraDetectorConfig, build_camera_detector
from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector

CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                            pillar_channels=16, backbone_channels=(16, 32, 64),
                            backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def prune_half(model: torch.nn.Module, example: torch.Tensor,
               ignored: list[torch.nn.Module]) -> tuple[float, float]:
    """L1 group-magnitude pruning of 50% of channels, rounded to 8; returns MACs before and
    after. ``ignored`` must be modules of ``model`` itself (not of a copy): FACTS.md."""
    macs_before, _ = tp.utils.count_ops_and_params(model, example)
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=0.5, round_to=8, ignored_layers=ignored,
    )
    pruner.step()
    macs_after, _ = tp.utils.count_ops_and_params(model, example)
    return macs_before, macs_after


def test_camera_core_prunes_to_under_60_percent_macs():
    model = build_camera_detector(CAMERA).eval()
    example = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        shapes = [o.shape for o in model(example)]
    macs_before, macs_after = prune_half(model, example, model.output_layers())
    assert macs_after <= 0.6 * macs_before
    with torch.no_grad():
        assert [o.shape for o in model(example)] == shapes
    for conv in model.modules():
        if isinstance(conv, torch.nn.Conv2d) and conv not in model.output_layers():
            assert conv.out_channels % 8 == 0


def test_lidar_core_prunes_to_under_60_percent_macs():
    model = build_lidar_detector(LIDAR).eval()
    core = model.bev_backbone_and_heads
    example = torch.randn(1, *LIDAR.bev_shape)
    with torch.no_grad():
        shapes = [o.shape for o in core(example)]
    macs_before, macs_after = prune_half(core, example, core.output_layers())
    assert macs_after <= 0.6 * macs_before
    with torch.no_grad():
        assert [o.shape for o in core(example)] == shapes
    # The pruned core still plugs into the unpruned pillar encoder.
    features = torch.zeros(3, LIDAR.max_points_per_pillar, 9)
    coords = torch.tensor([[0, 1, 2], [0, 5, 5], [0, 7, 9]])
    with torch.no_grad():
        heatmap, _ = model(features, torch.tensor([1, 2, 3]), coords, 1)
    assert tuple(heatmap.shape) == (1, 4, *LIDAR.output_shape)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["camera", "lidar"])
def test_default_size_cores_prune_the_same_way(kind):
    """The default-size networks (what compression really starts from), ~20 s."""
    if kind == "camera":
        model = build_camera_detector(CameraDetectorConfig()).eval()
        example = torch.randn(1, 3, 384, 640)
    else:
        model = build_lidar_detector(LidarDetectorConfig()).bev_backbone_and_heads.eval()
        example = torch.randn(1, *LidarDetectorConfig().bev_shape)
    macs_before, macs_after = prune_half(model, example, model.output_layers())
    assert macs_after <= 0.3 * macs_before  # 50% of channels ~ a quarter of the MACs
