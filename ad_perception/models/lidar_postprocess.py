"""Lidar detector post-processing: heatmap + regression maps -> ``Boxes3D`` in the lidar frame.

Outside the exported graph, so it takes the maps from any backend (torch or numpy). Peaks
are found CenterPoint-style with a 3x3 max-pool instead of box NMS; an optional footprint
NMS then removes same-class peaks whose centre falls inside a stronger box's rotated BEV
rectangle (two peaks on one long truck), which a fixed centre distance cannot do for both
pedestrians and trucks at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional

from ad_perception.core.types import Boxes3D
from ad_perception.models.lidar_detector import LidarDetectorConfig


def decode_lidar_outputs(outputs: Sequence[torch.Tensor | np.ndarray],
                         config: LidarDetectorConfig, score_threshold: float | None = None,
                         max_detections: int | None = None, footprint_nms: bool = True,
                         batch_index: int = 0, frame_id: str = "") -> Boxes3D:
    """Boxes of one cloud of the batch, best first. Thresholds default to the config's."""
    score_threshold = config.score_threshold if score_threshold is None else score_threshold
    max_detections = config.max_detections if max_detections is None else max_detections
    heatmap_logits, regression = (torch.as_tensor(o)[batch_index].float() for o in outputs)
    with torch.no_grad():
        scores = torch.sigmoid(heatmap_logits)
        peaks = functional.max_pool2d(scores[None], 3, stride=1, padding=1)[0] == scores
        flat = torch.where(peaks, scores, torch.zeros_like(scores)).reshape(-1)
        candidates = min(flat.numel(), 4 * max_detections)
        top_scores, top_index = flat.topk(candidates)
        keep = top_scores > score_threshold
        top_scores, top_index = top_scores[keep], top_index[keep]
        height, width = scores.shape[1:]
        labels = top_index // (height * width)
        iy, ix = (top_index % (height * width)) // width, top_index % width
        values = regression[:, iy, ix].T.double().numpy()  # (M, 8)
    cell = config.pillar_size * config.output_stride
    x_min, y_min = config.point_cloud_range[0], config.point_cloud_range[1]
    centers = np.stack([x_min + (ix.numpy() + values[:, 0]) * cell,
                        y_min + (iy.numpy() + values[:, 1]) * cell, values[:, 2]], axis=1)
    sizes = np.exp(np.clip(values[:, 3:6], -5.0, 5.0))
    yaws = np.arctan2(values[:, 6], values[:, 7])
    boxes = Boxes3D(centers, sizes, yaws, top_scores.double().numpy(),
                    np.asarray(config.class_names)[labels.numpy()], frame_id=frame_id)
    if footprint_nms:
        boxes = boxes.select(footprint_suppression(boxes))
    return boxes.select(np.arange(min(len(boxes), max_detections)))


def footprint_suppression(boxes: Boxes3D) -> np.ndarray:
    """Indices kept by greedy same-class suppression: a box is dropped when its centre lies
    inside the BEV rectangle of a higher-scoring kept box of its class. Boxes must be sorted
    best first; the loop is over kept boxes (a few dozen), the test vectorised over the rest.
    """
    count = len(boxes)
    suppressed = np.zeros(count, dtype=bool)
    kept = []
    for i in range(count):
        if suppressed[i]:
            continue
        kept.append(i)
        rest = np.arange(i + 1, count)
        rest = rest[(~suppressed[rest]) & (boxes.class_ids[rest] == boxes.class_ids[i])]
        if len(rest) == 0:
            continue
        delta = boxes.centers[rest, :2] - boxes.centers[i, :2]
        cos, sin = np.cos(boxes.yaws[i]), np.sin(boxes.yaws[i])
        along = delta[:, 0] * cos + delta[:, 1] * sin
        across = -delta[:, 0] * sin + delta[:, 1] * cos
        half_length, half_width = boxes.sizes[i, 0] / 2, boxes.sizes[i, 1] / 2
        inside = (np.abs(along) <= half_length) & (np.abs(across) <= half_width)
        suppressed[rest[inside]] = True
    return np.asarray(kept, dtype=np.int64)
