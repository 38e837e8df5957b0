"""A pinhole camera with lens distortion, built from a CameraInfo read by attribute.

Fusion and evaluation project whole lidar clouds into images and match boxes in pixels, so
every method works on (N, 3) / (N, 2) arrays at once. The distortion formulas are OpenCV's
(the ones ROS calibration tools write), so results agree with cv2.projectPoints and
cv2.undistortPoints; tests check that parity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ROS distortion_model name -> number of coefficients in D (fewer are zero-padded)
DISTORTION_COEFFICIENTS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
_ALIASES = {"fisheye": "equidistant", "": "none", "none": "none"}
UNDISTORT_ITERATIONS = 100  # an upper bound: iteration stops once points move < 1e-14


def _matrix(values: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != shape[0] * shape[1]:
        raise ValueError(f"{name} needs {shape[0] * shape[1]} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values: {array.reshape(-1).tolist()}")
    return array.reshape(shape)


@dataclass
class CameraModel:
    """Intrinsics ``K`` (3, 3), distortion ``D`` of ``distortion_model``, rectification ``R``
    (3, 3) and projection ``P`` (3, 4), as in sensor_msgs/CameraInfo. Pixel coordinates are
    OpenCV's: (0, 0) is the centre of the top-left pixel, u right, v down. A non-zero skew
    K[0, 1] is honoured (OpenCV's projectPoints ignores it; parity holds for skew 0)."""

    K: np.ndarray
    width: int
    height: int
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: np.ndarray | None = None
    frame_id: str = ""

    def __post_init__(self) -> None:
        self.K = _matrix(self.K, (3, 3), "K")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise ValueError(f"focal lengths must be positive (uncalibrated camera?), K={self.K}")
        self.width, self.height = int(self.width), int(self.height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        model = _ALIASES.get(self.distortion_model, self.distortion_model)
        coefficients = np.asarray(self.D, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(coefficients)):
            raise ValueError(f"D has non-finite values: {coefficients.tolist()}")
        if model == "none" or (model not in DISTORTION_COEFFICIENTS and not coefficients.any()):
            model, needed = "plumb_bob", 5  # no distortion is plumb_bob with zeros
        elif model not in DISTORTION_COEFFICIENTS:
            raise ValueError(
                f"unsupported distortion_model {self.distortion_model!r}; supported: "
                f"{sorted(DISTORTION_COEFFICIENTS)}"
            )
        else:
            needed = DISTORTION_COEFFICIENTS[model]
        if coefficients.size > needed and coefficients[needed:].any():
            raise ValueError(
                f"{model} takes {needed} coefficients, D has {coefficients.size}: "
                f"{coefficients.tolist()}"
            )
        self.distortion_model = model
        self.D = np.pad(coefficients[:needed], (0, needed - min(needed, coefficients.size)))
        self.R = _matrix(self.R, (3, 3), "R")
        if not self.R.any():  # an all-zero R means "no rectification" in uncalibrated infos
            self.R = np.eye(3)
        if self.P is None or not np.asarray(self.P).any():
            self.P = np.hstack([self.K, np.zeros((3, 1))])
        self.P = _matrix(self.P, (3, 4), "P")

    @classmethod
    def from_intrinsics(
        cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
        frame_id: str = "",
    ) -> CameraModel:  # fmt: skip
        """A distortion-free camera, e.g. a simulated one."""
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(K=K, width=width, height=height, distortion_model="none", frame_id=frame_id)

    @classmethod
    def from_camera_info(cls, msg: Any) -> CameraModel:
        """Read a sensor_msgs/CameraInfo (rclpy, rosbags or ROS 1 upper-case field names)."""

        def read(name: str) -> Any:
            value = getattr(msg, name, None)
            return getattr(msg, name.upper()) if value is None else value

        header = getattr(msg, "header", None)
        return cls(
            K=read("k"),
            width=msg.width,
            height=msg.height,
            D=read("d"),
            distortion_model=msg.distortion_model,
            R=read("r"),
            P=read("p"),
            frame_id=getattr(header, "frame_id", ""),
        )

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def distort_normalized(self, xy: np.ndarray) -> np.ndarray:
        """Ideal normalized coordinates (x/z, y/z) (N, 2) -> distorted normalized ones."""
        x, y = xy[:, 0], xy[:, 1]
        r2 = x * x + y * y
        if self.distortion_model == "equidistant":
            r = np.sqrt(r2)
            theta = np.arctan(r)
            t2 = theta * theta
            k1, k2, k3, k4 = self.D
            theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
            scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
            return xy * scale[:, None]
        k1, k2, p1, p2, k3, k4, k5, k6 = np.pad(self.D, (0, 8 - self.D.size))
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def undistort_normalized(self, xy_distorted: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`distort_normalized` by fixed-point / Newton iteration."""
        xy_distorted = np.asarray(xy_distorted, dtype=np.float64)
        if self.distortion_model == "equidistant":
            theta_d = np.linalg.norm(xy_distorted, axis=1)
            theta = theta_d.copy()
            k1, k2, k3, k4 = self.D
            for _ in range(UNDISTORT_ITERATIONS):
                t2 = theta * theta
                residual = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
                slope = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
                step = residual / slope
                theta = theta - step
                if not np.any(np.abs(step) > 1e-14):
                    break
            safe = np.maximum(theta_d, 1e-12)
            scale = np.where(theta_d > 1e-12, np.tan(theta) / safe, 1.0)
            return xy_distorted * scale[:, None]
        k1, k2, p1, p2, k3, k4, k5, k6 = np.pad(self.D, (0, 8 - self.D.size))
        x0, y0 = xy_distorted[:, 0], xy_distorted[:, 1]
        x, y = x0.copy(), y0.copy()
        for _ in range(UNDISTORT_ITERATIONS):
            r2 = x * x + y * y
            inverse_radial = (1 + r2 * (k4 + r2 * (k5 + r2 * k6))) / (
                1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            )
            delta_x = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            delta_y = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            x_next = (x0 - delta_x) * inverse_radial
            y_next = (y0 - delta_y) * inverse_radial
            moved = np.maximum(np.abs(x_next - x), np.abs(y_next - y))
            x, y = x_next, y_next
            if not np.any(moved > 1e-14):
                break
        return np.stack([x, y], axis=1)

    def project(
        self, points_cam: np.ndarray, min_depth: float = 1e-3
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project (N, 3) points in the optical frame into the raw (distorted) image.

        Returns (uv (M, 2), depth (M,), kept_index (M,)) for the points with z > min_depth;
        points behind the camera are dropped rather than mirrored into the image.
        """
        points_cam = np.asarray(points_cam, dtype=np.float64)
        if points_cam.ndim != 2 or points_cam.shape[1] != 3:
            raise ValueError(f"expected (N, 3) points, got {points_cam.shape}")
        kept = np.flatnonzero(points_cam[:, 2] > min_depth)
        depth = points_cam[kept, 2]
        xy = self.distort_normalized(points_cam[kept, :2] / depth[:, None])
        uv = xy * np.diag(self.K)[:2] + xy[:, 1:2] * np.array([self.K[0, 1], 0.0])
        return uv + self.K[:2, 2], depth, kept

    def undistort_points(self, uv: np.ndarray, normalized: bool = False) -> np.ndarray:
        """Raw pixel coordinates (N, 2) -> pixels of an ideal distortion-free camera with the
        same K (cv2.undistortPoints(uv, K, D, P=K)), or normalized coordinates."""
        uv = np.asarray(uv, dtype=np.float64)
        if uv.ndim != 2 or uv.shape[1] != 2:
            raise ValueError(f"expected (N, 2) pixels, got {uv.shape}")
        fx, fy, skew = self.K[0, 0], self.K[1, 1], self.K[0, 1]
        y_distorted = (uv[:, 1] - self.cy) / fy
        x_distorted = (uv[:, 0] - self.cx - skew * y_distorted) / fx
        xy = self.undistort_normalized(np.stack([x_distorted, y_distorted], axis=1))
        if normalized:
            return xy
        u = xy[:, 0] * fx + xy[:, 1] * skew + self.cx
        return np.stack([u, xy[:, 1] * fy + self.cy], axis=1)

    def in_image(self, uv: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of pixel coordinates that fall on the sensor (shrunk by ``margin``)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        u, v = uv[:, 0], uv[:, 1]
        return (
            (u >= -0.5 + margin)
            & (u < self.width - 0.5 - margin)
            & (v >= -0.5 + margin)
            & (v < self.height - 0.5 - margin)
        )
