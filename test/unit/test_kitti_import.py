"""KITTI adapter on a tiny fixture written by the test in KITTI's own conventions."""

import cv2
import numpy as np
import pytest

from ad_perception.cli import main
from ad_perception.data import bag_io, kitti

CALIB = "\n".join([  # KITTI object training frame 000000's calibration
    "P0: 7.215377e+02 0 6.095593e+02 0 0 7.215377e+02 1.728540e+02 0 0 0 1 0",
    "P2: 7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 "
    "2.163791e-01 0 0 1 2.745884e-03",
    "R0_rect: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 "
    "-4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01",
    "Tr_velo_to_cam: 7.533745e-03 -9.999714e-01 -6.166020e-04 -4.069766e-03 1.480249e-02 "
    "7.280733e-04 -9.998902e-01 -7.631618e-02 9.998621e-01 7.523790e-03 1.480755e-02 "
    "-2.717806e-01",
]) + "\n"
# lidar-frame truth: class, centre, (length, width, height), yaw
TRUTH = [
    ("Car", (15.0, 2.0, -0.9), (4.2, 1.8, 1.5), 0.4),
    ("Pedestrian", (9.0, -3.0, -0.8), (0.6, 0.5, 1.7), -2.0),
    ("Truck", (30.0, 5.0, -0.2), (8.0, 2.5, 3.2), 3.0),
]


def _label_line(kitti_type, center, size, yaw, calib):
    """Forward KITTI convention: bottom-centre in camera rect, ry about camera y."""
    T = calib.T_rect_from_velo
    length, width, height = size
    xyz = T[:3, :3] @ np.array(center) + T[:3, 3] + [0.0, height / 2, 0.0]  # rect y is down
    forward = T[:3, :3] @ np.array([np.cos(yaw), np.sin(yaw), 0.0])
    ry = np.arctan2(-forward[2], forward[0])
    return (
        f"{kitti_type} 0.00 1 0.0 100.0 120.0 300.0 250.0 {height:.6f} {width:.6f} "
        f"{length:.6f} {xyz[0]:.6f} {xyz[1]:.6f} {xyz[2]:.6f} {ry:.6f}"
    )


@pytest.fixture()
def kitti_root(tmp_path):
    root = tmp_path / "kitti" / "training"
    for sub in ("image_2", "velodyne", "label_2", "calib"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    calib_path = root / "calib" / "000000.txt"
    calib_path.write_text(CALIB)
    calib = kitti.read_calib(calib_path)
    for name in ("000000", "000001"):
        (root / "calib" / f"{name}.txt").write_text(CALIB)
        cv2.imwrite(
            str(root / "image_2" / f"{name}.png"),
            rng.integers(0, 255, (375, 1242, 3), dtype=np.uint8),
        )
        points = [rng.uniform([-40, -40, -1.7, 0], [40, 40, 2, 1], (2000, 4))]
        for _, center, size, yaw in TRUTH:  # points strictly inside each box
            local = rng.uniform(-0.48, 0.48, (300, 3)) * size
            c, s = np.cos(yaw), np.sin(yaw)
            xy = local[:, :2] @ np.array([[c, s], [-s, c]])
            inside = np.column_stack([xy, local[:, 2]]) + center
            points.append(np.column_stack([inside, rng.uniform(0, 1, len(inside))]))
        np.concatenate(points).astype("<f4").tofile(root / "velodyne" / f"{name}.bin")
        lines = [_label_line(t, c, s, y, calib) for t, c, s, y in TRUTH]
        lines.append("DontCare -1 -1 -10 500 150 520 170 -1 -1 -1 -1000 -1000 -1000 -10")
        (root / "label_2" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root.parent


def test_import_round_trips_boxes_into_the_lidar_frame(kitti_root, tmp_path):
    out = tmp_path / "bag"
    assert main(["import", "kitti", str(kitti_root), "--out", str(out)]) == 0
    msgs = {}
    for topic, _, msg in bag_io.read_messages(out):
        msgs.setdefault(topic, []).append(msg)
    assert len(msgs["/ground_truth/objects"]) == 2
    boxes = bag_io.boxes3d_from_msg(msgs["/ground_truth/objects"][0])
    assert list(boxes.class_ids) == ["car", "pedestrian", "truck"]
    for k, (_, center, size, yaw) in enumerate(TRUTH):
        np.testing.assert_allclose(boxes.centers[k], center, atol=1e-4)
        np.testing.assert_allclose(boxes.sizes[k], size, atol=1e-4)
        # ry drops the ~0.01 rad tilt between rect and velo frames: 2 mrad is that residue
        assert abs(np.angle(np.exp(1j * (boxes.yaws[k] - yaw)))) < 2e-3
    cloud = bag_io.pointcloud2_to_cloud(msgs["/sensing/lidar/top/points"][0])
    counts = kitti.points_in_boxes(cloud.xyz.astype(np.float64), boxes)
    assert (counts >= 300).all()
    image = bag_io.image_to_array(msgs["/sensing/camera/front/image_raw"][0])
    assert image.shape == (375, 1242, 3)
    dets = bag_io.detections2d_from_msg(msgs["/ground_truth/camera/front/boxes"][0])
    np.testing.assert_allclose(dets.boxes[0], [100, 120, 300, 250])
    extras = bag_io.read_sidecar(out)[1]["objects"]
    assert extras[0]["occlusion"] == 1 and extras[0]["lidar_points"] >= 300


def test_tf_static_reproduces_kitti_projection(kitti_root, tmp_path):
    """A lidar point projected with /tf_static + CameraInfo.K lands where P2·R0·Tr puts it."""
    out = tmp_path / "bag"
    assert main(["import", "kitti", str(kitti_root), "--out", str(out)]) == 0
    tf = bag_io.read_tf_static(out)
    T = bag_io.transform_between(tf, "camera_front_optical", "lidar_top")
    info = next(m for _, _, m in bag_io.read_messages(out, ["/sensing/camera/front/camera_info"]))
    K = bag_io.camera_matrix(info)
    calib = kitti.read_calib(kitti_root / "training" / "calib" / "000000.txt")
    point = np.array([20.0, 3.0, -0.5])
    cam = T[:3, :3] @ point + T[:3, 3]
    ours = (K @ cam)[:2] / cam[2]
    rect = calib.T_rect_from_velo @ np.append(point, 1.0)
    theirs = calib.P2 @ rect
    np.testing.assert_allclose(ours, theirs[:2] / theirs[2], atol=1e-6)
