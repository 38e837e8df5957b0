"""Camera detector core: config rules, shapes, compression-friendly layers, loss, overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from ad_perception.models.camera_detector import (
    CameraDetectorConfig,
    build_camera_detector,
    scale_ranges,
)
from ad_perception.models.camera_loss import CameraDetectorLoss, assign_targets, point_table
from ad_perception.models.camera_postprocess import decode_camera_outputs
from ad_perception.models.letterbox import RGB_MEAN, RGB_STD, letterbox_transform

TINY = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32,
                            head_convs=1)
# One colour per class (car, truck, pedestrian, cyclist) so the task is learnable in seconds.
CLASS_COLOURS = np.array([[230, 40, 40], [40, 40, 230], [40, 230, 40], [230, 230, 40]])


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def rectangle_scenes(count: int, size: tuple[int, int] = (160, 96), seed: int = 0):
    """Noise images with 2-3 non-overlapping class-coloured rectangles, already at network
    size and normalised; targets in network pixels."""
    width, height = size
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(count):
        image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        boxes: list[np.ndarray] = []
        labels: list[int] = []
        for _ in range(rng.integers(2, 4)):
            for _ in range(50):
                box_w, box_h = rng.uniform(14, 70), rng.uniform(14, 60)
                x0, y0 = rng.uniform(0, width - box_w), rng.uniform(0, height - box_h)
                box = np.array([x0, y0, x0 + box_w, y0 + box_h]).round()
                if not boxes or box_iou(torch.tensor(box[None]),
                                        torch.tensor(np.array(boxes))).max() == 0:
                    break
            label = int(rng.integers(0, 4))
            image[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = CLASS_COLOURS[label]
            boxes.append(box)
            labels.append(label)
        normalised = (image.astype(np.float32) - RGB_MEAN) / RGB_STD
        images.append(torch.from_numpy(normalised.transpose(2, 0, 1).copy()))
        targets.append({"boxes": torch.tensor(np.array(boxes), dtype=torch.float32),
                        "labels": torch.tensor(labels, dtype=torch.int64)})
    return torch.stack(images), targets


def test_config_rejects_sizes_the_core_cannot_tile():
    with pytest.raises(ValueError, match="divisible"):
        CameraDetectorConfig(input_size=(650, 384))
    with pytest.raises(ValueError, match="multiple of 8"):
        CameraDetectorConfig(fpn_channels=100)
    with pytest.raises(ValueError, match="double"):
        CameraDetectorConfig(strides=(8, 32))


def test_config_round_trips_through_a_dict():
    config = CameraDetectorConfig(width_multiplier=0.5, strides=(8, 16, 32, 64))
    assert CameraDetectorConfig.from_dict(config.to_dict()) == config


def test_forward_gives_three_raw_maps_per_level():
    model = build_camera_detector(TINY).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(2, 3, 96, 160))
    expected = []
    for stride in TINY.strides:
        cells = (96 // stride, 160 // stride)
        expected += [(2, TINY.num_classes, *cells), (2, 4, *cells), (2, 1, *cells)]
    assert [tuple(o.shape) for o in outputs] == expected


def test_extra_pyramid_level_beyond_the_trunk():
    config = CameraDetectorConfig(input_size=(128, 128), width_multiplier=0.25,
                                  fpn_channels=16, head_convs=1, strides=(8, 16, 32, 64))
    with torch.no_grad():
        outputs = build_camera_detector(config).eval()(torch.zeros(1, 3, 128, 128))
    assert tuple(outputs[-1].shape) == (1, 1, 2, 2)


def test_layers_are_what_compression_needs():
    model = build_camera_detector(CameraDetectorConfig())
    norms = [m for m in model.modules() if "Norm" in type(m).__name__]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    outputs = set(map(id, model.output_layers()))
    for conv in convs:
        assert conv.in_channels % 8 == 0 or conv.in_channels == 3
        assert conv.out_channels % 8 == 0 or id(conv) in outputs
    heads = model.heads
    assert len({id(h.cls_logits.weight) for h in heads}) == len(heads)  # unshared


def test_scale_ranges_follow_fcos():
    assert scale_ranges(CameraDetectorConfig()) == [(0.0, 64.0), (64.0, 128.0),
                                                    (128.0, float("inf"))]


def test_assignment_puts_small_and_large_objects_on_their_levels():
    table = point_table(TINY, torch.device("cpu"))
    boxes = torch.tensor([[10.0, 10.0, 40.0, 40.0], [0.0, 0.0, 160.0, 96.0]])
    matched, _ = assign_targets(table, boxes, torch.tensor([0, 1]), 1.5)
    level_of_point = torch.cat([torch.full(((96 // s) * (160 // s),), s) for s in TINY.strides])
    assert set(level_of_point[matched == 0].tolist()) == {8}
    assert set(level_of_point[matched == 1].tolist()) == {16}  # largest side ~80-104 px


def test_loss_is_finite_without_objects_and_reaches_every_head():
    model = build_camera_detector(TINY)
    outputs = model(torch.zeros(1, 3, 96, 160))
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = CameraDetectorLoss(TINY)(outputs, empty)
    assert set(losses) == {"classification", "box", "centerness", "total"}
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    assert all(head.box_regression.weight.grad is not None for head in model.heads)


def test_overfits_a_few_frames_to_perfect_detections():
    """The whole camera path (targets, loss, decode) is consistent: 4 frames, ~10 s."""
    images, targets = rectangle_scenes(4)
    model = build_camera_detector(TINY)
    criterion = CameraDetectorLoss(TINY)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    first = None
    for _ in range(150):
        losses = criterion(model(images), targets)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        first = first if first is not None else losses["total"].item()
    assert losses["classification"].item() < 0.05 * first

    model.eval()
    with torch.no_grad():
        outputs = model(images)
    identity = letterbox_transform((160, 96), (160, 96))
    matched = detected = expected = 0
    for index, target in enumerate(targets):
        detections = decode_camera_outputs(outputs, identity, TINY, batch_index=index)
        names = np.asarray(TINY.class_names)[target["labels"].numpy()]
        iou = box_iou(torch.from_numpy(detections.boxes), target["boxes"].double()).numpy()
        hit = (iou >= 0.5) & (detections.class_ids[:, None] == names[None, :])
        matched += int(hit.any(axis=0).sum())
        detected += len(detections)
        expected += len(names)
    assert matched == expected  # recall 1.0 at IoU 0.5, labels right
    assert detected <= expected + 1  # at most one spurious box over 4 frames
