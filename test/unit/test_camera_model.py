"""CameraModel against OpenCV (the reference ROS calibration follows); no ROS imports."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ad_perception.core.camera_model import CameraModel

K = np.array([[520.0, 0.0, 321.5], [0.0, 515.0, 239.0], [0.0, 0.0, 1.0]])
DISTORTIONS = {
    "plumb_bob": [-0.28, 0.09, 0.0012, -0.0008, -0.015],
    "rational_polynomial": [0.2, -0.1, 0.001, 0.002, 0.01, 0.3, -0.05, 0.02],
    "equidistant": [0.08, -0.02, 0.011, -0.003],
}
CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-14)


def camera(model: str) -> CameraModel:
    return CameraModel(K=K, width=640, height=480, D=DISTORTIONS[model], distortion_model=model)


def points_in_view(count: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 60.0, count)
    xy = rng.uniform(-0.55, 0.55, (count, 2)) * depth[:, None]
    return np.column_stack([xy, depth])


def opencv_project(model: str, points: np.ndarray) -> np.ndarray:
    D = np.array(DISTORTIONS[model])
    if model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    else:
        uv, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, D)
    return uv.reshape(-1, 2)


def opencv_undistort(model: str, uv: np.ndarray) -> np.ndarray:
    D = np.array(DISTORTIONS[model])
    undistort = cv2.fisheye.undistortPoints if model == "equidistant" else cv2.undistortPoints
    return undistort(uv.reshape(-1, 1, 2), K, D, P=K, criteria=CRITERIA).reshape(-1, 2)


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_projection_matches_opencv(model):
    points = points_in_view()
    uv, depth, kept = camera(model).project(points)
    np.testing.assert_array_equal(kept, np.arange(len(points)))
    np.testing.assert_allclose(depth, points[:, 2])
    np.testing.assert_allclose(uv, opencv_project(model, points), atol=1e-9)


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_undistortion_matches_opencv_and_inverts_projection(model):
    points = points_in_view(seed=1)
    cam = camera(model)
    uv, _, _ = cam.project(points)
    np.testing.assert_allclose(cam.undistort_points(uv), opencv_undistort(model, uv), atol=1e-8)
    ideal = points[:, :2] / points[:, 2:]
    np.testing.assert_allclose(cam.undistort_points(uv, normalized=True), ideal, atol=1e-10)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    focal=st.floats(200, 2000),
    aspect=st.floats(0.8, 1.25),
    k1=st.floats(-0.2, 0.2),
    k2=st.floats(-0.05, 0.05),
    p=st.tuples(st.floats(-0.002, 0.002), st.floats(-0.002, 0.002)),
    seed=st.integers(0, 1000),
)
def test_undistort_inverts_distort_for_random_calibrations(focal, aspect, k1, k2, p, seed):
    K_random = np.array([[focal, 0, 400.0], [0, focal * aspect, 300.0], [0, 0, 1]])
    cam = CameraModel(K=K_random, width=800, height=600, D=[k1, k2, *p, 0.0])
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-0.4, 0.4, (50, 2))
    uv, _, _ = cam.project(np.column_stack([xy, np.ones(50)]))
    np.testing.assert_allclose(cam.undistort_points(uv, normalized=True), xy, atol=1e-9)


def test_points_behind_or_at_the_camera_are_dropped():
    cam = CameraModel.from_intrinsics(500, 500, 320, 240, 640, 480)
    points = np.array([[0.0, 0.0, 10.0], [1.0, 0.0, -5.0], [0.0, 0.0, 0.0], [1.0, 2.0, 4.0]])
    uv, depth, kept = cam.project(points)
    np.testing.assert_array_equal(kept, [0, 3])
    np.testing.assert_allclose(uv, [[320, 240], [445, 490]])
    np.testing.assert_allclose(depth, [10, 4])
    empty_uv, empty_depth, empty_kept = cam.project(np.zeros((0, 3)))
    assert empty_uv.shape == (0, 2) and empty_depth.shape == (0,) and empty_kept.shape == (0,)


def test_in_image_uses_pixel_centre_coordinates():
    cam = CameraModel.from_intrinsics(500, 500, 320, 240, 640, 480)
    uv = np.array([[0, 0], [-0.5, -0.5], [-0.51, 10], [639.49, 479.49], [639.5, 10], [10, 480]])
    np.testing.assert_array_equal(cam.in_image(uv), [True, True, False, True, False, False])
    np.testing.assert_array_equal(cam.in_image(uv[:1], margin=1.0), [False])


def camera_info(**overrides):
    values = dict(
        header=SimpleNamespace(frame_id="camera_front_optical"), width=640, height=480,
        distortion_model="plumb_bob", d=np.array(DISTORTIONS["plumb_bob"]),
        k=K.reshape(-1), r=np.eye(3).reshape(-1), p=np.hstack([K, np.zeros((3, 1))]).reshape(-1),
    )  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


def test_from_camera_info_reads_by_attribute():
    cam = CameraModel.from_camera_info(camera_info())
    assert cam.frame_id == "camera_front_optical"
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (520.0, 515.0, 321.5, 239.0)
    assert cam.P.shape == (3, 4) and cam.R.shape == (3, 3)
    np.testing.assert_allclose(cam.D, DISTORTIONS["plumb_bob"])


def test_from_camera_info_accepts_ros1_field_names_and_lists():
    msg = SimpleNamespace(header=SimpleNamespace(frame_id="cam"), width=64, height=48,
                          distortion_model="", D=[], K=list(K.reshape(-1)), R=[0.0] * 9,
                          P=[0.0] * 12)  # fmt: skip
    cam = CameraModel.from_camera_info(msg)
    np.testing.assert_array_equal(cam.R, np.eye(3))  # all-zero R: no rectification
    np.testing.assert_array_equal(cam.P[:, :3], K)  # all-zero P: derived from K
    np.testing.assert_array_equal(cam.D, np.zeros(5))


def test_fisheye_alias_and_short_plumb_bob_are_accepted():
    assert camera_info_model(distortion_model="fisheye", d=[0.1, 0, 0, 0]) == "equidistant"
    cam = CameraModel.from_camera_info(camera_info(d=[0.1, 0.01, 0.0, 0.0]))
    np.testing.assert_allclose(cam.D, [0.1, 0.01, 0, 0, 0])


def camera_info_model(**overrides) -> str:
    return CameraModel.from_camera_info(camera_info(**overrides)).distortion_model


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"k": np.zeros(8)}, "K needs 9 values"),
        ({"k": np.zeros(9)}, "focal lengths must be positive"),
        ({"r": np.eye(4)}, "R needs 9 values"),
        ({"p": np.ones(9)}, "P needs 12 values"),
        ({"width": 0}, "image size must be positive"),
        ({"distortion_model": "kannala", "d": [0.1]}, "unsupported distortion_model"),
        ({"d": [0.1, 0, 0, 0, 0, 0.3]}, "plumb_bob takes 5 coefficients"),
        ({"d": [np.nan] * 5}, "non-finite"),
        ({"k": np.full(9, np.inf)}, "non-finite"),
    ],
)
def test_invalid_calibrations_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        CameraModel.from_camera_info(camera_info(**overrides))


def test_shapes_are_validated():
    cam = CameraModel.from_intrinsics(500, 500, 320, 240, 640, 480)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        cam.project(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        cam.undistort_points(np.zeros(4))
