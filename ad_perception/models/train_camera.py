"""Camera detector training task: bag frames -> letterboxed tensors, FCOS loss, COCO AP@0.5.

Frames are decoded and letterboxed once per bag in one sequential pass (rosbag2 reads fastest
front to back) and kept as uint8 at network resolution, so an epoch costs only the network;
the preprocessed arrays are cached on disk beside the run so a resumed run starts at once.

Ignore regions (tiny, largely occluded or unknown-class boxes; ``eval.gt_filters``) are
neither training targets nor counted in validation; everything else must be found.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ad_perception.core.sensor_codecs import image_to_array
from ad_perception.core.types import Detections2D
from ad_perception.data import bag_io
from ad_perception.data.datasets import GT_BOXES_TOPIC, IMAGE_TYPE, split_of
from ad_perception.eval.gt_filters import (
    MIN_BOX_HEIGHT_PX,
    TRAIN_MIN_BOX_HEIGHT_PX,
    camera_ignore_mask,
    sidecar_by_frame,
)
from ad_perception.eval.metrics import evaluate_2d
from ad_perception.models.camera_detector import CameraDetectorConfig
from ad_perception.models.camera_loss import CameraDetectorLoss
from ad_perception.models.camera_postprocess import decode_camera_outputs
from ad_perception.models.letterbox import RGB_MEAN, RGB_STD, letterbox_transform

CLASS_INDEX_CACHE_VERSION = 2


@dataclass
class CameraSamples:
    """Preprocessed frames: letterboxed uint8 images and labels in network pixels, plus the
    original-pixel ground truth and ignore flags used for validation."""

    images: np.ndarray  # (N, h, w, 3) uint8
    boxes: list[np.ndarray]  # network pixels, training targets only
    labels: list[np.ndarray]
    gt: list[Detections2D]  # image pixels, every box
    ignore: list[np.ndarray]  # per gt box
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.images)


def _camera_topic(bag: Path) -> str:
    topics = sorted(t for t, m in bag_io.topic_types(bag).items() if m == IMAGE_TYPE)
    if not topics:
        raise ValueError(f"{bag}: no sensor_msgs/msg/Image topic")
    return topics[0]


def load_camera_samples(bags: list[Path], input_size: tuple[int, int], split: str,
                        val_fraction: float = 0.2, split_seed: int = 0,
                        scoring: bool = False,
                        cache_dir: Path | None = None, progress: bool = True) -> CameraSamples:
    """Decode, letterbox and label every frame of ``split`` ('train', 'val' or 'all').

    ``scoring`` marks ignore regions as the evaluation does (KITTI moderate); otherwise as
    training wants them (boxes down to 16 px and truncated boxes stay targets)."""
    min_box_height_px = MIN_BOX_HEIGHT_PX if scoring else TRAIN_MIN_BOX_HEIGHT_PX
    key = hashlib.sha1(repr((CLASS_INDEX_CACHE_VERSION, [str(Path(b).resolve()) for b in bags],
                             input_size, split, val_fraction, split_seed,
                             scoring)).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"camera_{split}_{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        return _load_cache(cache)
    images, boxes, labels, gts, ignores = [], [], [], [], []
    class_names: tuple[str, ...] = CameraDetectorConfig().class_names
    class_index = {name: i for i, name in enumerate(class_names)}
    image_size = (0, 0)
    for bag in bags:
        bag = Path(bag)
        topic = _camera_topic(bag)
        sidecar = bag_io.read_sidecar(bag)
        occlusion = sidecar_by_frame(sidecar, "occlusion")
        truncation = sidecar_by_frame(sidecar, "truncation", float)
        labels_by_stamp = {bag_io.stamp_ns(m): bag_io.detections2d_from_msg(m)
                           for _, _, m in bag_io.read_messages(bag, [GT_BOXES_TOPIC])}
        messages = bag_io.read_messages(bag, [topic])
        for index, (_, _, msg) in enumerate(tqdm(messages, desc=f"decode {bag.name}",
                                                 disable=not progress, leave=False)):
            if split != "all" and split_of(bag, index, val_fraction, split_seed) != split:
                continue
            image = image_to_array(msg, desired_encoding="rgb8")
            gt = labels_by_stamp.get(bag_io.stamp_ns(msg), Detections2D.empty())
            ignore = camera_ignore_mask(gt, occlusion.get(index, {}), class_names,
                                        min_box_height_px,
                                        truncation.get(index, {}) if scoring else None)
            transform = letterbox_transform((image.shape[1], image.shape[0]), input_size)
            images.append(_letterbox_uint8(image, transform))
            keep = ~ignore
            boxes.append(transform.to_network(gt.boxes[keep]).astype(np.float32))
            labels.append(np.array([class_index[c] for c in gt.class_ids[keep]], np.int64))
            gts.append(gt)
            ignores.append(ignore)
            image_size = (image.shape[1], image.shape[0])
    if not images:
        raise ValueError(f"no {split} camera frames in {[str(b) for b in bags]}")
    samples = CameraSamples(np.stack(images), boxes, labels, gts, ignores, image_size)
    if cache is not None:
        _save_cache(cache, samples)
    return samples


def _letterbox_uint8(image: np.ndarray, transform) -> np.ndarray:
    import cv2

    from ad_perception.models.letterbox import PAD_VALUE

    width, height = transform.network_size
    resized_w = round(transform.scale_x * image.shape[1])
    resized_h = round(transform.scale_y * image.shape[0])
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    x0, y0 = int(transform.pad_x), int(transform.pad_y)
    canvas[y0:y0 + resized_h, x0:x0 + resized_w] = cv2.resize(
        np.ascontiguousarray(image), (resized_w, resized_h), interpolation=cv2.INTER_AREA)
    return canvas


def _save_cache(path: Path, samples: CameraSamples) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = np.array([len(b) for b in samples.boxes])
    gt_counts = np.array([len(g) for g in samples.gt])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=samples.images, counts=counts, gt_counts=gt_counts,
             boxes=np.concatenate(samples.boxes) if counts.sum() else np.zeros((0, 4)),
             labels=np.concatenate(samples.labels) if counts.sum() else np.zeros(0, np.int64),
             gt_boxes=np.concatenate([g.boxes for g in samples.gt]),
             gt_scores=np.concatenate([g.scores for g in samples.gt]),
             gt_class_ids=np.concatenate([g.class_ids for g in samples.gt]),
             gt_ids=np.concatenate([g.ids for g in samples.gt]),
             ignore=np.concatenate(samples.ignore), image_size=np.array(samples.image_size))
    tmp.replace(path)


def _load_cache(path: Path) -> CameraSamples:
    with np.load(path, allow_pickle=False) as data:
        split_at = np.cumsum(data["counts"])[:-1]
        gt_split = np.cumsum(data["gt_counts"])[:-1]
        gt = [Detections2D(b, s, c, i) for b, s, c, i in zip(
            np.split(data["gt_boxes"], gt_split), np.split(data["gt_scores"], gt_split),
            np.split(data["gt_class_ids"], gt_split), np.split(data["gt_ids"], gt_split),
            strict=True)]
        return CameraSamples(
            data["images"], np.split(data["boxes"], split_at), np.split(data["labels"], split_at),
            gt, np.split(data["ignore"], gt_split), tuple(int(v) for v in data["image_size"]))


def repeat_factors(labels: list[np.ndarray], num_classes: int,
                   threshold: float) -> np.ndarray | None:
    """LVIS repeat-factor sampling weights: a frame is drawn in proportion to
    max(1, sqrt(threshold / f_c)) over the classes c it contains, f_c being the fraction of
    frames with class c, so rare classes (cyclists, trucks) are seen more often without
    changing the epoch length. ``threshold`` 0 turns it off (uniform)."""
    if threshold <= 0:
        return None
    present = np.zeros((len(labels), num_classes), dtype=bool)
    for row, frame_labels in enumerate(labels):
        present[row, np.unique(frame_labels)] = True
    frequency = present.mean(axis=0)
    class_factor = np.maximum(1.0, np.sqrt(threshold / np.maximum(frequency, 1e-9)))
    return np.where(present, class_factor[None, :], 1.0).max(axis=1)


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B, h, w, 3) uint8 -> (B, 3, h, w) float32 normalised as ``letterbox`` does.

    Returned contiguous (NCHW), not as the channels-last view the permute gives: with
    channels-last input, torch 2.14's oneDNN picks a ``jit:avx512_core`` backward-weights
    kernel for the stem that corrupts the heap once pruning leaves it 8 output channels
    ("double free or corruption" in the first backward of a 60 % pruned camera model; see
    docs/benchmarks.md). NCHW trains as fast here and matches inference (``letterbox``).
    The uint8 images are made contiguous, a quarter of the bytes of the float batch.
    """
    mean = torch.from_numpy(RGB_MEAN).view(1, 3, 1, 1)
    std = torch.from_numpy(RGB_STD).view(1, 3, 1, 1)
    return (images_uint8.permute(0, 3, 1, 2).contiguous().float() - mean) / std


