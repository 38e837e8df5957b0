"""Lidar detector training task: bag clouds -> pillars, centre-heatmap loss, BEV AP.

Clouds are cropped to the detector's range once per bag (one sequential pass) and kept in
memory as float32 x, y, z, intensity. Ground truth counts where the detector can see it:
boxes whose centre is inside the range and that carry at least ``min_points`` lidar points
(the sidecar's count); the rest is dropped from targets and from validation alike, which is
what nuScenes does with empty boxes and KITTI with out-of-range ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ad_perception.core.types import Boxes3D
from ad_perception.data import bag_io
from ad_perception.data.datasets import CLOUD_TYPE, GT_OBJECTS_TOPIC, split_of
from ad_perception.eval import gt_filters
from ad_perception.eval.metrics import Frame3D, evaluate_3d
from ad_perception.models.lidar_detector import LidarDetectorConfig
from ad_perception.models.lidar_loss import LidarDetectorLoss
from ad_perception.models.lidar_postprocess import decode_lidar_outputs
from ad_perception.models.voxelize import pillarize_batch

CACHE_VERSION = 2


@dataclass
class LidarSamples:
    points: list[np.ndarray]  # (P, 4) float32 inside the range
    gt: list[Boxes3D]  # lidar frame, inside the range, known classes
    num_points: list[np.ndarray]  # lidar points per gt box (few-point boxes are ignored)

    def __len__(self) -> int:
        return len(self.points)


def in_range(xyz: np.ndarray, config: LidarDetectorConfig) -> np.ndarray:
    return gt_filters.in_range(xyz, config.point_cloud_range)


def load_lidar_samples(bags: list[Path], config: LidarDetectorConfig, split: str,
                       val_fraction: float = 0.2, split_seed: int = 0,
                       cache_dir: Path | None = None, progress: bool = True) -> LidarSamples:
    key = hashlib.sha1(repr((CACHE_VERSION, [str(Path(b).resolve()) for b in bags],
                             config.point_cloud_range, split, val_fraction,
                             split_seed)).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"lidar_{split}_{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        return _load_cache(cache)
    points, gts, point_counts = [], [], []
    for bag in bags:
        bag = Path(bag)
        topics = sorted(t for t, m in bag_io.topic_types(bag).items() if m == CLOUD_TYPE)
        if not topics:
            raise ValueError(f"{bag}: no sensor_msgs/msg/PointCloud2 topic")
        counts = gt_filters.sidecar_by_frame(bag_io.read_sidecar(bag), "lidar_points")
        gt_by_stamp = {bag_io.stamp_ns(m): bag_io.boxes3d_from_msg(m)
                       for _, _, m in bag_io.read_messages(bag, [GT_OBJECTS_TOPIC])}
        messages = bag_io.read_messages(bag, [topics[0]])
        for index, (_, _, msg) in enumerate(tqdm(messages, desc=f"decode {bag.name}",
                                                 disable=not progress, leave=False)):
            if split != "all" and split_of(bag, index, val_fraction, split_seed) != split:
                continue
            cloud = bag_io.pointcloud2_to_cloud(msg)
            finite = np.isfinite(cloud.xyz).all(axis=1)
            frame = cloud.xyzi()[finite]
            points.append(frame[in_range(frame[:, :3], config)])
            gt = gt_by_stamp.get(bag_io.stamp_ns(msg), Boxes3D.empty())
            scoped, num_points = gt_filters.lidar_gt_in_scope(
                gt, counts.get(index, {}), config.point_cloud_range, config.class_names)
            gts.append(scoped)
            point_counts.append(num_points)
    if not points:
        raise ValueError(f"no {split} lidar frames in {[str(b) for b in bags]}")
    samples = LidarSamples(points, gts, point_counts)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, counts=np.array([len(p) for p in points]),
                 points=np.concatenate(points), gt_counts=np.array([len(g) for g in gts]),
                 centers=np.concatenate([g.centers for g in gts]),
                 sizes=np.concatenate([g.sizes for g in gts]),
                 yaws=np.concatenate([g.yaws for g in gts]),
                 class_ids=np.concatenate([g.class_ids for g in gts]),
                 ids=np.concatenate([g.ids for g in gts]),
                 num_points=np.concatenate(point_counts))
        tmp.replace(cache)
    return samples


def _load_cache(path: Path) -> LidarSamples:
    with np.load(path, allow_pickle=False) as data:
        split_points = np.cumsum(data["counts"])[:-1]
        split_gt = np.cumsum(data["gt_counts"])[:-1]
        columns = [np.split(data[k], split_gt) for k in ("centers", "sizes", "yaws",
                                                         "class_ids", "ids")]
        gts = [Boxes3D(c, s, y, None, k, i) for c, s, y, k, i in zip(*columns, strict=True)]
        return LidarSamples(np.split(data["points"], split_points), gts,
                            np.split(data["num_points"], split_gt))


def _augment(points: np.ndarray, boxes: Boxes3D, rng: np.random.Generator
             ) -> tuple[np.ndarray, Boxes3D]:
    """Mirror across the x axis (y -> -y) half of the time and scale by 0.95..1.05."""
    points, centers, yaws = points.copy(), boxes.centers.copy(), boxes.yaws.copy()
    sizes = boxes.sizes.copy()
    if rng.random() < 0.5:
        points[:, 1] *= -1.0
        centers[:, 1] *= -1.0
        yaws = -yaws
    scale = rng.uniform(0.95, 1.05)
    points[:, :3] *= scale
    centers *= scale
    sizes *= scale
    return points, Boxes3D(centers, sizes, yaws, boxes.scores, boxes.class_ids, boxes.ids)


def lidar_targets(boxes: Boxes3D, class_names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    index = {name: i for i, name in enumerate(class_names)}
    return {"centers": torch.from_numpy(boxes.centers).float(),
            "sizes": torch.from_numpy(boxes.sizes).float(),
            "yaws": torch.from_numpy(boxes.yaws).float(),
            "labels": torch.tensor([index[c] for c in boxes.class_ids], dtype=torch.long)}


class LidarTask:
    """Task adapter for ``train_loop.train``; selection metric: car BEV AP."""

    selection_metric = "map_bev"

    def __init__(self, model: torch.nn.Module, config: LidarDetectorConfig,
                 train: LidarSamples, val: LidarSamples, batch_size: int = 4, seed: int = 0,
                 augment: bool = True, min_points: int = gt_filters.MIN_LIDAR_POINTS) -> None:
        self.model, self.model_config = model, config
        self.min_points = min_points
        self.train_samples, self.val_samples = train, val
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.criterion = LidarDetectorLoss(config)

    def batches_per_epoch(self) -> int:
        return max(1, len(self.train_samples) // self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.train_samples))
        for start in range(0, self.batches_per_epoch() * self.batch_size, self.batch_size):
            clouds, targets = [], []
            for i in order[start:start + self.batch_size]:
                points = self.train_samples.points[i]
                boxes = self.train_samples.gt[i].select(
                    self.train_samples.num_points[i] >= self.min_points)
                if self.augment:
                    points, boxes = _augment(points, boxes, rng)
                    keep = in_range(points[:, :3], self.model_config)
                    points = points[keep]
                    boxes = boxes.select(in_range(boxes.centers, self.model_config))
                clouds.append(points)
                targets.append(lidar_targets(boxes, self.model_config.class_names))
            yield {"clouds": clouds, "targets": targets}

    def inputs(self, batch: dict):
        return pillarize_batch(batch["clouds"], self.model_config.grid)

    def forward(self, pillars) -> Any:
        return self.forward_with(self.model, pillars)

    def forward_with(self, model: torch.nn.Module, pillars) -> Any:
        return model(pillars.features, pillars.num_points, pillars.coords, pillars.batch_size)

    def loss(self, outputs: Any, batch: dict) -> dict[str, torch.Tensor]:
        return self.criterion(outputs, batch["targets"])

    def validate(self) -> dict[str, Any]:
        predictions = predict_lidar(self.model, self.model_config, self.val_samples)
        return score_lidar(predictions, self.val_samples)


def predict_lidar(model: torch.nn.Module, config: LidarDetectorConfig, samples: LidarSamples,
                  score_threshold: float = 0.05, batch_size: int = 4) -> list[Boxes3D]:
    out: list[Boxes3D] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            clouds = samples.points[start:start + batch_size]
            pillars = pillarize_batch(clouds, config.grid)
            outputs = model(pillars.features, pillars.num_points, pillars.coords,
                            pillars.batch_size)
            for b in range(len(clouds)):
                out.append(decode_lidar_outputs(outputs, config, score_threshold=score_threshold,
                                                batch_index=b))
    model.train(was_training)
    return out


def score_lidar(predictions: list[Boxes3D], samples: LidarSamples,
                min_points: int = gt_filters.MIN_LIDAR_POINTS) -> dict[str, Any]:
    frames = [Frame3D(g, p, num_points=n)
              for g, p, n in zip(samples.gt, predictions, samples.num_points, strict=True)]
    result = evaluate_3d(frames, min_points=min_points)
    clean = {k: (None if v is None or np.isnan(v) else float(v)) for k, v in result.bev_ap.items()}
    return {"map_bev": result.map_bev, "bev_ap": clean, "car_bev_ap": clean.get("car"),
            "map_dist": result.map_dist}
