"""Road users: size distributions and simple part-based shapes per class.

Shapes are unions of boxes that exactly fill the sampled length × width × height, so the
ground-truth 3D box is the tight bound of the mesh (computed from the vertices, not assumed)
and the silhouette still differs from a box the way real objects do (cabins, legs, wheels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ad_perception.sim.meshes import GLASS, PLAIN, TYRE, Mesh, box, concatenate

CAR_PAINT = np.array(
    [
        [0.92, 0.92, 0.92],
        [0.08, 0.08, 0.09],
        [0.62, 0.63, 0.66],
        [0.35, 0.36, 0.38],
        [0.70, 0.08, 0.07],
        [0.10, 0.20, 0.55],
        [0.10, 0.30, 0.18],
        [0.76, 0.70, 0.55],
        [0.85, 0.65, 0.10],
        [0.45, 0.10, 0.35],
    ]
)
SKIN = np.array([[0.95, 0.80, 0.68], [0.80, 0.60, 0.45], [0.55, 0.38, 0.26], [0.35, 0.24, 0.16]])
DARK_GLASS = (0.10, 0.13, 0.16)
TYRE_BLACK = (0.05, 0.05, 0.05)


@dataclass
class Actor:
    """One road user; ``mesh`` is in the actor frame (x forward, origin on the ground at the
    box centre), ``box_center`` and ``size`` are the tight bounds of that mesh."""

    track_id: int
    class_id: str
    mesh: Mesh
    size: np.ndarray  # length, width, height
    box_center: np.ndarray  # in the actor frame


def _jitter(rng: np.random.Generator, color, amount: float = 0.06) -> np.ndarray:
    return np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def _car(rng: np.random.Generator) -> list[Mesh]:
    length, width, height = rng.uniform(3.8, 5.0), rng.uniform(1.6, 2.0), rng.uniform(1.4, 1.7)
    paint = _jitter(rng, CAR_PAINT[rng.integers(len(CAR_PAINT))], 0.04)
    wheel_r, clearance = 0.32, 0.18
    body_top = height * rng.uniform(0.52, 0.6)
    cabin_len = length * rng.uniform(0.45, 0.58)
    cabin_x = length * rng.uniform(-0.12, 0.0)
    inset = 0.08
    parts = [
        box((0, 0, (clearance + body_top) / 2), (length, width, body_top - clearance), paint),
        box(
            (cabin_x, 0, (body_top + height) / 2),
            (cabin_len, width - 2 * inset, height - body_top),
            DARK_GLASS,
            GLASS,
        ),
        box((cabin_x, 0, height - 0.04), (cabin_len * 0.8, width - 2 * inset - 0.1, 0.08), paint),
        box((length / 2 - 0.02, 0, body_top - 0.15), (0.04, width * 0.8, 0.12), (0.9, 0.9, 0.8)),
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            center = (sx * (length / 2 - 0.85), sy * (width / 2 - 0.13), wheel_r)
            parts.append(box(center, (2 * wheel_r, 0.24, 2 * wheel_r), TYRE_BLACK, TYRE))
    return parts


def _truck(rng: np.random.Generator) -> list[Mesh]:
    length, width, height = rng.uniform(6.0, 10.0), rng.uniform(2.3, 2.6), rng.uniform(2.8, 3.8)
    cab_color = _jitter(rng, CAR_PAINT[rng.integers(len(CAR_PAINT))], 0.04)
    cargo_color = _jitter(
        rng,
        [(0.9, 0.9, 0.88), (0.7, 0.7, 0.72), (0.2, 0.35, 0.6), (0.8, 0.45, 0.1)][rng.integers(4)],
        0.05,
    )
    cab_len, wheel_r = rng.uniform(1.8, 2.3), 0.5
    cab_h = min(height, rng.uniform(2.6, 3.0))
    cargo_len = length - cab_len - 0.2
    front = length / 2
    parts = [
        box(
            (front - cab_len / 2, 0, 0.45 + (cab_h * 0.62 - 0.45) / 2),
            (cab_len, width - 0.05, cab_h * 0.62 - 0.45),
            cab_color,
        ),
        box(
            (front - cab_len / 2 - 0.05, 0, (cab_h * 0.62 + cab_h) / 2),
            (cab_len - 0.1, width - 0.1, cab_h * 0.38),
            DARK_GLASS,
            GLASS,
        ),
        box(
            (-front + cargo_len / 2, 0, 0.9 + (height - 0.9) / 2),
            (cargo_len, width, height - 0.9),
            cargo_color,
        ),
        box((-front + cargo_len / 2, 0, 0.7), (cargo_len, width * 0.8, 0.4), (0.15, 0.15, 0.15)),
    ]
    axles = [front - 1.2, -front + 1.3] + ([-front + 2.5] if length > 8 else [])
    for ax in axles:
        for sy in (-1, 1):
            parts.append(
                box(
                    (ax, sy * (width / 2 - 0.18), wheel_r),
                    (2 * wheel_r, 0.36, 2 * wheel_r),
                    TYRE_BLACK,
                    TYRE,
                )
            )
    return parts


def _person(
    rng: np.random.Generator,
    height: float,
    depth: float,
    width: float,
    z0: float = 0.0,
    seated: bool = False,
) -> list[Mesh]:
    shirt = rng.uniform(0.05, 0.95, 3)
    pants = _jitter(
        rng, [(0.1, 0.12, 0.25), (0.15, 0.15, 0.15), (0.4, 0.35, 0.3)][rng.integers(3)]
    )
    skin = SKIN[rng.integers(len(SKIN))]
    head = 0.22
    leg_h = 0.0 if seated else height * 0.47
    torso_h = height - leg_h - head
    torso_w = width * 0.62
    parts = [
        box((0, 0, z0 + leg_h + torso_h / 2), (depth * 0.55, torso_w, torso_h), shirt),
        box((0.0, 0, z0 + height - head / 2), (0.2, 0.18, head), skin),
        box((0, width / 2 - 0.05, z0 + leg_h + torso_h * 0.55), (0.1, 0.1, torso_h * 0.85), shirt),
        box(
            (0, -width / 2 + 0.05, z0 + leg_h + torso_h * 0.55), (0.1, 0.1, torso_h * 0.85), shirt
        ),
    ]
    if not seated:
        stride = rng.uniform(-1.0, 1.0) * (depth - 0.14) / 2
        for sy, sx in ((1, stride), (-1, -stride)):
            parts.append(box((sx, sy * 0.09, leg_h / 2), (0.14, 0.14, leg_h), pants))
    return parts


def _pedestrian(rng: np.random.Generator) -> list[Mesh]:
    height, depth, width = rng.uniform(1.5, 1.9), rng.uniform(0.45, 0.65), rng.uniform(0.5, 0.7)
    return _person(rng, height, depth, width)


def _cyclist(rng: np.random.Generator) -> list[Mesh]:
    length, width, height = rng.uniform(1.6, 1.8), rng.uniform(0.55, 0.65), rng.uniform(1.6, 1.8)
    frame_color = rng.uniform(0.05, 0.95, 3)
    wheel_d = 0.68
    parts = [
        box(
            (length / 2 - wheel_d / 2, 0, wheel_d / 2), (wheel_d, 0.06, wheel_d), TYRE_BLACK, TYRE
        ),
        box(
            (-length / 2 + wheel_d / 2, 0, wheel_d / 2), (wheel_d, 0.06, wheel_d), TYRE_BLACK, TYRE
        ),
        box((0, 0, 0.62), (length - wheel_d, 0.05, 0.06), frame_color),
        box((0.05, 0, 0.48), (0.05, 0.05, 0.3), frame_color),
        box((length / 2 - wheel_d / 2 - 0.05, 0, 0.9), (0.06, width, 0.04), (0.2, 0.2, 0.2)),
    ]
    parts += _person(rng, height - 0.75, 0.45, width * 0.9, z0=0.75, seated=True)
    shirt_legs = (0.15, 0.15, 0.2)
    for sy in (-1, 1):
        parts.append(box((0.05, sy * 0.12, 0.55), (0.14, 0.12, 0.4), shirt_legs))
    return parts


BUILDERS = {"car": _car, "truck": _truck, "pedestrian": _pedestrian, "cyclist": _cyclist}


def make_actor(class_id: str, track_id: int, rng: np.random.Generator) -> Actor:
    """A new actor of ``class_id`` with its tight box taken from the mesh vertices."""
    mesh = concatenate(BUILDERS[class_id](rng))
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    return Actor(track_id, class_id, mesh, hi - lo, (lo + hi) / 2)


__all__ = ["PLAIN", "Actor", "make_actor"]
