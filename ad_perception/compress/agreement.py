"""Detection agreement between a compressed model and its source: F1 of label-matched boxes
at IoU >= 0.5 (2D image IoU for the camera, rotated BEV IoU for the lidar).

Output differences (max/mean absolute error) say whether an export is numerically faithful;
agreement says whether what comes out after thresholding and NMS is the same, which is what a
consumer sees. The sensitivity search and every export test use both; ground-truth AP (the
report) needs labelled frames, agreement needs only sensor frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.eval.iou import bev_iou, box_iou_2d

AGREEMENT_IOU = 0.5


@dataclass(frozen=True)
class Agreement:
    matched: int
    reference: int
    candidate: int

    @property
    def f1(self) -> float:
        """1.0 when both sides are empty (nothing to disagree about)."""
        total = self.reference + self.candidate
        return 1.0 if total == 0 else 2.0 * self.matched / total


def _greedy_matches(iou: np.ndarray, same_class: np.ndarray, threshold: float) -> int:
    """Candidates in score order each take the best still-free reference box of their class."""
    taken = np.zeros(iou.shape[1], dtype=bool)
    matched = 0
    for row in range(iou.shape[0]):
        candidates = np.where(~taken & same_class[row] & (iou[row] >= threshold))[0]
        if len(candidates):
            taken[candidates[np.argmax(iou[row, candidates])]] = True
            matched += 1
    return matched


def frame_agreement(reference: Detections2D | Boxes3D, candidate: Detections2D | Boxes3D,
                    threshold: float = AGREEMENT_IOU) -> Agreement:
    if not len(reference) or not len(candidate):
        return Agreement(0, len(reference), len(candidate))
    order = np.argsort(-candidate.scores, kind="stable")
    candidate = candidate.select(order)
    if isinstance(reference, Detections2D):
        iou = box_iou_2d(candidate.boxes, reference.boxes)
    else:
        iou = bev_iou(candidate, reference)
    same_class = candidate.class_ids[:, None] == reference.class_ids[None, :]
    return Agreement(_greedy_matches(iou, same_class, threshold), len(reference), len(candidate))


def agreement(references: Sequence[Detections2D | Boxes3D],
              candidates: Sequence[Detections2D | Boxes3D],
              threshold: float = AGREEMENT_IOU) -> Agreement:
    """Agreement summed over frames (one reference and one candidate list per frame)."""
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference frames but {len(candidates)} candidates")
    totals = [frame_agreement(r, c, threshold) for r, c in zip(references, candidates,
                                                               strict=True)]
    return Agreement(sum(a.matched for a in totals), sum(a.reference for a in totals),
                     sum(a.candidate for a in totals))


def output_difference(reference: Sequence[object], candidate: Sequence[object]
                      ) -> dict[str, float]:
    """Max and mean absolute difference over all raw output tensors of one call."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference outputs but {len(candidate)} candidate")
    diffs = [np.abs(np.asarray(r, np.float64) - np.asarray(c, np.float64)).ravel()
             for r, c in zip(reference, candidate, strict=True)]
    flat = np.concatenate(diffs) if diffs else np.zeros(1)
    return {"max_abs": float(flat.max()), "mean_abs": float(flat.mean())}
