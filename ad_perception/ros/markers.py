"""Fused objects as a visualization_msgs/MarkerArray for RViz and Foxglove.

Each object is a LINE_LIST cuboid coloured by class plus a text label (class, track id,
score, provenance); the array starts with DELETEALL so objects of the previous frame never linger.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ad_perception.core.annotate import CLASS_COLORS, OTHER_COLOR
from ad_perception.core.types import Boxes3D

# the 12 edges of a Boxes3D.corners() cuboid: bottom ring, top ring, verticals
BOX_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4],
                      [0, 4], [1, 5], [2, 6], [3, 7]])


def _color(class_id: str, alpha: float = 1.0) -> ColorRGBA:
    r, g, b = CLASS_COLORS.get(str(class_id), OTHER_COLOR)
    return ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=alpha)


def _label_text(boxes: Boxes3D, index: int, source: str) -> str:
    """class, score, provenance, and the track id where the fusion tracks the object."""
    track = f" #{boxes.ids[index]}" if boxes.ids[index] else ""
    return f"{boxes.class_ids[index]}{track} {boxes.scores[index]:.2f} ({source})"


def boxes_to_markers(boxes: Boxes3D, header: Any, provenance: np.ndarray | None = None,
                     lifetime_s: float = 0.3) -> MarkerArray:
    """MarkerArray of ``boxes`` (in ``header.frame_id``), one cuboid and one label each."""
    seconds = int(lifetime_s)
    lifetime = Duration(sec=seconds, nanosec=int(round((lifetime_s - seconds) * 1e9)))
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    corners = boxes.corners() if len(boxes) else np.zeros((0, 8, 3))
    for index in range(len(boxes)):
        source = str(provenance[index]) if provenance is not None else "object"
        cuboid = Marker(header=header, ns=f"objects/{source}", id=index, type=Marker.LINE_LIST,
                        action=Marker.ADD, lifetime=lifetime, color=_color(boxes.class_ids[index]))
        cuboid.pose.orientation.w = 1.0
        cuboid.scale.x = 0.08
        cuboid.points = [Point(x=x, y=y, z=z)
                         for x, y, z in corners[index][BOX_EDGES.reshape(-1)].tolist()]
        label = Marker(header=header, ns="labels", id=index, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, lifetime=lifetime, color=_color(boxes.class_ids[index]),
                       text=_label_text(boxes, index, source))
        label.pose.position.x, label.pose.position.y = map(float, boxes.centers[index, :2])
        label.pose.position.z = float(boxes.centers[index, 2] + boxes.sizes[index, 2] / 2 + 0.5)
        label.pose.orientation.w = 1.0
        label.scale.z = 0.6
        markers += [cuboid, label]
    return MarkerArray(markers=markers)
