"""Fusion as the node runs it: calibration and extrinsics learned from their topics, the
newest point cloud decoded only when needed, and every missing input named."""

import numpy as np
import pytest

from ad_perception import CLASSES
from ad_perception.core.annotate import CLASS_COLORS, draw_detections
from ad_perception.core.camera_model import CameraModel
from ad_perception.core.fusion import FusionConfig
from ad_perception.core.geometry import R_BODY_FROM_OPTICAL, invert_transform, make_transform
from ad_perception.core.live_fusion import CameraFrame, LidarFrame, LiveFusion
from ad_perception.core.stamp_sync import MATCHED, TIMEOUT, FrameSet
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud

CAMERA = CameraModel.from_intrinsics(640.0, 640.0, 640.0, 360.0, 1280, 720,
                                     frame_id="camera_optical")
T_LIDAR_FROM_CAMERA = make_transform(R_BODY_FROM_OPTICAL, [0.4, 0.0, -0.3])
T_BASE_FROM_LIDAR = make_transform(np.eye(3), [1.2, 0.0, 1.8])
STAMP = 1_700_000_000_000_000_000


def _car(x: float, y: float) -> Boxes3D:
    return Boxes3D([[x, y, -1.0]], [[4.5, 1.8, 1.6]], [0.0], [0.8], ["truck"], ["t0"],
                   frame_id="lidar")


def _projected(boxes: Boxes3D) -> np.ndarray:
    T_camera_from_lidar = invert_transform(T_LIDAR_FROM_CAMERA)
    corners = boxes.corners()[0] @ T_camera_from_lidar[:3, :3].T + T_camera_from_lidar[:3, 3]
    uv = corners[:, :2] / corners[:, 2:] * 640.0 + [640.0, 360.0]
    return np.concatenate([uv.min(axis=0), uv.max(axis=0)])


def _fusion(calibrated: bool = True) -> LiveFusion:
    # The camera gets the larger class share here so that a matched pair visibly changes the
    # class (the shipped default trusts the lidar's classes more, as the data says).
    fusion = LiveFusion(FusionConfig(output_frame="base_link", camera_class_weight=0.7))
    if calibrated:
        fusion.camera_model = CAMERA
        fusion.tf.set_transform(T_LIDAR_FROM_CAMERA, "lidar", "camera_optical")
        fusion.tf.set_transform(T_BASE_FROM_LIDAR, "base_link", "lidar")
    return fusion


def _pair(lidar: Boxes3D | None, camera: Detections2D | None) -> FrameSet:
    return FrameSet(None if lidar is None else LidarFrame(lidar),
                    None if camera is None else CameraFrame(camera, "camera_optical"),
                    None if lidar is None else STAMP, None if camera is None else STAMP,
                    MATCHED if lidar is not None and camera is not None else TIMEOUT)


def test_matched_pair_takes_the_camera_class_in_base_link():
    lidar = _car(14.0, 2.0)
    camera = Detections2D([_projected(lidar)], [0.9], ["car"])
    fused = _fusion().fuse(_pair(lidar, camera))
    assert fused.missing == [] and fused.kind == "fused" and fused.stamp_ns == STAMP
    assert fused.frame_id == "base_link"
    assert list(fused.result.objects.class_ids) == ["car"]  # the camera wins the class
    np.testing.assert_allclose(fused.result.objects.centers[0], [15.2, 2.0, 0.8])


def test_missing_extrinsics_and_calibration_are_named_and_output_stays_in_lidar_frame():
    lidar = _car(14.0, 2.0)
    camera = Detections2D([_projected(lidar)], [0.9], ["car"])
    fused = _fusion(calibrated=False).fuse(_pair(lidar, camera))
    assert "camera_info" in fused.missing
    assert {"tf lidar -> camera_optical", "tf lidar -> base_link"} <= set(fused.missing)
    assert fused.frame_id == "lidar" and list(fused.result.objects.class_ids) == ["truck"]


def test_lidar_only_set_needs_no_camera_inputs():
    fused = _fusion(calibrated=False).fuse(_pair(_car(10.0, 0.0), None))
    assert fused.kind == "lidar_only" and fused.missing == ["tf lidar -> base_link"]
    assert len(fused.result.objects) == 1


def test_camera_only_is_lifted_from_the_newest_cloud_decoded_lazily():
    rng = np.random.default_rng(3)
    target = _car(12.0, -1.0)
    # points on the visible faces of the box, plus sparse ground
    surface = target.centers[0] + rng.uniform(-0.5, 0.5, (400, 3)) * target.sizes[0]
    ground = np.column_stack([rng.uniform(3, 40, 600), rng.uniform(-10, 10, 600),
                              np.full(600, -1.8)])
    cloud = PointCloud(np.vstack([surface, ground]), frame_id="lidar")
    calls = []
    fusion = _fusion()
    fusion.set_points(STAMP, "lidar", lambda: calls.append(1) or cloud)
    empty = fusion.fuse(_pair(None, Detections2D.empty()))
    assert calls == [] and len(empty.result.objects) == 0  # nothing to lift: not decoded
    camera = Detections2D([_projected(target)], [0.9], ["car"])
    fused = fusion.fuse(_pair(None, camera))
    fusion.fuse(_pair(None, camera))
    assert calls == [1]  # decoded once, reused
    assert fused.kind == "camera_only" and fused.missing == []
    assert len(fused.result.objects) == 1 and fused.frame_id == "base_link"
    assert abs(fused.result.objects.centers[0, 0] - 13.2) < 2.5


def test_stale_or_unreadable_cloud_is_reported_missing():
    target = _car(12.0, -1.0)
    camera = Detections2D([_projected(target)], [0.9], ["car"])
    fusion = _fusion()
    fusion.set_points(STAMP - 500_000_000, "lidar", lambda: PointCloud(np.zeros((1, 3))))
    assert fusion.fuse(_pair(None, camera)).missing == ["points"]
    fusion.set_points(STAMP, "lidar", lambda: None)
    assert fusion.fuse(_pair(None, camera)).missing == ["points"]


def test_draw_detections_outlines_boxes_in_class_colours():
    assert set(CLASS_COLORS) == set(CLASSES)
    image = np.zeros((50, 80, 3), np.uint8)
    drawn = draw_detections(image, Detections2D([[10, 5, 30, 20], [70, 40, 200, 90]],
                                                [0.9, 0.5], ["car", "cyclist"]))
    assert image.sum() == 0  # a copy
    assert tuple(drawn[5, 20]) == CLASS_COLORS["car"] and tuple(drawn[12, 10]) == \
        CLASS_COLORS["car"]
    assert drawn[12, 20].sum() == 0  # inside stays untouched
    assert tuple(drawn[49, 75]) == CLASS_COLORS["cyclist"]  # clipped to the border
    with pytest.raises(ValueError, match="expected an"):
        draw_detections(np.zeros((5, 5)), Detections2D.empty())
