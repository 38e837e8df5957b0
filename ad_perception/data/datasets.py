"""PyTorch datasets over one or many bags: camera frames with 2D labels, lidar frames with 3D
labels, and synchronised camera + lidar pairs.

Messages are located once (topic, index, stamp) and decoded lazily through a FrameCache; on a
cache miss the whole topic is decoded in one sequential pass, since rosbag2 storage is read
fastest front to back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ad_perception import CLASSES
from ad_perception.data import bag_io
from ad_perception.data.frame_cache import Frame, FrameCache

GT_OBJECTS_TOPIC = "/ground_truth/objects"
GT_BOXES_TOPIC = "/ground_truth/camera/front/boxes"
IMAGE_TYPE, CLOUD_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/PointCloud2"
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}


def _labels(class_ids: np.ndarray) -> np.ndarray:
    return np.array([CLASS_INDEX.get(str(c), -1) for c in class_ids], dtype=np.int64)


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor that owns its memory: cached frames are shared and must stay unmodified."""
    return torch.from_numpy(np.array(array, copy=True))


def _decode_image(msg) -> Frame:
    return {"image": bag_io.image_to_array(msg), "stamp_ns": np.int64(bag_io.stamp_ns(msg))}


def _decode_cloud(msg) -> Frame:
    cloud = bag_io.pointcloud2_to_cloud(msg)
    return {"points": cloud.xyzi(), "stamp_ns": np.int64(bag_io.stamp_ns(msg))}


def _decode_boxes_2d(msg) -> Frame:
    dets = bag_io.detections2d_from_msg(msg)
    return {
        "boxes": dets.boxes.astype(np.float32),
        "labels": _labels(dets.class_ids),
        "stamp_ns": np.int64(bag_io.stamp_ns(msg)),
    }


def _decode_boxes_3d(msg) -> Frame:
    boxes = bag_io.boxes3d_from_msg(msg)
    packed = np.column_stack([boxes.centers, boxes.sizes, boxes.yaws]).astype(np.float32)
    return {
        "boxes": packed.reshape(-1, 7),
        "labels": _labels(boxes.class_ids),
        "stamp_ns": np.int64(bag_io.stamp_ns(msg)),
    }


class TopicFrames:
    """Indexed, cached, decoded access to one topic of one bag."""

    def __init__(self, bag: Path, topic: str, decode, cache: FrameCache) -> None:
        self.bag, self.topic, self._decode, self._cache = bag, topic, decode, cache
        self.stamps = np.array(
            [t for _, t, _ in bag_io.read_messages(bag, [topic], raw=True)], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.stamps)

    def __getitem__(self, index: int) -> Frame:
        key = FrameCache.key(self.bag, self.topic, index)
        frame = self._cache.get(key)
        if frame is None:
            for i, (_, _, msg) in enumerate(bag_io.read_messages(self.bag, [self.topic])):
                decoded = self._decode(msg)
                self._cache.put(FrameCache.key(self.bag, self.topic, i), decoded)
                if i == index:
                    frame = decoded
        if frame is None:
            raise IndexError(f"{self.topic} has no message {index} in {self.bag}")
        return frame

    def nearest(self, stamp: int, tolerance_ns: int) -> int | None:
        if not len(self.stamps):
            return None
        k = int(np.argmin(np.abs(self.stamps - stamp)))
        return k if abs(int(self.stamps[k]) - stamp) <= tolerance_ns else None


