"""FCOS training loss for the camera detector: focal loss, GIoU and centerness BCE.

Target assignment is vectorised over (points x objects) per image: every cell of every level
against every ground-truth box at once, no Python loop over objects. Boxes are in network
input pixels (i.e. already letterboxed), as the data loader produces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from ad_perception.models.camera_detector import (
    CameraDetectorConfig,
    level_points,
    scale_ranges,
    split_levels,
)
from ad_perception.models.camera_postprocess import decode_level_boxes


@dataclass
class PointTable:
    """Every cell of every level as rows: centre (P, 2), stride (P,), size range (P, 2)."""

    points: torch.Tensor
    strides: torch.Tensor
    ranges: torch.Tensor


def point_table(config: CameraDetectorConfig, device: torch.device) -> PointTable:
    points = level_points(config, device)
    strides = torch.cat([torch.full((len(p),), float(s), device=device)
                         for p, s in zip(points, config.strides, strict=True)])
    ranges = torch.cat([torch.tensor(r, device=device).expand(len(p), 2)
                        for p, r in zip(points, scale_ranges(config), strict=True)])
    return PointTable(torch.cat(points), strides, ranges)


def assign_targets(table: PointTable, boxes: torch.Tensor, labels: torch.Tensor,
                   center_sampling_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS assignment for one image: (P,) matched object index (-1 = background) and the
    (P, 4) matched box. A cell is positive if it lies within ``radius * stride`` of an
    object's centre (inside the box), the object's largest side distance fits the level's
    range, and among several such objects it takes the smallest (FCOS's ambiguity rule)."""
    num_points = len(table.points)
    if len(boxes) == 0:
        return (torch.full((num_points,), -1, dtype=torch.long, device=boxes.device),
                torch.zeros(num_points, 4, device=boxes.device))
    px, py = table.points[:, 0:1], table.points[:, 1:2]
    x0, y0, x1, y1 = (boxes[:, i][None] for i in range(4))
    ltrb = torch.stack([px - x0, py - y0, x1 - px, y1 - py], dim=2)  # (P, N, 4)
    radius = table.strides[:, None] * center_sampling_radius
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    in_centre = ((px > torch.maximum(cx - radius, x0)) & (px < torch.minimum(cx + radius, x1))
                 & (py > torch.maximum(cy - radius, y0)) & (py < torch.minimum(cy + radius, y1)))
    max_side = ltrb.max(dim=2).values
    in_range = (max_side >= table.ranges[:, 0:1]) & (max_side <= table.ranges[:, 1:2])
    area = ((x1 - x0) * (y1 - y0)).expand(num_points, -1)
    area = torch.where(in_centre & in_range, area, torch.full_like(area, float("inf")))
    best_area, matched = area.min(dim=1)
    matched = torch.where(torch.isinf(best_area), torch.full_like(matched, -1), matched)
    return matched, boxes[matched.clamp(min=0)]


def centerness_target(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """FCOS centerness: 1 at the box centre, falling to 0 at its edges."""
    left_right = torch.stack([points[:, 0] - boxes[:, 0], boxes[:, 2] - points[:, 0]], dim=1)
    top_bottom = torch.stack([points[:, 1] - boxes[:, 1], boxes[:, 3] - points[:, 1]], dim=1)
    ratio = (left_right.min(1).values / left_right.max(1).values.clamp(min=1e-6)) * (
        top_bottom.min(1).values / top_bottom.max(1).values.clamp(min=1e-6))
    return ratio.clamp(min=0).sqrt()


class CameraDetectorLoss(nn.Module):
    """``loss(outputs, targets) -> {"classification", "box", "centerness", "total"}``.

    ``targets`` is one dict per image with ``boxes`` (N, 4) xyxy in network input pixels and
    ``labels`` (N,) int64 class indices. Classification and centerness are normalised by the
    number of positive cells in the batch, box GIoU by their summed centerness (FCOS).
    """

    def __init__(self, config: CameraDetectorConfig, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0) -> None:
        super().__init__()
        self.config = config
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def forward(self, outputs: Sequence[torch.Tensor],
                targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        levels = split_levels(list(outputs))
        batch = levels[0][0].shape[0]
        if len(targets) != batch:
            raise ValueError(f"{len(targets)} targets for a batch of {batch}")
        cls_logits = torch.cat([c.flatten(2) for c, _, _ in levels], dim=2).transpose(1, 2)
        box_raw = torch.cat([b.flatten(2) for _, b, _ in levels], dim=2).transpose(1, 2)
        ctr_logits = torch.cat([c.flatten(1) for _, _, c in levels], dim=1)
        table = point_table(self.config, cls_logits.device)

        cls_targets = torch.zeros_like(cls_logits)
        positive_masks, matched_boxes = [], []
        for image_index, target in enumerate(targets):
            boxes = target["boxes"].to(cls_logits).reshape(-1, 4)
            labels = target["labels"].to(cls_logits.device).long().reshape(-1)
            matched, boxes_per_point = assign_targets(
                table, boxes, labels, self.config.center_sampling_radius)
            positive = matched >= 0
            cls_targets[image_index, positive, labels[matched[positive]]] = 1.0
            positive_masks.append(positive)
            matched_boxes.append(boxes_per_point)
        positive = torch.stack(positive_masks)
        num_positive = positive.sum().clamp(min=1).float()

        classification = sigmoid_focal_loss(cls_logits, cls_targets, self.focal_alpha,
                                            self.focal_gamma, reduction="sum") / num_positive
        points = table.points.expand(batch, -1, -1)[positive]
        strides = table.strides.expand(batch, -1)[positive]
        target_boxes = torch.stack(matched_boxes)[positive]
        if len(points):
            predicted = decode_level_boxes(box_raw[positive], points, strides)
            centre_weight = centerness_target(points, target_boxes)
            giou = generalized_box_iou_loss(predicted, target_boxes, reduction="none")
            box = (giou * centre_weight).sum() / centre_weight.sum().clamp(min=1e-6)
            centerness = functional.binary_cross_entropy_with_logits(
                ctr_logits[positive], centre_weight, reduction="sum") / num_positive
        else:  # keep the graph connected so every head gets a (zero) gradient
            box = box_raw.sum() * 0.0
            centerness = ctr_logits.sum() * 0.0
        total = classification + box + centerness
        return {"classification": classification, "box": box, "centerness": centerness,
                "total": total}
