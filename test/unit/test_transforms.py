"""TransformBuffer chaining and TFMessage reading on stand-ins; no ROS imports."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ad_perception.core.geometry import (
    R_BODY_FROM_OPTICAL,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    transform_points,
    yaw_to_quaternion,
)
from ad_perception.core.transforms import TransformBuffer, read_tf_message

T_BASE_FROM_LIDAR = make_transform(yaw_to_quaternion(0.1), [1.2, 0.0, 1.9])
T_BASE_FROM_CAMERA = make_transform(yaw_to_quaternion(-0.05), [1.5, 0.1, 1.4])
T_CAMERA_FROM_OPTICAL = make_transform(R_BODY_FROM_OPTICAL, [0.0, 0.0, 0.0])


def vehicle_tree() -> TransformBuffer:
    buffer = TransformBuffer()
    buffer.set_transform(T_BASE_FROM_LIDAR, "base_link", "lidar_top")
    buffer.set_transform(T_BASE_FROM_CAMERA, "base_link", "camera_front")
    buffer.set_transform(T_CAMERA_FROM_OPTICAL, "camera_front", "camera_front_optical")
    return buffer


def test_lookup_chains_through_the_tree_in_both_directions():
    buffer = vehicle_tree()
    T_optical_from_lidar = buffer.lookup("camera_front_optical", "lidar_top")
    expected = (
        invert_transform(T_CAMERA_FROM_OPTICAL)
        @ invert_transform(T_BASE_FROM_CAMERA)
        @ T_BASE_FROM_LIDAR
    )
    np.testing.assert_allclose(T_optical_from_lidar, expected, atol=1e-12)
    np.testing.assert_allclose(
        buffer.lookup("lidar_top", "camera_front_optical"), invert_transform(expected), atol=1e-12
    )
    np.testing.assert_allclose(buffer.lookup("base_link", "lidar_top"), T_BASE_FROM_LIDAR)
    np.testing.assert_array_equal(buffer.lookup("lidar_top", "lidar_top"), np.eye(4))


def test_optical_frame_looks_forward_along_base_x():
    buffer = vehicle_tree()
    T_base_from_optical = buffer.lookup("base_link", "camera_front_optical")
    ahead = transform_points(np.array([[0.0, 0.0, 10.0]]), T_base_from_optical)
    assert ahead[0, 0] > 10.0  # optical +z is forward (+x) in base_link


def test_unconnected_frames_raise_lookup_error_naming_them():
    buffer = vehicle_tree()
    buffer.set_transform(np.eye(4), "map", "odom")
    with pytest.raises(LookupError, match="'odom' to 'lidar_top'") as info:
        buffer.lookup("lidar_top", "odom")
    assert "base_link" in str(info.value)
    assert not buffer.can_transform("lidar_top", "radar")
    assert buffer.can_transform("camera_front_optical", "lidar_top")


def test_reparenting_replaces_the_reverse_edge():
    buffer = TransformBuffer()
    buffer.set_transform(make_transform(np.eye(3), [1, 0, 0]), "a", "b")
    buffer.set_transform(make_transform(np.eye(3), [0, 2, 0]), "b", "a")
    np.testing.assert_allclose(buffer.lookup("b", "a")[:3, 3], [0, 2, 0])
    with pytest.raises(ValueError, match="own parent"):
        buffer.set_transform(np.eye(4), "a", "a")


def stamped(parent: str, child: str, transform: np.ndarray) -> SimpleNamespace:
    x, y, z = transform[:3, 3]
    qx, qy, qz, qw = matrix_to_quaternion(transform[:3, :3])
    return SimpleNamespace(
        header=SimpleNamespace(frame_id=parent),
        child_frame_id=child,
        transform=SimpleNamespace(
            translation=SimpleNamespace(x=x, y=y, z=z),
            rotation=SimpleNamespace(x=qx, y=qy, z=qz, w=qw),
        ),
    )


def test_tf_message_reading_and_buffer_filling():
    msg = SimpleNamespace(transforms=[
        stamped("base_link", "lidar_top", T_BASE_FROM_LIDAR),
        stamped("base_link", "camera_front", T_BASE_FROM_CAMERA),
    ])  # fmt: skip
    transforms = read_tf_message(msg)
    assert set(transforms) == {("base_link", "lidar_top"), ("base_link", "camera_front")}
    np.testing.assert_allclose(transforms[("base_link", "lidar_top")], T_BASE_FROM_LIDAR)
    buffer = TransformBuffer()
    buffer.add_tf_message(msg)
    assert buffer.frames == {"base_link", "lidar_top", "camera_front"}


def test_zero_quaternion_is_rejected():
    bad = stamped("base_link", "lidar_top", np.eye(4))
    bad.transform.rotation.w = 0.0
    with pytest.raises(ValueError, match="invalid rotation"):
        read_tf_message(SimpleNamespace(transforms=[bad]))
