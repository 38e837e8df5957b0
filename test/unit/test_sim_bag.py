"""Bags from ``ad-perception sim``: layout, type hashes, determinism, two independent readers."""

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from ad_perception.data import bag_io
from ad_perception.sim.bag_output import generate_bag
from ad_perception.sim.sensors import GT_BOXES_TOPIC, GT_OBJECTS_TOPIC, SIDECAR_NAME

DETECTION3D_ARRAY_RIHS01 = (
    "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018"
)
DEFAULT_TOPICS = {
    "/sensing/camera/front/image_raw": "sensor_msgs/msg/Image",
    "/sensing/camera/front/camera_info": "sensor_msgs/msg/CameraInfo",
    "/sensing/lidar/top/points": "sensor_msgs/msg/PointCloud2",
    "/tf_static": "tf2_msgs/msg/TFMessage",
    GT_OBJECTS_TOPIC: "vision_msgs/msg/Detection3DArray",
    GT_BOXES_TOPIC: "vision_msgs/msg/Detection2DArray",
}


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory):
    return generate_bag(tmp_path_factory.mktemp("sim") / "bag", 2, seed=5, progress=False)


def _payloads(bag):
    return [(topic, t, bytes(data)) for topic, t, data in bag_io.read_messages(bag, raw=True)]


