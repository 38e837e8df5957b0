"""Everything a bag offers to score against, read once: ground truth by header stamp, the
sensor frames that outputs are expected for, intrinsics, extrinsics and difficulty sidecar.

Offline runs, live replays and outputs recorded elsewhere are all scored against this one
object, so the three modes cannot drift apart in what they count. What a bag lacks is not an
exception unless nothing at all can be scored: it becomes a note in the report ("camera not
scored: the bag has no 2D ground truth").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ad_perception.core.camera_model import CameraModel
from ad_perception.core.transforms import TransformBuffer, read_tf_message
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.data import bag_io
from ad_perception.eval import decode, gt_filters
from ad_perception.eval.errors import (
    EvalError,
    read_messages,
    topic_types,
    truncation_note,
    unknown_types,
)
from ad_perception.eval.replay import read_stamp_ns
from ad_perception.eval.topic_map import ROLES, ResolvedTopics, TopicMap, TopicMapError


@dataclass(frozen=True)
class SensorFrame:
    """One input message: its header stamp (the key outputs carry) and its bag log time."""

    stamp_ns: int
    log_ns: int


@dataclass
class BagGroundTruth:
    bag: Path
    topic_map: TopicMap
    topics: ResolvedTopics
    camera_model: CameraModel | None = None
    transforms: TransformBuffer = field(default_factory=TransformBuffer)
    lidar_frame: str | None = None
    boxes_2d: dict[int, Detections2D] = field(default_factory=dict)
    objects_3d: dict[int, Boxes3D] = field(default_factory=dict)
    occlusion: dict[int, dict[str, int]] = field(default_factory=dict)
    truncation: dict[int, dict[str, float]] = field(default_factory=dict)
    lidar_points: dict[int, dict[str, int]] = field(default_factory=dict)
    image_frames: list[SensorFrame] = field(default_factory=list)
    cloud_frames: list[SensorFrame] = field(default_factory=list)
    start_ns: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def scores_camera(self) -> bool:
        return bool(self.image_frames) and bool(self.boxes_2d)

    @property
    def scores_lidar(self) -> bool:
        return bool(self.cloud_frames) and bool(self.objects_3d)

    def to_lidar_frame(self, boxes: Boxes3D) -> Boxes3D | None:
        """Boxes expressed in the lidar frame (where the 3D ground truth lives); None when
        /tf_static has no path from their frame."""
        target = self.lidar_frame
        if target is None or boxes.frame_id in ("", target):
            return boxes
        if not self.transforms.can_transform(target, boxes.frame_id):
            return None
        return boxes.transformed(self.transforms.lookup(target, boxes.frame_id), target)


def load_ground_truth(bag: str | Path, topic_map: TopicMap | None = None) -> BagGroundTruth:
    """Read a bag's ground truth and input frame list; EvalError when nothing can be scored."""
    bag = Path(bag)
    topic_map = topic_map or TopicMap()
    types = topic_types(bag)
    try:
        topics = topic_map.resolve(types, str(bag))
    except TopicMapError as err:
        raise EvalError(str(err)) from err
    truth = BagGroundTruth(bag, topic_map, topics, notes=list(topics.notes))
    truncated = truncation_note(bag)
    if truncated:
        truth.notes.append(truncated)
    why = f" ({truncated})" if truncated else ""
    for topic, kind in sorted(unknown_types(types).items()):
        truth.notes.append(f"ignored {topic}: message type {kind} is unknown here")
    if topics.gt_boxes is None and topics.gt_objects is None:
        raise EvalError(
            f"{bag}: no ground truth on {[ROLES['gt_boxes'][1], ROLES['gt_objects'][1]]} or "
            f"mapped gt topics; nothing to score against (topics: {sorted(types)}){why}")
    if topics.image is None and topics.points is None:
        raise EvalError(f"{bag}: no camera image or lidar cloud topic found; topics: "
                        f"{sorted(types)} (a mapping file, --topics, can name them){why}")
    _read(bag, truth)
    _explain_gaps(truth)
    if not truth.scores_camera and not truth.scores_lidar:
        raise EvalError(f"{bag}: nothing can be scored: " + "; ".join(truth.notes))
    return truth


