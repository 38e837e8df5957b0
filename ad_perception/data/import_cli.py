"""``ad-perception import kitti PATH --out DIR``: a KITTI object-detection folder as one bag
in the layout the simulator writes (same topics, frames, ground truth and sidecar)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ad_perception import __version__
from ad_perception.core.geometry import invert_transform, make_transform
from ad_perception.data import kitti, msg_build
from ad_perception.data.bag_writer import BagWriter, write_sidecar

EPOCH_NS = 1_700_000_000 * 10**9
CAMERA_FRAME, LIDAR_FRAME = "camera_front_optical", "lidar_top"
TOPICS = {
    "image": "/sensing/camera/front/image_raw",
    "info": "/sensing/camera/front/camera_info",
    "cloud": "/sensing/lidar/top/points",
    "gt3d": "/ground_truth/objects",
    "gt2d": "/ground_truth/camera/front/boxes",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["kitti"], help="dataset layout to import")
    parser.add_argument(
        "path", type=Path, help="KITTI object folder (containing training/) or training/ itself"
    )
    parser.add_argument("--out", type=Path, required=True, help="bag folder to create")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--max-frames", type=int, default=None)


def import_kitti(
    path: Path, out: Path, storage: str = "mcap", max_frames: int | None = None
) -> Path:
    root = path / "training" if (path / "training").is_dir() else path
    frames = kitti.frame_ids(root)[:max_frames]
    if not frames:
        raise ValueError(f"no images in {root / 'image_2'}")
    T_base_from_lidar = make_transform(np.eye(3), (0.0, 0.0, kitti.VELODYNE_HEIGHT_M))
    records: list[dict] = [
        {
            "type": "scene",
            "source": "kitti",
            "path": str(root),
            "version": __version__,
            "frames": len(frames),
        }
    ]
    with BagWriter(out, storage) as writer:
        for index, name in enumerate(frames):
            stamp = EPOCH_NS + index * 100_000_000
            calib = kitti.read_calib(root / "calib" / f"{name}.txt")
            if index == 0:  # KITTI calibrations differ per drive; the bag keeps the first
                T_base_from_cam = T_base_from_lidar @ invert_transform(calib.T_cam2_from_velo)
                writer.write(
                    "/tf_static",
                    "tf2_msgs/msg/TFMessage",
                    stamp,
                    msg_build.tf_message(
                        [
                            ("base_link", LIDAR_FRAME, T_base_from_lidar),
                            ("base_link", CAMERA_FRAME, T_base_from_cam),
                        ],
                        stamp,
                    ),
                )
            image = kitti.read_image(root / "image_2" / f"{name}.png")
            cloud = kitti.read_velodyne(root / "velodyne" / f"{name}.bin")
            label_path = root / "label_2" / f"{name}.txt"
            objects = kitti.read_labels(label_path) if label_path.exists() else []
            boxes, kept = kitti.boxes_in_velo(objects, calib, LIDAR_FRAME)
            h, w = image.shape[:2]
            writer.write(
                TOPICS["image"],
                "sensor_msgs/msg/Image",
                stamp,
                msg_build.image_msg(image, "rgb8", stamp, CAMERA_FRAME),
            )
            writer.write(
                TOPICS["info"],
                "sensor_msgs/msg/CameraInfo",
                stamp,
                msg_build.camera_info_msg(calib.K, w, h, stamp, CAMERA_FRAME),
            )
            writer.write(
                TOPICS["cloud"],
                "sensor_msgs/msg/PointCloud2",
                stamp,
                msg_build.pointcloud2_msg(cloud, stamp, LIDAR_FRAME, with_ring=False),
            )
            writer.write(
                TOPICS["gt3d"],
                "vision_msgs/msg/Detection3DArray",
                stamp,
                msg_build.detection3d_array_msg(boxes, stamp, LIDAR_FRAME),
            )
            writer.write(
                TOPICS["gt2d"],
                "vision_msgs/msg/Detection2DArray",
                stamp,
                msg_build.detection2d_array_msg(
                    kitti.boxes_2d(objects, kept), stamp, CAMERA_FRAME
                ),
            )
            counts = kitti.points_in_boxes(cloud.xyz.astype(np.float64), boxes)
            records.append(
                {
                    "type": "frame",
                    "index": index,
                    "kitti_frame": name,
                    "stamp_ns": stamp,
                    "objects": [
                        {
                            "id": str(i),
                            "class_id": kitti.KITTI_CLASSES[objects[i].kitti_type],
                            "occlusion": objects[i].occlusion,
                            "truncation": objects[i].truncation,
                            "lidar_points": int(counts[k]),
                            "box_height_px": float(objects[i].box_2d[3] - objects[i].box_2d[1]),
                            "in_camera": True,
                        }
                        for k, i in enumerate(kept)
                    ],
                }
            )
    write_sidecar(out, "ground_truth_extra.jsonl", records)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        out = import_kitti(args.path, args.out, args.storage, args.max_frames)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"import: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