def test_topics_and_type_hash(mcap_bag):
    assert bag_io.topic_types(mcap_bag) == DEFAULT_TOPICS
    with Reader(mcap_bag) as reader:
        hashes = {c.topic: c.digest for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert hashes[GT_OBJECTS_TOPIC] == DETECTION3D_ARRAY_RIHS01
    assert DETECTION3D_ARRAY_RIHS01 in (mcap_bag / "metadata.yaml").read_text()
    assert counts["/tf_static"] == 1 and counts[GT_OBJECTS_TOPIC] == 2


def test_messages_decode_consistently(mcap_bag):
    msgs = {}
    for topic, _, msg in bag_io.read_messages(mcap_bag):
        msgs.setdefault(topic, []).append(msg)
    image = bag_io.image_to_array(msgs["/sensing/camera/front/image_raw"][0])
    assert image.shape == (720, 1280, 3)
    cloud = bag_io.pointcloud2_to_cloud(msgs["/sensing/lidar/top/points"][0])
    assert cloud.frame_id == "lidar_top" and cloud.ring is not None and len(cloud) > 50_000
    boxes = bag_io.boxes3d_from_msg(msgs[GT_OBJECTS_TOPIC][0])
    assert boxes.frame_id == "lidar_top" and len(boxes) > 5
    assert set(boxes.class_ids) <= {"car", "truck", "pedestrian", "cyclist"}
    dets = bag_io.detections2d_from_msg(msgs[GT_BOXES_TOPIC][0])
    assert len(dets) > 0 and set(dets.ids) <= set(boxes.ids)
    stamps = {bag_io.stamp_ns(m[0]) for t, m in msgs.items() if t != "/tf_static"}
    assert len(stamps) == 1
    info = msgs["/sensing/camera/front/camera_info"][0]
    assert info.distortion_model == "plumb_bob" and info.k[0] == pytest.approx(640.0)


def test_projected_gt_boxes_through_tf_and_camera_info(mcap_bag):
    """The path a consumer takes: /tf_static + CameraInfo.K projects each 3D box around its
    visible 2D box (the 3D box is tight around the mesh)."""
    tf = bag_io.read_tf_static(mcap_bag)
    T_cam_from_lidar = bag_io.transform_between(tf, "camera_front_optical", "lidar_top")
    msgs = {
        t: m
        for t, _, m in bag_io.read_messages(
            mcap_bag, [GT_OBJECTS_TOPIC, GT_BOXES_TOPIC, "/sensing/camera/front/camera_info"]
        )
    }
    K = bag_io.camera_matrix(msgs["/sensing/camera/front/camera_info"])
    boxes = bag_io.boxes3d_from_msg(msgs[GT_OBJECTS_TOPIC])
    dets = bag_io.detections2d_from_msg(msgs[GT_BOXES_TOPIC])
    extras = {e["id"]: e for e in bag_io.read_sidecar(mcap_bag)[-1]["objects"]}
    ids = list(boxes.ids)
    checked = 0
    for k, track in enumerate(dets.ids):
        if extras[track]["truncation"] > 0:
            continue
        corners = boxes.corners()[ids.index(track)]
        cam = corners @ T_cam_from_lidar[:3, :3].T + T_cam_from_lidar[:3, 3]
        uv = (cam @ K.T)[:, :2] / cam[:, 2:]
        assert (dets.boxes[k, :2] >= uv.min(axis=0) - 1).all()
        assert (dets.boxes[k, 2:] <= uv.max(axis=0) + 1).all()
        checked += 1
    assert checked >= 3


def test_sidecar_has_scene_metadata_and_difficulty_fields(mcap_bag):
    records = bag_io.read_sidecar(mcap_bag)
    assert (mcap_bag / SIDECAR_NAME).exists()
    scene = records[0]
    assert scene["type"] == "scene" and scene["seed"] == 5 and scene["preset"] == "default"
    assert "version" in scene
    obj = records[1]["objects"][0]
    assert {"occlusion", "truncation", "lidar_points", "box_height_px"} <= set(obj)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mcap_reads_with_mcap_ros2_support(mcap_bag):
    from mcap_ros2.reader import read_ros2_messages

    mcap_file = next(mcap_bag.glob("*.mcap"))
    topics = {}
    for message in read_ros2_messages(str(mcap_file)):
        topics.setdefault(message.channel.topic, []).append(message.ros_msg)
    assert set(topics) == set(DEFAULT_TOPICS)
    det = topics[GT_OBJECTS_TOPIC][0].detections[0]
    assert det.results[0].hypothesis.score == 1.0 and det.bbox.size.x > 0
    assert topics["/tf_static"][0].transforms[1].child_frame_id == "camera_front_optical"


def test_same_seed_same_bytes_and_other_seed_differs(mcap_bag, tmp_path):
    again = generate_bag(tmp_path / "again", 2, seed=5, progress=False)
    first, second = _payloads(mcap_bag), _payloads(again)
    assert len(first) == len(second)
    assert first == second
    other = _payloads(generate_bag(tmp_path / "other", 1, seed=6, progress=False))
    first_frame = {t: d for t, _, d in first[: len(other)]}
    assert any(first_frame.get(t) != d for t, _, d in other if t != "/tf_static")


def test_sqlite3_storage_reads_back(tmp_path):
    bag = generate_bag(tmp_path / "db", 1, seed=2, storage="sqlite3", progress=False)
    assert list(bag.glob("*.db3"))
    msgs = {t: m for t, _, m in bag_io.read_messages(bag)}
    assert set(msgs) == set(DEFAULT_TOPICS)
    assert len(bag_io.pointcloud2_to_cloud(msgs["/sensing/lidar/top/points"])) > 50_000


def test_carla_preset_topics_and_encodings(tmp_path):
    bag = generate_bag(tmp_path / "carla", 1, seed=3, preset_name="carla", progress=False)
    msgs = {t: m for t, _, m in bag_io.read_messages(bag)}
    assert set(msgs) == {
        "/carla/ego_vehicle/rgb_front/image",
        "/carla/ego_vehicle/rgb_front/camera_info",
        "/carla/ego_vehicle/lidar",
        "/tf_static",
        GT_OBJECTS_TOPIC,
        GT_BOXES_TOPIC,
    }
    image = msgs["/carla/ego_vehicle/rgb_front/image"]
    assert image.encoding == "bgra8" and image.step == 1280 * 4
    assert image.header.frame_id == "ego_vehicle/rgb_front"
    cloud = msgs["/carla/ego_vehicle/lidar"]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
    assert {f.datatype for f in cloud.fields} == {7} and cloud.point_step == 16
    assert cloud.header.frame_id == "ego_vehicle/lidar"
    assert msgs[GT_OBJECTS_TOPIC].header.frame_id == "ego_vehicle/lidar"
    rgb = bag_io.image_to_array(image)
    assert rgb.shape == (720, 1280, 3) and np.asarray(image.data)[3::4].min() == 255


def test_worker_processes_write_the_same_bytes(mcap_bag, tmp_path):
    """Frames are a pure function of (seed, index): generating them in one process or in
    several gives the same messages and the same sidecar."""
    single = generate_bag(tmp_path / "single", 2, seed=5, progress=False, workers=1)
    pooled = generate_bag(tmp_path / "pooled", 2, seed=5, progress=False, workers=2)
    assert _payloads(single) == _payloads(pooled) == _payloads(mcap_bag)
    assert (single / SIDECAR_NAME).read_text() == (pooled / SIDECAR_NAME).read_text()


def test_rendering_then_loading_torchvision_models_does_not_crash(tmp_path):
    """Mesa's EGL LLVM and triton's LLVM in one process: the renderer loads triton first when
    torch is in use, so a bag generated in-process can be followed by the model code (it
    used to end in a segmentation fault). Run in a fresh interpreter to control the order."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from pathlib import Path\n"
        "from ad_perception.sim.bag_output import generate_bag\n"
        f"generate_bag(Path({str(tmp_path / 'bag')!r}), 1, 5, 'mcap', 'default', "
        "progress=False, workers=1)\n"
        "import torchvision.models.resnet\n"
        "print('survived')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "survived" in result.stdout, result.stderr[-2000:]
