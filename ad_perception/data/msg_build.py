"""numpy and core containers -> rosbags message objects (the writer half of the bag codecs).

Point clouds and images are packed with numpy structured dtypes, which is both the fastest way
and independent of any ROS install.
"""

from __future__ import annotations

import numpy as np

from ad_perception.core.geometry import matrix_to_quaternion, yaw_to_quaternion
from ad_perception.core.types import Boxes3D, Detections2D, PointCloud
from ad_perception.data.bag_types import typestore

POINTFIELD_FLOAT32, POINTFIELD_UINT16 = 7, 4


def _t(name: str):
    return typestore().types[name]


def header(stamp_ns: int, frame_id: str):
    time = _t("builtin_interfaces/msg/Time")(
        sec=int(stamp_ns // 10**9), nanosec=int(stamp_ns % 10**9)
    )
    return _t("std_msgs/msg/Header")(stamp=time, frame_id=frame_id)


def image_msg(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """``pixels`` (H, W, C) uint8 already in ``encoding``'s channel order."""
    height, width, channels = pixels.shape
    return _t("sensor_msgs/msg/Image")(
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1),
    )


def camera_info_msg(
    K: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int,
    frame_id: str,
    P: np.ndarray | None = None,
):
    P = np.column_stack([K, np.zeros(3)]) if P is None else P
    roi = _t("sensor_msgs/msg/RegionOfInterest")(
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return _t("sensor_msgs/msg/CameraInfo")(
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.asarray(K, float).reshape(9),
        r=np.eye(3).reshape(9),
        p=np.asarray(P, float).reshape(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def cloud_dtype(with_ring: bool) -> np.dtype:
    names = ["x", "y", "z", "intensity"] + (["ring"] if with_ring else [])
    formats = ["<f4"] * 4 + (["<u2"] if with_ring else [])
    return np.dtype(
        {
            "names": names,
            "formats": formats,
            "offsets": [0, 4, 8, 12] + ([16] if with_ring else []),
        }
    )


def pointcloud2_msg(cloud: PointCloud, stamp_ns: int, frame_id: str, with_ring: bool):
    dtype = cloud_dtype(with_ring)
    packed = np.zeros(len(cloud), dtype=dtype)
    packed["x"], packed["y"], packed["z"] = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    packed["intensity"] = cloud.intensity if cloud.intensity is not None else 0.0
    field_t = _t("sensor_msgs/msg/PointField")
    fields = [
        field_t(name=n, offset=o, datatype=POINTFIELD_FLOAT32, count=1)
        for n, o in zip("x y z intensity".split(), (0, 4, 8, 12), strict=True)
    ]
    if with_ring:
        packed["ring"] = cloud.ring if cloud.ring is not None else 0
        fields.append(field_t(name="ring", offset=16, datatype=POINTFIELD_UINT16, count=1))
    return _t("sensor_msgs/msg/PointCloud2")(
        header=header(stamp_ns, frame_id),
        height=1,
        width=len(cloud),
        fields=fields,
        is_bigendian=False,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * len(cloud),
        data=packed.view(np.uint8).reshape(-1),
        is_dense=True,
    )


def _pose(position, quaternion):
    point = _t("geometry_msgs/msg/Point")(
        x=float(position[0]), y=float(position[1]), z=float(position[2])
    )
    q = _t("geometry_msgs/msg/Quaternion")(
        x=float(quaternion[0]),
        y=float(quaternion[1]),
        z=float(quaternion[2]),
        w=float(quaternion[3]),
    )
    return _t("geometry_msgs/msg/Pose")(position=point, orientation=q)


def _hypothesis(class_id: str, score: float, pose):
    hyp = _t("vision_msgs/msg/ObjectHypothesis")(class_id=str(class_id), score=float(score))
    with_cov = _t("geometry_msgs/msg/PoseWithCovariance")(pose=pose, covariance=np.zeros(36))
    return _t("vision_msgs/msg/ObjectHypothesisWithPose")(hypothesis=hyp, pose=with_cov)


def detection3d_array_msg(boxes: Boxes3D, stamp_ns: int, frame_id: str):
    hdr = header(stamp_ns, frame_id)
    detections = []
    quats = yaw_to_quaternion(boxes.yaws)
    for i in range(len(boxes)):
        pose = _pose(boxes.centers[i], quats[i])
        size = _t("geometry_msgs/msg/Vector3")(
            x=float(boxes.sizes[i, 0]), y=float(boxes.sizes[i, 1]), z=float(boxes.sizes[i, 2])
        )
        bbox = _t("vision_msgs/msg/BoundingBox3D")(center=pose, size=size)
        detections.append(
            _t("vision_msgs/msg/Detection3D")(
                header=hdr,
                results=[_hypothesis(boxes.class_ids[i], boxes.scores[i], pose)],
                bbox=bbox,
                id=str(boxes.ids[i]),
            )
        )
    return _t("vision_msgs/msg/Detection3DArray")(header=hdr, detections=detections)


def detection2d_array_msg(detections: Detections2D, stamp_ns: int, frame_id: str):
    hdr = header(stamp_ns, frame_id)
    out = []
    identity = _pose((0, 0, 0), (0, 0, 0, 1))
    for i in range(len(detections)):
        x0, y0, x1, y1 = detections.boxes[i]
        centre = _t("vision_msgs/msg/Pose2D")(
            position=_t("vision_msgs/msg/Point2D")(x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0
        )
        bbox = _t("vision_msgs/msg/BoundingBox2D")(center=centre, size_x=x1 - x0, size_y=y1 - y0)
        out.append(
            _t("vision_msgs/msg/Detection2D")(
                header=hdr,
                results=[_hypothesis(detections.class_ids[i], detections.scores[i], identity)],
                bbox=bbox,
                id=str(detections.ids[i]),
            )
        )
    return _t("vision_msgs/msg/Detection2DArray")(header=hdr, detections=out)


def tf_message(transforms: list[tuple[str, str, np.ndarray]], stamp_ns: int):
    """``transforms`` as (parent, child, T_parent_from_child)."""
    stamped = []
    for parent, child, T in transforms:
        q = matrix_to_quaternion(T[:3, :3])
        transform = _t("geometry_msgs/msg/Transform")(
            translation=_t("geometry_msgs/msg/Vector3")(
                x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])
            ),
            rotation=_t("geometry_msgs/msg/Quaternion")(x=q[0], y=q[1], z=q[2], w=q[3]),
        )
        stamped.append(
            _t("geometry_msgs/msg/TransformStamped")(
                header=header(stamp_ns, parent), child_frame_id=child, transform=transform
            )
        )
    return _t("tf2_msgs/msg/TFMessage")(transforms=stamped)
