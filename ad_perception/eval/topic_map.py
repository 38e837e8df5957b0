"""Which topic of a bag plays which role, so bags recorded elsewhere can be scored.

Our own bags need no mapping: each role is found by message type, preferring the default
topic names of DESIGN.md. Bags from other sources (carla-ros-bridge, another vehicle's
recorder) name things differently, store clouds with other field names and sometimes write
non-standard image encoding strings; a small YAML file says how to read them::

    # carla.yaml: carla-ros-bridge topics, ground truth recorded beside them
    topics:
      image: /carla/ego_vehicle/rgb_front/image            # bgra8 is decoded as is
      camera_info: /carla/ego_vehicle/rgb_front/camera_info
      points: /carla/ego_vehicle/lidar
      gt_objects: /carla/ego_vehicle/objects
      gt_boxes: /carla/ego_vehicle/rgb_front/objects_2d
    point_fields: {intensity: i}      # our field name: the bag's field name
    intensity_scale: 1.0              # multiply the bag's intensity by this
    image_encoding: bgra8             # override a missing or non-standard encoding string
    class_map: {vehicle: car, walker: pedestrian}

Mistakes fail at load time with the key or topic to fix, never half-way through a bag.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ad_perception.data.datasets import GT_BOXES_TOPIC, GT_OBJECTS_TOPIC

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
DETECTION_2D_ARRAY = "vision_msgs/msg/Detection2DArray"
DETECTION_3D_ARRAY = "vision_msgs/msg/Detection3DArray"

# role -> (message type, default topic, what it is for)
ROLES: dict[str, tuple[str, str, str]] = {
    "image": (IMAGE, "/sensing/camera/front/image_raw", "camera images"),
    "camera_info": (CAMERA_INFO, "/sensing/camera/front/camera_info", "camera intrinsics"),
    "points": (POINTCLOUD2, "/sensing/lidar/top/points", "lidar clouds"),
    "tf_static": (TF_MESSAGE, "/tf_static", "sensor extrinsics"),
    "gt_boxes": (DETECTION_2D_ARRAY, GT_BOXES_TOPIC, "2D ground truth"),
    "gt_objects": (DETECTION_3D_ARRAY, GT_OBJECTS_TOPIC, "3D ground truth"),
    "camera_detections": (DETECTION_2D_ARRAY, "/perception/camera/front/detections",
                          "recorded camera detector output"),
    "lidar_detections": (DETECTION_3D_ARRAY, "/perception/lidar/detections",
                         "recorded lidar detector output"),
    "objects": (DETECTION_3D_ARRAY, "/perception/objects", "recorded fused output"),
}
SENSOR_ROLES = ("image", "camera_info", "points")
OUTPUT_ROLES = ("camera_detections", "lidar_detections", "objects")
GROUND_TRUTH_ROLES = ("gt_boxes", "gt_objects")
POINT_FIELDS = ("x", "y", "z", "intensity", "ring")
_TOP_LEVEL_KEYS = ("topics", "point_fields", "intensity_scale", "image_encoding", "class_map")


class TopicMapError(ValueError):
    """A mapping file or a bag that does not fit it, with what to change."""


@dataclass(frozen=True)
class TopicMap:
    """Explicit topic names per role (others found by type), plus decoding adjustments."""

    topics: dict[str, str] = field(default_factory=dict)
    point_fields: dict[str, str] = field(default_factory=dict)  # ours -> the bag's
    intensity_scale: float = 1.0
    image_encoding: str | None = None
    class_map: dict[str, str] = field(default_factory=dict)
    source: str = "defaults"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> TopicMap:
        if not isinstance(data, dict):
            raise TopicMapError(f"{source}: expected a mapping at the top level, "
                                f"got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS))
        if unknown:
            raise TopicMapError(f"{source}: unknown key(s) {unknown}; allowed: "
                                f"{list(_TOP_LEVEL_KEYS)}")
        topics = _string_dict(data.get("topics") or {}, f"{source}: topics")
        bad_roles = sorted(set(topics) - set(ROLES))
        if bad_roles:
            raise TopicMapError(f"{source}: unknown role(s) {bad_roles} under topics; "
                                f"roles: {list(ROLES)}")
        for role, topic in topics.items():
            if not topic.startswith("/"):
                raise TopicMapError(f"{source}: topics.{role} must be an absolute topic name "
                                    f"starting with '/', got {topic!r}")
        point_fields = _string_dict(data.get("point_fields") or {}, f"{source}: point_fields")
        bad_fields = sorted(set(point_fields) - set(POINT_FIELDS))
        if bad_fields:
            raise TopicMapError(f"{source}: point_fields keys are our field names "
                                f"{list(POINT_FIELDS)}; got {bad_fields}")
        scale = data.get("intensity_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise TopicMapError(f"{source}: intensity_scale must be a positive number, "
                                f"got {scale!r}")
        encoding = data.get("image_encoding")
        if encoding is not None:
            from ad_perception.core.sensor_codecs import IMAGE_ENCODINGS

            if encoding not in IMAGE_ENCODINGS:
                raise TopicMapError(f"{source}: image_encoding {encoding!r} is not an encoding "
                                    f"the decoder knows; e.g. rgb8, bgr8, bgra8, rgba8, mono8")
        class_map = _string_dict(data.get("class_map") or {}, f"{source}: class_map")
        return cls(topics, point_fields, float(scale), encoding, class_map, source)

    @classmethod
    def load(cls, path: str | Path) -> TopicMap:
        """Read a mapping YAML; every problem names the file and the key."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise TopicMapError(f"topic mapping file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise TopicMapError(f"{path}: not valid YAML: {err}") from err
        return cls.from_dict(data, str(path))

    def resolve(self, bag_types: dict[str, str], bag: str = "bag") -> ResolvedTopics:
        """Topic per role for one bag (None where the bag has none), with notes on choices.

        A role named in the mapping must exist with the right type; other roles are found by
        type, preferring the default name, and are left out when ambiguous (with a note that
        says which mapping key settles it)."""
        chosen: dict[str, str | None] = {}
        notes: list[str] = []
        for role, (msgtype, default, purpose) in ROLES.items():
            if role in self.topics:
                topic = self.topics[role]
                if topic not in bag_types:
                    raise TopicMapError(
                        f"{bag}: {self.source} maps {role} ({purpose}) to {topic}, which the "
                        f"bag does not have; its topics: {sorted(bag_types)}")
                if bag_types[topic] != msgtype:
                    raise TopicMapError(
                        f"{bag}: {topic} ({role}) has type {bag_types[topic]}; {purpose} must "
                        f"be {msgtype}")
                chosen[role] = topic
                continue
            chosen[role] = _find_by_type(role, msgtype, default, bag_types, notes, purpose)
        return ResolvedTopics(**chosen, notes=notes)

    def with_topics(self, **topics: str) -> TopicMap:
        return replace(self, topics={**self.topics, **topics})


