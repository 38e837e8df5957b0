"""Pre/post-processing outside the network cores: letterbox geometry and decoding of
hand-made raw outputs, where the right answer is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ad_perception.core.types import Boxes3D
from ad_perception.models.camera_detector import CameraDetectorConfig
from ad_perception.models.camera_postprocess import decode_camera_outputs
from ad_perception.models.letterbox import (
    RGB_MEAN,
    RGB_STD,
    letterbox,
    letterbox_reference,
    letterbox_transform,
)
from ad_perception.models.lidar_detector import LidarDetectorConfig
from ad_perception.models.lidar_postprocess import decode_lidar_outputs, footprint_suppression

CAMERA = CameraDetectorConfig(input_size=(160, 96), width_multiplier=0.25, fpn_channels=32)
LIDAR = LidarDetectorConfig(point_cloud_range=(0.0, -12.8, -3.0, 25.6, 12.8, 1.0),
                            pillar_channels=16, backbone_channels=(16, 32, 64),
                            backbone_layers=(1, 1, 1), neck_channels=32, head_channels=32)


@pytest.mark.parametrize("image_size", [(1280, 720), (333, 517), (160, 96), (100, 30)])
def test_letterbox_round_trip_is_exact(image_size):
    transform = letterbox_transform(image_size, (640, 384))
    rng = np.random.default_rng(0)
    width, height = image_size
    x = np.sort(rng.uniform(0, width, (20, 2)), axis=1)
    y = np.sort(rng.uniform(0, height, (20, 2)), axis=1)
    boxes = np.column_stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]])
    back = transform.to_image(transform.to_network(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-6, rtol=0)


def test_letterbox_places_the_image_where_the_transform_says():
    image = np.zeros((720, 1280, 3), dtype=np.uint8)
    image[300:420, 600:700] = (200, 100, 50)
    tensor, transform = letterbox(image, (640, 384))
    assert tuple(tensor.shape) == (1, 3, 384, 640) and tensor.dtype == torch.float32
    assert (transform.scale_x, transform.scale_y, transform.pad_x, transform.pad_y) == (
        0.5, 0.5, 0.0, 12.0)
    x0, y0, x1, y1 = transform.to_network(np.array([[600, 300, 700, 420]]))[0]
    centre = tensor[0, :, int((y0 + y1) / 2), int((x0 + x1) / 2)].numpy()
    np.testing.assert_allclose(centre, (np.array([200, 100, 50]) - RGB_MEAN) / RGB_STD,
                               atol=1e-5)
    padding = tensor[0, :, 5, 320].numpy()  # top band is padding
    np.testing.assert_allclose(padding, (114 - RGB_MEAN) / RGB_STD, atol=1e-5)


@pytest.mark.parametrize("image_size", [(1280, 720), (333, 517), (895, 511), (64, 64)])
def test_letterbox_lookup_is_bit_identical_to_the_arithmetic(image_size):
    """The level lookup must give the very floats the models were trained and calibrated
    with (cast, subtract the mean, divide by the std, channels first), padding included."""
    rng = np.random.default_rng(7)
    width, height = image_size
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    tensor, transform = letterbox(image, (640, 384))
    expected, expected_transform = letterbox_reference(image, (640, 384))
    assert transform == expected_transform and tensor.is_contiguous()
    assert tensor.shape == expected.shape
    assert tensor.numpy().tobytes() == expected.numpy().tobytes()
    # channels last (OpenVINO cores): the same floats, transposed
    last, last_transform = letterbox(image, (640, 384), layout="NHWC")
    assert last_transform == expected_transform and last.is_contiguous()
    assert last.shape == (1, 384, 640, 3)
    assert last.numpy().tobytes() == expected.permute(0, 2, 3, 1).contiguous().numpy().tobytes()
    with pytest.raises(ValueError, match="uint8 RGB"):
        letterbox_reference(image.astype(np.float32), (640, 384))
    with pytest.raises(ValueError, match="layout must be one of NCHW, NHWC, got 'CHW'"):
        letterbox(image, (640, 384), layout="CHW")


def test_letterbox_rejects_non_rgb_uint8():
    with pytest.raises(ValueError, match="uint8 RGB"):
        letterbox(np.zeros((10, 10, 4), dtype=np.uint8), (160, 96))


def _camera_outputs() -> list[torch.Tensor]:
    outputs = []
    for stride in CAMERA.strides:
        cells = (96 // stride, 160 // stride)
        outputs += [torch.full((1, 4, *cells), -10.0), torch.zeros(1, 4, *cells),
                    torch.full((1, 1, *cells), 10.0)]
    return outputs


def test_camera_decode_of_hand_made_outputs():
    outputs = _camera_outputs()
    cls, box = outputs[0], outputs[1]  # stride 8: cell centre of (iy 5, ix 7) is (60, 44)
    cls[0, 2, 5, 7] = 10.0
    box[0, :, 5, 7] = torch.tensor([2.0, 1.0, 3.0, 2.0])  # ltrb 16, 8, 24, 16 px
    cls[0, 2, 5, 8] = 6.0  # neighbour of the same class and nearly the same box: NMS removes
    box[0, :, 5, 8] = torch.tensor([3.0, 1.0, 2.0, 2.0])
    cls[0, 0, 5, 8] = 8.0  # another class on the same spot survives class-wise NMS
    box[0, :, 5, 8] = torch.tensor([3.0, 1.0, 2.0, 2.0])
    cls[0, 1, 0, 0] = 9.0  # network box (-28, -28, 12, 12) reaches past the corner: clipped
    box[0, :, 0, 0] = torch.tensor([4.0, 4.0, 1.0, 1.0])
    transform = letterbox_transform((320, 192), (160, 96))  # scale 0.5, no padding
    detections = decode_camera_outputs(outputs, transform, CAMERA)
    by_class = {name: detections.boxes[detections.class_ids == name]
                for name in CAMERA.class_names}
    np.testing.assert_allclose(by_class["pedestrian"], [[88, 72, 168, 120]], atol=1e-4)
    np.testing.assert_allclose(by_class["car"], [[88, 72, 168, 120]], atol=1e-4)
    np.testing.assert_allclose(by_class["truck"], [[0, 0, 24, 24]], atol=1e-4)
    assert len(detections) == 3
    assert np.all(np.diff(detections.scores) <= 0)
    expected = math.sqrt(torch.sigmoid(torch.tensor(10.0)).item() ** 2)
    assert detections.scores[0] == pytest.approx(expected, abs=1e-6)


def test_camera_decode_accepts_numpy_and_returns_empty_when_nothing_fires():
    outputs = [o.numpy() for o in _camera_outputs()]
    detections = decode_camera_outputs(outputs, letterbox_transform((160, 96), (160, 96)),
                                       CAMERA)
    assert len(detections) == 0 and detections.boxes.shape == (0, 4)


def _lidar_outputs() -> tuple[torch.Tensor, torch.Tensor]:
    height, width = LIDAR.output_shape
    return torch.full((1, 4, height, width), -10.0), torch.zeros(1, 8, height, width)


def test_lidar_decode_of_hand_made_outputs():
    heatmap, regression = _lidar_outputs()
    heatmap[0, 0, 10, 12] = 5.0
    heatmap[0, 0, 10, 13] = 4.0  # weaker neighbour: removed by the 3x3 max-pool
    yaw = 0.3
    regression[0, :, 10, 12] = torch.tensor(
        [0.25, 0.75, -0.9, math.log(4.5), math.log(1.9), math.log(1.6),
         math.sin(yaw), math.cos(yaw)])
    heatmap[0, 2, 25, 3] = 3.0
    regression[0, 7, 25, 3] = 1.0
    boxes = decode_lidar_outputs((heatmap, regression), LIDAR, score_threshold=0.3,
                                 max_detections=10, frame_id="lidar")
    cell = LIDAR.pillar_size * LIDAR.output_stride  # 0.8 m
    assert list(boxes.class_ids) == ["car", "pedestrian"]
    np.testing.assert_allclose(boxes.centers[0], [12.25 * cell, -12.8 + 10.75 * cell, -0.9],
                               atol=1e-6)
    np.testing.assert_allclose(boxes.sizes[0], [4.5, 1.9, 1.6], atol=1e-6)
    assert boxes.yaws[0] == pytest.approx(yaw, abs=1e-6)
    np.testing.assert_allclose(boxes.centers[1, :2], [3 * cell, -12.8 + 25 * cell], atol=1e-6)
    assert boxes.frame_id == "lidar"
    assert boxes.scores[0] == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())


def test_lidar_decode_limits_and_thresholds():
    heatmap, regression = _lidar_outputs()
    heatmap[0, 1, ::4, ::4] = 2.0  # 64 isolated peaks
    assert len(decode_lidar_outputs((heatmap, regression), LIDAR, 0.3, 5)) == 5
    assert len(decode_lidar_outputs((heatmap.numpy(), regression.numpy()), LIDAR, 0.95, 5)) == 0


def test_footprint_suppression_uses_the_rotated_rectangle():
    # A truck along y (yaw 90 deg); a second truck peak 3 m further along its length is inside
    # its footprint, one 3 m to the side is not; a pedestrian inside it is another class.
    boxes = Boxes3D(
        centers=[[10, 0, 0], [10, 3, 0], [13, 0, 0], [10, 1, 0]],
        sizes=[[8, 2.5, 3]] * 3 + [[0.7, 0.7, 1.8]],
        yaws=[math.pi / 2, math.pi / 2, math.pi / 2, 0.0],
        scores=[0.9, 0.8, 0.7, 0.6],
        class_ids=["truck", "truck", "truck", "pedestrian"],
    )
    assert footprint_suppression(boxes).tolist() == [0, 2, 3]
