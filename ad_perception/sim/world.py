"""The static world: a procedural road (straights, arcs, one crossing road) and everything
beside it (markings, curbs, sidewalks, buildings, poles, trees).

The road is described by its centreline in stations (metres along the road) so that actors
and the ego can be placed by (station, lateral offset) and always sit in a lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ad_perception.sim import meshes as M  # noqa: N812  (short: used on every line)

LANE_WIDTH = 3.5
LANE_OFFSETS = (1.75, 5.25)  # inner and outer lane centres, per direction
BIKE_OFFSET, PARKING_OFFSET = 7.9, 9.9
ROAD_HALF_WIDTH = 11.0
SIDEWALK_WIDTH, CURB_HEIGHT = 3.0, 0.15
SIDE_ROAD_Z = -0.03  # below the main road so the two surfaces never z-fight
GROUND_Z = -0.08


@dataclass
class RoadPath:
    """Centreline sampled every metre: ``xy`` (M, 2), ``heading`` (M,), stations ``s``."""

    xy: np.ndarray
    heading: np.ndarray
    s: np.ndarray

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def frame_at(self, station: np.ndarray | float):
        """Centre point, unit tangent and left normal at stations; extrapolates straight past
        both ends so actors that drive off the modelled road still move sensibly."""
        station = np.asarray(station, dtype=np.float64)
        clipped = np.clip(station, 0.0, self.length)
        heading = np.interp(clipped, self.s, np.unwrap(self.heading))
        x = np.interp(clipped, self.s, self.xy[:, 0])
        y = np.interp(clipped, self.s, self.xy[:, 1])
        tangent = np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        normal = np.stack([-tangent[..., 1], tangent[..., 0]], axis=-1)
        centre = np.stack([x, y], axis=-1) + tangent * (station - clipped)[..., None]
        return centre, tangent, normal, heading

    def offset_points(
        self, lateral: float, stations: np.ndarray | None = None, z: float = 0.0
    ) -> np.ndarray:
        stations = self.s if stations is None else stations
        centre, _, normal, _ = self.frame_at(stations)
        xy = centre + normal * lateral
        return np.column_stack([xy, np.full(len(xy), z)])


@dataclass
class World:
    path: RoadPath
    intersection_s: float | None  # station where the side road crosses, if any
    static_mesh: M.Mesh

    def near_intersection(self, stations: np.ndarray, margin: float) -> np.ndarray:
        if self.intersection_s is None:
            return np.zeros(np.shape(stations), dtype=bool)
        return np.abs(np.asarray(stations) - self.intersection_s) < margin


def make_path(rng: np.random.Generator, length: float) -> tuple[RoadPath, float | None]:
    """Alternating straights and arcs; the side road, when there is one, crosses the middle of
    a long straight so the junction geometry stays simple."""
    curvature: list[float] = []
    straights: list[tuple[int, int]] = []
    while len(curvature) < length + 1:
        n = int(rng.uniform(50, 130))
        straights.append((len(curvature), len(curvature) + n))
        curvature += [0.0] * n
        n_arc = int(rng.uniform(30, 90))
        radius = rng.uniform(70, 220) * rng.choice([-1, 1])
        curvature += [1.0 / radius] * n_arc
    count = int(length) + 1
    kappa = np.asarray(curvature[:count])
    heading = np.concatenate([[0.0], np.cumsum(kappa[:-1])]) + rng.uniform(-np.pi, np.pi)
    step = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(step[:-1], axis=0)])
    path = RoadPath(xy, heading, np.arange(count, dtype=np.float64))
    candidates = [
        (a + b) / 2 for a, b in straights if b - a >= 60 and 60 < (a + b) / 2 < count - 40
    ]
    intersection = float(rng.choice(candidates)) if candidates and rng.random() < 0.7 else None
    return path, intersection


def _dashes(
    path: RoadPath,
    stations: np.ndarray,
    lateral: float,
    width: float,
    color,
    on: float,
    off: float,
    z: float,
) -> list[M.Mesh]:
    parts = []
    start = stations[0]
    while start < stations[-1]:
        seg = np.arange(start, min(start + on, stations[-1]) + 1e-6, 1.0)
        if len(seg) >= 2:
            parts.append(
                M.strip(
                    path.offset_points(lateral + width / 2, seg, z),
                    path.offset_points(lateral - width / 2, seg, z),
                    color,
                    M.PAINT,
                )
            )
        start += on + off
    return parts


def _runs(mask: np.ndarray, stations: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of stations where ``mask`` holds (road pieces between gaps)."""
    runs, current = [], []
    for keep, s in zip(mask, stations, strict=True):
        if keep:
            current.append(s)
        elif current:
            runs.append(np.asarray(current))
            current = []
    if current:
        runs.append(np.asarray(current))
    return [r for r in runs if len(r) >= 2]


