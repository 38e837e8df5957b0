"""Bags from other sources scored through a topic-mapping file: a sqlite3 bag with
carla-ros-bridge topics, bgra8 images, a cloud whose intensity field is called ``i``, ground
truth on other topics and another label set; and mapping mistakes that fail at load time."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from eval_support import ground_truth_as_outputs, shared_bag

from ad_perception.data.bag_types import typestore
from ad_perception.eval import decode
from ad_perception.eval.errors import EvalError, read_messages
from ad_perception.eval.ground_truth import load_ground_truth
from ad_perception.eval.recorded import outputs_from_recording
from ad_perception.eval.scoring import build_predictions, evaluate_predictions
from ad_perception.eval.topic_map import TopicMap, TopicMapError
from ad_perception.models.lidar_detector import LidarDetectorConfig

CARLA = "/carla/ego_vehicle"
MAPPING = {
    "topics": {
        "image": f"{CARLA}/rgb_front/image",
        "camera_info": f"{CARLA}/rgb_front/camera_info",
        "points": f"{CARLA}/lidar",
        "gt_objects": f"{CARLA}/objects",
        "gt_boxes": f"{CARLA}/rgb_front/objects_2d",
        "camera_detections": "/stack/camera_2d",
        "lidar_detections": "/stack/lidar_3d",
        "objects": "/stack/objects",
    },
    "point_fields": {"intensity": "i"},
    "intensity_scale": 2.0,
    "class_map": {"vehicle": "car", "walker": "pedestrian"},
}
CARLA_CLASSES = {"car": "vehicle", "pedestrian": "walker"}


def _carla_labels(msg, _index=None) -> None:
    for detection in msg.detections:
        hypothesis = detection.results[0].hypothesis
        hypothesis.class_id = CARLA_CLASSES.get(hypothesis.class_id, hypothesis.class_id)


def _rewrite(bag, target, outputs):
    """carla preset bag -> sqlite3 bag with the carla-style differences the mapping covers."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    store = typestore()
    rename = {"/ground_truth/objects": f"{CARLA}/objects",
              "/ground_truth/camera/front/boxes": f"{CARLA}/rgb_front/objects_2d"}
    with Reader(bag) as reader, Writer(target, version=9,
                                       storage_plugin=StoragePlugin.SQLITE3) as writer:
        out = {c.id: writer.add_connection(rename.get(c.topic, c.topic), c.msgtype,
                                           typestore=store) for c in reader.connections}
        for connection, timestamp, data in reader.messages():
            if connection.msgtype == "sensor_msgs/msg/PointCloud2":
                msg = store.deserialize_cdr(data, connection.msgtype)
                for point_field in msg.fields:
                    if point_field.name == "intensity":
                        point_field.name = "i"
                data = store.serialize_cdr(msg, connection.msgtype)
            elif connection.topic in rename:
                msg = store.deserialize_cdr(data, connection.msgtype)
                _carla_labels(msg)
                data = store.serialize_cdr(msg, connection.msgtype)
            writer.write(out[connection.id], timestamp, data)
        topics = {"/perception/camera/front/detections": "/stack/camera_2d",
                  "/perception/lidar/detections": "/stack/lidar_3d",
                  "/perception/objects": "/stack/objects"}
        added = {}
        for topic, msgtype, log_ns, payload in outputs:
            msg = store.deserialize_cdr(payload, msgtype)
            _carla_labels(msg)
            if topic not in added:
                added[topic] = writer.add_connection(topics[topic], msgtype, typestore=store)
            writer.write(added[topic], log_ns, store.serialize_cdr(msg, msgtype))
    return target


@pytest.fixture(scope="module")
def carla_bag(tmp_path_factory):
    source = shared_bag(tmp_path_factory, storage="sqlite3", preset="carla")
    outputs = ground_truth_as_outputs(source)
    target = tmp_path_factory.mktemp("carla") / "carla_sqlite"
    _rewrite(source, target, outputs)
    mapping = target.parent / "carla.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING))
    return target, mapping


