"""Parity with cv_bridge where a working one exists (a full ROS 2 install); skipped in pip
environments, whose PyPI cv_bridge is a broken ROS 1 copy (see shared/FACTS.md)."""

from __future__ import annotations

import numpy as np
import pytest

cv_bridge = pytest.importorskip("cv_bridge")
from ad_perception.ros import conversions  # noqa: E402

pytestmark = pytest.mark.ros

CASES = [
    ("rgb8", (6, 7, 3), np.uint8), ("bgr8", (6, 7, 3), np.uint8),
    ("rgba8", (6, 7, 4), np.uint8), ("bgra8", (6, 7, 4), np.uint8),
    ("mono8", (6, 7), np.uint8), ("mono16", (6, 7), np.uint16),
    ("16UC1", (6, 7), np.uint16), ("32FC1", (6, 7), np.float32),
]  # fmt: skip
COLOR_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]


def sample(shape, dtype) -> np.ndarray:
    return (np.arange(np.prod(shape)) * 31 % 251).astype(dtype).reshape(shape)


@pytest.mark.parametrize(("encoding", "shape", "dtype"), CASES)
def test_our_messages_decode_identically_in_cv_bridge(encoding, shape, dtype):
    pixels = sample(shape, dtype)
    msg = conversions.array_to_image(pixels, encoding)
    theirs = cv_bridge.CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough")
    np.testing.assert_array_equal(theirs, pixels)
    assert theirs.shape == conversions.image_to_array(msg).shape


@pytest.mark.parametrize(("encoding", "shape", "dtype"), CASES)
def test_cv_bridge_messages_decode_identically_here(encoding, shape, dtype):
    pixels = sample(shape, dtype)
    msg = cv_bridge.CvBridge().cv2_to_imgmsg(pixels, encoding=encoding)
    ours = conversions.image_to_array(msg)
    np.testing.assert_array_equal(ours, pixels)
    assert ours.dtype == pixels.dtype


@pytest.mark.parametrize("source", COLOR_ENCODINGS)
@pytest.mark.parametrize("target", COLOR_ENCODINGS)
def test_desired_encoding_matches_cv_bridge(source, target):
    shape = (6, 7) if source == "mono8" else (6, 7, 4 if source.endswith("a8") else 3)
    msg = conversions.array_to_image(sample(shape, np.uint8), source)
    theirs = cv_bridge.CvBridge().imgmsg_to_cv2(msg, desired_encoding=target)
    np.testing.assert_array_equal(conversions.image_to_array(msg, desired_encoding=target), theirs)