def _road_mesh(rng: np.random.Generator, path: RoadPath, junction: np.ndarray) -> list[M.Mesh]:
    s = path.s
    jitter = rng.uniform(0.85, 1.1, len(s) - 1)
    asphalt = rng.uniform(0.30, 0.42) * np.ones(3) + np.array([0.0, 0.0, 0.01])
    parts = [
        M.strip(
            path.offset_points(ROAD_HALF_WIDTH, s),
            path.offset_points(-ROAD_HALF_WIDTH, s),
            asphalt,
            M.ASPHALT,
            jitter,
        )
    ]
    white, yellow, z = (0.92, 0.92, 0.9), (0.9, 0.75, 0.15), 0.012
    for run in _runs(~junction, s):
        for side in (-1, 1):
            parts.append(
                M.strip(
                    path.offset_points(side * 0.12 + 0.06, run, z),
                    path.offset_points(side * 0.12 - 0.06, run, z),
                    yellow,
                    M.PAINT,
                )
            )
            parts += _dashes(path, run, side * LANE_WIDTH, 0.14, white, 3.0, 6.0, z)
            for lateral in (7.0, 8.8):
                parts.append(
                    M.strip(
                        path.offset_points(side * lateral + 0.07, run, z),
                        path.offset_points(side * lateral - 0.07, run, z),
                        white,
                        M.PAINT,
                    )
                )
    return parts


def _sidewalks(path: RoadPath, run: np.ndarray, color) -> list[M.Mesh]:
    parts = []
    for side in (-1, 1):
        inner, outer = side * ROAD_HALF_WIDTH, side * (ROAD_HALF_WIDTH + SIDEWALK_WIDTH)
        parts.append(
            M.strip(
                path.offset_points(inner, run, CURB_HEIGHT),
                path.offset_points(outer, run, CURB_HEIGHT),
                color,
                M.CONCRETE,
            )
        )
        parts.append(
            M.strip(
                path.offset_points(inner, run, 0.0),
                path.offset_points(inner, run, CURB_HEIGHT),
                (0.6, 0.6, 0.58),
                M.CONCRETE,
            )
        )
    return parts


def _roadside(rng: np.random.Generator, path: RoadPath, blocked) -> list[M.Mesh]:
    """Buildings, poles and trees along both sides, leaving the junction free."""
    parts: list[M.Mesh] = []
    for side in (-1, 1):
        s = rng.uniform(0, 10)
        while s < path.length:
            frontage, depth = rng.uniform(8, 26), rng.uniform(8, 16)
            mid = s + frontage / 2
            if not blocked(np.array([s, s + frontage]), 14 + ROAD_HALF_WIDTH).any():
                setback = ROAD_HALF_WIDTH + SIDEWALK_WIDTH + rng.uniform(0.3, 4.0) + depth / 2
                centre, _, normal, heading = path.frame_at(mid)
                xy = centre + normal * side * setback
                height = rng.uniform(5, 28)
                tone = rng.uniform(0.35, 0.85)
                color = np.clip(
                    tone * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)]), 0, 1
                )
                parts.append(
                    M.box(
                        (xy[0], xy[1], height / 2),
                        (frontage * 0.97, depth, height),
                        color,
                        M.FACADE,
                        float(heading),
                    )
                )
            s += frontage + rng.uniform(0.0, 8.0)
        s = rng.uniform(0, 20)
        while s < path.length:
            if not blocked(np.array([s]), ROAD_HALF_WIDTH + 6).any():
                centre, tangent, normal, heading = path.frame_at(s)
                if rng.random() < 0.45:
                    xy = centre + normal * side * (ROAD_HALF_WIDTH + 0.5)
                    parts.append(M.box((*xy, 3.5), (0.18, 0.18, 7.0), (0.45, 0.45, 0.47)))
                    arm = centre + normal * side * (ROAD_HALF_WIDTH - 0.7)
                    parts.append(
                        M.box(
                            (*arm, 6.9), (0.15, 2.4, 0.12), (0.45, 0.45, 0.47), yaw=float(heading)
                        )
                    )
                else:
                    xy = centre + normal * side * (ROAD_HALF_WIDTH + SIDEWALK_WIDTH - 0.8)
                    trunk_h = rng.uniform(1.8, 3.0)
                    parts.append(
                        M.box((*xy, trunk_h / 2), (0.3, 0.3, trunk_h), (0.35, 0.25, 0.15))
                    )
                    radius = rng.uniform(1.2, 2.2)
                    green = np.array([0.18, 0.42, 0.15]) * rng.uniform(0.7, 1.2)
                    parts.append(
                        M.crown(
                            (*xy, trunk_h + radius * 0.9),
                            radius,
                            radius * 2.2,
                            np.clip(green, 0, 1),
                        )
                    )
            s += rng.uniform(9, 22)
    return parts


