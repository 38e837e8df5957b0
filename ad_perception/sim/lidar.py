"""Spinning lidar by ray casting with embree (embreex, as trimesh uses it).

The static world's BVH is built once per drive; only the actors near the ego are rebuilt per
frame, and each ray keeps the nearer of the two hits. The per-face instance table turns the hit
triangle into a per-point label, which is what makes the point-in-box ground truth exact.
Motion during the sweep is not modelled: every point belongs to the frame instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ad_perception.sim.meshes import REFLECTIVITY, Mesh
from ad_perception.sim.sensors import LidarSpec


@dataclass
class LidarScan:
    """Points in the lidar frame with per-point channels; ``instance`` 0 is static world."""

    xyz: np.ndarray  # (N, 3) float32
    intensity: np.ndarray  # (N,) float32 in 0..1
    ring: np.ndarray  # (N,) uint16
    instance: np.ndarray  # (N,) int32


def _scene(mesh: Mesh):
    """An embree scene of the mesh's triangles (float32, as embree stores them)."""
    try:
        from embreex import mesh_construction, rtcore_scene
    except ImportError as err:
        raise RuntimeError("the lidar ray caster needs the embreex package") from err
    scene = rtcore_scene.EmbreeScene()
    mesh_construction.TriangleMesh(scene, mesh.vertices[mesh.faces].astype(np.float32))
    return scene


def _first_hits(scene, origin: np.ndarray, directions: np.ndarray):
    """Distance (inf where nothing is hit) and face index (-1) per ray; directions are unit
    vectors, so embree's ray parameter is the range."""
    n = len(directions)
    if scene is None:
        return np.full(n, np.inf), np.full(n, -1, dtype=np.int64)
    origins = np.ascontiguousarray(np.broadcast_to(origin.astype(np.float32), directions.shape))
    result = scene.run(origins, directions, output=1)
    face = result["primID"].astype(np.int64)
    distance = np.where(face >= 0, result["tfar"].astype(np.float64), np.inf)
    return distance, face


class LidarCaster:
    def __init__(self, spec: LidarSpec, static_mesh: Mesh) -> None:
        self.spec = spec
        self._directions, self._rings = spec.ray_directions()
        self._static = _scene(static_mesh)
        self._static_normals = static_mesh.face_normals()
        self._static_reflectivity = REFLECTIVITY[static_mesh.face_materials]

    def scan(
        self,
        T_world_from_lidar: np.ndarray,
        dynamic_mesh: Mesh,
        dynamic_instance: np.ndarray,
        rng: np.random.Generator | None,
    ) -> LidarScan:
        """One sweep; ``rng`` draws range noise and dropout (None gives the ideal sensor)."""
        rotation, origin = T_world_from_lidar[:3, :3], T_world_from_lidar[:3, 3]
        directions_world = (self._directions @ rotation.T).astype(np.float32)
        dist_s, face_s = _first_hits(self._static, origin, directions_world)
        dynamic = _scene(dynamic_mesh) if dynamic_mesh.n_faces else None
        dist_d, face_d = _first_hits(dynamic, origin, directions_world)
        use_dynamic = dist_d < dist_s
        distance = np.where(use_dynamic, dist_d, dist_s)
        keep = (distance >= self.spec.min_range) & (distance <= self.spec.max_range)
        if rng is not None and self.spec.dropout > 0:
            keep &= rng.random(len(distance)) >= self.spec.dropout
        idx = np.flatnonzero(keep)
        dyn = use_dynamic[idx]
        normals = np.empty((len(idx), 3))
        reflectivity = np.empty(len(idx), dtype=np.float32)
        instance = np.zeros(len(idx), dtype=np.int32)
        s_idx, d_idx = idx[~dyn], idx[dyn]
        normals[~dyn] = self._static_normals[face_s[s_idx]]
        reflectivity[~dyn] = self._static_reflectivity[face_s[s_idx]]
        if dynamic is not None and len(d_idx):
            d_normals = dynamic_mesh.face_normals()
            normals[dyn] = d_normals[face_d[d_idx]]
            reflectivity[dyn] = REFLECTIVITY[dynamic_mesh.face_materials[face_d[d_idx]]]
            instance[dyn] = dynamic_instance[face_d[d_idx]]
        r = distance[idx]
        cos_incidence = np.abs(np.einsum("ij,ij->i", normals, directions_world[idx]))
        intensity = reflectivity * (0.3 + 0.7 * cos_incidence) / (1.0 + (r / 120.0) ** 2)
        if rng is not None:
            r = r + rng.normal(0.0, self.spec.range_noise_std, len(r))
            intensity = intensity * rng.uniform(0.9, 1.1, len(r))
        xyz = self._directions[idx] * r[:, None]
        return LidarScan(
            xyz.astype(np.float32),
            np.clip(intensity, 0, 1).astype(np.float32),
            self._rings[idx],
            instance,
        )
