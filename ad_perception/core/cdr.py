"""CDR bytes of the graph's messages, written and read without rclpy message objects.

Why: rclpy builds a Python object per field and converts it again to C to serialise; for a
30-object Detection3DArray that is ~1 ms to build plus ~0.8 ms to publish, and ~1 ms for the
subscriber to deserialise, on every hop of the detector -> fusion -> planning chain (measured
in docs/benchmarks.md). Nodes publish these bytes with ``publisher.publish(bytes)`` and read
raw subscriptions with the decoders here, so each hop costs tens of microseconds. The
layout is plain CDR (XCDR1) as Fast DDS writes it for ROS 2: a 4-byte encapsulation header,
then every primitive aligned to its size counted from the end of that header. Tests check
byte-for-byte equality with rclpy's ``serialize_message`` and with rosbags' serialiser.

Sensor input is read the same way: ``read_image`` / ``read_pointcloud2`` return the fields
of an Image / PointCloud2 with ``data`` a zero-copy view of the received bytes, shaped like
the message (``sensor_codecs`` reads them by attribute), so a detector skips rclpy's copy of
a 2-3 MB payload into an ``array.array``.

Decoders raise ``ConversionError`` naming the problem for truncated or inconsistent bytes,
so a node can count and skip a bad message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ad_perception.core.geometry import quaternion_to_yaw, yaw_to_quaternion
from ad_perception.core.sensor_codecs import (
    ConversionError,
    FieldLayout,
    ImagePayload,
    PointCloudPayload,
)
from ad_perception.core.types import Boxes3D, Detections2D

CDR_LE, CDR_BE = b"\x00\x01", b"\x00\x00"
_IDENTITY_POSE = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # geometry_msgs/Pose default
_ZERO_COVARIANCE = (0.0,) * 36
# the smallest Detection{2,3}D: header (8 + 4 + 1) ... enough to bound a corrupt count
_MIN_DETECTION_BYTES = 24


class Time(NamedTuple):
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Stamp:
    """std_msgs/Header: stamp and frame. Reads like a Header too (``.stamp.sec``,
    ``.frame_id``), so code written for messages takes it."""

    sec: int
    nanosec: int
    frame_id: str

    @property
    def ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec

    @property
    def stamp(self) -> Time:
        return Time(self.sec, self.nanosec)


@dataclass
class RawImage(ImagePayload):
    """sensor_msgs/Image fields; ``data`` views the received bytes (np.ndarray)."""

    header: Stamp = Stamp(0, 0, "")


@dataclass
class RawPointCloud2(PointCloudPayload):
    """sensor_msgs/PointCloud2 fields; ``data`` views the received bytes (np.ndarray)."""

    header: Stamp = Stamp(0, 0, "")


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray(CDR_LE + b"\x00\x00")

    def _align(self, size: int) -> None:
        pad = -(len(self.buf) - 4) % size
        if pad:
            self.buf += bytes(pad)

    def u32(self, value: int) -> None:
        self._align(4)
        self.buf += struct.pack("<I", value)

    def f64(self, values: tuple[float, ...] | list[float]) -> None:
        self._align(8)
        self.buf += struct.pack(f"<{len(values)}d", *values)

    def string(self, text: str) -> None:
        data = text.encode()
        self.u32(len(data) + 1)
        self.buf += data + b"\x00"

    def header(self, stamp: Stamp) -> None:
        self._align(4)
        self.buf += struct.pack("<iI", stamp.sec, stamp.nanosec)
        self.string(stamp.frame_id)

    def hypothesis(self, class_id: str, score: float, pose: tuple[float, ...]) -> None:
        self.u32(1)  # one ObjectHypothesisWithPose
        self.string(class_id)
        self.f64((score, *pose, *_ZERO_COVARIANCE))


def encode_detections_2d(detections: Detections2D, stamp: Stamp) -> bytes:
    """Detection2DArray bytes, identical to what ``conversions.detections_2d_to_msg`` +
    ``serialize_message`` produce: one hypothesis per box, every header the input's."""
    writer = _Writer()
    writer.header(stamp)
    writer.u32(len(detections))
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    centers = ((boxes[:, :2] + boxes[:, 2:]) / 2.0).tolist()
    sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
    scores = np.asarray(detections.scores, dtype=np.float64).tolist()
    for i in range(len(boxes)):
        writer.header(stamp)
        writer.hypothesis(str(detections.class_ids[i]), scores[i], _IDENTITY_POSE)
        # BoundingBox2D: center (position x, y; theta), size_x, size_y
        writer.f64((centers[i][0], centers[i][1], 0.0, sizes[i][0], sizes[i][1]))
        writer.string(str(detections.ids[i]))
    return bytes(writer.buf)