def split_of(bag: Path, index: int, val_fraction: float, split_seed: int) -> str:
    """'train' or 'val', fixed by (seed, bag folder name, frame index): stable across machines
    and independent of the order bags are listed in."""
    digest = hashlib.sha256(f"{split_seed}|{Path(bag).name}|{index}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "little") / 2**64 < val_fraction else "train"


def _topic_of(bag: Path, msgtype: str) -> str:
    topics = sorted(t for t, m in bag_io.topic_types(bag).items() if m == msgtype)
    if not topics:
        raise ValueError(f"{bag} has no {msgtype} topic")
    return topics[0]


@dataclass
class _Item:
    bag_index: int
    sensor_index: int
    label_index: int | None
    other_index: int | None = None


class _BagDataset(Dataset):
    sensor_type = IMAGE_TYPE
    label_topic = GT_BOXES_TOPIC

    def __init__(
        self,
        bags: list[Path | str] | Path | str,
        split: str = "all",
        val_fraction: float = 0.2,
        split_seed: int = 0,
        cache_dir: Path | str | None = None,
        tolerance_ms: float = 50.0,
    ) -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be train, val or all, got {split!r}")
        self.bags = [Path(b) for b in ([bags] if isinstance(bags, (str, Path)) else bags)]
        self.cache = FrameCache(cache_dir)
        tolerance = int(tolerance_ms * 1e6)
        self.sensors, self.labels, self.others, self.items = [], [], [], []
        for b, bag in enumerate(self.bags):
            sensor = TopicFrames(
                bag, _topic_of(bag, self.sensor_type), self._decoder(), self.cache
            )
            labels = TopicFrames(bag, self.label_topic, self._label_decoder(), self.cache)
            other = self._other(bag)
            self.sensors.append(sensor)
            self.labels.append(labels)
            self.others.append(other)
            for i, stamp in enumerate(sensor.stamps):
                if split != "all" and split_of(bag, i, val_fraction, split_seed) != split:
                    continue
                other_index = other.nearest(int(stamp), tolerance) if other else None
                if other is not None and other_index is None:
                    continue
                self.items.append(_Item(b, i, labels.nearest(int(stamp), tolerance), other_index))

    def _decoder(self):
        return _decode_image

    def _label_decoder(self):
        return _decode_boxes_2d

    def _other(self, bag: Path) -> TopicFrames | None:
        return None

    def __len__(self) -> int:
        return len(self.items)

    def _label(self, item: _Item) -> Frame:
        if item.label_index is None:
            return {
                "boxes": np.zeros((0, 4 if self.label_topic == GT_BOXES_TOPIC else 7), np.float32),
                "labels": np.zeros(0, np.int64),
            }
        return self.labels[item.bag_index][item.label_index]


class CameraDetectionDataset(_BagDataset):
    """Items: image (3, H, W) uint8 RGB, boxes (N, 4) pixels, labels (N,) CLASSES index."""

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        frame = self.sensors[item.bag_index][item.sensor_index]
        label = self._label(item)
        return {
            "image": _tensor(frame["image"]).permute(2, 0, 1),
            "boxes": _tensor(label["boxes"]),
            "labels": _tensor(label["labels"]),
            "stamp_ns": int(frame["stamp_ns"]),
        }


class LidarDetectionDataset(_BagDataset):
    """Items: points (P, 4) x, y, z, intensity; boxes (N, 7) x, y, z, l, w, h, yaw in the
    lidar frame; labels (N,)."""

    sensor_type = CLOUD_TYPE
    label_topic = GT_OBJECTS_TOPIC

    def _decoder(self):
        return _decode_cloud

    def _label_decoder(self):
        return _decode_boxes_3d

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        frame = self.sensors[item.bag_index][item.sensor_index]
        label = self._label(item)
        return {
            "points": _tensor(frame["points"]),
            "boxes": _tensor(label["boxes"]),
            "labels": _tensor(label["labels"]),
            "stamp_ns": int(frame["stamp_ns"]),
        }


class CameraLidarDataset(LidarDetectionDataset):
    """Lidar frames paired with the camera frame nearest in stamp (within ``tolerance_ms``);
    items carry both, with the 3D labels of the lidar frame."""

    def _other(self, bag: Path) -> TopicFrames:
        return TopicFrames(bag, _topic_of(bag, IMAGE_TYPE), _decode_image, self.cache)

    def __getitem__(self, index: int) -> dict:
        out = super().__getitem__(index)
        item = self.items[index]
        camera = self.others[item.bag_index][item.other_index]
        out["image"] = _tensor(camera["image"]).permute(2, 0, 1)
        out["camera_stamp_ns"] = int(camera["stamp_ns"])
        return out


def collate_detections(batch: list[dict]) -> dict:
    """Stack fixed-size tensors, keep per-frame boxes/points as lists."""
    out: dict = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if key == "image":
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out
