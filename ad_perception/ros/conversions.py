"""Messages <-> numpy and core containers: the one place nodes pack and unpack data.

The decoding itself is ROS-free (``ad_perception.core.sensor_codecs``, ``camera_model``,
``transforms``) and re-exported here, so a node needs a single import and a single error type,
:class:`ConversionError`. The ``msg_to_*`` readers only read attributes, so they also accept
rosbags-deserialised messages; the ``*_to_msg`` builders create real rclpy messages and copy
the input header unchanged, because downstream latency and sync logic keys on the sensor stamp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, TransformStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    ObjectHypothesisWithPose,
)

from ad_perception.core import cdr
from ad_perception.core.camera_model import CameraModel
from ad_perception.core.detection_codecs import msg_to_boxes_3d, msg_to_detections_2d
from ad_perception.core.geometry import matrix_to_quaternion, yaw_to_quaternion
from ad_perception.core.sensor_codecs import (
    IMAGE_ENCODINGS,
    POINT_FIELD_DTYPES,
    ConversionError,
    FieldLayout,
    drop_non_finite,
    encode_image,
    encode_pointcloud,
    finite_xyz_mask,
    image_to_array,
    point_dtype,
    pointcloud_to_columns,
    pointcloud_to_core,
    pointcloud_to_structured,
)
from ad_perception.core.transforms import FrameEdge, TransformBuffer, read_tf_message
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud

__all__ = [
    "IMAGE_ENCODINGS", "POINT_FIELD_DTYPES", "ConversionError", "FieldLayout", "TransformBuffer",
    "array_to_image", "boxes_3d_to_msg", "camera_info_to_model", "camera_model_to_info",
    "columns_to_pointcloud", "core_to_pointcloud", "copy_header", "detections_2d_to_msg",
    "drop_non_finite", "finite_xyz_mask", "image_to_array", "msg_to_boxes_3d",
    "msg_to_detections_2d", "point_dtype", "pointcloud_to_columns", "pointcloud_to_core",
    "pointcloud_to_structured", "tf_message_to_transforms", "transforms_to_tf_message",
]  # fmt: skip


def copy_header(header: Any | None) -> Header:
    """A new Header with the same stamp and frame_id (from rclpy or rosbags headers), so
    outputs never alias, and later mutate, the input message."""
    if header is None:
        return Header()
    stamp = Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
    return Header(stamp=stamp, frame_id=str(header.frame_id))


def header_stamp(header: Any) -> cdr.Stamp:
    """The stamp and frame of an rclpy (or rosbags) header, for the CDR writers."""
    return cdr.Stamp(int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id))


# ----------------------------------------------------------------------------- sensors


def array_to_image(array: np.ndarray, encoding: str, header: Any | None = None) -> Image:
    """A sensor_msgs/Image of (H, W) or (H, W, C) pixels (cv_bridge's cv2_to_imgmsg)."""
    payload = encode_image(array, encoding)
    msg = Image(
        header=copy_header(header),
        height=payload.height,
        width=payload.width,
        encoding=payload.encoding,
        is_bigendian=payload.is_bigendian,
        step=payload.step,
    )
    msg.data = payload.data  # bytes: one memcpy, never a per-element check
    return msg


def columns_to_pointcloud(
    columns: dict[str, np.ndarray] | np.ndarray,
    header: Any | None = None,
    height: int = 1,
    is_bigendian: bool = False,
) -> PointCloud2:
    """A PointCloud2 of columns (name -> (N,) or (N, count)) or of a structured array."""
    payload = encode_pointcloud(columns, height=height, is_bigendian=is_bigendian)
    msg = PointCloud2(
        header=copy_header(header),
        height=payload.height,
        width=payload.width,
        fields=[
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in payload.fields
        ],
        is_bigendian=payload.is_bigendian,
        point_step=payload.point_step,
        row_step=payload.row_step,
        is_dense=payload.is_dense,
    )
    msg.data = payload.data
    return msg


def core_to_pointcloud(cloud: PointCloud, header: Any | None = None) -> PointCloud2:
    """The core container as float32 x, y, z (+ float32 intensity, uint16 ring)."""
    columns = {axis: cloud.xyz[:, i] for i, axis in enumerate("xyz")}
    if cloud.intensity is not None:
        columns["intensity"] = cloud.intensity
    if cloud.ring is not None:
        columns["ring"] = cloud.ring
    return columns_to_pointcloud(columns, header)


def camera_info_to_model(msg: Any) -> CameraModel:
    """CameraModel of a CameraInfo; an invalid calibration raises ConversionError."""
    try:
        return CameraModel.from_camera_info(msg)
    except (ValueError, TypeError, AttributeError) as err:
        raise ConversionError(f"invalid CameraInfo: {err}") from err


def camera_model_to_info(model: CameraModel, header: Any | None = None) -> CameraInfo:
    """A CameraInfo for publishing a (simulated or loaded) camera calibration."""
    msg = CameraInfo(
        header=copy_header(header),
        height=model.height,
        width=model.width,
        distortion_model=model.distortion_model,
    )
    msg.d = [float(value) for value in model.D]
    msg.k, msg.r, msg.p = model.K.reshape(-1), model.R.reshape(-1), model.P.reshape(-1)
    return msg


def tf_message_to_transforms(msg: Any) -> dict[FrameEdge, np.ndarray]:
    """{(parent, child): T_parent_from_child} of a TFMessage (rclpy or rosbags)."""
    try:
        return read_tf_message(msg)
    except (ValueError, TypeError, AttributeError) as err:
        raise ConversionError(f"invalid TFMessage: {err}") from err


def transforms_to_tf_message(
    transforms: dict[FrameEdge, np.ndarray], stamp: Any | None = None
) -> TFMessage:
    """A TFMessage (e.g. for /tf_static) of {(parent, child): T_parent_from_child}."""
    time = Time() if stamp is None else Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec))
    stamped_transforms = []
    for (parent, child), T_parent_from_child in transforms.items():
        stamped = TransformStamped()
        stamped.header = Header(stamp=time, frame_id=parent)
        stamped.child_frame_id = child
        translation = stamped.transform.translation
        translation.x, translation.y, translation.z = map(float, T_parent_from_child[:3, 3])
        quaternion = matrix_to_quaternion(T_parent_from_child[:3, :3])
        rotation = stamped.transform.rotation
        rotation.x, rotation.y, rotation.z, rotation.w = map(float, quaternion)
        stamped_transforms.append(stamped)
    return TFMessage(transforms=stamped_transforms)


