"""Geometric accuracy of the embedded world's ground truth (no ROS import)."""

import numpy as np
import pytest

from ad_perception.core.geometry import invert_transform, transform_points
from ad_perception.sim.sensors import T_BASE_FROM_CAMERA, T_BASE_FROM_LIDAR, LidarSpec
from ad_perception.sim.simulator import Simulator

SEED = 11


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator(SEED, frames=30)
    yield simulator
    simulator.close()


@pytest.fixture(scope="module")
def frames(sim):
    return [sim.frame(i) for i in (0, 15)]


def _inside(points: np.ndarray, center, size, yaw, tolerance: float) -> np.ndarray:
    local = points - center
    c, s = np.cos(-yaw), np.sin(-yaw)
    x = local[:, 0] * c - local[:, 1] * s
    y = local[:, 0] * s + local[:, 1] * c
    half = np.asarray(size) / 2 + tolerance
    return (np.abs(x) <= half[0]) & (np.abs(y) <= half[1]) & (np.abs(local[:, 2]) <= half[2])


def _inside_fraction(frame, tolerance: float) -> tuple[int, int]:
    index = {int(i): k for k, i in enumerate(frame.boxes_lidar.ids)}
    inside = total = 0
    for track_id in np.unique(frame.scan.instance[frame.scan.instance > 0]):
        k = index.get(int(track_id))
        if k is None:  # beyond the ground-truth range
            continue
        points = frame.scan.xyz[frame.scan.instance == track_id].astype(np.float64)
        b = frame.boxes_lidar
        inside += int(_inside(points, b.centers[k], b.sizes[k], b.yaws[k], tolerance).sum())
        total += len(points)
    return inside, total


def test_labelled_lidar_points_lie_in_their_box(frames):
    """With range noise (sigma 2 cm) a 5 cm margin (2.5 sigma) is allowed."""
    inside, total = map(sum, zip(*(_inside_fraction(f, 0.05) for f in frames), strict=True))
    assert total > 500
    assert inside / total >= 0.95, (inside, total)


def test_ideal_lidar_points_lie_strictly_in_their_box(sim):
    ideal = Simulator.__new__(Simulator)
    ideal.__dict__.update(sim.__dict__)
    ideal._lidar_noise = False
    frame = ideal.frame(5)
    inside, total = _inside_fraction(frame, 0.002)
    assert total > 200
    assert inside / total >= 0.999, (inside, total)


def test_visible_box_matches_projected_mesh_for_unoccluded_objects(sim, frames):
    """Projected mesh vertices (not box corners: a car's cabin is narrower than its box)
    bound the same silhouette the instance render fills."""
    T_cam_from_lidar = invert_transform(T_BASE_FROM_CAMERA) @ T_BASE_FROM_LIDAR
    checked = 0
    for frame in frames:
        extras = {e["id"]: e for e in frame.extras}
        for k, track in enumerate(frame.boxes_2d.ids):
            e = extras[track]
            if e["occlusion_ratio"] > 0.005 or e["truncation"] > 0 or e["visible_pixels"] < 200:
                continue
            cam = transform_points(frame.actor_vertices_lidar[int(track)], T_cam_from_lidar)
            uvw = cam @ sim.K.T
            uv = uvw[:, :2] / uvw[:, 2:]
            projected = np.array([*uv.min(axis=0), *uv.max(axis=0)])
            np.testing.assert_allclose(
                frame.boxes_2d.boxes[k], projected, atol=2.0, err_msg=f"track {track}"
            )
            checked += 1
    assert checked >= 3


def test_projected_3d_box_encloses_visible_box(sim, frames):
    """The 3D box is tight around the mesh, so its projection contains the 2D box."""
    T_cam_from_lidar = invert_transform(T_BASE_FROM_CAMERA) @ T_BASE_FROM_LIDAR
    for frame in frames:
        extras = {e["id"]: e for e in frame.extras}
        ids = list(frame.boxes_lidar.ids)
        for k, track in enumerate(frame.boxes_2d.ids):
            if extras[track]["truncation"] > 0:
                continue
            corners = frame.boxes_lidar.corners()[ids.index(track)]
            uvw = transform_points(corners, T_cam_from_lidar) @ sim.K.T
            uv = uvw[:, :2] / uvw[:, 2:]
            box = frame.boxes_2d.boxes[k]
            assert (box[:2] >= uv.min(axis=0) - 1.0).all() and (
                box[2:] <= uv.max(axis=0) + 1.0
            ).all()


def test_lidar_layout(frames):
    spec = LidarSpec()
    scan = frames[0].scan
    assert scan.ring.max() == spec.beams - 1
    assert 0.5 * spec.beams * spec.azimuth_steps < len(scan.xyz) <= spec.beams * spec.azimuth_steps
    assert 0.0 <= scan.intensity.min() and scan.intensity.max() <= 1.0
    ranges = np.linalg.norm(scan.xyz, axis=1)
    assert ranges.max() <= spec.max_range + 0.2


def test_occlusion_and_truncation_are_recorded(frames):
    extras = [e for f in frames for e in f.extras]
    levels = {e["occlusion"] for e in extras}
    assert {0, 3} <= levels and len(levels) >= 3
    assert any(0 < e["truncation"] < 1 for e in extras)
    assert all(e["lidar_points"] >= 0 for e in extras)


def test_renderer_failure_names_the_debian_packages(monkeypatch):
    import moderngl

    from ad_perception.sim.camera_render import CameraRenderer
    from ad_perception.sim.sensors import CameraSpec

    def no_egl(**kwargs):
        raise moderngl.Error("eglGetDisplay failed")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(RuntimeError, match="libegl1 libegl-mesa0 libgl1-mesa-dri"):
        CameraRenderer(64, 48, CameraSpec(64, 48).K)


def test_gl_silhouettes_match_the_numpy_rasteriser(sim, frames):
    """The unoccluded pixel counts from the GL occlusion queries agree with rasterising the
    object's own triangles in numpy (edge pixels may differ by the tie-breaking rule)."""
    from ad_perception.sim import labels
    from ad_perception.sim.simulator import _yaw_transform

    s = sim.scenario
    actors = {a.track_id: (k, a) for k, a in enumerate(s.actors)}
    checked = 0
    for frame in frames:
        t = frame.index * 0.1
        T_cam_from_world = invert_transform(frame.T_world_from_base @ T_BASE_FROM_CAMERA)
        poses = s.actor_poses(t)
        for e in frame.extras:
            if e["unoccluded_pixels"] < 200 or e["truncation"] > 0:
                continue
            k, actor = actors[int(e["id"])]
            T = T_cam_from_world @ _yaw_transform(*poses[k])
            tri = transform_points(actor.mesh.vertices[actor.mesh.faces].reshape(-1, 3), T)
            ref = labels.unoccluded_pixel_count(tri.reshape(-1, 3, 3), sim.K, 1280, 720, 10**8)
            assert abs(e["unoccluded_pixels"] - ref) <= max(8, 0.02 * ref), (e, ref)
            checked += 1
    assert checked >= 5
