"""``sim preview``: one frame of a bag drawn for a human: the camera image with ground-truth
2D boxes and lidar points projected through /tf_static + CameraInfo (so a wrong extrinsic or
intrinsic shows at a glance), beside a bird's-eye view with the 3D boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ad_perception.data import bag_io

CLASS_COLORS = {
    "car": "#1f77b4",
    "truck": "#ff7f0e",
    "pedestrian": "#d62728",
    "cyclist": "#2ca02c",
}


def _frame_messages(bag: Path, frame_index: int | None) -> dict:
    types = bag_io.topic_types(bag)
    image_topic = next(t for t, m in types.items() if m == "sensor_msgs/msg/Image")
    info_topic = next(t for t, m in types.items() if m == "sensor_msgs/msg/CameraInfo")
    cloud_topic = next(t for t, m in types.items() if m == "sensor_msgs/msg/PointCloud2")
    stamps = [t for _, t, _ in bag_io.read_messages(bag, [image_topic], raw=True)]
    if not stamps:
        raise ValueError(f"{bag} has no camera frames")
    index = len(stamps) // 2 if frame_index is None else frame_index
    stamp = stamps[min(max(index, 0), len(stamps) - 1)]
    wanted = [
        image_topic,
        info_topic,
        cloud_topic,
        "/ground_truth/objects",
        "/ground_truth/camera/front/boxes",
    ]
    chosen: dict = {}
    for topic, t, msg in bag_io.read_messages(bag, wanted):
        best = chosen.get(topic)
        if best is None or abs(t - stamp) < abs(best[0] - stamp):
            chosen[topic] = (t, msg)
    return {
        "image": chosen[image_topic][1],
        "info": chosen[info_topic][1],
        "cloud": chosen[cloud_topic][1],
        "boxes3d": chosen.get("/ground_truth/objects", (0, None))[1],
        "boxes2d": chosen.get("/ground_truth/camera/front/boxes", (0, None))[1],
    }


def write_preview(bag: Path | str, out: Path | str, frame_index: int | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon, Rectangle

    bag, out = Path(bag), Path(out)
    msgs = _frame_messages(bag, frame_index)
    image = bag_io.image_to_array(msgs["image"])
    K = bag_io.camera_matrix(msgs["info"])
    cloud = bag_io.pointcloud2_to_cloud(msgs["cloud"])
    tf = bag_io.read_tf_static(bag)
    T_cam_from_lidar = bag_io.transform_between(tf, msgs["image"].header.frame_id, cloud.frame_id)
    cam = cloud.xyz @ T_cam_from_lidar[:3, :3].T + T_cam_from_lidar[:3, 3]
    front = cam[:, 2] > 0.5
    uv = (cam[front] @ K.T)[:, :2] / cam[front, 2:3]
    h, w = image.shape[:2]
    on_image = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)

    fig, (ax_cam, ax_bev) = plt.subplots(
        1, 2, figsize=(16, 5.4), gridspec_kw={"width_ratios": [16, 9]}
    )
    ax_cam.imshow(image)
    ax_cam.scatter(
        uv[on_image, 0],
        uv[on_image, 1],
        c=cam[front][on_image, 2],
        s=0.8,
        cmap="turbo",
        vmin=0,
        vmax=60,
        alpha=0.5,
        linewidths=0,
    )
    boxes2d = bag_io.detections2d_from_msg(msgs["boxes2d"]) if msgs["boxes2d"] else None
    for k in range(len(boxes2d) if boxes2d is not None else 0):
        x0, y0, x1, y1 = boxes2d.boxes[k]
        color = CLASS_COLORS.get(str(boxes2d.class_ids[k]), "white")
        ax_cam.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.0, ec=color))
    ax_cam.set_xlim(0, w)
    ax_cam.set_ylim(h, 0)
    ax_cam.set_axis_off()
    ax_cam.set_title(f"{bag.name}: camera with GT 2D boxes and lidar points (colour = depth)")

    near = np.abs(cloud.xyz[:, 0]) < 60
    near &= np.abs(cloud.xyz[:, 1]) < 35
    ax_bev.scatter(
        cloud.xyz[near, 0],
        cloud.xyz[near, 1],
        c=cloud.xyz[near, 2],
        s=0.1,
        cmap="viridis",
        vmin=-2.0,
        vmax=2.0,
        linewidths=0,
    )
    boxes3d = bag_io.boxes3d_from_msg(msgs["boxes3d"]) if msgs["boxes3d"] else None
    if boxes3d is not None and len(boxes3d):
        corners = boxes3d.corners()[:, :4, :2]
        for k in range(len(boxes3d)):
            color = CLASS_COLORS.get(str(boxes3d.class_ids[k]), "black")
            ax_bev.add_patch(Polygon(corners[k], closed=True, fill=False, lw=1.0, ec=color))
            heading = corners[k][[0, 3]].mean(axis=0)
            ax_bev.plot(
                [boxes3d.centers[k, 0], heading[0]],
                [boxes3d.centers[k, 1], heading[1]],
                color=color,
                lw=0.8,
            )
    for name, color in CLASS_COLORS.items():
        ax_bev.plot([], [], color=color, label=name)
    ax_bev.legend(loc="upper right", fontsize=7)
    ax_bev.set_xlim(-30, 60)
    ax_bev.set_ylim(-30, 30)
    ax_bev.set_aspect("equal")
    ax_bev.set_title(f"bird's-eye view ({cloud.frame_id}, x forward), GT 3D boxes")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