def test_carla_sqlite3_bag_scored_through_mapping(carla_bag):
    bag, mapping = carla_bag
    assert next(bag.glob("*.db3")).exists()
    topic_map = TopicMap.load(mapping)
    truth = load_ground_truth(bag, topic_map)
    assert truth.topics.points == f"{CARLA}/lidar" and len(truth.cloud_frames) == 6
    outputs = outputs_from_recording(bag, truth)
    entry = evaluate_predictions([build_predictions(
        truth, outputs, LidarDetectorConfig().point_cloud_range,
        ("car", "truck", "pedestrian", "cyclist"))]).entry
    assert entry["camera"]["map50"] == pytest.approx(1.0)
    assert entry["fused"]["map_bev"] == pytest.approx(1.0)
    assert entry["camera"]["ap50"]["car"] == pytest.approx(1.0)  # "vehicle" mapped to car
    assert entry["drops"]["fused"]["dropped"] == 0


def test_without_mapping_carla_ground_truth_is_not_found(carla_bag):
    bag, _ = carla_bag
    with pytest.raises(EvalError, match="no ground truth"):
        load_ground_truth(bag)


def test_bgra8_and_renamed_fields_decode_like_our_default_bag(carla_bag, tmp_path_factory):
    bag, mapping = carla_bag
    topic_map = TopicMap.load(mapping)
    default = shared_bag(tmp_path_factory)  # same seed and frames, our layout
    ours = next(m for _, _, m in read_messages(default, ["/sensing/camera/front/image_raw"]))
    theirs = next(m for _, _, m in read_messages(bag, [f"{CARLA}/rgb_front/image"]))
    assert theirs.encoding == "bgra8"
    np.testing.assert_array_equal(decode.image_rgb(theirs, topic_map),
                                  decode.image_rgb(ours, TopicMap()))
    our_cloud = decode.point_cloud(next(
        m for _, _, m in read_messages(default, ["/sensing/lidar/top/points"])), TopicMap())
    their_cloud = decode.point_cloud(next(
        m for _, _, m in read_messages(bag, [f"{CARLA}/lidar"])), topic_map)
    np.testing.assert_allclose(their_cloud.xyz, our_cloud.xyz)
    np.testing.assert_allclose(their_cloud.intensity, 2.0 * our_cloud.intensity)
    with pytest.raises(decode.ConversionError, match="'i'"):
        decode.point_cloud(next(m for _, _, m in read_messages(default,
                                                                ["/sensing/lidar/top/points"])),
                           topic_map)


@pytest.mark.parametrize(("data", "message"), [
    ({"topic": {}}, "unknown key"),
    ({"topics": {"camera": "/x"}}, "unknown role"),
    ({"topics": {"image": "relative"}}, "absolute topic name"),
    ({"intensity_scale": 0}, "positive number"),
    ({"image_encoding": "yuv_nonsense"}, "not an encoding"),
    ({"point_fields": {"reflectivity": "r"}}, "our field names"),
    ({"class_map": {"vehicle": 3}}, "map names to strings"),
    ([1, 2], "top level"),
])
def test_mapping_mistakes_name_the_key(data, message):
    with pytest.raises(TopicMapError, match=message):
        TopicMap.from_dict(data, "m.yaml")


def test_mapping_file_problems(tmp_path):
    with pytest.raises(TopicMapError, match="does not exist"):
        TopicMap.load(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("topics: [unclosed")
    with pytest.raises(TopicMapError, match="not valid YAML"):
        TopicMap.load(broken)


def test_mapped_topic_must_exist_with_the_right_type():
    types = {"/a": "sensor_msgs/msg/Image", "/b": "sensor_msgs/msg/PointCloud2"}
    with pytest.raises(TopicMapError, match="does not have"):
        TopicMap.from_dict({"topics": {"image": "/missing"}}).resolve(types)
    with pytest.raises(TopicMapError, match="must be sensor_msgs/msg/Image"):
        TopicMap.from_dict({"topics": {"image": "/b"}}).resolve(types)


def test_ambiguous_topics_are_left_out_with_a_hint():
    types = {"/left": "sensor_msgs/msg/Image", "/right": "sensor_msgs/msg/Image",
             "/points": "sensor_msgs/msg/PointCloud2"}
    resolved = TopicMap().resolve(types)
    assert resolved.image is None and resolved.points == "/points"
    assert any("topics.image" in note for note in resolved.notes)
    assert TopicMap.from_dict({"topics": {"image": "/right"}}).resolve(types).image == "/right"