class CameraTask:
    """Task adapter for ``train_loop.train`` (see ``TaskAdapter``)."""

    selection_metric = "map50"

    def __init__(self, model: torch.nn.Module, config: CameraDetectorConfig,
                 train: CameraSamples, val: CameraSamples, batch_size: int = 8,
                 seed: int = 0, augment: bool = True, repeat_threshold: float = 0.0) -> None:
        self.model, self.model_config = model, config
        self.train_samples, self.val_samples = train, val
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.criterion = CameraDetectorLoss(config)
        self.frame_weights = repeat_factors(train.labels, config.num_classes, repeat_threshold)

    def batches_per_epoch(self) -> int:
        return max(1, len(self.train_samples) // self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng((self.seed, epoch))
        if self.frame_weights is None:
            order = rng.permutation(len(self.train_samples))
        else:
            order = rng.choice(len(self.train_samples), len(self.train_samples),
                               p=self.frame_weights / self.frame_weights.sum())
        width = self.model_config.input_size[0]
        for start in range(0, self.batches_per_epoch() * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            images = torch.from_numpy(self.train_samples.images[index])
            targets = []
            flips = rng.random(len(index)) < 0.5 if self.augment else np.zeros(len(index), bool)
            for row, i in enumerate(index):
                boxes = self.train_samples.boxes[i].copy()
                if flips[row]:
                    boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
                targets.append({"boxes": torch.from_numpy(boxes),
                                "labels": torch.from_numpy(self.train_samples.labels[i])})
            if flips.any():
                images[torch.from_numpy(flips)] = images[torch.from_numpy(flips)].flip(2)
            tensor = normalise(images)
            if self.augment:  # photometric jitter: exposure and contrast per image
                gain = torch.from_numpy(rng.uniform(0.75, 1.25, (len(index), 1, 1, 1))).float()
                bias = torch.from_numpy(rng.uniform(-0.2, 0.2, (len(index), 1, 1, 1))).float()
                tensor = tensor * gain + bias
            yield {"images": tensor, "targets": targets}

    def inputs(self, batch: dict) -> torch.Tensor:
        return batch["images"]

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.model(inputs)

    def forward_with(self, model: torch.nn.Module, inputs: torch.Tensor) -> Any:
        return model(inputs)

    def loss(self, outputs: Any, batch: dict) -> dict[str, torch.Tensor]:
        return self.criterion(outputs, batch["targets"])

    def validate(self) -> dict[str, Any]:
        predictions = predict_camera(self.model, self.model_config, self.val_samples)
        return score_camera(predictions, self.val_samples)


def predict_camera(model: torch.nn.Module, config: CameraDetectorConfig,
                   samples: CameraSamples, score_threshold: float = 0.05,
                   batch_size: int = 16) -> list[Detections2D]:
    config = dataclasses.replace(config, score_threshold=score_threshold)
    transform = letterbox_transform(samples.image_size, config.input_size)
    out: list[Detections2D] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            images = torch.from_numpy(samples.images[start:start + batch_size])
            outputs = model(normalise(images))
            for b in range(len(images)):
                out.append(decode_camera_outputs(outputs, transform, config, batch_index=b))
    model.train(was_training)
    return out


def score_camera(predictions: list[Detections2D], samples: CameraSamples) -> dict[str, Any]:
    result = evaluate_2d(list(zip(samples.gt, predictions, samples.ignore, strict=True)))
    return {"map50": result.map50, "map": result.map,
            "ap50": {k: (None if np.isnan(v) else v) for k, v in result.ap50.items()}}
