"""KITTI object-detection layout -> our bag layout (sensors, /tf_static, ground truth).

KITTI labels live in the rectified camera frame (y down, box origin at the bottom face,
rotation ry about camera y). We convert with the full calibration (R0_rect and
Tr_velo_to_cam, not a nominal rotation), taking the heading as the image of the box's
forward axis, so yaw stays exact for any calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ad_perception.core.geometry import invert_transform, make_transform
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud

KITTI_CLASSES = {
    "Car": "car",
    "Van": "car",
    "Truck": "truck",
    "Pedestrian": "pedestrian",
    "Cyclist": "cyclist",
}
VELODYNE_HEIGHT_M = 1.73  # KITTI's lidar above the ground; base_link is the point below it


@dataclass
class KittiCalib:
    P2: np.ndarray  # (3, 4)
    R0_rect: np.ndarray  # (3, 3)
    Tr_velo_to_cam: np.ndarray  # (3, 4)

    @property
    def K(self) -> np.ndarray:
        return self.P2[:, :3].copy()

    @property
    def T_rect_from_velo(self) -> np.ndarray:
        return make_transform(self.R0_rect, (0, 0, 0)) @ np.vstack(
            [self.Tr_velo_to_cam, [0, 0, 0, 1]]
        )

    @property
    def T_cam2_from_velo(self) -> np.ndarray:
        """Camera 2's optical frame: rectified frame shifted by P2's baseline term."""
        offset = np.linalg.solve(self.K, self.P2[:, 3])
        return make_transform(np.eye(3), offset) @ self.T_rect_from_velo


@dataclass
class KittiObject:
    kitti_type: str
    truncation: float
    occlusion: int
    box_2d: np.ndarray  # x1, y1, x2, y2
    hwl: np.ndarray
    bottom_rect: np.ndarray  # x, y, z of the bottom-face centre, camera rect frame
    ry: float


def read_calib(path: Path) -> KittiCalib:
    values = {}
    for line in Path(path).read_text().splitlines():
        if ":" in line:
            key, rest = line.split(":", 1)
            values[key.strip()] = np.array([float(v) for v in rest.split()])
    try:
        return KittiCalib(
            values["P2"].reshape(3, 4),
            values["R0_rect"].reshape(3, 3),
            values["Tr_velo_to_cam"].reshape(3, 4),
        )
    except KeyError as err:
        raise ValueError(f"{path}: missing calibration entry {err}") from err


def read_labels(path: Path) -> list[KittiObject]:
    objects = []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) < 15:
            continue
        objects.append(
            KittiObject(
                f[0],
                float(f[1]),
                int(float(f[2])),
                np.array(f[4:8], float),
                np.array(f[8:11], float),
                np.array(f[11:14], float),
                float(f[14]),
            )
        )
    return objects


def read_velodyne(path: Path) -> PointCloud:
    data = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    return PointCloud(data[:, :3], data[:, 3])


def read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def boxes_in_velo(
    objects: list[KittiObject], calib: KittiCalib, frame_id: str
) -> tuple[Boxes3D, list[int]]:
    """Mapped-class objects as lidar-frame boxes, plus their indices in ``objects``."""
    T_velo_from_rect = invert_transform(calib.T_rect_from_velo)
    kept = [i for i, o in enumerate(objects) if o.kitti_type in KITTI_CLASSES]
    if not kept:
        return Boxes3D.empty(frame_id), []
    centers, sizes, yaws = [], [], []
    for i in kept:
        o = objects[i]
        h, w, length = o.hwl
        centre_rect = o.bottom_rect - np.array([0.0, h / 2, 0.0])
        forward_rect = np.array([np.cos(o.ry), 0.0, -np.sin(o.ry)])
        forward = T_velo_from_rect[:3, :3] @ forward_rect
        centers.append(T_velo_from_rect[:3, :3] @ centre_rect + T_velo_from_rect[:3, 3])
        sizes.append([length, w, h])
        yaws.append(np.arctan2(forward[1], forward[0]))
    classes = [KITTI_CLASSES[objects[i].kitti_type] for i in kept]
    return Boxes3D(
        np.array(centers),
        np.array(sizes),
        np.array(yaws),
        class_ids=classes,
        ids=[str(i) for i in kept],
        frame_id=frame_id,
    ), kept


def boxes_2d(objects: list[KittiObject], kept: list[int]) -> Detections2D:
    if not kept:
        return Detections2D.empty()
    return Detections2D(
        np.array([objects[i].box_2d for i in kept]),
        np.ones(len(kept)),
        [KITTI_CLASSES[objects[i].kitti_type] for i in kept],
        [str(i) for i in kept],
    )


def points_in_boxes(points: np.ndarray, boxes: Boxes3D) -> np.ndarray:
    """(N_boxes,) number of points inside each box."""
    counts = np.zeros(len(boxes), dtype=np.int64)
    for k in range(len(boxes)):
        local = points - boxes.centers[k]
        c, s = np.cos(-boxes.yaws[k]), np.sin(-boxes.yaws[k])
        x = local[:, 0] * c - local[:, 1] * s
        y = local[:, 0] * s + local[:, 1] * c
        half = boxes.sizes[k] / 2
        counts[k] = int(
            (
                (np.abs(x) <= half[0]) & (np.abs(y) <= half[1]) & (np.abs(local[:, 2]) <= half[2])
            ).sum()
        )
    return counts


def frame_ids(root: Path) -> list[str]:
    """Frame names present in image_2 of a KITTI ``training`` (or ``testing``) folder."""
    return sorted(p.stem for p in (root / "image_2").glob("*.png"))
