"""The one scorer on recorded outputs: a bag whose recorded outputs equal its ground truth
scores AP = 1, perturbed outputs score lower as expected, and latency / drops come from the
recorded receive times (also through a live replay's stamp offset and rate)."""

from __future__ import annotations

import numpy as np
import pytest
from eval_support import copy_bag, ground_truth_as_outputs, shared_bag

from ad_perception.eval.ground_truth import load_ground_truth
from ad_perception.eval.recorded import ReplayInfo, outputs_from_recording
from ad_perception.eval.scoring import build_predictions, evaluate_predictions
from ad_perception.models.lidar_detector import LidarDetectorConfig

RANGE = LidarDetectorConfig().point_cloud_range
CLASSES = ("car", "truck", "pedestrian", "cyclist")


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return shared_bag(tmp_path_factory)


def _score(bag, recording, replay=None):
    truth = load_ground_truth(bag)
    outputs = outputs_from_recording(recording, truth, replay)
    return evaluate_predictions([build_predictions(truth, outputs, RANGE, CLASSES)]).entry


def _with_outputs(bag, tmp_path, name="rec", **kwargs):
    return copy_bag(bag, tmp_path / name, extra=ground_truth_as_outputs(bag, **kwargs))


def _present(values):
    return {k: v for k, v in values.items() if v is not None}


def test_outputs_equal_to_ground_truth_score_one(bag, tmp_path):
    recording = _with_outputs(bag, tmp_path, latency_ms=lambda i: 20.0 + i)
    entry = _score(recording, recording)
    camera, lidar, fused = (_present(entry[k][m]) for k, m in
                            (("camera", "ap50"), ("lidar", "bev_ap"), ("fused", "bev_ap")))
    assert camera and all(v == pytest.approx(1.0) for v in camera.values())
    assert lidar and all(v == pytest.approx(1.0) for v in lidar.values())
    assert fused == lidar
    assert entry["fused"]["class_accuracy"] == 1.0
    # receive time - stamp: 20, 21, ... 25 ms over 6 frames (tolerance: ns rounding)
    assert entry["latency_ms"]["p50"] == pytest.approx(22.5, abs=1e-3)
    assert entry["latency_ms"]["max"] == pytest.approx(25.0, abs=1e-3)
    assert entry["drops"]["fused"] == {"frames_in": 6, "frames_out": 6, "dropped": 0}
    assert entry["latency_kind"].startswith("end_to_end")


def test_shifted_boxes_lower_bev_ap_but_not_centre_distance_ap(bag, tmp_path):
    def shift(msg, _):  # 1 m towards the sensor: every box stays inside the detector range
        for detection in msg.detections:
            position = detection.bbox.center.position
            norm = np.hypot(position.x, position.y)
            position.x -= position.x / norm
            position.y -= position.y / norm

    entry = _score(bag, _with_outputs(bag, tmp_path, edit_3d=shift))
    assert entry["lidar"]["map_bev"] < 0.5
    # nuScenes centre-distance AP: a 1 m shift is a hit at 2 m and 4 m, a miss at 0.5 m and
    # 1 m (matching needs distance < threshold): the mean over the 4 thresholds is about 0.5
    # (not exactly: a shifted box can land within 1 m of a neighbouring object)
    dist_ap = _present(entry["lidar"]["dist_ap"])
    assert dist_ap and all(0.45 < v < 0.55 for v in dist_ap.values())
    assert entry["lidar"]["tp_errors"]["car"]["trans_err"] == pytest.approx(1.0)


def test_dropped_frames_count_as_misses(bag, tmp_path):
    entry_all = _score(bag, _with_outputs(bag, tmp_path, name="all"))
    entry = _score(bag, _with_outputs(bag, tmp_path, name="half", keep=lambda i: i % 2 == 0))
    assert entry["drops"]["camera"] == {"frames_in": 6, "frames_out": 3, "dropped": 3}
    assert entry["drops"]["fused"]["dropped"] == 3
    assert entry["camera"]["map50"] < entry_all["camera"]["map50"] == pytest.approx(1.0)
    assert 0.2 < entry["camera"]["map50"] < 0.8


def test_wrong_classes_lower_class_accuracy(bag, tmp_path):
    def relabel(msg, _):
        for detection in msg.detections:
            hypothesis = detection.results[0].hypothesis
            hypothesis.class_id = "truck" if hypothesis.class_id == "car" else "car"

    entry = _score(bag, _with_outputs(bag, tmp_path, edit_3d=relabel))
    assert entry["fused"]["class_accuracy"] == 0.0
    assert entry["fused"]["map_bev"] == pytest.approx(0.0)


def test_live_replay_offset_and_rate_map_back_to_ground_truth(bag, tmp_path):
    """A live run restamps by a constant offset and may play at xR: outputs still land on
    their frames, and latency is measured against the replay clock, not the bag clock."""
    offset, rate = 5_000_000_000_123, 2.0
    extra = ground_truth_as_outputs(bag, latency_ms=lambda i: 30.0, stamp_offset_ns=offset,
                                    rate=rate)
    recording = copy_bag(bag, tmp_path / "rec", drop=[t for t in _sensor_and_gt()],
                         extra=extra, sidecar=False)
    first = load_ground_truth(bag).start_ns
    ReplayInfo(offset, rate, first).save(recording)
    entry = _score(bag, recording)
    assert entry["camera"]["map50"] == pytest.approx(1.0)
    assert entry["fused"]["map_bev"] == pytest.approx(1.0)
    assert entry["latency_ms"]["p50"] == pytest.approx(30.0, abs=1e-3)
    # without the replay info, every output has a stamp of no input frame
    (recording / "replay.json").unlink()
    entry = _score(bag, recording)
    assert entry["drops"]["fused"]["frames_out"] == 0
    assert any("stamp of no input frame" in note for note in entry["notes"])


def test_missing_output_topic_is_reported_not_scored_as_zero(bag, tmp_path):
    extra = [m for m in ground_truth_as_outputs(bag) if m[0] != "/perception/objects"]
    recording = copy_bag(bag, tmp_path / "rec", extra=extra)
    entry = _score(recording, recording)
    assert entry["fused"]["map_bev"] is None
    assert entry["lidar"]["map_bev"] == pytest.approx(1.0)
    assert any("fused not scored: no fused output at all" in n for n in entry["notes"])
    assert np.isclose(entry["camera"]["map50"], 1.0)


def _sensor_and_gt():
    return ["/sensing/camera/front/image_raw", "/sensing/camera/front/camera_info",
            "/sensing/lidar/top/points", "/ground_truth/objects",
            "/ground_truth/camera/front/boxes", "/tf_static"]
