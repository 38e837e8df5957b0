"""The matching and ranking under every accuracy metric (``eval.metrics``).

One greedy matcher: detections in descending score order each take the best still-free
ground truth above a threshold, as COCO, KITTI-R40-style and nuScenes evaluation all do. It
runs per frame and class on a stack of (threshold, similarity) rows, so every IoU threshold,
distance threshold and range bin of one frame is matched in one pass. ``Tally`` gathers the
per-frame outcomes and ranks them by score only at the end, so frames can be matched once
and ranked in any selection (the bootstrap intervals of the compression report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NUSCENES_MIN_RECALL = 0.1
NUSCENES_MIN_PRECISION = 0.1


def match(similarity: np.ndarray, thresholds: np.ndarray, strict: np.ndarray,
          gt_ignored: np.ndarray, gt_is_crowd: np.ndarray, det_outside: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of score-sorted detections, all rows at once (COCO ``evaluateImg``).

    similarity (T, D, G); a pair is eligible when similarity >= threshold (> where ``strict``).
    A detection takes the most similar eligible ground truth, preferring counted over ignored
    ones and the later one on ties, as COCO's loop does. Crowd ground truth can absorb many
    detections. Returns (true_positive, counted), both (T, D); ``counted`` is False for
    detections matched to ignored ground truth and for unmatched ones marked ``det_outside``.
    Also returns the matched ground-truth index (T, D), -1 for none.
    """
    n_rows, n_det, n_gt = similarity.shape
    matched = np.full((n_rows, n_det), -1)
    taken = np.zeros((n_rows, n_gt), dtype=bool)
    rows = np.arange(n_rows)
    for det in range(n_det if n_gt else 0):
        sim = similarity[:, det, :]
        above = np.where(strict[:, None], sim > thresholds[:, None], sim >= thresholds[:, None])
        eligible = above & (~taken | gt_is_crowd[None, :])
        regular = eligible & ~gt_ignored
        pool = np.where(regular.any(axis=1, keepdims=True), regular, eligible & gt_ignored)
        choice = n_gt - 1 - np.argmax(np.where(pool, sim, -np.inf)[:, ::-1], axis=1)
        found = pool.any(axis=1)
        matched[found, det] = choice[found]
        taken[rows[found], choice[found]] = True
    found = matched >= 0
    hit_ignored = np.zeros_like(found)
    if n_gt:
        hit_ignored = found & np.take_along_axis(gt_ignored, np.maximum(matched, 0), axis=1)
    return found & ~hit_ignored, ~(hit_ignored | (~found & det_outside)), matched


@dataclass
class Tally:
    """Per-class match outcomes gathered over frames, ranked by score only at the end."""

    n_rows: int
    scores: list[np.ndarray] = field(default_factory=list)
    true_positive: list[np.ndarray] = field(default_factory=list)
    counted: list[np.ndarray] = field(default_factory=list)
    n_gt: np.ndarray | None = None

    def add(self, scores: np.ndarray, true_positive: np.ndarray, counted: np.ndarray,
            n_gt: np.ndarray) -> None:
        self.scores.append(scores)
        self.true_positive.append(true_positive)
        self.counted.append(counted)
        self.n_gt = n_gt if self.n_gt is None else self.n_gt + n_gt

    def ranked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true_positive, counted, n_gt); ties keep frame order, like COCO's stable sort."""
        n_gt = np.zeros(self.n_rows, dtype=np.int64) if self.n_gt is None else self.n_gt
        if not self.scores:
            empty = np.zeros((self.n_rows, 0), dtype=bool)
            return empty, empty, n_gt
        order = np.argsort(-np.concatenate(self.scores), kind="stable")
        true_positive = np.concatenate(self.true_positive, axis=1)[:, order]
        return true_positive, np.concatenate(self.counted, axis=1)[:, order], n_gt


def cumulative_pr(true_positive: np.ndarray, counted: np.ndarray, n_gt: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) after each counted detection, in rank order."""
    hits = true_positive[counted]
    tp_sum = np.cumsum(hits).astype(np.float64)
    fp_sum = np.cumsum(~hits).astype(np.float64)
    return tp_sum / n_gt, tp_sum / np.maximum(tp_sum + fp_sum, 1.0)


def sampled_precision(true_positive: np.ndarray, counted: np.ndarray, n_gt: int,
                      recall_points: np.ndarray) -> np.ndarray:
    """Interpolated precision (best precision at recall >= r) at each recall point, 0 where the
    recall is never reached; nan without ground truth (COCO ``accumulate``)."""
    if n_gt == 0:
        return np.full(len(recall_points), np.nan)
    recall, precision = cumulative_pr(true_positive, counted, n_gt)
    sampled = np.zeros(len(recall_points))
    if len(recall):
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        index = np.searchsorted(recall, recall_points, side="left")
        reached = index < len(recall)
        sampled[reached] = envelope[index[reached]]
    return sampled


def nuscenes_ap(true_positive: np.ndarray, counted: np.ndarray, n_gt: int) -> float:
    """nuScenes AP: raw precision interpolated on 101 recall points, the part below
    min_recall dropped and precision below min_precision clipped, then renormalised."""
    if n_gt == 0:
        return math.nan
    recall, precision = cumulative_pr(true_positive, counted, n_gt)
    if len(recall) == 0:
        return 0.0
    sampled = np.interp(np.linspace(0.0, 1.0, 101), recall, precision, right=0.0)
    kept = sampled[round(100 * NUSCENES_MIN_RECALL) + 1:] - NUSCENES_MIN_PRECISION
    # Normalising each point (not the mean) keeps a perfect detector at exactly 1.0.
    return float(np.mean(np.clip(kept, 0.0, None) / (1.0 - NUSCENES_MIN_PRECISION)))
