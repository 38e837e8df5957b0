"""Bad bags give a clear error or a report that says what could not be scored: missing
topics, truncated files, unknown message types, no ground truth, a malformed message half-way,
undecodable frames. Nothing crashes without saying where."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_support import copy_bag, ground_truth_as_outputs, shared_bag

from ad_perception.cli import main
from ad_perception.core.fusion import FusionPipeline
from ad_perception.core.pipelines import StageTimes
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.data.bag_types import typestore
from ad_perception.eval.errors import EvalError, read_messages
from ad_perception.eval.ground_truth import load_ground_truth
from ad_perception.eval.offline import run_pipelines

CAMERA_TOPICS = ["/sensing/camera/front/image_raw", "/sensing/camera/front/camera_info"]
BLOB_DEF = "uint8[] payload\nstring note\n"


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return shared_bag(tmp_path_factory)


@pytest.fixture(scope="module")
def recorded(bag, tmp_path_factory):
    """The bag plus outputs equal to its ground truth: scores 1 wherever it can be scored."""
    return copy_bag(bag, tmp_path_factory.mktemp("rec") / "good",
                    extra=ground_truth_as_outputs(bag))


def _eval(bags, out, *extra):
    code = main(["eval", *map(str, bags), "--mode", "recorded", "--variants", "vehicle",
                 "--out", str(out), "--workers", "1", "--no-progress", *extra])
    return code, json.loads((out / "results.json").read_text())


def test_missing_camera_topics_score_lidar_and_say_camera_was_not(recorded, tmp_path):
    no_camera = copy_bag(recorded, tmp_path / "no_camera", drop=CAMERA_TOPICS)
    code, results = _eval([no_camera], tmp_path / "out")
    entry = results["variants"]["vehicle"]
    assert code == 0
    assert entry["camera"]["map50"] is None
    assert entry["fused"]["map_bev"] == pytest.approx(1.0)
    assert any("camera not scored: no camera image topic" in n for n in entry["notes"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "camera not scored: no camera image topic" in report.split("What could not")[1]


def _truncate(bag, fraction):
    storage = next(bag.glob("*.mcap"))
    storage.write_bytes(storage.read_bytes()[: int(storage.stat().st_size * fraction)])
    return bag


def test_truncated_recording_is_scored_up_to_the_cut(recorded, tmp_path):
    """A killed recorder leaves an mcap without footer: the frames before the cut count."""
    truncated = _truncate(copy_bag(recorded, tmp_path / "killed"), 0.75)
    truth = load_ground_truth(truncated)
    assert 2 <= len(truth.cloud_frames) < 6
    (note,) = [n for n in truth.notes if "truncated" in n]
    assert "no mcap footer" in note and "before byte" in note
    code, results = _eval([truncated], tmp_path / "out")
    entry = results["variants"]["vehicle"]
    assert code == 0
    assert entry["fused"]["map_bev"] == pytest.approx(1.0)
    assert entry["drops"]["fused"]["frames_in"] == len(truth.cloud_frames)
    assert "no mcap footer" in (tmp_path / "out" / "report.md").read_text()


def test_unreadable_bag_is_listed_and_the_others_are_scored(recorded, tmp_path, capsys):
    truncated = _truncate(copy_bag(recorded, tmp_path / "truncated"), 0.001)
    code, results = _eval([recorded, truncated], tmp_path / "out")
    assert code == 1
    assert results["variants"]["vehicle"]["bags"] == [str(recorded)]
    (failure,) = results["failed"]
    assert failure["bag"] == str(truncated) and "truncated" in failure["error"]
    assert "not scored" in capsys.readouterr().err
    report = (tmp_path / "out" / "report.html").read_text()
    assert "truncated" in report and str(truncated) in report


def test_unknown_message_types_are_ignored_with_a_note(recorded, tmp_path):
    blob = ("/acme/blob", "acme_msgs/msg/Blob", load_ground_truth(recorded).start_ns,
            b"\x00\x01\x00\x00" + b"\x00" * 8)
    odd = copy_bag(recorded, tmp_path / "odd", extra=[blob],
                   msgdefs={"acme_msgs/msg/Blob": BLOB_DEF})
    truth = load_ground_truth(odd)
    assert any("acme_msgs/msg/Blob is unknown" in note for note in truth.notes)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("topics: {image: /acme/blob}\n")
    code = main(["eval", str(odd), "--mode", "recorded", "--variants", "vehicle",
                 "--topics", str(mapping), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--no-progress"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 1
    assert "has type acme_msgs/msg/Blob" in results["failed"][0]["error"]


def test_no_ground_truth_is_a_clear_error(bag, tmp_path):
    stripped = copy_bag(bag, tmp_path / "no_gt",
                        drop=["/ground_truth/objects", "/ground_truth/camera/front/boxes"])
    with pytest.raises(EvalError, match="no ground truth.*nothing to score against"):
        load_ground_truth(stripped)


def test_a_malformed_message_half_way_names_topic_and_time(bag, tmp_path):
    truth = load_ground_truth(bag)
    stamp = truth.cloud_frames[3].log_ns
    broken = copy_bag(bag, tmp_path / "broken", drop=["/ground_truth/objects"],
                      extra=[("/ground_truth/objects", "vision_msgs/msg/Detection3DArray",
                              stamp, b"\x00\x01\x00\x00\x05")])
    with pytest.raises(EvalError, match=r"/ground_truth/objects at bag time .* does not "
                                        r"deserialise"):
        load_ground_truth(broken)


def test_not_a_bag_and_missing_paths(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="not a rosbag2 folder"):
        load_ground_truth(tmp_path / "empty")
    assert main(["eval", str(tmp_path / "nowhere"), "--mode", "recorded"]) == 2
    assert "no such bag" in capsys.readouterr().err


class _Oracle:
    """Returns the bag's own ground truth in frame order, like a perfect detector."""

    def __init__(self, frames):
        self.frames, self.index, self.last_times = frames, 0, StageTimes()

    def __call__(self, _sensor):
        self.index += 1
        return self.frames[(self.index - 1) % len(self.frames)]


def test_undecodable_frames_are_counted_and_scored_as_missing(bag, tmp_path):
    store = typestore()
    images = [(t, m) for t, _, m in read_messages(bag, ["/sensing/camera/front/image_raw"])]
    bad = images[2][1]
    bad.encoding = "not_an_encoding"
    truth_before = load_ground_truth(bag)
    patched = copy_bag(bag, tmp_path / "bad_image", drop=["/sensing/camera/front/image_raw"],
                       extra=[(topic, "sensor_msgs/msg/Image", frame.log_ns,
                               bytes(store.serialize_cdr(m, "sensor_msgs/msg/Image")))
                              for (topic, m), frame in zip(images, truth_before.image_frames,
                                                           strict=True)])
    truth = load_ground_truth(patched)
    boxes = [truth.boxes_2d[f.stamp_ns] for f in truth.image_frames]
    boxes = boxes[:2] + boxes[3:]  # the oracle is never called on the bad frame
    objects = [truth.objects_3d.get(f.stamp_ns, Boxes3D.empty()) for f in truth.cloud_frames]
    outputs = run_pipelines(truth, _Oracle(boxes), _Oracle(objects), FusionPipeline(),
                            progress=False)
    assert len(outputs.camera) == 5 and truth.image_frames[2].stamp_ns not in outputs.camera
    assert any("1 image message(s) could not be decoded" in n and "not_an_encoding" in n
               for n in outputs.notes)
    assert isinstance(outputs.camera[truth.image_frames[0].stamp_ns], Detections2D)
    assert np.isfinite(outputs.latency_ms).all()