def encode_boxes_3d(boxes: Boxes3D, stamp: Stamp) -> bytes:
    """Detection3DArray bytes, identical to ``conversions.boxes_3d_to_msg`` +
    ``serialize_message``: the hypothesis pose is the box centre pose."""
    writer = _Writer()
    writer.header(stamp)
    writer.u32(len(boxes))
    centers = np.asarray(boxes.centers, dtype=np.float64).reshape(-1, 3).tolist()
    sizes = np.asarray(boxes.sizes, dtype=np.float64).reshape(-1, 3).tolist()
    quaternions = yaw_to_quaternion(np.asarray(boxes.yaws)).reshape(-1, 4).tolist()
    scores = np.asarray(boxes.scores, dtype=np.float64).reshape(-1).tolist()
    for i in range(len(centers)):
        pose = (*centers[i], *quaternions[i])
        writer.header(stamp)
        writer.hypothesis(str(boxes.class_ids[i]), scores[i], pose)
        writer.f64((*pose, *sizes[i]))  # BoundingBox3D: center pose, size
        writer.string(str(boxes.ids[i]))
    return bytes(writer.buf)


class _Reader:
    def __init__(self, raw: bytes | bytearray | memoryview, what: str) -> None:
        self.raw = memoryview(raw).cast("B")
        self.what = what
        if len(self.raw) < 4:
            self.fail(f"{len(self.raw)} bytes, shorter than the CDR encapsulation header")
        kind = bytes(self.raw[:2])
        if kind not in (CDR_LE, CDR_BE):
            self.fail(f"encapsulation {kind.hex()} is not plain CDR (0001 or 0000)")
        self.order = "<" if kind == CDR_LE else ">"
        self.pos = 4

    def fail(self, reason: str) -> None:
        raise ConversionError(f"{self.what}: {reason}")

    def _take(self, size: int, align: int) -> int:
        self.pos += -(self.pos - 4) % align
        start = self.pos
        self.pos += size
        if self.pos > len(self.raw):
            self.fail(f"truncated: needs {self.pos} bytes, has {len(self.raw)}")
        return start

    def u32(self) -> int:
        return struct.unpack_from(self.order + "I", self.raw, self._take(4, 4))[0]

    def f64(self, count: int) -> tuple[float, ...]:
        return struct.unpack_from(f"{self.order}{count}d", self.raw, self._take(8 * count, 8))

    def skip_string(self) -> None:
        self._take(self.u32(), 1)

    def string(self) -> str:
        length = self.u32()
        if length == 0:  # some writers send 0 for an empty string
            return ""
        start = self._take(length, 1)
        data = bytes(self.raw[start:start + length])
        if data[-1:] != b"\x00":
            self.fail("a string is not NUL-terminated")
        try:
            return data[:-1].decode()
        except UnicodeDecodeError as err:
            self.fail(f"a string is not UTF-8 ({err})")
            raise  # unreachable: fail raises

    def u8(self) -> int:
        return self.raw[self._take(1, 1)]

    def byte_sequence(self) -> np.ndarray:
        """A uint8[] as a view of the buffer (no copy)."""
        length = self.u32()
        start = self._take(length, 1)
        return np.frombuffer(self.raw, dtype=np.uint8, count=length, offset=start)

    def count(self, min_item_bytes: int) -> int:
        count = self.u32()
        if count * min_item_bytes > len(self.raw) - self.pos:
            self.fail(f"sequence of {count} items cannot fit in the "
                      f"{len(self.raw) - self.pos} bytes left")
        return count

    def header(self) -> Stamp:
        start = self._take(8, 4)
        sec, nanosec = struct.unpack_from(self.order + "iI", self.raw, start)
        return Stamp(sec, nanosec, self.string())

    def skip_header(self) -> None:
        """A per-detection header: the nodes copy the array's, the readers use that one."""
        self._take(8, 4)
        self.skip_string()

    def best_hypothesis(self) -> tuple[str, float]:
        """The highest-scoring (class_id, score) of an ObjectHypothesisWithPose[]; ("", 0)
        when empty, as ``detection_codecs.best_hypothesis``."""
        best = ("", 0.0)
        for index in range(self.count(48)):
            class_id = self.string()
            (score,) = self.f64(1)
            self._take(8 * (7 + 36), 8)  # pose and covariance: not used by the readers
            if index == 0 or score > best[1]:
                best = (class_id, score)
        return best

    def done(self) -> None:
        # CDR pads the end to 4 bytes at most; more left over means a different type
        if len(self.raw) - self.pos > 8:
            self.fail(f"{len(self.raw) - self.pos} bytes left after the message: not this type")


