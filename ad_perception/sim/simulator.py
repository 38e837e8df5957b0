"""One frame of the embedded world: poses -> camera render + lidar sweep + ground truth.

``Simulator.frame(i)`` is ROS-free and returns arrays, so tests check geometry directly and
the bag writer only packs what it is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ad_perception import __version__
from ad_perception.core.geometry import invert_transform, make_transform
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.sim import labels
from ad_perception.sim.camera_render import FLOATS_PER_VERTEX, CameraRenderer, vertex_array
from ad_perception.sim.lidar import LidarCaster, LidarScan
from ad_perception.sim.meshes import Mesh, concatenate
from ad_perception.sim.scenario import FRAME_PERIOD_S, VISIBLE_RANGE_M, build_scenario
from ad_perception.sim.sensors import (
    T_BASE_FROM_CAMERA,
    T_BASE_FROM_LIDAR,
    CameraSpec,
    LidarSpec,
)

GT_RANGE_M = 100.0


@dataclass
class SimFrame:
    index: int
    rgb: np.ndarray  # (H, W, 3) uint8
    instance_image: np.ndarray  # (H, W) int32, 0 = background
    scan: LidarScan
    boxes_lidar: Boxes3D  # every actor within GT_RANGE_M, in the lidar frame
    boxes_2d: Detections2D  # visible actors, ids are track ids
    extras: list[dict]  # per actor in boxes_lidar: occlusion, truncation, points, ...
    T_world_from_base: np.ndarray
    actor_vertices_lidar: dict[int, np.ndarray]  # track id -> mesh vertices in lidar frame


def _yaw_transform(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return make_transform(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]), (x, y, z))


class Simulator:
    def __init__(
        self,
        seed: int,
        frames: int,
        camera: CameraSpec | None = None,
        lidar: LidarSpec | None = None,
        lidar_noise: bool = True,
    ) -> None:
        self.seed, self.frames = seed, frames
        self.camera = camera or CameraSpec()
        self.lidar_spec = lidar or LidarSpec()
        self.scenario = build_scenario(seed, frames)
        self.K = self.camera.K
        self._lidar_noise = lidar_noise
        world = self.scenario.world
        self.renderer = CameraRenderer(self.camera.width, self.camera.height, self.K)
        self.renderer.set_static(world.static_mesh)
        self.renderer.set_lighting(self.scenario.lighting)
        self.lidar = LidarCaster(self.lidar_spec, world.static_mesh)
        self._gl_local = [
            vertex_array(a.mesh, np.full(a.mesh.n_faces, a.track_id)) for a in self.scenario.actors
        ]

    def metadata(self) -> dict:
        s = self.scenario
        return {
            "seed": self.seed,
            "frames": self.frames,
            "version": __version__,
            "generator": "ad_perception.sim",
            "ego_speed_mps": round(s.ego_speed, 4),
            "intersection": s.world.intersection_s is not None,
            "actors": len(s.actors),
        }

    def _dynamic(self, poses: np.ndarray, near: np.ndarray):
        meshes, gl_parts, instance = [], [], []
        for i in near:
            actor, (x, y, z, yaw) = self.scenario.actors[i], poses[i]
            T = _yaw_transform(x, y, z, yaw)
            meshes.append(actor.mesh.transformed(T[:3, :3], T[:3, 3]))
            gl = self._gl_local[i].copy()
            gl[:, 0:3] = gl[:, 0:3] @ T[:3, :3].T.astype(np.float32) + T[:3, 3].astype(np.float32)
            gl[:, 3:6] = gl[:, 3:6] @ T[:3, :3].T.astype(np.float32)
            gl_parts.append(gl)
            instance.append(np.full(actor.mesh.n_faces, actor.track_id, np.int32))
        if not meshes:
            return Mesh.empty(), np.zeros((0, FLOATS_PER_VERTEX), np.float32), np.zeros(0, int)
        return concatenate(meshes), np.concatenate(gl_parts), np.concatenate(instance)

    def frame(
        self,
        index: int,
        rng: np.random.Generator | None = None,
        stages: dict[str, float] | None = None,
    ) -> SimFrame:
        """Frame ``index``; ``rng`` drives sensor noise (defaults to one derived from the seed
        and the index, so any frame can be regenerated alone)."""
        if rng is None:
            rng = np.random.default_rng([self.seed, index])
        t = index * FRAME_PERIOD_S
        s = self.scenario
        ego_xyz, ego_yaw = s.ego_pose(t)
        T_world_from_base = _yaw_transform(*ego_xyz, ego_yaw)
        T_world_from_lidar = T_world_from_base @ T_BASE_FROM_LIDAR
        T_world_from_cam = T_world_from_base @ T_BASE_FROM_CAMERA
        poses = s.actor_poses(t)
        distance = np.linalg.norm(poses[:, :2] - ego_xyz[:2], axis=1)
        near = np.flatnonzero(distance < VISIBLE_RANGE_M)
        clock = _StageClock(stages)
        dyn_mesh, dyn_gl, dyn_instance = self._dynamic(poses, near)
        clock.lap("scene")
        rgb, ids = self.renderer.render(T_world_from_cam, dyn_gl)
        clock.lap("camera_render")
        scan = self.lidar.scan(
            T_world_from_lidar, dyn_mesh, dyn_instance, rng if self._lidar_noise else None
        )
        clock.lap("lidar_raycast")
        boxes_2d_px, counts = labels.visible_boxes(ids)
        point_counts = np.bincount(scan.instance, minlength=len(s.actors) + 1)
        T_lidar_from_world = invert_transform(T_world_from_lidar)
        T_cam_from_world = invert_transform(T_world_from_cam)
        # Unoccluded silhouettes of the actors that get ground truth, one occlusion query each
        # over their slice of the dynamic vertices the camera pass just drew.
        face_offsets = np.cumsum([0] + [s.actors[i].mesh.n_faces for i in near])
        labelled = [k for k, i in enumerate(near) if distance[i] <= GT_RANGE_M]
        silhouettes = dict(
            zip(
                labelled,
                self.renderer.silhouette_pixels(
                    [
                        (3 * int(face_offsets[k]), 3 * int(face_offsets[k + 1] - face_offsets[k]))
                        for k in labelled
                    ]
                ),
                strict=True,
            )
        )
        rows, extras, boxes2d, vertices_lidar = [], [], [], {}
        for k, i in enumerate(near):
            if distance[i] > GT_RANGE_M:
                continue
            actor = s.actors[i]
            faces = dyn_mesh.faces[face_offsets[k] : face_offsets[k + 1]]
            x, y, z, yaw = poses[i]
            T_world_from_actor = _yaw_transform(x, y, z, yaw)
            centre_world = (
                T_world_from_actor[:3, :3] @ actor.box_center + T_world_from_actor[:3, 3]
            )
            world_box = Boxes3D(
                centre_world[None],
                actor.size[None],
                [yaw],
                class_ids=[actor.class_id],
                ids=[str(actor.track_id)],
            )
            vis = labels.object_visibility(
                actor.track_id,
                silhouettes[k],
                world_box.corners()[0],
                T_cam_from_world,
                self.K,
                self.camera.width,
                self.camera.height,
                boxes_2d_px,
                counts,
            )
            rows.append(world_box.transformed(T_lidar_from_world, "lidar"))
            verts = np.unique(faces)
            vertices_lidar[actor.track_id] = (
                dyn_mesh.vertices[verts] @ T_lidar_from_world[:3, :3].T + T_lidar_from_world[:3, 3]
            )
            box_h = 0.0
            if vis.box_2d is not None:
                boxes2d.append((vis.box_2d, actor.class_id, str(actor.track_id)))
                box_h = float(vis.box_2d[3] - vis.box_2d[1])
            extras.append(
                {
                    "id": str(actor.track_id),
                    "class_id": actor.class_id,
                    "occlusion": vis.occlusion_level,
                    "occlusion_ratio": round(vis.occlusion_ratio, 4),
                    "truncation": round(vis.truncation, 4),
                    "visible_pixels": vis.visible_pixels,
                    "unoccluded_pixels": vis.unoccluded_pixels,
                    "lidar_points": int(point_counts[actor.track_id]),
                    "box_height_px": box_h,
                    "in_camera": vis.box_2d is not None,
                }
            )
        boxes_lidar = _stack(rows)
        dets = (
            Detections2D(
                np.array([b[0] for b in boxes2d]),
                np.ones(len(boxes2d)),
                [b[1] for b in boxes2d],
                [b[2] for b in boxes2d],
            )
            if boxes2d
            else Detections2D.empty()
        )
        clock.lap("labels")
        return SimFrame(
            index, rgb, ids, scan, boxes_lidar, dets, extras, T_world_from_base, vertices_lidar
        )

    def close(self) -> None:
        self.renderer.release()


class _StageClock:
    def __init__(self, stages: dict[str, float] | None) -> None:
        self._stages, self._last = stages, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self._stages is not None:
            self._stages[name] = self._stages.get(name, 0.0) + now - self._last
        self._last = now


def _stack(rows: list[Boxes3D]) -> Boxes3D:
    if not rows:
        return Boxes3D.empty()
    return Boxes3D(
        np.concatenate([r.centers for r in rows]),
        np.concatenate([r.sizes for r in rows]),
        np.concatenate([r.yaws for r in rows]),
        class_ids=np.concatenate([r.class_ids for r in rows]),
        ids=np.concatenate([r.ids for r in rows]),
    )