@dataclass(frozen=True)
class ResolvedTopics:
    image: str | None = None
    camera_info: str | None = None
    points: str | None = None
    tf_static: str | None = None
    gt_boxes: str | None = None
    gt_objects: str | None = None
    camera_detections: str | None = None
    lidar_detections: str | None = None
    objects: str | None = None
    notes: list[str] = field(default_factory=list)


def _find_by_type(role: str, msgtype: str, default: str, bag_types: dict[str, str],
                  notes: list[str], purpose: str) -> str | None:
    if bag_types.get(default) == msgtype:
        return default
    is_gt = role in GROUND_TRUTH_ROLES
    is_output = role in OUTPUT_ROLES
    candidates = sorted(
        topic for topic, kind in bag_types.items() if kind == msgtype
        # ground truth and recorded outputs share types: only take them by name
        and not topic.startswith("/ground_truth") and not topic.startswith("/perception")
    )
    if is_gt or is_output or role == "tf_static":
        return None  # never guess which Detection*Array is the ground truth
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        notes.append(f"{purpose}: several {msgtype} topics {candidates}; set topics.{role} "
                     "in a mapping file (--topics) to choose one")
    return None


def _string_dict(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TopicMapError(f"{where} must map names to strings, got {value!r}")
    return dict(value)