def read_header(raw: bytes | bytearray | memoryview, what: str = "message") -> Stamp:
    """The std_msgs/Header at the start of any stamped message."""
    return _Reader(raw, what).header()


def decode_detections_2d(raw: bytes | bytearray | memoryview) -> tuple[Stamp, Detections2D]:
    """Header and Detections2D of Detection2DArray bytes (best hypothesis per box), as
    ``detection_codecs.msg_to_detections_2d`` reads a message."""
    reader = _Reader(raw, "Detection2DArray")
    stamp = reader.header()
    boxes, scores, class_ids, ids = [], [], [], []
    for _ in range(reader.count(_MIN_DETECTION_BYTES)):
        reader.skip_header()
        class_id, score = reader.best_hypothesis()
        cx, cy, _theta, size_x, size_y = reader.f64(5)
        boxes.append((cx - size_x / 2.0, cy - size_y / 2.0, cx + size_x / 2.0, cy + size_y / 2.0))
        scores.append(score)
        class_ids.append(class_id)
        ids.append(reader.string())
    reader.done()
    if not boxes:
        return stamp, Detections2D.empty()
    return stamp, Detections2D(np.array(boxes), np.array(scores), np.array(class_ids),
                               np.array(ids))


def decode_boxes_3d(raw: bytes | bytearray | memoryview) -> tuple[Stamp, Boxes3D]:
    """Header and Boxes3D (in the header's frame) of Detection3DArray bytes, as
    ``detection_codecs.msg_to_boxes_3d`` reads a message."""
    reader = _Reader(raw, "Detection3DArray")
    stamp = reader.header()
    centers, quaternions, sizes, scores, class_ids, ids = [], [], [], [], [], []
    for _ in range(reader.count(_MIN_DETECTION_BYTES)):
        reader.skip_header()
        class_id, score = reader.best_hypothesis()
        values = reader.f64(10)
        centers.append(values[0:3])
        quaternions.append(values[3:7])
        sizes.append(values[7:10])
        scores.append(score)
        class_ids.append(class_id)
        ids.append(reader.string())
    reader.done()
    if not centers:
        return stamp, Boxes3D.empty(frame_id=stamp.frame_id)
    return stamp, Boxes3D(
        np.array(centers), np.array(sizes), quaternion_to_yaw(np.array(quaternions)),
        np.array(scores), np.array(class_ids), np.array(ids), frame_id=stamp.frame_id,
    )  # fmt: skip


def read_image(raw: bytes | bytearray | memoryview) -> RawImage:
    """The fields of sensor_msgs/Image bytes; pixel data is a view, not a copy."""
    reader = _Reader(raw, "Image")
    header = reader.header()
    height, width = reader.u32(), reader.u32()
    encoding = reader.string()
    is_bigendian = reader.u8()
    step = reader.u32()
    data = reader.byte_sequence()
    reader.done()
    return RawImage(height, width, encoding, is_bigendian, step, data, header=header)


def read_pointcloud2(raw: bytes | bytearray | memoryview) -> RawPointCloud2:
    """The fields of sensor_msgs/PointCloud2 bytes; point data is a view, not a copy."""
    reader = _Reader(raw, "PointCloud2")
    header = reader.header()
    height, width = reader.u32(), reader.u32()
    fields = []
    for _ in range(reader.count(13)):  # name (4 + 1) + offset + datatype + count
        name = reader.string()
        offset = reader.u32()
        datatype = reader.u8()
        fields.append(FieldLayout(name, offset, datatype, reader.u32()))
    is_bigendian = bool(reader.u8())
    point_step, row_step = reader.u32(), reader.u32()
    data = reader.byte_sequence()
    is_dense = bool(reader.u8())
    reader.done()
    return RawPointCloud2(height, width, fields, is_bigendian, point_step, row_step, data,
                          is_dense, header=header)


__all__ = ["RawImage", "RawPointCloud2", "Stamp", "Time", "decode_boxes_3d",
           "decode_detections_2d", "encode_boxes_3d", "encode_detections_2d", "read_header",
           "read_image", "read_pointcloud2"]