def _read(bag: Path, truth: BagGroundTruth) -> None:
    topics, topic_map = truth.topics, truth.topic_map
    wanted = {t for t in (topics.camera_info, topics.tf_static, topics.gt_boxes,
                          topics.gt_objects) if t}
    gt_3d_order: list[int] = []
    gt_2d_order: list[int] = []
    for topic, _, msg in read_messages(bag, wanted):
        if topic == topics.camera_info and truth.camera_model is None:
            try:
                truth.camera_model = CameraModel.from_camera_info(msg)
            except ValueError as err:
                truth.notes.append(f"camera info on {topic} unusable ({err})")
        elif topic == topics.tf_static:
            for (parent, child), transform in read_tf_message(msg).items():
                truth.transforms.set_transform(transform, parent, child)
        elif topic == topics.gt_objects:
            stamp = decode.stamp_ns(msg)
            truth.objects_3d[stamp] = decode.boxes_3d(msg, topic_map)
            truth.lidar_frame = truth.lidar_frame or str(msg.header.frame_id)
            gt_3d_order.append(stamp)
        elif topic == topics.gt_boxes:
            stamp = decode.stamp_ns(msg)
            truth.boxes_2d[stamp] = decode.detections_2d(msg, topic_map)
            gt_2d_order.append(stamp)
    sensors = {t for t in (topics.image, topics.points) if t}
    for topic, log_ns, raw in read_messages(bag, sensors, raw=True):
        frame = SensorFrame(read_stamp_ns(raw), log_ns)
        (truth.image_frames if topic == topics.image else truth.cloud_frames).append(frame)
    frames = truth.image_frames + truth.cloud_frames
    truth.start_ns = min((f.log_ns for f in frames), default=0)
    # The sidecar is per frame index; frame n is the n-th ground-truth message.
    order = gt_3d_order or gt_2d_order
    sidecar = bag_io.read_sidecar(bag)
    for name, cast, target in (("occlusion", int, truth.occlusion),
                               ("truncation", float, truth.truncation),
                               ("lidar_points", int, truth.lidar_points)):
        for index, values in gt_filters.sidecar_by_frame(sidecar, name, cast).items():
            if 0 <= index < len(order):
                target[order[index]] = values


def _explain_gaps(truth: BagGroundTruth) -> None:
    """Say in words what will not be scored and why."""
    topics, notes = truth.topics, truth.notes
    if topics.image is None:
        notes.append("camera not scored: no camera image topic")
    elif topics.gt_boxes is None:
        notes.append("camera not scored: the bag has no 2D ground truth")
    elif not set(truth.boxes_2d) & {f.stamp_ns for f in truth.image_frames}:
        notes.append("camera not scored: no 2D ground truth has the stamp of a camera frame")
        truth.boxes_2d = {}
    if topics.points is None:
        notes.append("lidar and fusion not scored: no lidar cloud topic")
    elif topics.gt_objects is None:
        notes.append("lidar and fusion not scored: the bag has no 3D ground truth")
    elif not set(truth.objects_3d) & {f.stamp_ns for f in truth.cloud_frames}:
        notes.append("lidar and fusion not scored: no 3D ground truth has the stamp of a "
                     "lidar frame")
        truth.objects_3d = {}
    if topics.image is not None and truth.camera_model is None:
        notes.append("fusion without camera: no usable camera_info "
                     "(camera boxes cannot be related to lidar boxes)")
    if truth.lidar_frame and topics.image is not None and truth.camera_model is not None \
            and not truth.transforms.can_transform(truth.camera_model.frame_id,
                                                   truth.lidar_frame):
        notes.append(f"fusion without camera: no transform {truth.lidar_frame} -> "
                     f"{truth.camera_model.frame_id} in {topics.tf_static or '/tf_static'}")
