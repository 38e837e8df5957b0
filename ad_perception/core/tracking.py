"""Temporal class consistency for fused objects: a light BEV tracker that votes on the class.

A per-frame detector flips the class of a far, sparse object from one sweep to the next (a
cyclist 45 m away with ten lidar points is called a pedestrian in some sweeps), and the camera
cannot outvote it when it is as unsure at that range. Planning wants one class per object that
does not flicker, and an id it can follow. So the fused objects are associated over time
(constant-velocity prediction in the output frame, one-to-one assignment on BEV centre
distance inside a gate), every track keeps score-weighted class votes that fade with a
half-life, and each object goes out with its track's leading class and the track id in
``ids``. Geometry and scores stay the detector's: the tracker never invents, moves or removes
an object, it only decides which class a detection is called. Detections too weak to start a
track (``min_start_score``) keep their class and go out without an id.

Velocities are relative to the vehicle (no odometry is assumed): over the few frames a track
has to bridge, the relative motion of the ego vehicle is absorbed by the track's velocity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ad_perception.core.assignment import associate
from ad_perception.core.types import CLASS_ID_DTYPE, Boxes3D

NS_PER_S = 1e9
# events of one update, reported through FusionStatus and the fusion node's diagnostics
OUT_OF_ORDER, RESET = "out_of_order", "reset"


@dataclass
class TrackingConfig:
    """Gate and memory of :class:`ClassTracker`. The class half-life was chosen on the
    validation bags (scripts/tune_fusion.py --tracking), never on held-out ones."""

    enabled: bool = True
    gate_m: float = 2.5  # largest BEV distance between a track's prediction and a detection
    # a track seen once has no velocity yet: its gate widens to this speed (relative to the
    # vehicle: an oncoming car at 2 x 60 km/h) times the time since it was seen
    max_relative_speed_mps: float = 35.0
    # The detector may put two boxes of different classes on one far object; the track should
    # follow the more confident one, so the cost is distance / gate + score_weight * (1 - score)
    score_weight: float = 0.5
    min_start_score: float = 0.3  # weaker detections join tracks but do not start them
    # a box this close to a stronger one of its group is the same object seen twice (one
    # heatmap peak per class): it is published untracked and neither votes nor starts a track
    duplicate_radius_m: float = 1.0
    # A track only takes detections of its own group: a far cyclist may be called a
    # pedestrian, but a truck passing a pedestrian must not inherit the pedestrian's votes.
    class_groups: tuple[tuple[str, ...], ...] = (("car", "truck"), ("pedestrian", "cyclist"))
    max_age_s: float = 0.35  # a track unseen for longer is dropped (3 frames at 10 Hz)
    class_half_life_s: float = 8.0  # votes lose half their weight in this time (inf: never)
    velocity_gain: float = 0.5  # how fast the velocity follows new measurements, in (0, 1]

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.gate_m) and self.gate_m > 0):
            problems.append(f"gate_m must be a positive distance, got {self.gate_m}")
        if not (math.isfinite(self.max_age_s) and self.max_age_s > 0):
            problems.append(f"max_age_s must be a positive time, got {self.max_age_s}")
        if not self.class_half_life_s > 0:
            problems.append(f"class_half_life_s must be > 0 (inf for no fading), got "
                            f"{self.class_half_life_s}")
        if not (math.isfinite(self.max_relative_speed_mps) and self.max_relative_speed_mps >= 0):
            problems.append("max_relative_speed_mps must be >= 0, got "
                            f"{self.max_relative_speed_mps}")
        if not (math.isfinite(self.score_weight) and self.score_weight >= 0):
            problems.append(f"score_weight must be >= 0, got {self.score_weight}")
        if not (math.isfinite(self.duplicate_radius_m) and self.duplicate_radius_m >= 0):
            problems.append(f"duplicate_radius_m must be >= 0, got {self.duplicate_radius_m}")
        if not 0 <= self.min_start_score <= 1:
            problems.append(f"min_start_score must be in [0, 1], got {self.min_start_score}")
        if not 0 < self.velocity_gain <= 1:
            problems.append(f"velocity_gain must be in (0, 1], got {self.velocity_gain}")
        grouped = [name for group in self.class_groups for name in group]
        if len(grouped) != len(set(grouped)):
            problems.append(f"class_groups must not share a class, got {self.class_groups}")
        if problems:
            raise ValueError("; ".join(problems))

    def group_of(self, classes: tuple[str, ...]) -> np.ndarray:
        """Group index per class (K,); a class in no group is a group of its own."""
        groups = {name: i for i, group in enumerate(self.class_groups) for name in group}
        return np.array([groups.get(name, len(self.class_groups) + k)
                         for k, name in enumerate(classes)], dtype=np.intp)


@dataclass
class TrackerStats:
    """Counts a node reports on /diagnostics and in its shutdown summary."""

    frames: int = 0
    tracks_started: int = 0
    reclassified: int = 0  # objects published with another class than their detection's
    out_of_order: int = 0  # frames older than the newest one seen: published untracked
    resets: int = 0  # the stamp went back by more than max_age_s (a replay restarted)


class ClassTracker:
    """``update(boxes, stamp_ns, config)`` once per output frame, in stamp order."""

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes = tuple(classes)
        self.stats = TrackerStats()
        self._next_id = 1  # ids keep counting across resets: an id is never reused
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new drive, or time went backwards)."""
        self._xy = np.zeros((0, 2))
        self._velocity = np.zeros((0, 2))
        self._seen_ns = np.zeros(0, dtype=np.int64)
        self._hits = np.zeros(0, dtype=np.int64)
        self._votes = np.zeros((0, len(self.classes)))
        self._ids = np.zeros(0, dtype=np.int64)
        self._groups = np.zeros(0, dtype=np.intp)
        self._newest_ns: int | None = None
        self._frame_id: str | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def update(self, boxes: Boxes3D, stamp_ns: int, config: TrackingConfig
               ) -> tuple[Boxes3D, str]:
        """The boxes with their tracks' classes and ids, and what happened: "" (tracked),
        ``OUT_OF_ORDER`` (a frame older than the newest one: passed through unchanged) or
        ``RESET`` (time went back further than ``max_age_s``, or the boxes come in another
        frame than before: tracks dropped, then tracked)."""
        stamp, event = int(stamp_ns), ""
        if self._frame_id is not None and boxes.frame_id != self._frame_id and len(self):
            # positions in another frame (e.g. base_link became unreachable): start over
            self.reset()
            self.stats.resets += 1
            event = RESET
        if self._newest_ns is not None and stamp < self._newest_ns:
            if (self._newest_ns - stamp) / NS_PER_S <= config.max_age_s:
                self.stats.out_of_order += 1
                return boxes, OUT_OF_ORDER
            self.reset()
            self.stats.resets += 1
            event = RESET
        self.stats.frames += 1
        self._newest_ns, self._frame_id = stamp, boxes.frame_id
        self._forget_older_than(stamp, config.max_age_s)
        column = np.array([self.classes.index(c) if c in self.classes else -1
                           for c in boxes.class_ids], dtype=np.intp)
        scores = np.clip(boxes.scores, 0.0, 1.0)
        track_of = self._assign(boxes.centers[:, :2], scores, column, stamp, config)
        tracked = track_of >= 0
        np.add.at(self._votes, (track_of[tracked], column[tracked]), scores[tracked])
        votes = self._votes[track_of[tracked]]
        votes[np.arange(len(votes)), column[tracked]] += 1e-9  # a tie: what the detector says
        class_ids = boxes.class_ids.copy()
        class_ids[tracked] = np.asarray(self.classes, dtype=CLASS_ID_DTYPE)[votes.argmax(axis=1)]
        self.stats.reclassified += int(np.count_nonzero(class_ids != boxes.class_ids))
        ids = np.full(len(boxes), "", dtype=CLASS_ID_DTYPE)  # untracked: no id
        ids[tracked] = [str(i) for i in self._ids[track_of[tracked]]]
        return Boxes3D(boxes.centers, boxes.sizes, boxes.yaws, boxes.scores, class_ids, ids,
                       frame_id=boxes.frame_id), event

    def _assign(self, xy: np.ndarray, scores: np.ndarray, column: np.ndarray, stamp: int,
                config: TrackingConfig) -> np.ndarray:
        """Track index per detection (-1: untracked): matched tracks follow their detection
        and fade their votes; strong unmatched detections start tracks."""
        age = (stamp - self._seen_ns) / NS_PER_S
        predicted = self._xy + self._velocity * age[:, None]
        distance = np.linalg.norm(predicted[:, None, :] - xy[None, :, :], axis=2)
        group = np.where(column >= 0, config.group_of(self.classes)[column], -1)
        primary = (column >= 0) & ~_duplicates(xy, scores, group, config.duplicate_radius_m)
        gate = np.where(self._hits == 1,
                        np.maximum(config.gate_m, config.max_relative_speed_mps * age),
                        config.gate_m)
        allowed = ((distance <= gate[:, None]) & (self._groups[:, None] == group[None, :])
                   & primary[None, :])
        cost = distance / gate[:, None] + config.score_weight * (1.0 - scores[None, :])
        # every allowed pair beats leaving both alone (its cost is below the gate given here)
        pairs = associate(cost, allowed, 1.0 + config.score_weight + 1e-9)
        if not math.isinf(config.class_half_life_s):
            self._votes *= (0.5 ** (age / config.class_half_life_s))[:, None]
        track, detection = pairs[:, 0], pairs[:, 1]
        self._follow(track, xy[detection], age[track], stamp, config.velocity_gain)
        track_of = np.full(len(xy), -1, dtype=np.intp)
        track_of[detection] = track
        new = np.flatnonzero((track_of < 0) & (scores >= config.min_start_score) & primary)
        track_of[new] = self._start(xy[new], group[new], stamp)
        return track_of

    def _forget_older_than(self, stamp: int, max_age_s: float) -> None:
        alive = (stamp - self._seen_ns) / NS_PER_S <= max_age_s
        if not alive.all():
            for name in ("_xy", "_velocity", "_seen_ns", "_hits", "_votes", "_ids", "_groups"):
                setattr(self, name, getattr(self, name)[alive])

    def _follow(self, track: np.ndarray, xy: np.ndarray, age: np.ndarray, stamp: int,
                gain: float) -> None:
        """Matched tracks move to their detection; the velocity is set on the second sighting
        and smoothed after that."""
        moved = age > 0
        measured = np.zeros_like(xy)
        measured[moved] = (xy[moved] - self._xy[track[moved]]) / age[moved, None]
        weight = np.where(self._hits[track] == 1, 1.0, gain)[:, None] * moved[:, None]
        self._velocity[track] += weight * (measured - self._velocity[track])
        self._xy[track] = xy
        self._seen_ns[track] = stamp
        self._hits[track] += 1

    def _start(self, xy: np.ndarray, group: np.ndarray, stamp: int) -> np.ndarray:
        first = len(self._ids)
        count = len(xy)
        self._xy = np.concatenate([self._xy, xy])
        self._velocity = np.concatenate([self._velocity, np.zeros((count, 2))])
        self._seen_ns = np.concatenate([self._seen_ns, np.full(count, stamp, dtype=np.int64)])
        self._hits = np.concatenate([self._hits, np.ones(count, dtype=np.int64)])
        self._votes = np.concatenate([self._votes, np.zeros((count, len(self.classes)))])
        self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + count)])
        self._groups = np.concatenate([self._groups, group])
        self._next_id += count
        self.stats.tracks_started += count
        return np.arange(first, first + count)


def _duplicates(xy: np.ndarray, scores: np.ndarray, group: np.ndarray, radius: float
                ) -> np.ndarray:
    """Boxes (N,) within ``radius`` of a stronger box of the same group (equal scores: the
    earlier box is the stronger)."""
    n = len(xy)
    if n < 2 or radius <= 0:
        return np.zeros(n, dtype=bool)
    near = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2) <= radius
    index = np.arange(n)
    stronger = (scores[None, :] > scores[:, None]) | (
        (scores[None, :] == scores[:, None]) & (index[None, :] < index[:, None]))
    return (near & stronger & (group[None, :] == group[:, None])).any(axis=1)