# -------------------------------------------------------------------------- detections


def _hypothesis(class_id: str, score: float) -> ObjectHypothesisWithPose:
    result = ObjectHypothesisWithPose()
    result.hypothesis.class_id = str(class_id)
    result.hypothesis.score = float(score)
    return result


def detections_2d_to_msg(detections: Detections2D, header: Any) -> Detection2DArray:
    """Detection2DArray with one hypothesis (class_id, score) per box; every header (array
    and per detection) carries the input stamp and frame_id unchanged."""
    out = Detection2DArray(header=copy_header(header))
    centers = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2.0
    sizes = detections.boxes[:, 2:] - detections.boxes[:, :2]
    for i in range(len(detections)):
        bbox = BoundingBox2D(size_x=float(sizes[i, 0]), size_y=float(sizes[i, 1]))
        bbox.center.position.x, bbox.center.position.y = map(float, centers[i])
        out.detections.append(
            Detection2D(
                header=copy_header(header),
                results=[_hypothesis(detections.class_ids[i], detections.scores[i])],
                bbox=bbox,
                id=str(detections.ids[i]),
            )
        )
    return out


def boxes_3d_to_msg(boxes: Boxes3D, header: Any) -> Detection3DArray:
    """Detection3DArray: centre pose with a yaw quaternion, size (length, width, height)."""
    out = Detection3DArray(header=copy_header(header))
    quaternions = yaw_to_quaternion(boxes.yaws).reshape(-1, 4)
    for i in range(len(boxes)):
        center = Pose()
        center.position.x, center.position.y, center.position.z = map(float, boxes.centers[i])
        orientation = center.orientation
        orientation.x, orientation.y, orientation.z, orientation.w = map(float, quaternions[i])
        bbox = BoundingBox3D(center=center)
        bbox.size.x, bbox.size.y, bbox.size.z = map(float, boxes.sizes[i])
        result = _hypothesis(boxes.class_ids[i], boxes.scores[i])
        result.pose.pose = center
        out.detections.append(
            Detection3D(
                header=copy_header(header), results=[result], bbox=bbox, id=str(boxes.ids[i])
            )
        )
    return out
