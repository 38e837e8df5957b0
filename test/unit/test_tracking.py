"""The fusion's class vote over time (core.tracking): flicker suppressed, groups kept apart,
duplicates left alone, motion followed, time going backwards handled, settings checked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ad_perception.core.fusion import FusionConfig, FusionPipeline, FusionResult, FusionStatus
from ad_perception.core.tracking import (
    OUT_OF_ORDER,
    RESET,
    ClassTracker,
    TrackingConfig,
)
from ad_perception.core.types import Boxes3D

CLASSES = ("car", "truck", "pedestrian", "cyclist")
STEP_NS = 100_000_000  # 10 Hz


def frame(*rows: tuple[str, float, float, float]) -> Boxes3D:
    """Boxes from (class, x, y, score) rows in base_link."""
    if not rows:
        return Boxes3D.empty("base_link")
    return Boxes3D(np.array([[x, y, 0.0] for _, x, y, _ in rows]), np.ones((len(rows), 3)),
                   np.zeros(len(rows)), scores=np.array([r[3] for r in rows]),
                   class_ids=np.array([r[0] for r in rows]), frame_id="base_link")


def run(tracker: ClassTracker, frames: list[Boxes3D], config: TrackingConfig,
        start_ns: int = 10**12) -> list[Boxes3D]:
    return [tracker.update(boxes, start_ns + i * STEP_NS, config)[0]
            for i, boxes in enumerate(frames)]


def test_a_flicker_inside_a_track_takes_the_tracks_class_and_keeps_its_id():
    frames = [frame(("cyclist", 45.0 - 0.5 * i, 3.0, 0.6)) for i in range(6)]
    frames.append(frame(("pedestrian", 42.0, 3.0, 0.55)))  # one sweep with too few points
    out = run(ClassTracker(CLASSES), frames, TrackingConfig())
    assert [str(b.class_ids[0]) for b in out] == ["cyclist"] * 7
    assert len({str(b.ids[0]) for b in out}) == 1 and out[0].ids[0] != ""


def test_a_class_the_detector_keeps_changing_to_wins_over_time():
    """Votes fade with the half-life: a short one follows the detector within a frame or two,
    votes that never fade need as much evidence as the old class had."""
    frames = [frame(("cyclist", 30.0, 0.0, 0.6)) for _ in range(5)]
    frames += [frame(("pedestrian", 30.0, 0.0, 0.6)) for _ in range(8)]
    fast = run(ClassTracker(CLASSES), frames, TrackingConfig(class_half_life_s=0.05))
    slow = run(ClassTracker(CLASSES), frames, TrackingConfig(class_half_life_s=math.inf))
    assert [str(b.class_ids[0]) for b in fast[5:]] == ["pedestrian"] * 8
    # equal votes after 5 + 5 frames: the tie goes to what the detector says now
    assert [str(b.class_ids[0]) for b in slow[5:]] == ["cyclist"] * 4 + ["pedestrian"] * 4


def test_a_truck_passing_a_pedestrian_track_does_not_inherit_its_class():
    frames = [frame(("pedestrian", 20.0, 5.0, 0.8)) for _ in range(5)]
    # the pedestrian is not seen while a truck drives through the same spot
    frames += [frame(("truck", 20.0 + 0.5 * i, 5.0, 0.7)) for i in range(3)]
    out = run(ClassTracker(CLASSES), frames, TrackingConfig())
    assert [str(b.class_ids[0]) for b in out[5:]] == ["truck"] * 3
    assert out[5].ids[0] != out[4].ids[0]


def test_a_weaker_box_of_the_same_group_on_the_same_object_is_left_alone():
    frames = [frame(("cyclist", 40.0, 0.0, 0.7), ("pedestrian", 40.3, 0.2, 0.35))
              for _ in range(4)]
    out = run(ClassTracker(CLASSES), frames, TrackingConfig())
    for boxes in out:
        assert list(boxes.class_ids) == ["cyclist", "pedestrian"]
        assert boxes.ids[0] == out[0].ids[0] and boxes.ids[1] == ""


def test_weak_detections_join_tracks_but_do_not_start_them():
    config = TrackingConfig(min_start_score=0.3)
    out = run(ClassTracker(CLASSES), [frame(("car", 10.0, 0.0, 0.2)),
                                      frame(("car", 10.0, 0.0, 0.8)),
                                      frame(("truck", 10.0, 0.0, 0.2))], config)
    assert out[0].ids[0] == "" and out[1].ids[0] != ""
    assert out[2].ids[0] == out[1].ids[0] and out[2].class_ids[0] == "car"


def test_objects_moving_fast_relative_to_the_vehicle_stay_one_track():
    rng = np.random.default_rng(7)
    # oncoming car at 25 m/s closing speed and a parked car the ego passes at 12 m/s
    frames = [frame(("car", 60.0 - 2.5 * i + rng.normal(0, 0.1), -3.5, 0.8),
                    ("car", 40.0 - 1.2 * i + rng.normal(0, 0.1), 4.0, 0.8)) for i in range(15)]
    tracker = ClassTracker(CLASSES)
    out = run(tracker, frames, TrackingConfig())
    assert {str(b.ids[0]) for b in out} == {str(out[0].ids[0])}
    assert {str(b.ids[1]) for b in out} == {str(out[0].ids[1])}
    assert tracker.stats.tracks_started == 2


def test_tracks_unseen_for_longer_than_max_age_are_dropped_and_ids_never_reused():
    tracker, config = ClassTracker(CLASSES), TrackingConfig(max_age_s=0.35)
    first, _ = tracker.update(frame(("car", 10.0, 0.0, 0.9)), 0, config)
    gap, _ = tracker.update(frame(("car", 10.0, 0.0, 0.9)), 4 * STEP_NS, config)
    assert gap.ids[0] != first.ids[0] and len(tracker) == 1
    tracker.reset()
    again, _ = tracker.update(frame(("car", 10.0, 0.0, 0.9)), 5 * STEP_NS, config)
    assert again.ids[0] not in (first.ids[0], gap.ids[0])


def test_stamps_going_backwards():
    tracker, config = ClassTracker(CLASSES), TrackingConfig(max_age_s=0.35)
    tracker.update(frame(("car", 10.0, 0.0, 0.9)), 10 * STEP_NS, config)
    late = frame(("truck", 10.0, 0.0, 0.9))
    out, event = tracker.update(late, 9 * STEP_NS, config)  # a late frame: left as it is
    assert event == OUT_OF_ORDER and out is late and tracker.stats.out_of_order == 1
    out, event = tracker.update(frame(("truck", 10.0, 0.0, 0.9)), 0, config)  # replay restart
    assert event == RESET and tracker.stats.resets == 1
    assert out.class_ids[0] == "truck" and len(tracker) == 1


def test_boxes_in_another_frame_start_the_tracks_over():
    tracker, config = ClassTracker(CLASSES), TrackingConfig()
    first, _ = tracker.update(frame(("car", 10.0, 0.0, 0.9)), 0, config)
    moved = frame(("truck", 10.0, 0.0, 0.9))
    moved.frame_id = "lidar_top"  # base_link unreachable: the fusion left them in the lidar's
    out, event = tracker.update(moved, STEP_NS, config)
    assert event == RESET and out.class_ids[0] == "truck" and out.ids[0] != first.ids[0]


def test_classes_the_tracker_does_not_know_pass_through_untracked():
    out = run(ClassTracker(CLASSES), [frame(("bus", 10.0, 0.0, 0.9)) for _ in range(2)],
              TrackingConfig())
    assert [b.class_ids[0] for b in out] == ["bus", "bus"] and out[1].ids[0] == ""


def test_empty_frames_keep_tracks_alive_until_max_age():
    tracker = ClassTracker(CLASSES)
    out = run(tracker, [frame(("cyclist", 20.0, 1.0, 0.8)), frame(),
                        frame(("pedestrian", 20.0, 1.0, 0.5))], TrackingConfig())
    assert out[1].frame_id == "base_link" and len(out[1]) == 0
    assert out[2].class_ids[0] == "cyclist" and out[2].ids[0] == out[0].ids[0]


def test_fusion_pipeline_applies_tracking_only_when_enabled():
    result = FusionResult(frame(("pedestrian", 30.0, 0.0, 0.5)), np.array(["lidar_only"]),
                          np.array([0]), np.array([-1]), FusionStatus())
    history = frame(("cyclist", 30.0, 0.0, 0.9))
    tracked = FusionPipeline(FusionConfig())
    tracked.track(FusionResult(history, *[getattr(result, k) for k in
                                          ("provenance", "lidar_index", "camera_index")],
                               FusionStatus()), 0)
    out = tracked.track(result, STEP_NS)
    assert out.objects.class_ids[0] == "cyclist" and out.status.ok
    plain = FusionPipeline(FusionConfig(tracking=TrackingConfig(enabled=False)))
    assert plain.track(result, STEP_NS) is result
    late = tracked.track(FusionResult(history, result.provenance, result.lidar_index,
                                      result.camera_index, FusionStatus()), 0)
    assert late.status.untracked and late.status.flags() == ["untracked"]
    tracked.reset_tracks()
    assert len(tracked.tracker) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"gate_m": 0.0}, "gate_m"),
    ({"max_age_s": -1.0}, "max_age_s"),
    ({"class_half_life_s": 0.0}, "class_half_life_s"),
    ({"velocity_gain": 1.5}, "velocity_gain"),
    ({"score_weight": -0.1}, "score_weight"),
    ({"max_relative_speed_mps": math.inf}, "max_relative_speed_mps"),
    ({"min_start_score": 2.0}, "min_start_score"),
    ({"duplicate_radius_m": math.nan}, "duplicate_radius_m"),
    ({"class_groups": (("car", "truck"), ("car", "cyclist"))}, "class_groups"),
])
def test_bad_settings_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrackingConfig(**kwargs)
