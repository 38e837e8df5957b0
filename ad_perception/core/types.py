"""ROS-free detection and sensor containers shared by models, fusion, eval, sim and nodes.

Containers hold numpy columns (struct of arrays) rather than lists of objects, because every
consumer (NMS, metrics, fusion, message packing) works on whole columns at once. A frame with
no detections is an ordinary container with zero rows, never ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASS_ID_DTYPE = np.dtype("<U32")


def _column(values: object, dtype: np.dtype | type, shape_tail: tuple[int, ...], name: str):
    array = np.asarray(values, dtype=dtype)
    if array.size == 0:
        array = array.reshape((0, *shape_tail))
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        raise ValueError(f"{name}: expected shape (N, {shape_tail}) got {array.shape}")
    return array


@dataclass
class Detections2D:
    """Axis-aligned image boxes in pixels: ``boxes`` is (N, 4) as x_min, y_min, x_max, y_max."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    ids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.boxes = _column(self.boxes, np.float64, (4,), "boxes")
        n = len(self.boxes)
        self.scores = _column(self.scores, np.float64, (), "scores")
        self.class_ids = _column(self.class_ids, CLASS_ID_DTYPE, (), "class_ids")
        if self.ids is None:
            self.ids = np.full(n, "", dtype=CLASS_ID_DTYPE)
        self.ids = _column(self.ids, CLASS_ID_DTYPE, (), "ids")
        if not (len(self.scores) == len(self.class_ids) == len(self.ids) == n):
            raise ValueError(
                f"column lengths differ: boxes {n}, scores {len(self.scores)}, "
                f"class_ids {len(self.class_ids)}, ids {len(self.ids)}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections2D:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=CLASS_ID_DTYPE))

    def select(self, index: np.ndarray) -> Detections2D:
        """Rows picked by a boolean mask or an index array (used by filters and NMS)."""
        return Detections2D(
            self.boxes[index], self.scores[index], self.class_ids[index], self.ids[index]
        )


@dataclass
class Boxes3D:
    """Upright 3D boxes: centre (N, 3), size (N, 3) as length (along heading), width,
    height, and yaw (N,) in radians about +z of ``frame_id`` (REP-103)."""

    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    scores: np.ndarray = field(default=None)  # type: ignore[assignment]
    class_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    frame_id: str = ""

    def __post_init__(self) -> None:
        self.centers = _column(self.centers, np.float64, (3,), "centers")
        n = len(self.centers)
        self.sizes = _column(self.sizes, np.float64, (3,), "sizes")
        self.yaws = _column(self.yaws, np.float64, (), "yaws")
        if self.scores is None:
            self.scores = np.ones(n)
        self.scores = _column(self.scores, np.float64, (), "scores")
        if self.class_ids is None:
            self.class_ids = np.full(n, "", dtype=CLASS_ID_DTYPE)
        self.class_ids = _column(self.class_ids, CLASS_ID_DTYPE, (), "class_ids")
        if self.ids is None:
            self.ids = np.full(n, "", dtype=CLASS_ID_DTYPE)
        self.ids = _column(self.ids, CLASS_ID_DTYPE, (), "ids")
        lengths = {len(c) for c in (self.sizes, self.yaws, self.scores, self.class_ids, self.ids)}
        if lengths != {n}:
            raise ValueError(f"column lengths differ from centers ({n}): {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.centers)

    @classmethod
    def empty(cls, frame_id: str = "") -> Boxes3D:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), frame_id=frame_id)

    def select(self, index: np.ndarray) -> Boxes3D:
        return Boxes3D(
            self.centers[index],
            self.sizes[index],
            self.yaws[index],
            self.scores[index],
            self.class_ids[index],
            self.ids[index],
            frame_id=self.frame_id,
        )

    def corners(self) -> np.ndarray:
        """The 8 corners of every box, (N, 8, 3); bottom face first, counter-clockwise."""
        signs = np.array(
            [[1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, -1],
             [1, 1, 1], [-1, 1, 1], [-1, -1, 1], [1, -1, 1]],
            dtype=np.float64,
        )
        local = signs[None, :, :] * (self.sizes[:, None, :] / 2.0)
        cos, sin = np.cos(self.yaws)[:, None], np.sin(self.yaws)[:, None]
        x = local[..., 0] * cos - local[..., 1] * sin
        y = local[..., 0] * sin + local[..., 1] * cos
        return np.stack([x, y, local[..., 2]], axis=-1) + self.centers[:, None, :]

    def transformed(self, T_target_from_source: np.ndarray, frame_id: str) -> Boxes3D:
        """The same boxes expressed in another frame; only the yaw part of the rotation is
        kept for the heading, which is exact for the upright sensor mounts of a vehicle."""
        rotation, translation = T_target_from_source[:3, :3], T_target_from_source[:3, 3]
        centers = self.centers @ rotation.T + translation
        yaw_offset = np.arctan2(rotation[1, 0], rotation[0, 0])
        yaws = np.arctan2(np.sin(self.yaws + yaw_offset), np.cos(self.yaws + yaw_offset))
        return Boxes3D(
            centers, self.sizes.copy(), yaws, self.scores.copy(), self.class_ids.copy(),
            self.ids.copy(), frame_id=frame_id,
        )


@dataclass
class PointCloud:
    """Lidar points as columns: ``xyz`` (N, 3) float32 plus optional per-point channels."""

    xyz: np.ndarray
    intensity: np.ndarray | None = None
    ring: np.ndarray | None = None
    frame_id: str = ""

    def __post_init__(self) -> None:
        self.xyz = _column(self.xyz, np.float32, (3,), "xyz")
        n = len(self.xyz)
        if self.intensity is not None:
            self.intensity = _column(self.intensity, np.float32, (), "intensity")
            if len(self.intensity) != n:
                raise ValueError(f"intensity has {len(self.intensity)} rows, xyz has {n}")
        if self.ring is not None:
            self.ring = _column(self.ring, np.uint16, (), "ring")
            if len(self.ring) != n:
                raise ValueError(f"ring has {len(self.ring)} rows, xyz has {n}")

    def __len__(self) -> int:
        return len(self.xyz)

    @classmethod
    def from_xyzi(cls, points: np.ndarray, ring: np.ndarray | None = None,
                  frame_id: str = "") -> PointCloud:
        """A cloud over one (N, 4) float32 array of x, y, z, intensity: ``xyz`` and
        ``intensity`` are views of it and :meth:`xyzi` returns it without a copy (a lidar
        driver's x, y, z, intensity fields are one 16-byte run, gathered in one pass)."""
        packed = _column(points, np.float32, (4,), "points")
        cloud = cls(packed[:, :3], packed[:, 3], ring, frame_id)
        cloud._xyzi = (packed, cloud.xyz, cloud.intensity)
        return cloud

    def xyzi(self) -> np.ndarray:
        """(N, 4) float32 x, y, z, intensity (0 where the cloud has none): the layout the
        pillar encoder and the training sets read."""
        packed, xyz, intensity = getattr(self, "_xyzi", (None, None, None))
        if packed is not None and self.xyz is xyz and self.intensity is intensity:
            return packed  # the columns are still the views of it (not reassigned)
        intensity = (self.intensity if self.intensity is not None
                     else np.zeros(len(self.xyz), dtype=np.float32))
        return np.column_stack([self.xyz, intensity]).astype(np.float32, copy=False)
