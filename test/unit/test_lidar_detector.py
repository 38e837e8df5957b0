"""Lidar detector: pillarisation, core shapes, heatmap targets, loss and a tiny overfit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ad_perception.models.lidar_detector import LidarDetectorConfig, build_lidar_detector
from ad_perception.models.lidar_loss import LidarDetectorLoss, build_targets
from ad_perception.models.lidar_postprocess import decode_lidar_outputs
from ad_perception.models.voxelize import PillarGrid, pillarize, pillarize_batch

TINY = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                           max_pillars=6000, pillar_channels=16, backbone_channels=(16, 32, 64),
                           backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)
CLASS_SIZES = np.array([[4.5, 1.9, 1.6], [8.0, 2.5, 3.0], [0.7, 0.7, 1.8], [1.8, 0.7, 1.7]])
GROUND_Z = -1.7


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def box_scene(rng: np.random.Generator, objects: int = 3):
    """Points on the sides and tops of well-separated boxes plus a flat ground."""
    centers, sizes, yaws, labels, clouds = [], [], [], [], []
    for _ in range(objects):
        for _ in range(100):
            xy = np.array([rng.uniform(4, 22), rng.uniform(-9, 9)])
            if all(np.linalg.norm(xy - c[:2]) > 6 for c in centers):
                break
        label = int(rng.integers(0, 4))
        size, yaw = CLASS_SIZES[label], rng.uniform(-math.pi, math.pi)
        centre = np.array([xy[0], xy[1], GROUND_Z + size[2] / 2])
        local = rng.uniform(-0.5, 0.5, (400, 3)) * size
        face = rng.integers(0, 5, 400)
        for axis, sign, index in ((0, 1, 0), (0, -1, 1), (1, 1, 2), (1, -1, 3), (2, 1, 4)):
            local[face == index, axis] = sign * size[axis] / 2
        cos, sin = math.cos(yaw), math.sin(yaw)
        world = np.column_stack([local[:, 0] * cos - local[:, 1] * sin + centre[0],
                                 local[:, 0] * sin + local[:, 1] * cos + centre[1],
                                 local[:, 2] + centre[2], np.full(400, 0.6)])
        clouds.append(world)
        centers.append(centre)
        sizes.append(size)
        yaws.append(yaw)
        labels.append(label)
    ground = np.column_stack([rng.uniform(0, 25.6, 3000), rng.uniform(-12.8, 12.8, 3000),
                              GROUND_Z + rng.normal(0, 0.02, 3000), np.full(3000, 0.2)])
    clouds.append(ground)
    target = {"centers": torch.tensor(np.array(centers)), "sizes": torch.tensor(np.array(sizes)),
              "yaws": torch.tensor(yaws), "labels": torch.tensor(labels)}
    return np.concatenate(clouds).astype(np.float32), target


def test_default_grid_and_output_size():
    config = LidarDetectorConfig()
    assert config.bev_shape == (32, 400, 448)
    assert config.output_shape == (100, 112)
    with pytest.raises(ValueError, match="whole number of pillars"):
        LidarDetectorConfig(point_cloud_range=(0, -40, -3, 70.3, 40, 1))
    with pytest.raises(ValueError, match="multiples of 8"):
        LidarDetectorConfig(head_channels=60)
    assert LidarDetectorConfig.from_dict(TINY.to_dict()) == TINY


def test_pillar_features_match_the_pointpillars_definition():
    grid = PillarGrid((0.0, 0.0, -3.0, 4.0, 4.0, 1.0), 1.0, max_points_per_pillar=3,
                      max_pillars=10)
    points = np.array([[0.2, 0.4, 0.0, 0.5], [0.6, 0.8, 0.8, 0.1],  # pillar (iy 0, ix 0)
                       [2.5, 3.5, -1.0, 0.9],  # pillar (iy 3, ix 2)
                       [9.0, 1.0, 0.0, 0.0], [1.0, 1.0, 5.0, 0.0]], dtype=np.float32)  # out
    pillars = pillarize(points, grid)
    assert pillars.coords.tolist() == [[0, 0, 0], [0, 3, 2]]
    assert pillars.num_points.tolist() == [2, 1]
    first = pillars.features[0].numpy()
    np.testing.assert_allclose(first[0], [0.2, 0.4, 0.0, 0.5, -0.2, -0.2, -0.4, -0.3, -0.1],
                               atol=1e-6)
    np.testing.assert_allclose(first[1, 4:7], [0.2, 0.2, 0.4], atol=1e-6)
    assert not first[2].any()  # padding row stays zero


def test_pillarisation_caps_points_and_pillars():
    grid = PillarGrid((0.0, 0.0, -3.0, 4.0, 4.0, 1.0), 1.0, max_points_per_pillar=4,
                      max_pillars=2)
    dense = np.tile([[0.5, 0.5, 0.0, 0.0]], (10, 1))
    medium = np.tile([[1.5, 0.5, 0.0, 0.0]], (3, 1))
    sparse = np.array([[3.5, 3.5, 0.0, 0.0]])
    pillars = pillarize(np.concatenate([sparse, dense, medium]).astype(np.float32), grid)
    assert pillars.coords[:, 1:].tolist() == [[0, 0], [0, 1]]  # the two densest kept
    assert pillars.num_points.tolist() == [4, 3]
    assert tuple(pillars.features.shape) == (2, 4, 9)


def test_points_with_any_non_finite_value_make_no_pillar():
    grid = PillarGrid((0.0, 0.0, -3.0, 4.0, 4.0, 1.0), 1.0, max_points_per_pillar=3,
                      max_pillars=10)
    good = np.array([[0.2, 0.4, 0.0, 0.5], [2.5, 3.5, -1.0, 0.9]], dtype=np.float32)
    bad = np.array([[np.nan, 0.5, 0.0, 0.1], [0.5, np.inf, 0.0, 0.1], [0.5, 0.5, -np.inf, 0.1],
                    [0.5, 0.5, 0.0, np.nan], [3.5, 0.5, 0.0, np.inf]], dtype=np.float32)
    mixed = pillarize(np.concatenate([bad[:2], good[:1], bad[2:], good[1:]]), grid)
    clean = pillarize(good, grid)
    assert torch.equal(mixed.coords, clean.coords) and torch.equal(mixed.features,
                                                                   clean.features)
    assert mixed.num_points.tolist() == [1, 1] and torch.isfinite(mixed.features).all()


def test_pillarisation_of_an_empty_cloud():
    pillars = pillarize(np.zeros((0, 4), dtype=np.float32), TINY.grid)
    assert tuple(pillars.features.shape) == (0, TINY.max_points_per_pillar, 9)


def test_forward_shapes_and_batch_separation():
    rng = np.random.default_rng(1)
    clouds = [box_scene(rng)[0], box_scene(rng)[0]]
    model = build_lidar_detector(TINY).eval()
    batch = pillarize_batch(clouds, TINY.grid)
    with torch.no_grad():
        heatmap, regression = model(batch.features, batch.num_points, batch.coords, 2)
        alone = pillarize_batch(clouds[1:], TINY.grid)
        single, _ = model(alone.features, alone.num_points, alone.coords, 1)
    assert tuple(heatmap.shape) == (2, 4, *TINY.output_shape)
    assert tuple(regression.shape) == (2, 8, *TINY.output_shape)
    torch.testing.assert_close(heatmap[1:], single, atol=1e-5, rtol=1e-5)


def test_pillar_encoder_ignores_padding_rows():
    encoder = build_lidar_detector(TINY).pillar_encoder.eval()
    features = torch.rand(3, TINY.max_points_per_pillar, 9)
    num_points = torch.tensor([1, 4, TINY.max_points_per_pillar])
    coords = torch.tensor([[0, 0, 0], [0, 5, 7], [0, 31, 127]])
    noisy = features.clone()
    noisy[0, 1:] = 100.0
    noisy[1, 4:] = -100.0
    with torch.no_grad():
        clean_bev = encoder(features, num_points, coords, 1)
        torch.testing.assert_close(encoder(noisy, num_points, coords, 1), clean_bev)
    assert clean_bev.shape == (1, *TINY.bev_shape)
    assert torch.count_nonzero(clean_bev.abs().sum(dim=1)) <= 3  # only the 3 pillar cells


def test_layers_are_what_compression_needs():
    core = build_lidar_detector(LidarDetectorConfig()).bev_backbone_and_heads
    norms = [m for m in core.modules() if "Norm" in type(m).__name__]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)
    outputs = set(map(id, core.output_layers()))
    for conv in core.modules():
        if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and id(conv) not in outputs:
            assert conv.in_channels % 8 == 0 and conv.out_channels % 8 == 0


def test_heatmap_target_peaks_at_each_centre():
    target = {"centers": torch.tensor([[10.1, 0.5, -0.9], [100.0, 0.0, 0.0]]),
              "sizes": torch.tensor([[4.5, 1.9, 1.6], [4.5, 1.9, 1.6]]),
              "yaws": torch.tensor([0.2, 0.0]), "labels": torch.tensor([0, 0])}
    heatmap, cells, regression = build_targets(target, TINY, torch.device("cpu"))
    assert cells.tolist() == [[16, 12]]  # the second object is out of range and dropped
    assert heatmap[0, 16, 12] == 1.0 and heatmap.eq(1).sum() == 1
    assert heatmap[1:].sum() == 0
    np.testing.assert_allclose(regression[0, :3].numpy(), [0.625, 0.625, -0.9], atol=1e-5)
    np.testing.assert_allclose(regression[0, 6:].numpy(), [math.sin(0.2), math.cos(0.2)],
                               atol=1e-6)


def test_overfits_a_few_clouds_to_perfect_detections():
    """Pillars, targets, loss and decode agree: 4 clouds of 3 boxes, ~20 s on one thread."""
    rng = np.random.default_rng(0)
    scenes = [box_scene(rng) for _ in range(4)]
    batch = pillarize_batch([cloud for cloud, _ in scenes], TINY.grid)
    targets = [target for _, target in scenes]
    model = build_lidar_detector(TINY)
    criterion = LidarDetectorLoss(TINY)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    inputs = (batch.features, batch.num_points, batch.coords, batch.batch_size)
    first = None
    for _ in range(120):
        losses = criterion(model(*inputs), targets)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        first = first if first is not None else losses["total"].item()
    assert losses["total"].item() < 0.1 * first

    model.eval()
    with torch.no_grad():
        outputs = model(*inputs)
    for index, target in enumerate(targets):
        boxes = decode_lidar_outputs(outputs, TINY, batch_index=index)
        names = np.asarray(TINY.class_names)[target["labels"].numpy()]
        assert sorted(boxes.class_ids) == sorted(names)
        for centre, size, name in zip(target["centers"].numpy(), target["sizes"].numpy(),
                                      names, strict=True):
            match = boxes.class_ids == name
            distance = np.linalg.norm(boxes.centers[match] - centre, axis=1)
            best = int(np.argmin(distance))
            assert distance[best] < 0.5
            np.testing.assert_allclose(boxes.sizes[match][best], size, rtol=0.2)
