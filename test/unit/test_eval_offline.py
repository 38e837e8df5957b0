"""The offline scorer on a real generated bag: oracle pipelines that return the ground truth
score 1, perturbed ones score lower, bags without ground truth are refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from eval_support import shared_bag

from ad_perception import CLASSES
from ad_perception.core.fusion import FusionPipeline
from ad_perception.core.pipelines import StageTimes
from ad_perception.core.types import Boxes3D
from ad_perception.data import bag_io
from ad_perception.data.datasets import GT_BOXES_TOPIC, GT_OBJECTS_TOPIC
from ad_perception.eval.offline import EvalError, find_topics, run_bag, score
from ad_perception.models.lidar_detector import LidarDetectorConfig


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return shared_bag(tmp_path_factory)


class Oracle:
    """Replays the bag's own ground truth, in message order, as a pipeline's output."""

    def __init__(self, frames, shift_m: float = 0.0) -> None:
        self.frames, self.shift_m, self.index = frames, shift_m, 0
        self.last_times = StageTimes()

    def __call__(self, _sensor):
        frame = self.frames[self.index % len(self.frames)]
        self.index += 1
        if isinstance(frame, Boxes3D):
            centers = frame.centers + np.array([self.shift_m, 0.0, 0.0])
            return Boxes3D(centers, frame.sizes, frame.yaws, np.linspace(1, 0.5, len(frame)),
                           frame.class_ids, frame.ids, frame_id=frame.frame_id)
        return frame


def _oracles(bag, shift_m=0.0):
    boxes_2d = [bag_io.detections2d_from_msg(m) for _, _, m in
                bag_io.read_messages(bag, [GT_BOXES_TOPIC])]
    boxes_3d = [bag_io.boxes3d_from_msg(m) for _, _, m in
                bag_io.read_messages(bag, [GT_OBJECTS_TOPIC])]
    return Oracle(boxes_2d), Oracle(boxes_3d, shift_m)


def _score(bag, shift_m=0.0):
    camera, lidar = _oracles(bag, shift_m)
    predictions = run_bag(bag, camera, lidar, FusionPipeline(), LidarDetectorConfig(), CLASSES,
                          progress=False)
    return score([predictions])


def test_ground_truth_as_prediction_scores_one(bag):
    result = _score(bag)
    present = {k: v for k, v in result["camera"]["ap50"].items() if v is not None}
    assert present and all(v == pytest.approx(1.0) for v in present.values())
    lidar = {k: v for k, v in result["lidar"]["bev_ap"].items() if v is not None}
    assert lidar and all(v == pytest.approx(1.0) for v in lidar.values())
    assert result["lidar"]["class_accuracy"] == 1.0
    assert result["fused"]["class_accuracy"] == 1.0
    assert result["frames"] == 6
    assert set(result["latency_ms"]) >= {"p50", "p99"}


def test_shifted_boxes_lower_bev_ap(bag):
    exact = _score(bag)["lidar"]["map_bev"]
    shifted = _score(bag, shift_m=1.0)["lidar"]["map_bev"]
    assert shifted < 0.5 * exact


def test_bag_without_ground_truth_is_refused(bag, tmp_path):
    from rosbags.rosbag2 import Reader, Writer

    stripped = tmp_path / "no_gt"
    with Reader(bag) as reader, Writer(stripped, version=9) as writer:
        keep = [c for c in reader.connections if not c.topic.startswith("/ground_truth")]
        out = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                           rihs01=c.digest) for c in keep}
        for connection, timestamp, data in reader.messages(connections=keep):
            writer.write(out[connection.id], timestamp, data)
    shutil.copy(bag / "ground_truth_extra.jsonl", stripped)
    with pytest.raises(EvalError, match="no ground truth"):
        find_topics(stripped)
