"""Triangle meshes built from boxes and strips, with per-face colour and material.

Everything in the world is made of a few primitive kinds so that one vertex layout serves both
the rasteriser (colour, normal, material, instance id per vertex) and the ray caster (faces and
a per-face instance/reflectivity table). Faces keep outward normals; winding is irrelevant
because neither consumer culls back faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Material ids select the procedural texture in the fragment shader and the lidar reflectivity.
PLAIN, ASPHALT, FACADE, GRASS, PAINT, CONCRETE, FOLIAGE, GLASS, TYRE = range(9)

REFLECTIVITY = np.array([0.35, 0.12, 0.30, 0.20, 0.80, 0.30, 0.25, 0.10, 0.05], dtype=np.float32)

_BOX_CORNERS = (
    np.array(
        [
            [-1, -1, -1],
            [1, -1, -1],
            [1, 1, -1],
            [-1, 1, -1],
            [-1, -1, 1],
            [1, -1, 1],
            [1, 1, 1],
            [-1, 1, 1],
        ],
        dtype=np.float64,
    )
    / 2.0
)
_BOX_FACES = np.array(
    [
        [0, 2, 1],
        [0, 3, 2],
        [4, 5, 6],
        [4, 6, 7],
        [0, 1, 5],
        [0, 5, 4],
        [1, 2, 6],
        [1, 6, 5],
        [2, 3, 7],
        [2, 7, 6],
        [3, 0, 4],
        [3, 4, 7],
    ],
    dtype=np.int64,
)


@dataclass
class Mesh:
    """Indexed triangles; ``face_*`` arrays have one row per face."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    face_colors: np.ndarray  # (F, 3) float32 in 0..1
    face_materials: np.ndarray  # (F,) uint8

    @classmethod
    def empty(cls) -> Mesh:
        return cls(
            np.zeros((0, 3)),
            np.zeros((0, 3), np.int64),
            np.zeros((0, 3), np.float32),
            np.zeros(0, np.uint8),
        )

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> Mesh:
        vertices = self.vertices @ rotation.T + translation
        return Mesh(vertices, self.faces, self.face_colors, self.face_materials)

    def face_normals(self) -> np.ndarray:
        tri = self.vertices[self.faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        length = np.linalg.norm(normal, axis=1, keepdims=True)
        return normal / np.maximum(length, 1e-12)


def concatenate(meshes: list[Mesh]) -> Mesh:
    """One mesh from many, re-indexing faces; keeps per-face attributes in order."""
    meshes = [m for m in meshes if m.n_faces]
    if not meshes:
        return Mesh.empty()
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.vertices for m in meshes]),
        np.concatenate([m.faces + off for m, off in zip(meshes, offsets, strict=True)]),
        np.concatenate([m.face_colors for m in meshes]),
        np.concatenate([m.face_materials for m in meshes]),
    )


def box(center, size, color, material: int = PLAIN, yaw: float = 0.0) -> Mesh:
    """An oriented box (yaw about +z) of ``size`` = (length along x, width, height)."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    vertices = (_BOX_CORNERS * np.asarray(size, dtype=np.float64)) @ rotation.T
    vertices = vertices + np.asarray(center, dtype=np.float64)
    return _with_outward_faces(vertices, _BOX_FACES.copy(), color, material)


def _with_outward_faces(vertices, faces, color, material) -> Mesh:
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outward = tri.mean(axis=1) - vertices.mean(axis=0)
    flip = np.einsum("ij,ij->i", normal, outward) < 0
    faces[flip] = faces[flip][:, ::-1]
    n = len(faces)
    return Mesh(
        vertices,
        faces,
        np.tile(np.asarray(color, np.float32), (n, 1)),
        np.full(n, material, np.uint8),
    )


def strip(
    left: np.ndarray,
    right: np.ndarray,
    color,
    material: int,
    color_jitter: np.ndarray | None = None,
) -> Mesh:
    """A ribbon of quads between two polylines (M, 3) sampled at matching stations; the
    normals face up (+z) for a horizontal ribbon, sideways for a vertical one (curbs)."""
    m = len(left)
    vertices = np.concatenate([left, right]).astype(np.float64)
    i = np.arange(m - 1)
    faces = np.concatenate(
        [np.stack([i, m + i, i + 1], 1), np.stack([i + 1, m + i, m + i + 1], 1)]
    )
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = normal[:, 2] < -1e-9
    faces[flip] = faces[flip][:, ::-1]
    colors = np.tile(np.asarray(color, np.float32), (len(faces), 1))
    if color_jitter is not None:
        colors = np.clip(colors * np.concatenate([color_jitter, color_jitter])[:, None], 0, 1)
    return Mesh(
        vertices, faces, colors.astype(np.float32), np.full(len(faces), material, np.uint8)
    )


def crown(center, radius: float, height: float, color) -> Mesh:
    """A tree crown as an octahedron-like double pyramid: cheap, yet not a box."""
    cx, cy, cz = center
    ring = np.array(
        [[np.cos(a) * radius, np.sin(a) * radius, 0.0] for a in np.linspace(0, 2 * np.pi, 7)[:-1]]
    )
    vertices = np.concatenate([[[0, 0, height / 2]], ring, [[0, 0, -height / 2]]]) + [cx, cy, cz]
    faces = []
    for k in range(6):
        a, b = 1 + k, 1 + (k + 1) % 6
        faces += [[0, a, b], [7, b, a]]
    return _with_outward_faces(vertices, np.array(faces, np.int64), color, FOLIAGE)