def _side_road(
    rng: np.random.Generator, path: RoadPath, s_int: float, half_len: float, asphalt
) -> list[M.Mesh]:
    centre, tangent, normal, _ = path.frame_at(s_int)
    along = np.arange(-half_len, half_len + 1e-6, 2.0)
    side_xy = centre[None, :] + normal[None, :] * along[:, None]

    def line(offset: float, z: float, t: np.ndarray = along) -> np.ndarray:
        xy = centre[None, :] + normal[None, :] * t[:, None] + tangent[None, :] * offset
        return np.column_stack([xy, np.full(len(xy), z)])

    half = 7.0
    parts = [M.strip(line(-half, SIDE_ROAD_Z), line(half, SIDE_ROAD_Z), asphalt, M.ASPHALT)]
    for sign in (-1, 1):
        t = along[sign * along > ROAD_HALF_WIDTH + 0.5]
        if len(t) >= 2:
            parts.append(
                M.strip(line(0.08, 0.0, t), line(-0.08, 0.0, t), (0.92, 0.92, 0.9), M.PAINT)
            )
            for edge in (-1, 1):
                off_in, off_out = edge * half, edge * (half + SIDEWALK_WIDTH)
                parts.append(
                    M.strip(
                        line(off_in, CURB_HEIGHT, t),
                        line(off_out, CURB_HEIGHT, t),
                        (0.62, 0.61, 0.58),
                        M.CONCRETE,
                    )
                )
        stripe_centre = sign * (ROAD_HALF_WIDTH + 1.5)
        for k in np.arange(-half + 0.5, half, 1.0):  # zebra crossing over the side road
            t = np.array([stripe_centre - 1.2, stripe_centre + 1.2])
            parts.append(
                M.strip(
                    line(k + 0.25, SIDE_ROAD_Z + 0.012, t),
                    line(k - 0.25, SIDE_ROAD_Z + 0.012, t),
                    (0.9, 0.9, 0.88),
                    M.PAINT,
                )
            )
    del side_xy
    return parts


def build_world(rng: np.random.Generator, length: float) -> World:
    """A fresh static world of at least ``length`` metres of road."""
    path, s_int = make_path(rng, length)
    world = World(path, s_int, M.Mesh.empty())
    junction = world.near_intersection(path.s, 7.5)
    parts = _road_mesh(rng, path, junction)
    curb_free = ~world.near_intersection(path.s, 7.0)
    for run in _runs(curb_free, path.s):
        parts += _sidewalks(path, run, rng.uniform(0.55, 0.7) * np.array([1.0, 0.98, 0.94]))
    parts += _roadside(rng, path, world.near_intersection)
    if s_int is not None:
        parts += _side_road(rng, path, s_int, 80.0, parts[0].face_colors[0] / 1.0)
    lo = path.xy.min(axis=0) - 150
    hi = path.xy.max(axis=0) + 150
    ground = np.array([[lo[0], lo[1], GROUND_Z], [lo[0], hi[1], GROUND_Z]])
    far = np.array([[hi[0], lo[1], GROUND_Z], [hi[0], hi[1], GROUND_Z]])
    parts.append(M.strip(ground, far, (0.33, 0.42, 0.22), M.GRASS))
    world.static_mesh = M.concatenate(parts)
    return world
