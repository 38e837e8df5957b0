"""Static extrinsics from /tf_static without tf2_ros, which pip environments do not have.

Sensor mounts on a vehicle are a small tree (base_link -> lidar, base_link -> camera ->
optical frame) published once, so a dictionary of edges and a breadth-first search answer
every lookup; there is no time dimension to interpolate.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ad_perception.core.geometry import invert_transform, make_transform

FrameEdge = tuple[str, str]  # (parent_frame, child_frame)


def read_tf_message(msg: Any) -> dict[FrameEdge, np.ndarray]:
    """tf2_msgs/TFMessage (rclpy or rosbags) -> {(parent, child): T_parent_from_child 4x4}.

    A TransformStamped's translation and rotation express the child frame in the parent
    frame, i.e. they map child coordinates to parent coordinates.
    """
    transforms = {}
    for stamped in msg.transforms:
        translation, rotation = stamped.transform.translation, stamped.transform.rotation
        quaternion = np.array([rotation.x, rotation.y, rotation.z, rotation.w], dtype=float)
        if not np.all(np.isfinite(quaternion)) or np.linalg.norm(quaternion) < 1e-9:
            raise ValueError(
                f"transform {stamped.header.frame_id} -> {stamped.child_frame_id} has an "
                f"invalid rotation {quaternion.tolist()}"
            )
        transforms[(stamped.header.frame_id, stamped.child_frame_id)] = make_transform(
            quaternion, [translation.x, translation.y, translation.z]
        )
    return transforms


class TransformBuffer:
    """Static transforms between named frames, looked up through any chain of edges."""

    def __init__(self) -> None:
        self._T_parent_from_child: dict[FrameEdge, np.ndarray] = {}
        self._neighbours: dict[str, set[str]] = {}

    def set_transform(self, T_parent_from_child: np.ndarray, parent: str, child: str) -> None:
        """Add or replace the edge ``parent -> child`` (a later /tf_static message wins)."""
        T_parent_from_child = np.asarray(T_parent_from_child, dtype=np.float64)
        if T_parent_from_child.shape != (4, 4):
            raise ValueError(f"expected a 4x4 transform, got {T_parent_from_child.shape}")
        if parent == child:
            raise ValueError(f"a frame cannot be its own parent: {parent!r}")
        self._T_parent_from_child.pop((child, parent), None)  # re-parented edge
        self._T_parent_from_child[(parent, child)] = T_parent_from_child
        self._neighbours.setdefault(parent, set()).add(child)
        self._neighbours.setdefault(child, set()).add(parent)

    def add_tf_message(self, msg: Any) -> None:
        """Store every transform of a TFMessage (rclpy or rosbags)."""
        for (parent, child), transform in read_tf_message(msg).items():
            self.set_transform(transform, parent, child)

    @property
    def frames(self) -> set[str]:
        return set(self._neighbours)

    def can_transform(self, target: str, source: str) -> bool:
        return self._path(target, source) is not None

    def lookup(self, target: str, source: str) -> np.ndarray:
        """``T_target_from_source`` (4x4): maps points in ``source`` into ``target``."""
        path = self._path(target, source)
        if path is None:
            known = ", ".join(sorted(self._neighbours)) or "none"
            raise LookupError(
                f"no transform from {source!r} to {target!r}: the frames are not connected "
                f"(known frames: {known})"
            )
        T_target_from_source = np.eye(4)
        for near, far in zip(path, path[1:], strict=False):  # walk target -> source
            if (near, far) in self._T_parent_from_child:
                step = self._T_parent_from_child[(near, far)]
            else:
                step = invert_transform(self._T_parent_from_child[(far, near)])
            T_target_from_source = T_target_from_source @ step
        return T_target_from_source

    def _path(self, target: str, source: str) -> list[str] | None:
        if target == source:
            return [target]
        previous: dict[str, str] = {}
        queue = deque([target])
        while queue:
            frame = queue.popleft()
            for neighbour in self._neighbours.get(frame, ()):
                if neighbour != target and neighbour not in previous:
                    previous[neighbour] = frame
                    if neighbour == source:
                        path = [source]
                        while path[-1] != target:
                            path.append(previous[path[-1]])
                        return path[::-1]
                    queue.append(neighbour)
        return None
